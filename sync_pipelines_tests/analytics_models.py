"""The analytics layer's models as the tests know them: what each reads, and the dbt project's manifest."""

import json
from typing import Any

from sync_pipelines.warehouse.analytics import prepared_manifest

# model: (the entity it reads, the emulator's resource, the child list it flattens or None, the parent's id column)
MODELS: dict[str, tuple[str, str, str | None, str | None]] = {
    "jobs": ("jobs", "job", None, None),
    "job_parts": ("jobs", "job", "parts", "job_id"),
    "job_time_entries": ("jobs", "job", "timeEntries", "job_id"),
    "invoices": ("invoices", "invoice", None, None),
    "invoice_lines": ("invoices", "invoice", "lines", "invoice_id"),
    "quotations": ("quotations", "quotation", None, None),
    "quotation_lines": ("quotations", "quotation", "lines", "quotation_id"),
    "credit_notes": ("credit_notes", "creditnote", None, None),
    "credit_note_lines": ("credit_notes", "creditnote", "lines", "credit_note_id"),
    "customers": ("customers", "customer", None, None),
    "sites": ("sites", "site", None, None),
    "users": ("users", "user", None, None),
    "activities": ("activities", "activity", None, None),
    "equipment": ("equipment", "equipment", None, None),
    "job_types": ("job_types", "jobtype", None, None),
    "parts": ("parts", "part", None, None),
}
PARENT_MODEL = {
    "job_id": "jobs",
    "invoice_id": "invoices",
    "quotation_id": "quotations",
    "credit_note_id": "credit_notes",
}


def manifest() -> dict[str, Any]:
    return json.loads(prepared_manifest().read_text())


def models_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["name"]: node for node in document["nodes"].values() if node["resource_type"] == "model"}
