{#- The business's own daily sales (organic included) on the ads calendar: the media-mix target. -#}
with

conversions as (

    select * from {{ ref('stg_events__conversions') }}

),

calendar as (

    {{ reporting_calendar() }}

),

daily as (

    select
        conversion_date as date,
        count(*) as conversions,
        sum(revenue) as revenue
    from conversions
    group by conversion_date

)

select
    cast(calendar.date_day as date) as date,
    coalesce(daily.conversions, 0) as conversions,
    coalesce(daily.revenue, 0) as revenue
from calendar
left join daily
    on daily.date = cast(calendar.date_day as date)
