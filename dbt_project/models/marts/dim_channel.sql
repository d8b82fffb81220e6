with

catalog as (

    select * from {{ ref('channel_catalog') }}

),

activity as (

    select
        channel,
        min(date) as first_date,
        max(date) as last_date,
        count(distinct campaign_id) as campaigns,
        sum(spend) as total_spend
    from {{ ref('fct_campaign_daily') }}
    group by channel

)

select
    catalog.channel,
    catalog.channel_group,
    catalog.is_paid,
    catalog.description,
    activity.first_date,
    activity.last_date,
    coalesce(activity.campaigns, 0) as campaigns,
    coalesce(activity.total_spend, 0) as total_spend
from catalog
left join activity
    on activity.channel = catalog.channel
