{#-
  One row per channel and day over the whole reporting period, paused days included with zeros,
  so time-series models see a gap-free calendar. Reach is summed over campaigns: platforms do not
  de-duplicate users across campaigns, so it is an upper bound.
  Reach, conversions and revenue are optional in the ad export: a channel for which the data has
  none of them (no value on any day) gets null on every day, not zeros that would read as measured.
-#}
with

campaign_daily as (

    select * from {{ ref('fct_campaign_daily') }}

),

calendar as (

    {{ reporting_calendar() }}

),

channels as (

    select
        channel,
        count(reach) > 0 as reports_reach,
        count(conversions) > 0 as reports_conversions,
        count(revenue) > 0 as reports_revenue
    from campaign_daily
    group by channel

),

channel_daily as (

    select
        date,
        channel,
        sum(spend) as spend,
        cast(sum(impressions) as {{ dbt.type_bigint() }}) as impressions,
        cast(sum(reach) as {{ dbt.type_bigint() }}) as reach,
        cast(sum(clicks) as {{ dbt.type_bigint() }}) as clicks,
        sum(conversions) as conversions,
        sum(revenue) as revenue,
        count(distinct case when spend > 0 then campaign_id end) as active_campaigns
    from campaign_daily
    group by date, channel

),

filled as (

    select
        cast(calendar.date_day as date) as date,
        channels.channel,
        coalesce(channel_daily.spend, 0) as spend,
        coalesce(channel_daily.impressions, 0) as impressions,
        case when channels.reports_reach then coalesce(channel_daily.reach, 0) end as reach,
        coalesce(channel_daily.clicks, 0) as clicks,
        case when channels.reports_conversions then coalesce(channel_daily.conversions, 0) end as conversions,
        case when channels.reports_revenue then coalesce(channel_daily.revenue, 0) end as revenue,
        coalesce(channel_daily.active_campaigns, 0) as active_campaigns
    from calendar
    cross join channels
    left join channel_daily
        on channel_daily.date = cast(calendar.date_day as date)
        and channel_daily.channel = channels.channel

)

select
    *,
    {{ safe_divide('clicks', 'impressions') }} as ctr,
    {{ safe_divide('spend', 'clicks') }} as cpc,
    {{ safe_divide('spend * 1000.0', 'impressions') }} as cpm,
    {{ safe_divide('revenue', 'spend') }} as roas
from filled
