"""The Synchroteam entities and tenants, as data.

A new entity is a row in ENTITIES; a new tenant is a row in TENANTS. Everything else (dlt resources, Dagster
assets, jobs) is generated from these tables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sync_pipelines.errors import ConfigurationError


@dataclass(frozen=True)
class Entity:
    """One Synchroteam entity: where it is read from and how it lands.

    name: table and asset name (`synchroteam/<name>`, DuckDB table `<name>`).
    resource: the API resource segment (`{base}/{resource}/list`, `{resource}/details?id=`).
    children: list fields that become child tables `<name>__<list>`; a list row lacking any of them is
        completed with a `details` call (jobs: `parts`, `timeEntries`).
    statuses: the values of `status`, for validating `refetch_statuses`.
    refetch: which re-fetch knob the entity has: `recent` (records whose `recent_field` falls in the last N days
        are re-read every run: edits that do not bump `dateModified`), `statuses` (records in the given statuses
        are re-read every run), or None.
    recent_field: the date the `recent` re-fetch filters on (the API's `dateFrom` applies to it): `dateCreated`,
        or for jobs `scheduledStart`.
    defaults: run-config defaults (see `config.SyncConfig`); anything not given takes the SyncConfig default.
    cadence_minutes: how often its schedule runs; also the unit of its freshness expectation.
    schedule_minute: the minute past the hour its schedule starts at (before the tenant's offset), so that
        entities do not all fire at once; a new entity takes a free one.
    dated: False for a lookup list without `dateModified` (job types): read whole every run, only the records
        whose list row changed are loaded (none when nothing changed), and what it no longer lists is marked
        deleted; no change window, no reconciliation.
    has_details: the API has `{resource}/details?id=`; without it, quarantined records are re-read from the list.
    """

    name: str
    resource: str
    description: str
    children: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    refetch: str | None = None
    recent_field: str = "dateCreated"
    defaults: dict[str, Any] = field(default_factory=dict, hash=False)
    cadence_minutes: int = 60
    schedule_minute: int = 0
    dated: bool = True
    has_details: bool = True

    @property
    def cursor(self) -> str:
        return "dateModified"

    @property
    def primary_key(self) -> str:
        return "id"


@dataclass(frozen=True)
class Tenant:
    """One Synchroteam instance: its DuckDB schema and asset key prefix (`name`), and its environment variables,
    prefixed with the name in capitals (`synchroteam_hec` reads `SYNCHROTEAM_HEC_API_KEY`)."""

    name: str
    label: str
    entities: tuple[str, ...]
    schedule_offset_minutes: int = 0

    @property
    def env_prefix(self) -> str:
        return f"{self.name.upper()}_"

    def env(self, suffix: str) -> str:
        """The environment variable holding this tenant's `suffix` setting, e.g. `SYNCHROTEAM_HEC_API_KEY`."""
        return f"{self.env_prefix}{suffix}"


JOB_STATUSES = ("created", "scheduled", "synchronized", "started", "paused", "completed", "validated", "cancelled")
BILLING_STATUSES = ("draft", "new", "sent", "paid", "late", "cancelled")

ENTITIES: dict[str, Entity] = {
    entity.name: entity
    for entity in (
        Entity(
            name="jobs",
            resource="job",
            description="Field jobs, with their parts (jobs__parts) and time entries (jobs__time_entries).",
            children=("parts", "timeEntries"),
            statuses=JOB_STATUSES,
            refetch="recent",
            recent_field="scheduledStart",
            defaults={"refetch_recent_days": 0},
            cadence_minutes=15,
            schedule_minute=1,
        ),
        Entity(
            name="invoices",
            resource="invoice",
            description="Invoices with their lines (invoices__lines).",
            children=("lines",),
            statuses=BILLING_STATUSES,
            refetch="recent",
            defaults={"refetch_recent_days": 7},
            cadence_minutes=30,
            schedule_minute=4,
        ),
        Entity(
            name="quotations",
            resource="quotation",
            description="Quotations with their lines (quotations__lines).",
            children=("lines",),
            statuses=("draft", "new", "sent", "accepted", "denied"),
            refetch="statuses",
            defaults={"refetch_statuses": ["draft", "new"]},
            cadence_minutes=60,
            schedule_minute=7,
        ),
        Entity(
            name="customers",
            resource="customer",
            description="Customers with their contact (contact_phone, contact_mobile, ...).",
            defaults={"max_records": 200},  # 2 pages of 100 per run
            cadence_minutes=60,
            schedule_minute=10,
        ),
        Entity(
            name="sites",
            resource="site",
            description="Customer sites with their owning customer and contact.",
            defaults={"max_records": 100},  # the recent changes only: 1 page of 100 per run
            cadence_minutes=120,
            schedule_minute=13,
        ),
        Entity(
            name="credit_notes",
            resource="creditnote",
            description="Credit notes with their lines (credit_notes__lines) and the invoice they credit.",
            children=("lines",),
            statuses=BILLING_STATUSES,
            refetch="recent",
            defaults={"refetch_recent_days": 7},
            cadence_minutes=60,
            schedule_minute=16,
        ),
        Entity(
            name="users",
            resource="user",
            description="Users: technicians and office staff, with their profile and team (team__id, team__name).",
            cadence_minutes=60,
            schedule_minute=19,
        ),
        Entity(
            name="activities",
            resource="activity",
            description="Activities: a user's time (work, travel, break) from date_start to date_end, on a job or not.",
            has_details=False,
            cadence_minutes=30,
            schedule_minute=22,
        ),
        Entity(
            name="equipment",
            resource="equipment",
            description="Equipment installed at customers, with its customer (customer__id) and site (site__id).",
            cadence_minutes=60,
            schedule_minute=25,
        ),
        Entity(
            name="job_types",
            resource="jobtype",
            description="Job types (a lookup list without dateModified: read whole every run), with their duration.",
            dated=False,
            has_details=False,
            cadence_minutes=1440,
            schedule_minute=28,
        ),
        Entity(
            name="parts",
            resource="part",
            description="Parts and services; job parts and billing lines name them by reference.",
            has_details=False,
            cadence_minutes=60,
            schedule_minute=40,
        ),
    )
}

DIMENSIONS = ("users", "activities", "equipment", "job_types", "parts")

TENANTS: dict[str, Tenant] = {
    tenant.name: tenant
    for tenant in (
        Tenant(
            name="synchroteam",
            label="main",
            entities=("jobs", "invoices", "quotations", "customers", "sites", "credit_notes", *DIMENSIONS),
        ),
        Tenant(
            name="synchroteam_hec",
            label="HEC",
            # no jobs, so no activities (the emulator's demo HEC serves no activity/list either)
            entities=("invoices", "credit_notes", "users", "equipment", "job_types", "parts"),
            schedule_offset_minutes=7,
        ),
    )
}


# One line per column analysts meet in every entity's table, shown in the asset's column schema
COLUMN_DESCRIPTIONS: dict[str, str] = {
    "id": "Synchroteam's id of the record (the merge key: each id once per table).",
    "my_id": "The tenant's own reference for the record (myId), when it sets one.",
    "status": "The record's status in Synchroteam.",
    "date_created": "When the record was created, in the tenant's time zone, stored as an instant.",
    "date_modified": "When the record last changed (dateModified): the incremental cursor follows it.",
    "_deleted_at": "When a full run found the record gone from the API; NULL while it exists (the _live views).",
    "_dlt_load_id": "The dlt load that last wrote the row (see _dlt_loads).",
    "_dlt_id": "dlt's row key: child tables point at it (_dlt_parent_id, _dlt_root_id).",
    "_dlt_parent_id": "The _dlt_id of the row this list item belongs to.",
    "_dlt_root_id": "The _dlt_id of the entity's row (the top of the chain).",
    "_dlt_list_idx": "The item's position in its list, from 0.",
}
# The columns of COLUMN_DESCRIPTIONS every entity's table has (`status` where the entity has statuses), and every
# child list's table
ENTITY_COLUMNS = ("id", "my_id", "status", "date_created", "date_modified", "_deleted_at", "_dlt_load_id", "_dlt_id")
CHILD_COLUMNS = ("_dlt_parent_id", "_dlt_root_id", "_dlt_list_idx", "_dlt_id")


def tenant_entities(tenant: Tenant) -> list[Entity]:
    """The entities the catalogue offers a tenant, in catalogue order."""
    return [ENTITIES[name] for name in tenant.entities]


def chosen_entities(tenant: Tenant, environ: Mapping[str, str] | None = None) -> list[Entity]:
    """The entities a tenant syncs: those `<PREFIX>ENTITIES` names (comma-separated), or when it is unset or
    empty every one the catalogue offers it; in catalogue order. Read when the code location loads: a name the
    catalogue does not offer the tenant fails the load, listing the valid ones."""
    variable = tenant.env("ENTITIES")
    raw = (os.environ if environ is None else environ).get(variable, "")
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if not names:
        return tenant_entities(tenant)
    unknown = [name for name in names if name not in tenant.entities]
    if unknown:
        raise ConfigurationError(
            f"{variable}={raw!r} names {', '.join(repr(n) for n in unknown)}, which tenant '{tenant.label}' "
            f"({tenant.name}) does not offer. Valid names: {', '.join(tenant.entities)}.",
            action=f"Fix {variable} (comma-separated names among the valid ones), or unset it to sync them all.",
        )
    return [entity for entity in tenant_entities(tenant) if entity.name in names]


def chosen_pairs(environ: Mapping[str, str] | None = None) -> list[tuple[Tenant, Entity]]:
    """Every (tenant, entity) the code location syncs (`chosen_entities` of each tenant)."""
    return [(tenant, entity) for tenant in TENANTS.values() for entity in chosen_entities(tenant, environ)]


def pipeline_name(tenant: Tenant, entity: Entity) -> str:
    """The name of the entity's sync step (its op: `ops.<name>` in run config) and of the dlt pipeline (and dlt
    schema) that loaded it until the tenant pipelines (CHANGELOG). A state stored under it is read until the tenant's
    pipeline (`tenant_pipeline_name`) holds one of its own for the entity."""
    return f"{tenant.name}__{entity.name}"


def tenant_pipeline_name(tenant: Tenant) -> str:
    """One dlt pipeline (and one dlt schema) per tenant: a run of several of its entities extracts, normalizes and
    loads them once, and their resource states live side by side in one state. Two runs of a tenant never write
    at once (the tenant's writer turn, `lock.step_turn`), so its state never races."""
    return tenant.name
