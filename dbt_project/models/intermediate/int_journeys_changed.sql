{#-
  Append-only: per dbt run (batch_at), the users whose journeys must be recomputed and from when
  (changed_from), plus one marker row (user_id null) that records the run, whether everything must
  be rebuilt (is_full) and how far ops.raw_changes was read (raw_changes_upto).
  See macros/incremental_journeys.sql for the whole scheme.
-#}
{{ config(materialized='incremental', incremental_strategy='append') }}
-- depends_on: {{ ref('stg_events__touchpoints') }}
-- depends_on: {{ ref('stg_events__conversions') }}
{%- set late_days = var('late_arrival_days') -%}
{%- set batch = spendwise_timestamp_literal(run_started_at) -%}
{%- set changes = spendwise_ops_relation('raw_changes') if execute else none -%}
{%- set journeys = adapter.get_relation(database=this.database, schema=this.schema, identifier='int_journeys') if execute else none -%}

{#- `spendwise refresh --full-refresh` sets spendwise_full_refresh: every consumer rebuilds all. -#}
{%- if not is_incremental() or var('spendwise_full_refresh', false) or not spendwise_incremental_enabled() %}

select
    {{ batch }} as batch_at,
    true as is_full,
    cast(null as {{ dbt.type_string() }}) as user_id,
    cast(null as {{ dbt.type_timestamp() }}) as changed_from,
    {% if changes is not none %}(select max(changed_at) from {{ changes }}){% else %}cast(null as {{ dbt.type_timestamp() }}){% endif %} as raw_changes_upto

{%- else %}

with

previous as (

    select max(raw_changes_upto) as upto from {{ this }}

),

{% if changes is not none -%}
logged as (

    select changes.*
    from {{ changes }} changes
    cross join previous
    -- An hour of overlap: a loader's transaction that commits after a later one is still seen.
    where previous.upto is null
        or changes.changed_at > {{ dbt.dateadd('hour', -1, 'previous.upto') }}

),

replaced as (

    select count(*) as replaces
    from {{ changes }} changes
    cross join previous
    where changes.kind = 'replace'
        and (previous.upto is null or changes.changed_at > previous.upto)

),
{%- endif %}

touchpoints as (

    select user_id, occurred_at from {{ ref('stg_events__touchpoints') }}

),

conversions as (

    select user_id, converted_at as occurred_at from {{ ref('stg_events__conversions') }}

),

raw_rows as (

    select * from touchpoints
    union all
    select * from conversions

),

late_window as (

    select {{ dbt.date_trunc('day', dbt.dateadd('day', -late_days, 'max(occurred_at)')) }} as starts_at
    from raw_rows

),

changed as (

    {% if changes is not none -%}
    select user_id, cast(day as {{ dbt.type_timestamp() }}) as changed_from
    from logged
    where kind = 'rows'

    union all

    {% endif -%}
    -- Late arrivals that no loader logged.
    select raw_rows.user_id, min(late_window.starts_at) as changed_from
    from raw_rows
    inner join late_window
        on raw_rows.occurred_at >= late_window.starts_at
    group by raw_rows.user_id

    {%- if journeys is not none %}

    union all

    -- Rows deleted from the start of history (retention): journeys holding older rows than raw.
    select journeys.user_id, cast('1900-01-01' as {{ dbt.type_timestamp() }}) as changed_from
    from {{ journeys }} journeys
    cross join (
        select
            (select min(occurred_at) from touchpoints) as first_touch_at,
            (select min(occurred_at) from conversions) as first_conversion_at
    ) firsts
    where journeys.occurred_at < firsts.first_touch_at
        or firsts.first_touch_at is null
        or journeys.converted_at < firsts.first_conversion_at
        or (journeys.converted_at is not null and firsts.first_conversion_at is null)
    group by journeys.user_id
    {%- endif %}

)

select
    {{ batch }} as batch_at,
    {% if changes is not none %}(select replaces from replaced) > 0{% else %}false{% endif %} as is_full,
    cast(null as {{ dbt.type_string() }}) as user_id,
    cast(null as {{ dbt.type_timestamp() }}) as changed_from,
    {% if changes is not none %}(select max(changed_at) from {{ changes }}){% else %}cast(null as {{ dbt.type_timestamp() }}){% endif %} as raw_changes_upto

union all

select
    {{ batch }} as batch_at,
    false as is_full,
    cast(user_id as {{ dbt.type_string() }}) as user_id,
    min(changed_from) as changed_from,
    cast(null as {{ dbt.type_timestamp() }}) as raw_changes_upto
from changed
group by user_id

{%- endif %}
