{#-
  The rows of an optional raw table, or none (with the same columns) when it does not exist.

  channels.csv is optional, and raw tables written by other means (an ELT sync straight into the raw
  schema) may come without the channel tables: the staging models read them through this macro, so a
  missing table means "no metadata, no aliases", not a failed build.
  `columns`: list of (name, type expression) pairs, in order.
-#}
{% macro optional_source(source_name, table_name, columns) %}
    {%- set relation = source(source_name, table_name) -%}
    {%- set found = none -%}
    {%- if execute -%}
        {%- set found = adapter.get_relation(
            database=relation.database, schema=relation.schema, identifier=relation.identifier) -%}
    {%- endif -%}
    {%- if found is not none -%}
        select
        {%- for name, type in columns %}
            cast({{ adapter.quote(name) }} as {{ type }}) as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
        from {{ relation }}
    {%- else -%}
        select
        {%- for name, type in columns %}
            cast(null as {{ type }}) as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
        {# a one-row select filtered to none: portable (no FROM-less WHERE issue on any adapter) #}
        from (select 1 as one) as no_rows
        where 1 = 0
    {%- endif -%}
{% endmacro %}
