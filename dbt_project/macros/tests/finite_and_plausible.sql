{#-
  Rows whose value is not a finite number (Infinity, -Infinity, NaN) or lies beyond ±max_abs are
  failures; nulls are left to not_null. Both warehouses store infinities and NaN in double columns,
  and an infinite spend would otherwise reach every ROAS and model downstream. `spendwise load`
  rejects the same values with the same limit (core.raw_contract.PLAUSIBLE_LIMIT; a test compares them).
-#}
{% test finite_and_plausible(model, column_name, max_abs=1e12) %}
{{ config(severity='error') }}
select {{ column_name }} as bad_value
from {{ model }}
where {{ column_name }} is not null
    and {{ spendwise.is_not_finite_or_beyond(column_name, max_abs) }}
{% endtest %}


{#- A boolean SQL expression: `expression` is an infinity, NaN, or beyond ±max_abs. -#}
{% macro is_not_finite_or_beyond(expression, max_abs) -%}
    {{ return(adapter.dispatch('is_not_finite_or_beyond', 'spendwise')(expression, max_abs)) }}
{%- endmacro %}

{% macro duckdb__is_not_finite_or_beyond(expression, max_abs) -%}
    (isinf(cast({{ expression }} as double))
        or isnan(cast({{ expression }} as double))
        or abs(cast({{ expression }} as double)) > {{ max_abs }})
{%- endmacro %}

{#- PostgreSQL spells the special values of double precision 'Infinity', '-Infinity' and 'NaN', and
    (unlike IEEE) treats NaN as equal to itself. -#}
{% macro postgres__is_not_finite_or_beyond(expression, max_abs) -%}
    (cast({{ expression }} as double precision) in ('Infinity', '-Infinity', 'NaN')
        or abs(cast({{ expression }} as double precision)) > {{ max_abs }})
{%- endmacro %}

{#- IEEE engines: NaN is the one value not equal to itself, and an infinity is beyond any limit. -#}
{% macro default__is_not_finite_or_beyond(expression, max_abs) -%}
    (not (cast({{ expression }} as {{ dbt.type_float() }}) = cast({{ expression }} as {{ dbt.type_float() }}))
        or abs(cast({{ expression }} as {{ dbt.type_float() }})) > {{ max_abs }})
{%- endmacro %}

{#- Spark holds NaN equal to itself (as PostgreSQL does) and has isnan(); an infinity is beyond any limit. -#}
{% macro spark__is_not_finite_or_beyond(expression, max_abs) -%}
    (isnan(cast({{ expression }} as double))
        or abs(cast({{ expression }} as double)) > {{ max_abs }})
{%- endmacro %}
