{#-
  A tenant's time entries come from its activities linked to jobs (how Synchroteam records time) where it syncs
  activities and has loaded them, and from `job/details`' timeEntries otherwise (a tenant without `activity/list`,
  or with activities left out of <PREFIX>ENTITIES).
-#}
{%- set from_activities = [] -%}
{%- for tenant, entities in tenants().items() if 'jobs' in entities and 'activities' in entities -%}
  {%- if execute and 'job__id' in existing_columns(source(tenant, 'activities'))
        and existing_columns(source(tenant, 'jobs')) -%}
    {%- do from_activities.append(tenant) -%}
  {%- endif -%}
{%- endfor -%}
{{ union_tenants('jobs', [
    ('id', 'id', 'text'),
    ('type', 'type', 'text'),
    ('technician_id', 'technician__id', 'text'),
    ('technician_name', 'technician__name', 'text'),
    ('started_at', 'start', 'timestamptz'),
    ('ended_at', 'end', 'timestamptz'),
    ('duration_minutes', 'duration_minutes', 'bigint')
], child='time_entries', parent_id='job_id', exclude=from_activities) }}
{%- for tenant, entities in tenants().items() if 'jobs' in entities and 'activities' in entities %}
  {#- called for every such tenant so that its sources are the model's; it compiles to SQL only for the chosen -#}
  {%- set rows = time_entries_from_activities(tenant, 'users' in entities) -%}
  {%- if tenant in from_activities %}
union all
{{ rows }}
  {%- endif -%}
{%- endfor %}
