-- Channels come from the data: every channel of the ad export or the touchpoints (after channels.csv's
-- aliases), with the metadata channels.csv gives (null without it).
with

metadata as (

    select * from {{ ref('stg_channels__metadata') }}

),

ad_activity as (

    select
        channel,
        min(date) as first_date,
        max(date) as last_date,
        count(distinct campaign_id) as campaigns,
        sum(spend) as total_spend
    from {{ ref('fct_campaign_daily') }}
    group by channel

),

touch_activity as (

    select
        channel,
        count(*) as touchpoints
    from {{ ref('stg_events__touchpoints') }}
    group by channel

),

channels as (

    select channel from ad_activity
    union
    select channel from touch_activity

)

select
    channels.channel,
    metadata.channel_group,
    metadata.is_paid,
    metadata.description,
    ad_activity.first_date,
    ad_activity.last_date,
    coalesce(ad_activity.campaigns, 0) as campaigns,
    coalesce(ad_activity.total_spend, 0) as total_spend,
    cast(coalesce(touch_activity.touchpoints, 0) as {{ dbt.type_bigint() }}) as touchpoints
from channels
left join metadata
    on metadata.channel = channels.channel
left join ad_activity
    on ad_activity.channel = channels.channel
left join touch_activity
    on touch_activity.channel = channels.channel
