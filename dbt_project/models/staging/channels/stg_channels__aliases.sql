with

source as (

    select * from {{ source('raw', 'channel_aliases') }}

),

renamed as (

    select
        lower(trim(cast(alias as {{ dbt.type_string() }}))) as alias,
        lower(trim(cast(channel as {{ dbt.type_string() }}))) as channel

    from source

)

select * from renamed
