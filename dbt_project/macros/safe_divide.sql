{#- Ratio that is null instead of an error when the denominator is zero. The numerator is cast to a
    double first: PostgreSQL divides integers as integers (clicks / impressions would be 0). -#}
{% macro safe_divide(numerator, denominator) -%}
    cast(({{ numerator }}) as {{ dbt.type_float() }}) / nullif(({{ denominator }}), 0)
{%- endmacro %}
