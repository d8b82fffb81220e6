{#-
  One row per journey: its channel path ('a > b > c' in touch order), whether it converted and its
  value. conversion_paths sums these per path. Incremental like int_journeys: the changed users'
  journeys converting at or after `changed_from` and their open journey are recomputed
  (macros/incremental_journeys.sql); the path string is the costly part, so it is kept per journey.
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='sync_all_columns',
    pre_hook="{{ spendwise_delete_changed_journeys('journeys_with_paths') }}",
    post_hook="{{ spendwise_record_applied_batch('journeys_with_paths') }}",
) }}
{%- set incremental = spendwise_journey_mode('journeys_with_paths') == 'incremental' -%}
-- depends_on: {{ ref('int_journeys_changed') }}

with

{% if incremental -%}
changed as (

    {{ spendwise_changed_users('journeys_with_paths') }}

),

journeys as (

    select journeys.*
    from {{ ref('int_journeys') }} journeys
    inner join changed
        on changed.user_id = journeys.user_id
    where journeys.converted_at is null
        or journeys.converted_at >= changed.changed_from

)
{%- else -%}
journeys as (

    select * from {{ ref('int_journeys') }}

)
{%- endif %}

select
    journey_id,
    user_id,
    max(converted_at) as converted_at,
    max(case when is_converted then 1 else 0 end) as converted,
    max(revenue) as revenue,
    {{ spendwise_ordered_listagg('channel', "' > '", 'touch_index') }} as path
from journeys
group by journey_id, user_id
