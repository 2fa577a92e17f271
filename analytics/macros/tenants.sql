{# Generated from sync_pipelines/catalogue.py by `make analytics-sources`: do not edit. #}
{% macro tenants() %}{{ return({"synchroteam": ["jobs", "invoices", "quotations", "customers", "sites", "credit_notes", "users", "activities", "equipment", "job_types", "parts"], "synchroteam_hec": ["invoices", "credit_notes", "users", "equipment", "job_types", "parts"]}) }}{% endmacro %}
