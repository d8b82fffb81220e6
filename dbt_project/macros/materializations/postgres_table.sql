{#-
  Tables on PostgreSQL keep their identity across refreshes, so BI users' views and grants on them survive.

  dbt's own table materialization builds `<name>__dbt_tmp`, renames the old table away and drops it
  with CASCADE: every view a user built on it vanishes and every GRANT is lost. Here, when the table
  exists with the same columns (names and types, in order), its rows are replaced inside the model's
  transaction (DELETE + INSERT, as core.warehouse's publish does): readers see the old rows or the new
  ones, views and grants stay, and readers never wait (ROW EXCLUSIVE does not conflict with SELECT).
  When the columns changed, the table is rebuilt as dbt does, but never with CASCADE: if users' views
  depend on it the model fails and says which, and its grants are copied to the new table.
  Locks are waited for at most SPENDWISE_LOCK_TIMEOUT_SECONDS; the error names the blocking session.
  DuckDB keeps dbt's own materialization (one writing process, no users' sessions to protect).
-#}
{% materialization table, adapter='postgres' %}

  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
  {%- set preexisting_intermediate_relation = load_cached_relation(intermediate_relation) -%}
  {%- set backup_relation_type = 'table' if existing_relation is none else existing_relation.type -%}
  {%- set backup_relation = make_backup_relation(target_relation, backup_relation_type) -%}
  {%- set preexisting_backup_relation = load_cached_relation(backup_relation) -%}
  {%- set grant_config = config.get('grants') -%}

  {{ drop_relation_if_exists(preexisting_intermediate_relation) }}
  {{ drop_relation_if_exists(preexisting_backup_relation) }}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  -- `BEGIN` happens here:
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {% call statement('main') -%}
    {{ get_create_table_as_sql(False, intermediate_relation, sql) }}
  {%- endcall %}

  {%- set new_signature = spendwise_column_signature(intermediate_relation) -%}
  {%- set old_signature = spendwise_column_signature(existing_relation) if existing_relation is not none else [] -%}
  {%- set in_place = existing_relation is not none and existing_relation.type == 'table'
                     and old_signature == new_signature and not should_full_refresh() -%}

  {% if in_place %}
    {%- set columns = adapter.get_columns_in_relation(intermediate_relation) | map(attribute='quoted') | join(', ') -%}
    {%- set target = target_relation.include(database=False) -%}
    {{ spendwise_run_with_lock_report(target_relation, [
        'lock table ' ~ target ~ ' in row exclusive mode',
        'delete from ' ~ target,
        'insert into ' ~ target ~ ' (' ~ columns ~ ') select ' ~ columns ~ ' from ' ~ intermediate_relation.include(database=False),
      ], 'row exclusive', 'spendwise_replace_rows') }}
    {% call statement('spendwise_drop_intermediate') -%}
      drop table {{ intermediate_relation }}
    {%- endcall %}
    {% do adapter.cache_dropped(intermediate_relation) %}
  {% else %}
    {% do create_indexes(intermediate_relation) %}
    {{ spendwise_swap_rebuilt(existing_relation, intermediate_relation, target_relation, backup_relation,
                              old_signature, new_signature) }}
  {% endif %}

  {{ run_hooks(post_hooks, inside_transaction=True) }}

  {#- In place the table (and its grants) stays: revoke like an incremental model would. -#}
  {% set should_revoke = should_revoke(existing_relation, full_refresh_mode=not in_place) %}
  {% do apply_grants(target_relation, grant_config, should_revoke=should_revoke) %}

  {% do persist_docs(target_relation, model) %}

  -- `COMMIT` happens here: every step above is one transaction.
  {{ adapter.commit() }}

  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target_relation]}) }}

{% endmaterialization %}
