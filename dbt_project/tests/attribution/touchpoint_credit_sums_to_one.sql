{#-
  Every converting journey gets exactly one conversion of credit from every model: a failure is a
  (journey, model) whose credit does not sum to 1 within 1e-9, or that has no rows at all.
-#}
{{ config(meta={'dagster': {'ref': {'name': 'touchpoint_credit'}}}) }}

with

converting_journeys as (

    select distinct journey_id
    from {{ ref('int_journeys') }}
    where is_converted

),

models as (

    {%- for model in attribution_model_names() %}
    select '{{ model }}' as model
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

credit_totals as (

    select model, journey_id, sum(credit) as total_credit
    from {{ ref('touchpoint_credit') }}
    group by model, journey_id

)

select
    models.model,
    converting_journeys.journey_id,
    credit_totals.total_credit
from converting_journeys
cross join models
left join credit_totals
    on credit_totals.journey_id = converting_journeys.journey_id
    and credit_totals.model = models.model
where credit_totals.total_credit is null
    or abs(credit_totals.total_credit - 1) >= 1e-9
