with

ads as (

    select * from {{ ref('stg_ads__performance_daily') }}

),

campaign_daily as (

    select
        date_day as date,
        campaign_id,
        channel,
        sum(spend) as spend,
        cast(sum(impressions) as {{ dbt.type_bigint() }}) as impressions,
        cast(sum(reach) as {{ dbt.type_bigint() }}) as reach,
        cast(sum(clicks) as {{ dbt.type_bigint() }}) as clicks,
        sum(platform_conversions) as conversions,
        sum(platform_revenue) as revenue
    from ads
    group by date_day, campaign_id, channel

)

select
    *,
    {{ safe_divide('clicks', 'impressions') }} as ctr,
    {{ safe_divide('spend', 'clicks') }} as cpc,
    {{ safe_divide('spend * 1000.0', 'impressions') }} as cpm,
    {{ safe_divide('revenue', 'spend') }} as roas
from campaign_daily
