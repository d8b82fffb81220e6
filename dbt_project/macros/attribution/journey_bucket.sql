{#-
  A deterministic pseudo-random bucket in [0, buckets) for a key, for grouped bootstrap resampling.
  The first 60 bits of the key's MD5 (uniform, and identical on every engine, so a DuckDB and a
  PostgreSQL warehouse put each journey in the same bucket); only the hex-to-integer cast differs.
-#}
{% macro attribution_journey_bucket(key, buckets) -%}
    {{ return(adapter.dispatch('attribution_journey_bucket')(key, buckets)) }}
{%- endmacro %}

{% macro default__attribution_journey_bucket(key, buckets) -%}
    (cast(cast({{ dbt.concat(["'x'", "substr(" ~ dbt.hash(key) ~ ", 1, 15)"]) }} as bit(60)) as {{ dbt.type_bigint() }}) % {{ buckets }})
{%- endmacro %}

{% macro duckdb__attribution_journey_bucket(key, buckets) -%}
    (cast({{ dbt.concat(["'0x'", "substr(" ~ dbt.hash(key) ~ ", 1, 15)"]) }} as {{ dbt.type_bigint() }}) % {{ buckets }})
{%- endmacro %}

{#- Spark reads the hex digits with conv() (base 16 to 10, as text). -#}
{% macro spark__attribution_journey_bucket(key, buckets) -%}
    (cast(conv(substr({{ dbt.hash(key) }}, 1, 15), 16, 10) as {{ dbt.type_bigint() }}) % {{ buckets }})
{%- endmacro %}
