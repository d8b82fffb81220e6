{#-
  Expressions whose spelling differs on Spark SQL, dispatched so the models stay one file per model.
-#}

{#- A whole number of seconds as fractional days. DuckDB and PostgreSQL divide by the literal 86400.0
    as they always did; Spark reads 86400.0 as DECIMAL(6,1) and its decimal division keeps six places,
    so it divides a double instead. -#}
{% macro spendwise_days_from_seconds(seconds) -%}
    {{ return(adapter.dispatch('spendwise_days_from_seconds', 'spendwise')(seconds)) }}
{%- endmacro %}

{% macro default__spendwise_days_from_seconds(seconds) -%}
    {{ seconds }} / 86400.0
{%- endmacro %}

{% macro spark__spendwise_days_from_seconds(seconds) -%}
    cast({{ seconds }} as double) / 86400
{%- endmacro %}

{#- `measure` of a group's rows joined by `delimiter_text` in the order of `order_by_column`.
    dbt-spark's listagg ignores the order (collect_list has none): on Spark the values are collected
    with their sort key, sorted, then joined. -#}
{% macro spendwise_ordered_listagg(measure, delimiter_text, order_by_column) -%}
    {{ return(adapter.dispatch('spendwise_ordered_listagg', 'spendwise')(measure, delimiter_text, order_by_column)) }}
{%- endmacro %}

{% macro default__spendwise_ordered_listagg(measure, delimiter_text, order_by_column) -%}
    {{ dbt.listagg(measure, delimiter_text, 'order by ' ~ order_by_column) }}
{%- endmacro %}

{% macro spark__spendwise_ordered_listagg(measure, delimiter_text, order_by_column) -%}
    array_join(transform(array_sort(collect_list(struct({{ order_by_column }} as sort_key, {{ measure }} as value))),
                         entry -> entry.value), {{ delimiter_text }})
{%- endmacro %}

{#- Whether the incremental journey models keep their state (ops.dbt_incremental_state) and delete
    rows to recompute. Not on Spark: plain parquet tables have no row-level DELETE, so the models are
    rebuilt in full on every run there (full_refresh in dbt_project.yml) and record nothing. -#}
{% macro spendwise_keeps_incremental_state() -%}
    {{ return(adapter.dispatch('spendwise_keeps_incremental_state', 'spendwise')()) }}
{%- endmacro %}

{% macro default__spendwise_keeps_incremental_state() -%}
    {{ return(true) }}
{%- endmacro %}

{% macro spark__spendwise_keeps_incremental_state() -%}
    {{ return(false) }}
{%- endmacro %}
