{#
  The rows of one entity (or of one entity's child list) over every tenant that syncs it, live rows only.

  columns: [(output column, source column, type)], the source column a dlt column of the entity's table (or, for a
  child list, of the child table: the parent's id comes as `parent_id`). A column a tenant's table lacks (dlt adds a
  column when it first sees it in data; HEC invoices have no job) is NULL there; a tenant whose table does not exist
  yet is left out. The compiled SQL so names every source column it reads: a new column re-defines the view.
  exclude: tenants whose rows the caller takes elsewhere (their sources are still the model's).
#}
{% macro union_tenants(entity, columns, child=none, parent_id=none, exclude=[]) %}
  {%- set selects = [] -%}
  {%- for tenant, entities in tenants().items() if entity in entities -%}
    {%- set parent = source(tenant, entity) -%}
    {%- set table = source(tenant, entity ~ '__' ~ child) if child else parent -%}
    {%- if execute -%}
      {%- set parent_columns = existing_columns(parent) -%}
      {%- set table_columns = existing_columns(table) if child else parent_columns -%}
      {%- if parent_columns and table_columns and tenant not in exclude -%}
        {%- set outputs = ["cast(" ~ dbt.string_literal(tenant) ~ " as text) as tenant"] -%}
        {%- if child -%}
          {%- do outputs.append("cast(p.id as text) as " ~ parent_id) -%}
          {%- do outputs.append("cast(t._dlt_list_idx as bigint) as line_number") -%}
        {%- endif -%}
        {%- for name, column, type in columns -%}
          {%- set value = column_or_null('t', column, table_columns) -%}
          {%- do outputs.append("cast(" ~ value ~ " as " ~ type ~ ") as " ~ adapter.quote(name)) -%}
        {%- endfor -%}
        {%- set live = "p._deleted_at is null" if "_deleted_at" in parent_columns else "true" -%}
        {%- if child -%}
          {%- do selects.append("select " ~ outputs | join(",\n  ") ~ "\nfrom " ~ table ~ " as t\njoin " ~ parent
              ~ " as p on t._dlt_parent_id = p._dlt_id\nwhere " ~ live) -%}
        {%- else -%}
          {%- do selects.append("select " ~ outputs | join(",\n  ") ~ "\nfrom " ~ table ~ " as t\nwhere "
              ~ live | replace("p.", "t.")) -%}
        {%- endif -%}
      {%- endif -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if selects -%}
    {{ selects | join("\nunion all\n") }}
  {%- else -%}
    {#- no tenant has loaded it yet: the view exists, empty, with its columns -#}
    {%- set outputs = ["cast(null as text) as tenant"] -%}
    {%- if child -%}
      {%- do outputs.append("cast(null as text) as " ~ parent_id) -%}
      {%- do outputs.append("cast(null as bigint) as line_number") -%}
    {%- endif -%}
    {%- for name, column, type in columns -%}
      {%- do outputs.append("cast(null as " ~ type ~ ") as " ~ adapter.quote(name)) -%}
    {%- endfor -%}
    select {{ outputs | join(",\n  ") }}
    where false
  {%- endif -%}
{% endmacro %}


{# The lower-case column names of a relation, or an empty list when it does not exist yet. #}
{% macro existing_columns(relation) %}
  {%- set found = adapter.get_relation(database=relation.database, schema=relation.schema, identifier=relation.identifier) -%}
  {%- if found is none -%}
    {{ return([]) }}
  {%- endif -%}
  {{ return(adapter.get_columns_in_relation(found) | map(attribute='name') | map('lower') | list) }}
{% endmacro %}


{# `alias.column` when the relation has it (`columns`: its `existing_columns`), else NULL. #}
{% macro column_or_null(alias, column, columns) %}
  {{- return(alias ~ "." ~ adapter.quote(column) if column in columns else "null") -}}
{% endmacro %}
