{#-
  One row per conversion, touch and rule-based attribution model, with the touch's share of the
  conversion. Zero-credit touches keep their row, so every model sees every touch of a journey.
  Short journeys (n touches), where a rule names more positions than there are touches:
    position_based  n=1: 100%.  n=2: first and last weights renormalised to sum to 1.
    w_shaped        n=1: 100%.  n=2: first and last weights renormalised.  n=3: the middle touch is
                    the lead touch; first, lead and last weights renormalised.  n>=4: the remainder
                    goes in equal parts to the n-3 other touches.
    assisted        n=1: 100% to the only touch.
  When every weight of a case is zero, that case splits equally. See __models.yml for the rules.
  Incremental like int_journeys: the changed users' journeys converting at or after `changed_from`
  are deleted and recomputed (macros/incremental_journeys.sql).
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='sync_all_columns',
    pre_hook="{{ spendwise_delete_changed_journeys('touchpoint_credit') }}",
    post_hook="{{ spendwise_record_applied_batch('touchpoint_credit') }}",
) }}
{%- set s = attribution_settings() -%}
{%- set double = attribution_double() -%}
{%- set incremental = spendwise_journey_mode('touchpoint_credit') == 'incremental' -%}
-- depends_on: {{ ref('int_journeys_changed') }}

with

{% if incremental -%}
changed as (

    {{ spendwise_changed_users('touchpoint_credit') }}

),

journeys as (

    select journeys.*
    from {{ ref('int_journeys') }} journeys
    inner join changed
        on changed.user_id = journeys.user_id
    where journeys.converted_at >= changed.changed_from

),
{%- else -%}
journeys as (

    select * from {{ ref('int_journeys') }}

),
{%- endif %}

converting_touches as (

    select
        journey_id,
        conversion_id,
        touchpoint_id,
        user_id,
        converted_at,
        revenue,
        channel,
        campaign_id,
        interaction,
        touch_index,
        touch_count,
        cast(days_before_conversion as {{ double }}) as age_days,
        -- Ages are taken relative to the youngest touch, so decay weights are at most 1 and never
        -- all underflow to zero, whatever the half-life.
        min(cast(days_before_conversion as {{ double }})) over (partition by journey_id) as youngest_age_days,
        -- W-shaped lead touch: the first click or visit strictly inside the journey, else the middle
        -- touch (the earlier of the two when n is even).
        coalesce(
            min(
                case
                    when interaction in ('click', 'visit') and touch_index > 1 and touch_index < touch_count
                        then touch_index
                end
            ) over (partition by journey_id),
            cast(floor((touch_count + 1) / 2.0) as {{ dbt.type_bigint() }})
        ) as lead_index
    from journeys
    where is_converted

),

scored as {{ cte_materialization('materialized') }} (

    select
        *,
        power(cast(2 as {{ double }}), (youngest_age_days - age_days) / {{ s.half_life }}) as decay_weight
    from converting_touches

),

decayed as (

    select
        *,
        sum(decay_weight) over (partition by journey_id) as decay_total
    from scored

),

first_touch as (

    select
        'first_touch' as model,
        *,
        cast(case when touch_index = 1 then 1 else 0 end as {{ double }}) as credit
    from scored

),

last_touch as (

    select
        'last_touch' as model,
        *,
        cast(case when touch_index = touch_count then 1 else 0 end as {{ double }}) as credit
    from scored

),

linear as (

    select
        'linear' as model,
        *,
        cast(1 as {{ double }}) / touch_count as credit
    from scored

),

time_decay as (

    select
        'time_decay' as model,
        *,
        decay_weight / decay_total as credit
    from decayed

),

position_based as (

    select
        'position_based' as model,
        *,
        case
            when touch_count = 1 then cast(1 as {{ double }})
            when touch_count = 2 and touch_index = 1 then {{ s.position_two_first }}
            when touch_count = 2 then {{ s.position_two_last }}
            when touch_index = 1 then {{ s.position_first }}
            when touch_index = touch_count then {{ s.position_last }}
            else {{ s.position_middle_total }} / (touch_count - 2)
        end as credit
    from scored

),

w_shaped as (

    select
        'w_shaped' as model,
        *,
        case
            when touch_count = 1 then cast(1 as {{ double }})
            when touch_count = 2 and touch_index = 1 then {{ s.w_two_first }}
            when touch_count = 2 then {{ s.w_two_last }}
            when touch_count = 3 and touch_index = 1 then {{ s.w_three_first }}
            when touch_count = 3 and touch_index = 2 then {{ s.w_three_lead }}
            when touch_count = 3 then {{ s.w_three_last }}
            when touch_index = 1 then {{ s.w_first }}
            when touch_index = touch_count then {{ s.w_last }}
            when touch_index = lead_index then {{ s.w_lead }}
            else {{ s.w_rest_total }} / (touch_count - 3)
        end as credit
    from scored

),

assisted as (

    select
        'assisted' as model,
        *,
        case
            when touch_count = 1 then cast(1 as {{ double }})
            when touch_index = touch_count then cast(0 as {{ double }})
            else cast(1 as {{ double }}) / (touch_count - 1)
        end as credit
    from scored

),

credited as (

    {%- for model in attribution_model_names() %}
    select
        model,
        journey_id,
        conversion_id,
        touchpoint_id,
        user_id,
        converted_at,
        channel,
        campaign_id,
        interaction,
        touch_index,
        touch_count,
        revenue,
        credit
    from {{ model }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

)

select
    cast(model as {{ dbt.type_string() }}) as model,
    journey_id,
    conversion_id,
    touchpoint_id,
    user_id,
    converted_at,
    channel,
    campaign_id,
    interaction,
    touch_index,
    touch_count,
    credit,
    credit * cast(revenue as {{ double }}) as credited_revenue
from credited
