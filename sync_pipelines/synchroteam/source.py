"""The dlt source of one Synchroteam entity, built from its catalogue row.

Incremental on `dateModified` (a typed, tenant-zone timestamp), merged on `id`. Each run asks the API for
`changedSince = stored cursor - lookback`; dlt's boundary de-duplication is off (the merge de-duplicates), so
a second edit in the cursor's own minute is never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dlt
from dlt.common.schema import Schema
from dlt.extract.source import DltSource

from sync_pipelines.catalogue import Entity, Tenant
from sync_pipelines.synchroteam.client import SynchroteamClient
from sync_pipelines.synchroteam.errors import ConfigurationError, RecordNotFound
from sync_pipelines.synchroteam.records import normalise_record, to_api_timestamp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncOptions:
    """How one run reads an entity."""

    page_size: int
    lookback_minutes: int
    details_concurrency: int = 4

    @classmethod
    def defaults(cls, entity: Entity) -> SyncOptions:
        return cls(page_size=entity.page_size, lookback_minutes=entity.lookback_minutes)


@dataclass
class ExtractStats:
    """What the resource read during one run (filled while dlt extracts)."""

    records_fetched: int = 0
    details_fetched: int = 0
    details_missing: list[str] = field(default_factory=list)
    window_start: datetime | None = None


def pipeline_name(tenant: Tenant, entity: Entity) -> str:
    """One dlt pipeline (and one dlt schema) per tenant and entity, so their states never race."""
    return f"{tenant.name}__{entity.name}"


def entity_source(
    tenant: Tenant,
    entity: Entity,
    client: SynchroteamClient | None,
    options: SyncOptions | None = None,
    stats: ExtractStats | None = None,
) -> DltSource:
    """The dlt source for `entity` of `tenant`. `client=None` builds it for definitions only (not runnable)."""
    options = options or SyncOptions.defaults(entity)
    stats = stats if stats is not None else ExtractStats()

    def read_entity(
        modified: dlt.sources.incremental[datetime] = dlt.sources.incremental(
            entity.cursor,
            lag=options.lookback_minutes * 60 or None,
            primary_key=(),
        ),
    ) -> Iterator[list[dict[str, Any]]]:
        if client is None:
            raise ConfigurationError(f"{pipeline_name(tenant, entity)} was built without an API client.")
        tz = client.settings.timezone
        params: dict[str, str] = {}
        if modified.start_value is not None:
            stats.window_start = modified.start_value
            params["changedSince"] = to_api_timestamp(modified.start_value, tz)
        with ThreadPoolExecutor(max_workers=max(1, options.details_concurrency)) as pool:
            for page in client.iter_pages(entity.resource, page_size=options.page_size, params=params):
                stats.records_fetched += len(page)
                complete = _with_details(client, entity, page, pool, stats)
                yield [normalise_record(record, tz) for record in complete]

    resource = dlt.resource(
        read_entity,
        name=entity.name,
        table_name=entity.name,
        primary_key=entity.primary_key,
        write_disposition="merge",
        columns={"id": {"data_type": "text", "nullable": False}},
    )
    return DltSource(Schema(pipeline_name(tenant, entity)), "synchroteam", [resource])


def _with_details(
    client: SynchroteamClient,
    entity: Entity,
    page: list[dict[str, Any]],
    pool: ThreadPoolExecutor,
    stats: ExtractStats,
) -> list[dict[str, Any]]:
    """Replace list rows that lack a child list with their `details` (jobs: parts and time entries)."""
    incomplete = [i for i, record in enumerate(page) if any(child not in record for child in entity.children)]
    if not incomplete:
        return page

    def fetch(index: int) -> dict[str, Any] | None:
        record_id = str(page[index].get("id"))
        try:
            return client.details(entity.resource, record_id)
        except RecordNotFound:
            return None

    completed = list(page)
    for index, details in zip(incomplete, pool.map(fetch, incomplete)):
        if details is None:
            # Deleted between the list call and the details call: the next run no longer lists it.
            record_id = str(page[index].get("id"))
            stats.details_missing.append(record_id)
            log.warning("%s %s vanished between list and details; left for the next run", entity.name, record_id)
            completed[index] = None  # type: ignore[call-overload]
            continue
        stats.details_fetched += 1
        completed[index] = {**page[index], **details}
    return [record for record in completed if record is not None]
