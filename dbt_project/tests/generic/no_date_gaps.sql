{#- Fails for each run of more than `max_missing_days` consecutive days with no row at all:
    the gap-free marts would otherwise turn a missing week of data into a week of zeros. -#}
{% test no_date_gaps(model, column_name, max_missing_days=2) %}
with

days as (

    select distinct {{ column_name }} as day from {{ model }} where {{ column_name }} is not null

),

gaps as (

    select day, lag(day) over (order by day) as previous_day from days

)

select previous_day, day, {{ dbt.datediff('previous_day', 'day', 'day') }} - 1 as missing_days
from gaps
where previous_day is not null
    and {{ dbt.datediff('previous_day', 'day', 'day') }} - 1 > {{ max_missing_days }}
{% endtest %}
