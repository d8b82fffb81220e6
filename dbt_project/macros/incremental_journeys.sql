{#-
  Incremental journeys (int_journeys_changed, int_journeys, touchpoint_credit, journeys_with_paths).

  A journey depends only on its user's rows, so the unit of reprocessing is a user from a point in
  time on: int_journeys_changed appends, per dbt run (batch_at = run_started_at), the users whose raw
  rows changed and the earliest changed day (`changed_from`). A change at time t can only alter the
  user's journeys that convert at or after t (their touches and their previous conversion are at or
  before the conversion) and the user's non-converting journey, so the incremental models delete and
  recompute exactly those, from the user's whole history.

  Where the changed users come from:
    - ops.raw_changes, written by the loaders in the same transaction as the raw rows
      (core/raw_contract.py): kind 'rows' = (user_id, day) of every row merged in or replaced by a
      landing drop (old and new day); kind 'replace' = raw data replaced wholesale (spendwise load /
      demo, or a new channels.csv): the next run rebuilds everything.
    - the late-arrival window (var late_arrival_days): users with raw rows in the last N days
      before the newest raw row, for writers that do not log their changes.
    - rows deleted from the start of history (raw retention, purge-user --retention): users whose
      journeys in int_journeys hold a touch or conversion older than the oldest raw one.
  Every model records the last batch it applied in ops.dbt_incremental_state (post-hook, in the
  model's transaction); without a record, or after a 'replace', it rebuilds everything.
-#}

{#- Incremental journeys are opt-in (var incremental_journeys, SPENDWISE_INCREMENTAL_JOURNEYS=true):
    without it every run marks a full rebuild (see dbt_project.yml for why). -#}
{% macro spendwise_incremental_enabled() -%}
    {{- return((var('incremental_journeys', false) | string | lower) in ['true', '1', 'yes', 'on']) -}}
{%- endmacro %}

{% macro spendwise_ops_relation(identifier) -%}
    {{- return(adapter.get_relation(database=target.database, schema='ops', identifier=identifier)) -}}
{%- endmacro %}

{% macro spendwise_timestamp_literal(value) -%}
    cast('{{ value.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#- What the model's rows were computed with: its SQL and the vars of journeys and attribution.
    Another value in the state (a changed model or a new lookback/weight) means a full rebuild. -#}
{% macro spendwise_journey_settings() -%}
    {%- set names = ['journey_lookback_days', 'attribution_time_decay_half_life_days',
                     'attribution_position_first_weight', 'attribution_position_last_weight',
                     'attribution_w_first_weight', 'attribution_w_lead_weight', 'attribution_w_last_weight'] -%}
    {%- set values = {} -%}
    {%- for name in names -%}{%- do values.update({name: var(name) | string}) -%}{%- endfor -%}
    {{- return(local_md5(model.checksum.checksum ~ tojson(values, sort_keys=True))) -}}
{%- endmacro %}

{#- The batch (run_started_at, naive UTC) this model applied last with today's settings, or none. -#}
{% macro spendwise_applied_batch(model_name) -%}
    {%- if not execute -%}{{ return(none) }}{%- endif -%}
    {%- set state = spendwise_ops_relation('dbt_incremental_state') -%}
    {%- if state is none -%}{{ return(none) }}{%- endif -%}
    {%- set result = run_query("select max(batch_at) from " ~ state ~ " where model = '" ~ model_name
                               ~ "' and settings_md5 = '" ~ spendwise_journey_settings() ~ "'") -%}
    {{- return(result.columns[0].values()[0]) -}}
{%- endmacro %}

{#-
  'build': dbt creates the table (first build or --full-refresh); 'full': the table exists but must be
  rebuilt (no applied batch, or a wholesale replace since): delete all rows, insert all;
  'incremental': delete and recompute the changed users' journeys.
-#}
{% macro spendwise_journey_mode(model_name) -%}
    {#- Unit tests (no `this`) see the whole model, as a first build. -#}
    {%- if this is none or not is_incremental() -%}{{ return('build') }}{%- endif -%}
    {%- if not execute -%}{{ return('incremental') }}{%- endif -%}
    {%- set applied = spendwise_applied_batch(model_name) -%}
    {%- if applied is none -%}{{ return('full') }}{%- endif -%}
    {%- set full = run_query("select count(*) from " ~ ref('int_journeys_changed') ~ " where is_full and batch_at > "
                             ~ spendwise_timestamp_literal(applied)) -%}
    {{- return('full' if full.columns[0].values()[0] | int > 0 else 'incremental') -}}
{%- endmacro %}

{#- The users to recompute since the batch `model_name` applied last: user_id, changed_from. -#}
{% macro spendwise_changed_users(model_name) -%}
    {%- set applied = spendwise_applied_batch(model_name) -%}
    select user_id, min(changed_from) as changed_from
    from {{ ref('int_journeys_changed') }}
    where user_id is not null
        and batch_at > {{ spendwise_timestamp_literal(applied) }}
    group by user_id
{%- endmacro %}

{#- Pre-hook: remove the rows the model recomputes (`time_column`: the journey's conversion time). -#}
{% macro spendwise_delete_changed_journeys(model_name, time_column='converted_at') -%}
    {%- set mode = spendwise_journey_mode(model_name) -%}
    {%- if mode == 'full' -%}
        delete from {{ this }}
    {%- elif mode == 'incremental' -%}
        delete from {{ this }} old
        where exists (
            select 1
            from ({{ spendwise_changed_users(model_name) }}) changed
            where changed.user_id = old.user_id
                and (old.{{ time_column }} is null or old.{{ time_column }} >= changed.changed_from)
        )
    {%- endif -%}
{%- endmacro %}

{#- The incremental models that read int_journeys_changed. -#}
{% macro spendwise_journey_consumers() -%}
    {{- return(['int_journeys', 'touchpoint_credit', 'journeys_with_paths']) -}}
{%- endmacro %}

{#- Post-hook: this model now reflects every batch of int_journeys_changed, computed with these
    settings. Then the user rows of batches before the last one every consumer applied, and the loaders' log entries read more
    than a day ago, are deleted (both tables would otherwise grow with every run). -#}
{% macro spendwise_record_applied_batch(model_name) -%}
    {%- if not spendwise_keeps_incremental_state() -%}{{ return('') }}{%- endif -%}
    {%- set changes = ref('int_journeys_changed') -%}
    {%- set consumers = "'" ~ spendwise_journey_consumers() | join("', '") ~ "'" -%}
    create schema if not exists ops;
    create table if not exists ops.dbt_incremental_state (
        model {{ dbt.type_string() }}, batch_at {{ dbt.type_timestamp() }}, settings_md5 {{ dbt.type_string() }},
        recorded_at {{ dbt.type_timestamp() }}
    );
    delete from ops.dbt_incremental_state where model = '{{ model_name }}';
    insert into ops.dbt_incremental_state (model, batch_at, settings_md5, recorded_at)
    select '{{ model_name }}', max(batch_at), '{{ spendwise_journey_settings() }}',
        {{ spendwise_timestamp_literal(modules.datetime.datetime.utcnow()) }}
    from {{ changes }};
    delete from {{ changes }}
    where user_id is not null
        and batch_at < (
            select min(batch_at) from ops.dbt_incremental_state where model in ({{ consumers }})
        )
        and {{ spendwise_journey_consumers() | length }} = (
            select count(*) from ops.dbt_incremental_state where model in ({{ consumers }})
        )
    {%- set log = spendwise_ops_relation('raw_changes') if execute else none -%}
    {%- if log is not none %};
    delete from {{ log }}
    where changed_at < (select {{ dbt.dateadd('day', -1, 'max(raw_changes_upto)') }} from {{ changes }})
    {%- endif %}
{%- endmacro %}
