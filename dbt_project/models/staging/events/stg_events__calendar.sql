with

-- Optional (events.csv): no rows when the raw table is absent.
source as (

    {{ optional_source('raw', 'calendar_events', [
        ('date', dbt.type_timestamp()),
        ('end_date', dbt.type_timestamp()),
        ('name', dbt.type_string()),
        ('kind', dbt.type_string()),
    ]) }}

),

renamed as (

    select
        cast(date as date) as event_date,
        cast(coalesce(end_date, date) as date) as event_end_date,
        name as event_name,
        lower(trim(kind)) as event_kind

    from source

)

select * from renamed
