{#-
  One row per day (`date_day`) from the first day of the ads data to its last complete day: the
  reporting calendar. It ends on the data's last day, never padded up to today, and today (UTC) is
  left out while it is still running, so a partial day is never modelled as a whole one.
-#}
{% macro reporting_calendar() -%}
    {{ dbt.date_spine(
        'day',
        "(select min(date) from " ~ ref('fct_campaign_daily') ~ ")",
        "(select least(" ~ dbt.dateadd('day', 1, 'max(date)') ~ ", " ~ spendwise_utc_today() ~ ") from "
            ~ ref('fct_campaign_daily') ~ ")"
    ) }}
{%- endmacro %}

{#- Today's date in UTC: the first day that is not complete yet. -#}
{% macro spendwise_utc_today() -%}
    cast(current_timestamp at time zone 'UTC' as date)
{%- endmacro %}
