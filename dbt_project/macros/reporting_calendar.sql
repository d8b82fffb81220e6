{#- One row per day (`date_day`) from the first to the last day of the ads data: the reporting calendar. -#}
{% macro reporting_calendar() -%}
    {{ dbt.date_spine(
        'day',
        "(select min(date) from " ~ ref('fct_campaign_daily') ~ ")",
        "(select " ~ dbt.dateadd('day', 1, 'max(date)') ~ " from " ~ ref('fct_campaign_daily') ~ ")"
    ) }}
{%- endmacro %}
