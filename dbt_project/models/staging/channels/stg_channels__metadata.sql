with

-- Optional (channels.csv): no rows when the raw table is absent.
source as (

    {{ optional_source('raw', 'channel_metadata', [
        ('channel', dbt.type_string()),
        ('channel_group', dbt.type_string()),
        ('is_paid', dbt.type_boolean()),
        ('description', dbt.type_string()),
    ]) }}

),

renamed as (

    select
        lower(trim(channel)) as channel,
        channel_group,
        is_paid,
        description

    from source

)

select * from renamed
