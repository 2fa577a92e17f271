{#
  dbt's `relationships`, within each tenant: every row's `column_name` (e.g. invoice_id) is the `field` (id) of a row
  of `to` with the same tenant. dbt's own compares one column, and ids repeat across tenants.
  `parent_entity`: the entity `to` is built from; when given, only the tenants that sync it are checked (HEC's
  equipment names customers HEC does not sync).
#}
{% test relationships_within_tenant(model, column_name, to, field, parent_entity=none) %}
select child.tenant, child.{{ column_name }}
from {{ model }} as child
left join {{ to }} as parent on parent.tenant = child.tenant and parent.{{ field }} = child.{{ column_name }}
where child.{{ column_name }} is not null and parent.{{ field }} is null
{%- if parent_entity is not none %}
  {%- set syncing = [] -%}
  {%- for tenant, entities in tenants().items() if parent_entity in entities -%}
    {%- do syncing.append(dbt.string_literal(tenant)) -%}
  {%- endfor %}
  and child.tenant in ({{ (syncing or ["''"]) | join(", ") }})
{%- endif %}
{% endtest %}
