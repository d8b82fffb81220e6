{#-
  One row per touch of a journey.
  A converting journey is a conversion with the user's touches in the
  `journey_lookback_days` before it, after the user's previous conversion.
  A non-converting journey is the user's touches after their last conversion (or all of them
  for users who never converted), within `journey_lookback_days` before their last touch.
  Incremental: only the users in int_journeys_changed since the last applied batch are recomputed,
  their journeys converting at or after `changed_from` and their open journey
  (macros/incremental_journeys.sql).
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='sync_all_columns',
    pre_hook="{{ spendwise_delete_changed_journeys('int_journeys') }}",
    post_hook="{{ spendwise_record_applied_batch('int_journeys') }}",
) }}
{%- set lookback_days = var('journey_lookback_days') -%}
{%- set incremental = spendwise_journey_mode('int_journeys') == 'incremental' -%}
-- depends_on: {{ ref('int_journeys_changed') }}

with

{% if incremental -%}
changed as (

    {{ spendwise_changed_users('int_journeys') }}

),

{% endif -%}
touchpoints as (

    select * from {{ ref('stg_events__touchpoints') }}
    {%- if incremental %}
    where user_id in (select user_id from changed)
    {%- endif %}

),

conversions as (

    select
        conversion_id,
        user_id,
        converted_at,
        revenue,
        lag(converted_at) over (
            partition by user_id order by converted_at, conversion_id
        ) as previous_converted_at
    from {{ ref('stg_events__conversions') }}
    {%- if incremental %}
    where user_id in (select user_id from changed)
    {%- endif %}

),

converting_touches as (

    select
        {{ dbt.concat(["'c-'", "conversions.conversion_id"]) }} as journey_id,
        conversions.conversion_id,
        conversions.user_id,
        conversions.converted_at,
        conversions.revenue,
        touchpoints.touchpoint_id,
        touchpoints.occurred_at,
        touchpoints.channel,
        touchpoints.campaign_id,
        touchpoints.interaction
    from conversions
    inner join touchpoints
        on touchpoints.user_id = conversions.user_id
        and touchpoints.occurred_at <= conversions.converted_at
        and touchpoints.occurred_at > {{ dbt.dateadd('day', -lookback_days, 'conversions.converted_at') }}
        and (
            conversions.previous_converted_at is null
            or touchpoints.occurred_at > conversions.previous_converted_at
        )

),

last_conversion as (

    select user_id, max(converted_at) as last_converted_at
    from conversions
    group by user_id

),

open_touches as (

    select
        touchpoints.*,
        max(touchpoints.occurred_at) over (partition by touchpoints.user_id) as last_touch_at
    from touchpoints
    left join last_conversion
        on last_conversion.user_id = touchpoints.user_id
    where last_conversion.last_converted_at is null
        or touchpoints.occurred_at > last_conversion.last_converted_at

),

non_converting_touches as (

    select
        {{ dbt.concat(["'u-'", "user_id"]) }} as journey_id,
        cast(null as {{ dbt.type_string() }}) as conversion_id,
        user_id,
        cast(null as {{ dbt.type_timestamp() }}) as converted_at,
        cast(null as {{ dbt.type_float() }}) as revenue,
        touchpoint_id,
        occurred_at,
        channel,
        campaign_id,
        interaction
    from open_touches
    where occurred_at > {{ dbt.dateadd('day', -lookback_days, 'last_touch_at') }}

),

journeys as (

    select * from converting_touches
    union all
    select * from non_converting_touches

),

numbered as (

    select
        journey_id,
        conversion_id,
        conversion_id is not null as is_converted,
        user_id,
        converted_at,
        revenue,
        touchpoint_id,
        occurred_at,
        channel,
        campaign_id,
        interaction,
        row_number() over (
            partition by journey_id order by occurred_at, touchpoint_id
        ) as touch_index,
        count(*) over (partition by journey_id) as touch_count,
        case
            when converted_at is not null
                then {{ spendwise_days_from_seconds(dbt.datediff('occurred_at', 'converted_at', 'second')) }}
        end as days_before_conversion
    from journeys

)

{% if incremental -%}
select numbered.*
from numbered
inner join changed
    on changed.user_id = numbered.user_id
where numbered.converted_at is null
    or numbered.converted_at >= changed.changed_from
{%- else -%}
select * from numbered
{%- endif %}
