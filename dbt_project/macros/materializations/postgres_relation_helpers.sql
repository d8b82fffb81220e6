{#-
  Helpers of the PostgreSQL table and view materializations (postgres_table.sql, postgres_view.sql):
  run the statements that need a lock on a relation users read, and when the wait times out, fail
  with the sessions holding it; list the views other people built on a relation; copy its grants.
-#}

{#- Lock modes whose holders make a request for `mode` wait. Row lockers (RowShare/RowExclusive)
    are listed for 'row exclusive' too: the DELETE that follows waits for their row locks. -#}
{% macro spendwise_blocking_modes(mode) -%}
    {%- set all_modes = ['AccessShareLock', 'RowShareLock', 'RowExclusiveLock', 'ShareUpdateExclusiveLock',
                         'ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'] -%}
    {%- if mode == 'row exclusive' -%}
        {{ return(all_modes[1:]) }}
    {%- elif mode == 'access exclusive' -%}
        {{ return(all_modes) }}
    {%- endif -%}
    {{ exceptions.raise_compiler_error("spendwise_blocking_modes: unknown lock mode " ~ mode) }}
{%- endmacro %}


{#- Run `statements` (a list of SQL strings) in the model's transaction. They take locks on `relation`;
    when lock_timeout ends the wait, the error names every session holding a conflicting lock on it
    (pid, application_name, user, state, since when, last query), or, if none is left, the sessions
    of this database that sit idle in a transaction. -#}
{% macro spendwise_run_with_lock_report(relation, statements, mode, name='spendwise_locked') -%}
    {%- set rel = relation.include(database=False) | string -%}
    {%- set modes = spendwise_blocking_modes(mode) -%}
    {%- set describe -%}
        format('pid %s (application_name %L, user %s, state %L, transaction started %s%s; last query: %s)',
               a.pid, a.application_name, a.usename, a.state,
               coalesce(to_char(a.xact_start, 'YYYY-MM-DD HH24:MI:SS TZ'), 'never'), {{ '{held}' }},
               left(regexp_replace(coalesce(a.query, ''), '\s+', ' ', 'g'), 160))
    {%- endset -%}
    {%- call statement(name) -%}
do $spendwise_lock$
declare
    blockers text;
begin
{%- for sql in statements %}
    {%- if '$spendwise_ddl$' in sql %}
        {{ exceptions.raise_compiler_error("a statement for " ~ rel ~ " contains the quote tag $spendwise_ddl$") }}
    {%- endif %}
    execute $spendwise_ddl$ {{ sql }} $spendwise_ddl$;
{%- endfor %}
exception when lock_not_available then
    select string_agg({{ describe | replace('{held}', "', holds ' || l.modes") }}, '; ' order by a.pid)
      into blockers
      from (select pid, string_agg(distinct mode, ', ') as modes
              from pg_locks
             where relation = '{{ rel }}'::regclass and granted and pid <> pg_backend_pid()
               and mode in ('{{ modes | join("', '") }}')
             group by pid) l
      join pg_stat_activity a on a.pid = l.pid;
    if blockers is null then
        select string_agg({{ describe | replace('{held}', "''") }}, '; ' order by a.pid)
          into blockers
          from pg_stat_activity a
         where a.datname = current_database() and a.pid <> pg_backend_pid()
           and a.state like 'idle in transaction%';
    end if;
    raise exception '%', format(
        '%s: gave up after waiting %s for the %s lock it needs; blocked by %s. Ask that session to commit or roll back, '
        'or end it (SELECT pg_terminate_backend(<pid>)), then run the refresh again. '
        'SPENDWISE_LOCK_TIMEOUT_SECONDS sets how long a refresh waits.',
        '{{ rel }}', current_setting('lock_timeout'), '{{ mode | upper }}',
        coalesce(blockers, 'a session that has ended since'));
end
$spendwise_lock$
    {%- endcall -%}
{%- endmacro %}


{#- "schema.view (owner role)" for every view or materialized view that reads `relation`. -#}
{% macro spendwise_dependent_views(relation) -%}
    {%- set query -%}
        select distinct dep_ns.nspname || '.' || dep.relname || ' (owner ' || pg_get_userbyid(dep.relowner) || ')'
          from pg_depend d
          join pg_rewrite r on r.oid = d.objid
          join pg_class dep on dep.oid = r.ev_class
          join pg_namespace dep_ns on dep_ns.oid = dep.relnamespace
         where d.classid = 'pg_rewrite'::regclass and d.refclassid = 'pg_class'::regclass
           and d.refobjid = '{{ relation.include(database=False) }}'::regclass
           and dep.oid <> d.refobjid
         order by 1
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | list) }}
{%- endmacro %}


{#- GRANT statements giving `to_relation` every privilege `from_relation` grants (its owner's own excepted). -#}
{% macro spendwise_copied_grants(from_relation, to_relation) -%}
    {%- set query -%}
        select acl.privilege_type,
               case when acl.grantee = 0 then 'public' else quote_ident(pg_get_userbyid(acl.grantee)) end,
               acl.is_grantable
          from pg_class c, aclexplode(c.relacl) acl
         where c.oid = '{{ from_relation.include(database=False) }}'::regclass and acl.grantee <> c.relowner
         order by 2, 1
    {%- endset -%}
    {%- set statements = [] -%}
    {%- for privilege, grantee, grantable in run_query(query).rows -%}
        {%- do statements.append('grant ' ~ privilege ~ ' on ' ~ to_relation ~ ' to ' ~ grantee
                                 ~ (' with grant option' if grantable else '')) -%}
    {%- endfor -%}
    {{ return(statements) }}
{%- endmacro %}


{#- Column names and types in order: equal signatures mean rows can be replaced in place. -#}
{% macro spendwise_column_signature(relation) -%}
    {%- set signature = [] -%}
    {%- for column in adapter.get_columns_in_relation(relation) -%}
        {%- do signature.append(column.name ~ ' ' ~ column.data_type) -%}
    {%- endfor -%}
    {{ return(signature) }}
{%- endmacro %}


{#- The rebuild path, when rows cannot be replaced in place: refuse if users' views depend on the old
    relation (dbt would drop them with CASCADE), otherwise swap in `intermediate`, carry the old
    relation's grants over and drop it, all inside the model's transaction. -#}
{% macro spendwise_swap_rebuilt(existing, intermediate, target, backup, old_signature, new_signature) -%}
    {%- if existing is not none -%}
        {#- Moved aside first, under the lock, so no view can be created on it between the check and the drop. -#}
        {%- set rename_sql = 'alter ' ~ (existing.type | replace('_', ' ')) ~ ' ' ~ existing.include(database=False)
                             ~ ' rename to ' ~ adapter.quote(backup.identifier) -%}
        {{ spendwise_run_with_lock_report(existing, [rename_sql], 'access exclusive', 'spendwise_move_old') }}
        {%- do adapter.cache_renamed(existing, backup) -%}
        {%- set dependents = spendwise_dependent_views(backup) -%}
        {%- if dependents -%}
            {{ exceptions.raise_compiler_error(
                existing.include(database=False) ~ " must be rebuilt because its columns changed (["
                ~ (old_signature | join(', ')) ~ "] -> [" ~ (new_signature | join(', ')) ~ "]), but these views "
                ~ "depend on it: " ~ (dependents | join('; ')) ~ ". A plain dbt run would drop them (CASCADE), so "
                ~ "nothing was changed. Drop or update those views, run the refresh, then recreate them on the new "
                ~ "columns.") }}
        {%- endif -%}
        {%- set grants = spendwise_copied_grants(backup, target) -%}
    {%- endif -%}
    {{ adapter.rename_relation(intermediate, target) }}
    {%- if existing is not none -%}
        {%- for grant in grants -%}
            {%- call statement('spendwise_copy_grant') -%}{{ grant }}{%- endcall -%}
        {%- endfor -%}
        {%- call statement('spendwise_drop_old') -%}
            drop {{ backup.type | replace('_', ' ') }} {{ backup }}
        {%- endcall -%}
        {%- do adapter.cache_dropped(backup) -%}
    {%- endif -%}
{%- endmacro %}
