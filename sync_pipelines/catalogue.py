"""The Synchroteam entities and tenants, as data.

A new entity is a row in ENTITIES; a new tenant is a row in TENANTS. Everything else (dlt resources, Dagster
assets, jobs) is generated from these tables.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entity:
    """One Synchroteam entity: where it is read from and how it lands.

    name: table and asset name (`synchroteam/<name>`, DuckDB table `<name>`).
    resource: the API resource segment (`{base}/{resource}/list`, `{resource}/details?id=`).
    children: list fields that become child tables `<name>__<list>`; a list row lacking any of them is
        completed with a `details` call (jobs: `parts`, `timeEntries`).
    lookback_minutes: every incremental run re-reads this far behind the stored cursor, so minute-precision,
        inclusive `changedSince` filters and late commits lose nothing.
    page_size: records asked per list page (the API clamps to 100).
    """

    name: str
    resource: str
    description: str
    children: tuple[str, ...] = ()
    lookback_minutes: int = 30
    page_size: int = 100

    @property
    def cursor(self) -> str:
        return "dateModified"

    @property
    def primary_key(self) -> str:
        return "id"


@dataclass(frozen=True)
class Tenant:
    """One Synchroteam instance: its environment variables, its DuckDB schema and asset key prefix."""

    name: str
    label: str
    env_prefix: str
    entities: tuple[str, ...]

    def env(self, suffix: str) -> str:
        """The environment variable holding this tenant's `suffix` setting, e.g. `SYNCHROTEAM_HEC_API_KEY`."""
        return f"{self.env_prefix}{suffix}"


ENTITIES: dict[str, Entity] = {
    entity.name: entity
    for entity in (
        Entity(
            name="jobs",
            resource="job",
            description="Field jobs, with their parts (jobs__parts) and time entries (jobs__time_entries).",
            children=("parts", "timeEntries"),
        ),
        Entity(
            name="invoices",
            resource="invoice",
            description="Invoices with their lines (invoices__lines).",
            children=("lines",),
        ),
        Entity(
            name="quotations",
            resource="quotation",
            description="Quotations with their lines (quotations__lines).",
            children=("lines",),
        ),
        Entity(
            name="customers",
            resource="customer",
            description="Customers with their contact (contact_phone, contact_mobile, ...).",
        ),
        Entity(
            name="sites",
            resource="site",
            description="Customer sites with their owning customer and contact.",
        ),
        Entity(
            name="credit_notes",
            resource="creditnote",
            description="Credit notes with their lines (credit_notes__lines) and the invoice they credit.",
            children=("lines",),
        ),
    )
}

TENANTS: dict[str, Tenant] = {
    tenant.name: tenant
    for tenant in (
        Tenant(
            name="synchroteam",
            label="main",
            env_prefix="SYNCHROTEAM_",
            entities=("jobs", "invoices", "quotations", "customers", "sites", "credit_notes"),
        ),
        Tenant(
            name="synchroteam_hec",
            label="HEC",
            env_prefix="SYNCHROTEAM_HEC_",
            entities=("invoices", "credit_notes"),
        ),
    )
}


def tenant_entities(tenant: Tenant) -> list[Entity]:
    """The entities a tenant syncs, in catalogue order."""
    return [ENTITIES[name] for name in tenant.entities]
