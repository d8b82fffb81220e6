{#-
  Raw user-level retention, run before every dbt build (on-run-start in dbt_project.yml): rows of the
  raw tables older than SPENDWISE_RAW_RETENTION_DAYS days (occurred_at, naive UTC) are deleted, so the
  models built next never see them. Unset, empty, off or 0: nothing is deleted. Anything but a whole
  number of days stops the run (a typo must not delete the history). `spendwise purge-user
  --retention` applies the same rule from the command line (core/purge.py).
-#}
{% macro spendwise_raw_retention(tables) -%}
    {%- set raw = env_var('SPENDWISE_RAW_RETENTION_DAYS', '') | trim -%}
    {%- if raw and raw | lower not in ('off', 'none', '0') and execute -%}
        {%- if not (raw is string and raw.isdigit() and raw | int > 0) -%}
            {{ exceptions.raise_compiler_error("SPENDWISE_RAW_RETENTION_DAYS=" ~ raw ~ " is not a whole number of days above 0 (e.g. 395); unset it to keep all raw rows") }}
        {%- endif -%}
        {%- set cutoff = modules.datetime.datetime.utcnow() - modules.datetime.timedelta(days=raw | int) -%}
        {%- set deletes = [] -%}
        {%- for table in tables -%}
            {%- set relation = adapter.get_relation(database=target.database, schema='raw', identifier=table) -%}
            {%- if relation is not none -%}
                {%- do deletes.append("delete from " ~ relation ~ " where occurred_at < cast('"
                                      ~ cutoff.strftime("%Y-%m-%d %H:%M:%S") ~ "' as timestamp)") -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if deletes -%}
            {#- One statement list, committed here: dbt runs an on-run-start hook's own SQL without committing it. -#}
            {%- do run_query(deletes | join(";\n")) -%}
            {%- do adapter.commit() -%}
            {{ log("raw retention: deleted rows older than " ~ cutoff ~ " UTC from " ~ tables | join(", "), info=True) }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
