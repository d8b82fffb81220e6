with

source as (

    select * from {{ source('raw', 'channel_metadata') }}

),

renamed as (

    select
        lower(trim(cast(channel as {{ dbt.type_string() }}))) as channel,
        cast(channel_group as {{ dbt.type_string() }}) as channel_group,
        cast(is_paid as {{ dbt.type_boolean() }}) as is_paid,
        cast(description as {{ dbt.type_string() }}) as description

    from source

)

select * from renamed
