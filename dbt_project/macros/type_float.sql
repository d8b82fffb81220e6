{#- DuckDB's FLOAT is 4 bytes: money and credit need DOUBLE, as PostgreSQL's float is. -#}
{% macro duckdb__type_float() -%}
    double
{%- endmacro %}

{#- Spark's FLOAT is 4 bytes too. -#}
{% macro spark__type_float() -%}
    double
{%- endmacro %}
