{#-
  Every converting journey gets exactly one conversion of credit from every model: a failure is a
  (journey, model) whose credit does not sum to 1 within 1e-9 (model named), or a converting journey
  that some model gave no credit rows at all (model null, total_credit the number of models that did).
  Written as two lean passes rather than journeys x models joined to the credit totals: at 100M
  touchpoints that join ran DuckDB out of memory under a 3GB limit.
-#}
{{ config(meta={'dagster': {'ref': {'name': 'touchpoint_credit'}}}) }}

{%- set models = attribution_model_names() %}

with

converting_journeys as (

    select distinct journey_id
    from {{ ref('int_journeys') }}
    where is_converted

),

credit_totals as (

    select model, journey_id, sum(credit) as total_credit
    from {{ ref('touchpoint_credit') }}
    where model in ({% for model in models %}'{{ model }}'{% if not loop.last %}, {% endif %}{% endfor %})
    group by model, journey_id

),

models_per_journey as (

    select journey_id, count(*) as n_models
    from credit_totals
    group by journey_id

)

select model, journey_id, total_credit
from credit_totals
where abs(total_credit - 1) >= 1e-9

union all

select
    cast(null as {{ dbt.type_string() }}) as model,
    converting_journeys.journey_id,
    cast(coalesce(models_per_journey.n_models, 0) as {{ attribution_double() }}) as total_credit
from converting_journeys
left join models_per_journey
    on models_per_journey.journey_id = converting_journeys.journey_id
where coalesce(models_per_journey.n_models, 0) < {{ models | length }}
