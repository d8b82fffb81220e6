{#-
  One row per distinct channel path, in the format attribution packages expect:
  `path` 'a > b > c' in touch order, converting journeys, their value, and `nulls`
  (journeys with that path that did not convert).
-#}
with

journeys as (

    select * from {{ ref('int_journeys') }}

),

journey_paths as (

    select
        journey_id,
        max(case when is_converted then 1 else 0 end) as converted,
        max(revenue) as revenue,
        {{ spendwise_ordered_listagg('channel', "' > '", 'touch_index') }} as path
    from journeys
    group by journey_id

)

select
    path,
    cast(sum(converted) as {{ dbt.type_bigint() }}) as conversions,
    sum(case when converted = 1 then revenue else 0 end) as conversion_value,
    cast(sum(1 - converted) as {{ dbt.type_bigint() }}) as nulls,
    cast(count(*) as {{ dbt.type_bigint() }}) as journeys
from journey_paths
group by path
