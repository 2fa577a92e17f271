{#
  dbt's `relationships`, within each tenant: every row's `column_name` (e.g. invoice_id) is the `field` (id) of a row
  of `to` with the same tenant. dbt's own compares one column, and ids repeat across tenants.
#}
{% test relationships_within_tenant(model, column_name, to, field) %}
select child.tenant, child.{{ column_name }}
from {{ model }} as child
left join {{ to }} as parent on parent.tenant = child.tenant and parent.{{ field }} = child.{{ column_name }}
where child.{{ column_name }} is not null and parent.{{ field }} is null
{% endtest %}
