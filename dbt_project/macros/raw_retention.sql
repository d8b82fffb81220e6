{#-
  Raw user-level retention, run before every dbt build (on-run-start in dbt_project.yml): rows of the
  raw tables older than SPENDWISE_RAW_RETENTION_DAYS days (occurred_at, naive UTC) are deleted, so the
  models built next never see them. Unset, empty, off or 0: nothing is deleted. Anything but a whole
  number of days stops the run (a typo must not delete the history). The rows deleted per table are
  recorded in ops.audit_log (action raw_retention, actor pipeline:dbt; the table as core/audit.py
  creates it, whose PostgreSQL append-only trigger core.audit adds at its next write).
  `spendwise purge-user --retention` applies the same rule from the command line (core/purge.py).
-#}
{% macro spendwise_raw_retention(tables) -%}
    {%- set raw = env_var('SPENDWISE_RAW_RETENTION_DAYS', '') | trim -%}
    {%- if raw and raw | lower not in ('off', 'none', '0') and execute -%}
        {%- if not (raw is string and raw.isdigit() and raw | int > 0) -%}
            {{ exceptions.raise_compiler_error("SPENDWISE_RAW_RETENTION_DAYS=" ~ raw ~ " is not a whole number of days above 0 (e.g. 395); unset it to keep all raw rows") }}
        {%- endif -%}
        {%- set now = modules.datetime.datetime.utcnow() -%}
        {%- set cutoff = (now - modules.datetime.timedelta(days=raw | int)).strftime("%Y-%m-%d %H:%M:%S") -%}
        {%- set statements = [] -%}
        {%- set deleted = {} -%}
        {%- for table in tables -%}
            {%- set relation = adapter.get_relation(database=target.database, schema='raw', identifier=table) -%}
            {%- if relation is not none -%}
                {%- set old = "from " ~ relation ~ " where occurred_at < cast('" ~ cutoff ~ "' as timestamp)" -%}
                {%- do deleted.update({"raw." ~ table: run_query("select count(*) " ~ old).columns[0].values()[0] | int}) -%}
                {%- do statements.append("delete " ~ old) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if statements -%}
            {%- set detail = {"cutoff": cutoff, "days": raw | int, "rows_deleted": deleted} -%}
            {%- do statements.append("create schema if not exists ops") -%}
            {%- do statements.append("create table if not exists ops.audit_log (id text primary key, recorded_at timestamp "
                                     ~ "not null, action text not null, actor text not null, detail text not null)") -%}
            {%- do statements.append("insert into ops.audit_log (id, recorded_at, action, actor, detail) values ('"
                                     ~ local_md5(invocation_id ~ cutoff) ~ "', cast('" ~ now.strftime("%Y-%m-%d %H:%M:%S.%f")
                                     ~ "' as timestamp), 'raw_retention', 'pipeline:dbt', '" ~ tojson(detail, sort_keys=True) ~ "')") -%}
            {#- One statement list, committed here: dbt runs an on-run-start hook's own SQL without committing it. -#}
            {%- do run_query(statements | join(";\n")) -%}
            {%- do adapter.commit() -%}
            {{ log("raw retention (" ~ raw ~ " days): deleted rows older than " ~ cutoff ~ " UTC: " ~ tojson(deleted), info=True) }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
