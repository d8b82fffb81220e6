{#-
  Bounded lock waits on PostgreSQL: every model and seed runs this as its first hook (dbt_project.yml),
  so no statement of a refresh waits longer than SPENDWISE_LOCK_TIMEOUT_SECONDS (default 60) for a
  lock another session holds. Session-level on purpose: dbt drops leftovers and backups outside the
  model's transaction too. DuckDB has no lock waits (one writing process), so nothing is set there.
-#}
{% macro spendwise_lock_timeout() -%}
    {{ return(adapter.dispatch('spendwise_lock_timeout')()) }}
{%- endmacro %}

{% macro default__spendwise_lock_timeout() -%}
{%- endmacro %}

{% macro postgres__spendwise_lock_timeout() -%}
    set lock_timeout = '{{ spendwise_lock_timeout_ms() }}ms'
{%- endmacro %}

{% macro spendwise_lock_timeout_ms() -%}
    {%- set raw = env_var('SPENDWISE_LOCK_TIMEOUT_SECONDS', '60') | trim -%}
    {%- set seconds = raw | float(-1) -%}
    {%- if seconds <= 0 -%}
        {{ exceptions.raise_compiler_error(
            "SPENDWISE_LOCK_TIMEOUT_SECONDS=" ~ raw ~ " is not a number of seconds above 0 (e.g. 60 or 2.5)") }}
    {%- endif -%}
    {{ return(((seconds * 1000) | round | int) | string) }}
{%- endmacro %}
