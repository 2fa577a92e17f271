{#
  A view re-created only when its compiled SQL changed (a new model, a new column in a tenant's table, an edited
  model), and read whole before it replaces the previous one. Its comment records a digest of the SQL it was created from; a run whose SQL has the same digest executes
  nothing. Why not dbt's `view`: it re-creates every view on every run, which on PostgreSQL takes an ACCESS EXCLUSIVE
  lock that waits for every analyst's open transaction on the view (and holds up the ones that come after), and on
  DuckDB rewrites the file, so the analysts' read copy would be replaced after every run.
#}
{% materialization stable_view, default %}
  {%- set target_relation = this.incorporate(type='view') -%}
  {%- set existing = adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier) -%}
  {%- set comment = (model.description | trim) ~ ' (definition ' ~ local_md5(sql)[:12] ~ ')' -%}
  {%- if existing is not none and existing.is_view and analytics_view_comment(existing) == comment -%}
    {{ log(this ~ ' unchanged: not re-created', info=true) }}
    {%- do store_raw_result(name='main', message='UNCHANGED', code='UNCHANGED', rows_affected=0) -%}
  {%- else -%}
    {{ run_hooks(pre_hooks) }}
    {%- call statement('main') -%}
      {{ analytics_lock_timeout() }}
      {%- if existing is not none %}
      {{ get_drop_sql(existing) }};
      {%- endif %}
      create view {{ target_relation }} as (
        {{ sql }}
      );
      comment on view {{ target_relation }} is {{ dbt.string_literal(comment | replace("'", "''")) }}
    {%- endcall -%}
    {#- every column of every row read once, before the commit: a value no cast converts fails the model here, and
        the previous view stays (DuckDB checks casts only when a query reads the column, PostgreSQL some of them) -#}
    {%- call statement('read_every_row') -%}
      select count(*) from {{ target_relation }} as checked where cast(checked as text) is not null
    {%- endcall -%}
    {{ run_hooks(post_hooks) }}
    {{ adapter.commit() }}
  {%- endif -%}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{# The comment of a view in the warehouse (None without one). #}
{% macro analytics_view_comment(relation) %}
  {{ return(adapter.dispatch('analytics_view_comment')(relation)) }}
{% endmacro %}

{% macro duckdb__analytics_view_comment(relation) %}
  {%- set found = run_query("select comment from duckdb_views() where schema_name = '" ~ relation.schema
      ~ "' and view_name = '" ~ relation.identifier ~ "'") -%}
  {{ return(found.rows[0][0] if found.rows else none) }}
{% endmacro %}

{% macro postgres__analytics_view_comment(relation) %}
  {%- set found = run_query("select obj_description(c.oid, 'pg_class') from pg_class c join pg_namespace n "
      ~ "on n.oid = c.relnamespace where n.nspname = '" ~ relation.schema ~ "' and c.relname = '"
      ~ relation.identifier ~ "' and c.relkind = 'v'") -%}
  {{ return(found.rows[0][0] if found.rows else none) }}
{% endmacro %}


{#
  PostgreSQL: a view being re-created waits at most this long for the analysts reading it; past it the model fails
  (dbt's message says "lock timeout") and the next run tries again, rather than queueing every new reader behind it.
#}
{% macro analytics_lock_timeout() %}
  {{ return(adapter.dispatch('analytics_lock_timeout')()) }}
{% endmacro %}

{% macro default__analytics_lock_timeout() %}{% endmacro %}

{% macro postgres__analytics_lock_timeout() %}
  set local lock_timeout = '10s';
{% endmacro %}
