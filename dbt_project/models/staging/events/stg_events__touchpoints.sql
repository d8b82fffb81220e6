with

source as (

    select * from {{ source('raw', 'touchpoints') }}

),

renamed as (

    select
        cast(touchpoint_id as {{ dbt.type_string() }}) as touchpoint_id,
        cast(user_id as {{ dbt.type_string() }}) as user_id,
        cast(occurred_at as {{ dbt.type_timestamp() }}) as occurred_at,
        lower(trim(cast(channel as {{ dbt.type_string() }}))) as channel,
        cast(campaign_id as {{ dbt.type_string() }}) as campaign_id,
        lower(trim(cast(interaction as {{ dbt.type_string() }}))) as interaction

    from source

)

select * from renamed
