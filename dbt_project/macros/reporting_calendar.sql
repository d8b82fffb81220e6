{#-
  One row per day (`date_day`) from the first day of the ads data to its last complete day: the
  reporting calendar. It ends on the data's last day, never padded up to today, and today (UTC) is
  left out while it is still running, so a partial day is never modelled as a whole one.
-#}
{% macro reporting_calendar() -%}
    {{ return(adapter.dispatch('reporting_calendar', 'spendwise')()) }}
{%- endmacro %}

{% macro default__reporting_calendar() -%}
    {{ dbt.date_spine(
        'day',
        "(select min(date) from " ~ ref('fct_campaign_daily') ~ ")",
        "(select least(" ~ dbt.dateadd('day', 1, 'max(date)') ~ ", " ~ spendwise_utc_today() ~ ") from "
            ~ ref('fct_campaign_daily') ~ ")"
    ) }}
{%- endmacro %}

{#- Spark: dbt.date_spine's scalar subqueries inside date() do not parse there; one generated
    sequence of days does the same (an empty calendar when the data ends before it starts). -#}
{% macro spark__reporting_calendar() -%}
    select date_day
    from (
        select explode(sequence(first_day, greatest(first_day, date_sub(end_day, 1)), interval 1 day)) as date_day, end_day
        from (
            select min(date) as first_day, least(date_add(max(date), 1), {{ spendwise_utc_today() }}) as end_day
            from {{ ref('fct_campaign_daily') }}
        ) as bounds
    ) as days
    where date_day < end_day
{%- endmacro %}

{#- Today's date in UTC: the first day that is not complete yet. -#}
{% macro spendwise_utc_today() -%}
    {{ return(adapter.dispatch('spendwise_utc_today', 'spendwise')()) }}
{%- endmacro %}

{% macro default__spendwise_utc_today() -%}
    cast(current_timestamp at time zone 'UTC' as date)
{%- endmacro %}

{#- Spark: current_timestamp() is an instant shown in the session's zone; moved so that zone shows
    UTC's wall clock, its date is today's in UTC whatever spark.sql.session.timeZone is. -#}
{% macro spark__spendwise_utc_today() -%}
    to_date(to_utc_timestamp(current_timestamp(), current_timezone()))
{%- endmacro %}
