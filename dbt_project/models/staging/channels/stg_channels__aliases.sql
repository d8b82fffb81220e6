with

-- Optional (channels.csv): no rows when the raw table is absent.
source as (

    {{ optional_source('raw', 'channel_aliases', [
        ('alias', dbt.type_string()),
        ('channel', dbt.type_string()),
    ]) }}

),

renamed as (

    select
        lower(trim(alias)) as alias,
        lower(trim(channel)) as channel

    from source

)

select * from renamed
