with

ads as (

    select * from {{ ref('stg_ads__performance_daily') }}

),

-- A campaign is (channel, campaign_id): ad platforms number their campaigns independently, so two
-- channels may both have a campaign 'pai-00'.
latest_name as (

    select channel, campaign_id, campaign_name
    from (
        select
            channel,
            campaign_id,
            campaign_name,
            row_number() over (partition by channel, campaign_id order by date_day desc) as recency
        from ads
    ) as ranked
    where recency = 1

),

activity as (

    select
        channel,
        campaign_id,
        min(date_day) as first_date,
        max(date_day) as last_date,
        count(distinct case when spend > 0 then date_day end) as active_days,
        sum(spend) as total_spend,
        cast(sum(impressions) as {{ dbt.type_bigint() }}) as total_impressions,
        cast(sum(clicks) as {{ dbt.type_bigint() }}) as total_clicks
    from ads
    group by channel, campaign_id

)

select
    activity.channel,
    activity.campaign_id,
    latest_name.campaign_name,
    activity.first_date,
    activity.last_date,
    activity.active_days,
    activity.total_spend,
    activity.total_impressions,
    activity.total_clicks
from activity
inner join latest_name
    on latest_name.channel = activity.channel
    and latest_name.campaign_id = activity.campaign_id
