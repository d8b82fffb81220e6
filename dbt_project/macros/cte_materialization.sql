{#-
  A CTE's materialization hint (`materialized` or `not materialized`) where the engine has one:
  `scored as {{ cte_materialization('materialized') }} (`. DuckDB and PostgreSQL honour it; Spark SQL
  has no such syntax (its optimizer decides), so the hint is left out there.
-#}
{% macro cte_materialization(hint) -%}
    {%- if hint not in ('materialized', 'not materialized') -%}
        {{ exceptions.raise_compiler_error("cte_materialization: hint must be 'materialized' or 'not materialized', got '" ~ hint ~ "'") }}
    {%- endif -%}
    {{ return(adapter.dispatch('cte_materialization', 'spendwise')(hint)) }}
{%- endmacro %}

{% macro default__cte_materialization(hint) -%}
    {{ hint }}
{%- endmacro %}

{% macro spark__cte_materialization(hint) -%}
{%- endmacro %}
