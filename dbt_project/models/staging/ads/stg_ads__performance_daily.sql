with

source as (

    select * from {{ source('raw', 'ad_performance_daily') }}

),

-- channels.csv's aliases: the names under which one channel appears in the ad export or the touchpoints.
aliases as (

    select * from {{ ref('stg_channels__aliases') }}

),

renamed as (

    select
        cast(date as date) as date_day,
        coalesce(aliases.channel, lower(trim(cast(source.channel as {{ dbt.type_string() }})))) as channel,
        cast(campaign_id as {{ dbt.type_string() }}) as campaign_id,
        cast(campaign_name as {{ dbt.type_string() }}) as campaign_name,
        cast(impressions as {{ dbt.type_bigint() }}) as impressions,
        cast(reach as {{ dbt.type_bigint() }}) as reach,
        cast(clicks as {{ dbt.type_bigint() }}) as clicks,
        cast(spend as {{ dbt.type_float() }}) as spend,
        -- Null when the platform did not report it (an empty cell, or no such column in the export).
        cast(conversions as {{ dbt.type_float() }}) as platform_conversions,
        cast(revenue as {{ dbt.type_float() }}) as platform_revenue

    from source
    left join aliases
        on aliases.alias = lower(trim(cast(source.channel as {{ dbt.type_string() }})))

)

select * from renamed
