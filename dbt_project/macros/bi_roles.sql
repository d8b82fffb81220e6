{#-
  PostgreSQL: after every build of a mart, each role `spendwise grant-bi` registered in ops.bi_roles
  may SELECT it, so marts added or rebuilt later stay readable by BI (core/bi_access.py). Other
  models (journeys, touch-level credit, staging views over raw) are never granted. Nothing on DuckDB.
-#}
{% macro spendwise_grant_bi_roles() -%}
    {{ return(adapter.dispatch('spendwise_grant_bi_roles')()) }}
{%- endmacro %}

{% macro default__spendwise_grant_bi_roles() -%}
{%- endmacro %}

{% macro postgres__spendwise_grant_bi_roles() -%}
do $spendwise_bi$
declare r record;
begin
    if to_regclass('ops.bi_roles') is not null then
        for r in select b.role_name from ops.bi_roles b join pg_roles p on p.rolname = b.role_name loop
            execute format('grant select on {{ this.include(database=False) }} to %I', r.role_name);
        end loop;
    end if;
end
$spendwise_bi$
{%- endmacro %}
