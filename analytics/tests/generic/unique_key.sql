{#
  No two rows share the values of `columns` (e.g. tenant and id: ids repeat across tenants). Written here because
  dbt's own `unique` takes one column, and packages (dbt_utils) would need `dbt deps` from the hub.
#}
{% test unique_key(model, columns) %}
select {{ columns | join(", ") }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(", ") }}
having count(*) > 1
{% endtest %}
