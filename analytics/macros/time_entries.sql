{#
  The time entries of one tenant's live jobs, from its activities (Synchroteam records time as activities): one
  row per activity linked to a live job, numbered within its job by start (line_number), the technician being the
  activity's user, named as in users (first and last name; the login when the tenant has no user row for it). The
  columns are job_time_entries', cast the same way. A column a table lacks (dlt adds a column when it first sees a
  value in it) reads as NULL; the caller leaves out a tenant whose activities or jobs table does not exist yet.
#}
{% macro time_entries_from_activities(tenant, with_users) %}
  {%- set activities = source(tenant, 'activities') -%}
  {%- set jobs = source(tenant, 'jobs') -%}
  {%- set users = source(tenant, 'users') if with_users else none -%}
  {%- if execute -%}
    {%- set a = existing_columns(activities) -%}
    {%- set j = existing_columns(jobs) -%}
    {%- set u = existing_columns(users) if users is not none else [] -%}
    {%- set start, end = column_or_null('a', 'date_start', a), column_or_null('a', 'date_end', a) -%}
    {%- set login = column_or_null('a', 'user__login', a) -%}
    {%- set name = "nullif(trim(concat_ws(' ', " ~ column_or_null('u', 'first_name', u) ~ ", "
        ~ column_or_null('u', 'last_name', u) ~ ")), '')" if u else "null" -%}
    select
      cast({{ dbt.string_literal(tenant) }} as text) as tenant,
      cast(a.job__id as text) as job_id,
      cast(row_number() over (partition by a.job__id order by {{ start }}, a.id) - 1 as bigint) as line_number,
      cast(a.id as text) as id,
      cast(lower({{ column_or_null('a', 'activity_type__name', a) }}) as text) as type,
      cast({{ column_or_null('a', 'user__id', a) }} as text) as technician_id,
      cast(coalesce({{ name }}, {{ login }}) as text) as technician_name,
      cast({{ start }} as timestamptz) as started_at,
      cast({{ end }} as timestamptz) as ended_at,
      {{ minutes_between(start, end) }} as duration_minutes
    from {{ activities }} as a
    join {{ jobs }} as j on cast(j.id as text) = cast(a.job__id as text)
      {%- if '_deleted_at' in j %} and j._deleted_at is null{% endif %}
    {%- if u %}
    left join {{ users }} as u on cast(u.id as text) = cast(a.user__id as text)
      {%- if '_deleted_at' in u %} and u._deleted_at is null{% endif %}
    {%- endif %}
    where {{ "a._deleted_at is null" if '_deleted_at' in a else "true" }}
  {%- endif -%}
{% endmacro %}


{# Whole minutes from `start` to `end` (SQL expressions), the same on DuckDB and PostgreSQL. #}
{% macro minutes_between(start, end) %}
  {{- return("cast(floor(extract(epoch from (" ~ end ~ " - " ~ start ~ ")) / 60) as bigint)") -}}
{% endmacro %}
