{#-
  Settings of the rule-based attribution models, read from dbt vars and checked at compile time,
  so a bad value from `--vars` (or Dagster run config) stops the run before any SQL executes.
-#}

{#- The `model` values of touchpoint_credit, in report order. -#}
{% macro attribution_model_names() %}
    {{ return(['first_touch', 'last_touch', 'linear', 'time_decay', 'position_based', 'w_shaped', 'assisted']) }}
{% endmacro %}

{#- dbt.type_float() is single precision (FLOAT4) on DuckDB; credits must sum to 1 within 1e-9. -#}
{% macro attribution_double() -%}
    {{ return(adapter.dispatch('attribution_double', 'spendwise')()) }}
{%- endmacro %}

{% macro default__attribution_double() -%}
    double precision
{%- endmacro %}

{#- Spark spells the 8-byte float `double` only. -#}
{% macro spark__attribution_double() -%}
    double
{%- endmacro %}

{#- A SQL literal of a Python float, typed double so PostgreSQL does not switch to numeric. -#}
{% macro attribution_literal(value) -%}
    cast({{ value }} as {{ attribution_double() }})
{%- endmacro %}

{#- The var `name` as a float in [minimum, maximum] (minimum excluded when exclusive_minimum). -#}
{% macro attribution_number_var(name, minimum, maximum, exclusive_minimum=false) %}
    {%- set value = var(name) -%}
    {%- set bad_type = value is boolean or value is not number or value != value -%}
    {%- set too_low = (not bad_type) and (value < minimum or (exclusive_minimum and value == minimum)) -%}
    {%- set too_high = (not bad_type) and value > maximum -%}
    {%- if bad_type or too_low or too_high -%}
        {{ exceptions.raise_compiler_error(
            "dbt var " ~ name ~ " must be a number in " ~ ("(" if exclusive_minimum else "[") ~ minimum ~ ", "
            ~ maximum ~ "], got " ~ (value | string) ~ (" (text)" if value is string else "") ~ ". "
            ~ "Set it in dbt_project.yml or pass e.g. --vars '{" ~ name ~ ": <number>}'."
        ) }}
    {%- endif -%}
    {{ return(value | float) }}
{% endmacro %}

{#- Equal split when every weight is zero, so short journeys still give out exactly 1. -#}
{% macro _attribution_shares(weights) %}
    {%- set total = weights | sum -%}
    {%- if total > 0 -%}
        {%- set shares = [] -%}
        {%- for w in weights -%}{%- do shares.append(w / total) -%}{%- endfor -%}
        {{ return(shares) }}
    {%- endif -%}
    {{ return([1.0 / (weights | length)] * (weights | length)) }}
{% endmacro %}

{#-
  Every constant the credit rules need, as typed SQL literals:
  half_life (days), position_* (U-shaped) and w_* (W-shaped) shares, short-journey cases included.
  Weights whose sum exceeds 1 by more than float noise are rejected; noise is clamped to 0.
-#}
{% macro attribution_settings() %}
    {%- set half_life = attribution_number_var('attribution_time_decay_half_life_days', 0, 36500, true) -%}
    {%- set p_first = attribution_number_var('attribution_position_first_weight', 0, 1) -%}
    {%- set p_last = attribution_number_var('attribution_position_last_weight', 0, 1) -%}
    {%- set w_first = attribution_number_var('attribution_w_first_weight', 0, 1) -%}
    {%- set w_lead = attribution_number_var('attribution_w_lead_weight', 0, 1) -%}
    {%- set w_last = attribution_number_var('attribution_w_last_weight', 0, 1) -%}
    {%- if p_first + p_last > 1 + 1e-9 -%}
        {{ exceptions.raise_compiler_error(
            "attribution_position_first_weight + attribution_position_last_weight must be <= 1 (the rest goes to "
            ~ "the middle touches), got " ~ p_first ~ " + " ~ p_last ~ " = " ~ (p_first + p_last) ~ "."
        ) }}
    {%- endif -%}
    {%- if w_first + w_lead + w_last > 1 + 1e-9 -%}
        {{ exceptions.raise_compiler_error(
            "attribution_w_first_weight + attribution_w_lead_weight + attribution_w_last_weight must be <= 1 "
            ~ "(the rest goes to the other touches), got " ~ w_first ~ " + " ~ w_lead ~ " + " ~ w_last
            ~ " = " ~ (w_first + w_lead + w_last) ~ "."
        ) }}
    {%- endif -%}
    {%- set p_two = _attribution_shares([p_first, p_last]) -%}
    {%- set w_two = _attribution_shares([w_first, w_last]) -%}
    {%- set w_three = _attribution_shares([w_first, w_lead, w_last]) -%}
    {%- set lit = attribution_literal -%}
    {{ return({
        'half_life': lit(half_life),
        'position_first': lit(p_first),
        'position_last': lit(p_last),
        'position_middle_total': lit([0.0, 1.0 - p_first - p_last] | max),
        'position_two_first': lit(p_two[0]),
        'position_two_last': lit(p_two[1]),
        'w_first': lit(w_first),
        'w_lead': lit(w_lead),
        'w_last': lit(w_last),
        'w_rest_total': lit([0.0, 1.0 - w_first - w_lead - w_last] | max),
        'w_two_first': lit(w_two[0]),
        'w_two_last': lit(w_two[1]),
        'w_three_first': lit(w_three[0]),
        'w_three_lead': lit(w_three[1]),
        'w_three_last': lit(w_three[2]),
    }) }}
{% endmacro %}

{#- The number of bootstrap buckets: an integer var in [1, 100000]. -#}
{% macro attribution_bootstrap_buckets() %}
    {%- set value = var('attribution_bootstrap_buckets') -%}
    {%- if value is boolean or value is not number or value != (value | int) or value < 1 or value > 100000 -%}
        {{ exceptions.raise_compiler_error(
            "dbt var attribution_bootstrap_buckets must be a whole number in [1, 100000], got "
            ~ (value | string) ~ (" (text)" if value is string else "") ~ ". Pass e.g. --vars '{attribution_bootstrap_buckets: 200}'."
        ) }}
    {%- endif -%}
    {{ return(value | int) }}
{% endmacro %}
