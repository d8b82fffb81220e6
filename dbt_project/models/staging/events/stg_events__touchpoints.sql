with

source as (

    select * from {{ source('raw', 'touchpoints') }}

),

-- channels.csv's aliases: the names under which one channel appears in the ad export or the touchpoints.
aliases as (

    select * from {{ ref('stg_channels__aliases') }}

),

renamed as (

    select
        cast(touchpoint_id as {{ dbt.type_string() }}) as touchpoint_id,
        cast(user_id as {{ dbt.type_string() }}) as user_id,
        cast(occurred_at as {{ dbt.type_timestamp() }}) as occurred_at,
        coalesce(aliases.channel, lower(trim(cast(source.channel as {{ dbt.type_string() }})))) as channel,
        cast(campaign_id as {{ dbt.type_string() }}) as campaign_id,
        lower(trim(cast(interaction as {{ dbt.type_string() }}))) as interaction

    from source
    left join aliases
        on aliases.alias = lower(trim(cast(source.channel as {{ dbt.type_string() }})))

)

select * from renamed
