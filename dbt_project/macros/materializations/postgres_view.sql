{#-
  Views on PostgreSQL keep their identity across refreshes, like tables (see postgres_table.sql).

  dbt's own view materialization renames the old view away and drops it with CASCADE, taking users'
  views and grants with it, and needs an exclusive lock on the view every run. Here a view whose
  definition did not change is left alone (no lock at all, so a dashboard sitting in an open
  transaction on it cannot stall the refresh); one whose new columns extend the old ones (same names
  and types first) is updated with CREATE OR REPLACE VIEW, which keeps dependents and grants; any
  other change is rebuilt as dbt does, but refused while users' views depend on it.
-#}
{% materialization view, adapter='postgres' %}

  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set target_relation = this.incorporate(type='view') -%}
  {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
  {%- set preexisting_intermediate_relation = load_cached_relation(intermediate_relation) -%}
  {%- set backup_relation_type = 'view' if existing_relation is none else existing_relation.type -%}
  {%- set backup_relation = make_backup_relation(target_relation, backup_relation_type) -%}
  {%- set preexisting_backup_relation = load_cached_relation(backup_relation) -%}
  {%- set grant_config = config.get('grants') -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}

  {{ drop_relation_if_exists(preexisting_intermediate_relation) }}
  {{ drop_relation_if_exists(preexisting_backup_relation) }}

  -- `BEGIN` happens here:
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {% call statement('main') -%}
    {{ get_create_view_as_sql(intermediate_relation, sql) }}
  {%- endcall %}

  {%- set new_signature = spendwise_column_signature(intermediate_relation) -%}
  {%- set old_signature = spendwise_column_signature(existing_relation) if existing_relation is not none else [] -%}
  {%- set is_view = existing_relation is not none and existing_relation.type == 'view' -%}
  {%- set kept = is_view and not should_full_refresh() and new_signature[:old_signature | length] == old_signature -%}

  {% if kept %}
    {%- set definitions = run_query(
        "select pg_get_viewdef('" ~ existing_relation.include(database=False) ~ "'::regclass), "
        ~ "pg_get_viewdef('" ~ intermediate_relation.include(database=False) ~ "'::regclass)").rows[0] -%}
    {% call statement('spendwise_drop_intermediate') -%}
      drop view {{ intermediate_relation }}
    {%- endcall %}
    {% do adapter.cache_dropped(intermediate_relation) %}
    {% if definitions[0] != definitions[1] %}
      {{ spendwise_run_with_lock_report(target_relation, [get_replace_view_sql(target_relation.include(database=False), sql)],
                                        'access exclusive', 'spendwise_replace_view') }}
    {% endif %}
  {% else %}
    {{ spendwise_swap_rebuilt(existing_relation, intermediate_relation, target_relation, backup_relation,
                              old_signature, new_signature) }}
  {% endif %}

  {% set should_revoke = should_revoke(existing_relation, full_refresh_mode=not kept) %}
  {% do apply_grants(target_relation, grant_config, should_revoke=should_revoke) %}

  {% do persist_docs(target_relation, model) %}

  {{ run_hooks(post_hooks, inside_transaction=True) }}

  {{ adapter.commit() }}

  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target_relation]}) }}

{%- endmaterialization -%}
