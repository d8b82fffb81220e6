{#-
  One row per distinct channel path, in the format attribution packages expect:
  `path` 'a > b > c' in touch order, converting journeys, their value, and `nulls`
  (journeys with that path that did not convert).
-#}
with

-- One row per journey with its path, kept incrementally (journeys_with_paths).
journeys_with_paths as (

    select * from {{ ref('journeys_with_paths') }}

)

select
    path,
    cast(sum(converted) as {{ dbt.type_bigint() }}) as conversions,
    sum(case when converted = 1 then revenue else 0 end) as conversion_value,
    cast(sum(1 - converted) as {{ dbt.type_bigint() }}) as nulls,
    cast(count(*) as {{ dbt.type_bigint() }}) as journeys
from journeys_with_paths
group by path
