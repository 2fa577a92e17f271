"""The dlt source of a tenant's Synchroteam entities: each entity's reading (`reader.EntityReader`) as a dlt
resource, merged on `id` into the entity's table, with the resource state the reading leaves committed in the same
load; every entity of a tenant in one dlt schema, named after the tenant's pipeline.

The cursor and the memos live in dlt's resource state (`reader.py` says what they hold); a Dagster step reads
ahead of its pipeline (`reader.ReadAhead`) and builds this source of the readings that found something to load
(`source_from`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import dlt
from dlt.common.data_types import TDataType
from dlt.common.schema.typing import TSimpleRegex
from dlt.sources import DltSource

from sync_pipelines.catalogue import Entity, Tenant, tenant_pipeline_name
from sync_pipelines.synchroteam.client import SynchroteamClient
from sync_pipelines.synchroteam.plan import SyncPlan
from sync_pipelines.synchroteam.quarantine import Quarantine
from sync_pipelines.synchroteam.reader import EntityReader, ExtractStats
from sync_pipelines.synchroteam.records import DECIMAL_FIELDS

log = logging.getLogger(__name__)


def entity_source(
    tenant: Tenant,
    entity: Entity,
    client: SynchroteamClient,
    plan: SyncPlan | None = None,
    stats: ExtractStats | None = None,
    quarantine: Quarantine | None = None,
    logger: logging.Logger | None = None,
) -> DltSource:
    """The dlt source for `entity` of `tenant`, reading from dlt's own resource state: the source a plain dlt script
    runs. A Dagster step reads ahead of its pipeline instead (`ReadAhead`, `source_from`).

    `quarantine` holds the entity's stored quarantine rows (re-read by id first) and collects this run's.
    `logger` receives the run's warnings.
    """
    plan = plan or SyncPlan()
    stats = stats if stats is not None else ExtractStats()
    quarantine = quarantine or Quarantine(entity.name, "local", datetime.now(UTC), {})

    def read_entity() -> Iterator[Any]:
        reader = EntityReader(entity, client, plan, stats, quarantine, dlt.current.resource_state(), logger or log)
        yield from reader.read()

    return DltSource(tenant_schema(tenant), "synchroteam", [_resource(entity, read_entity)])


class Readable(Protocol):
    """A reading started already (`ReadAhead`, or what wraps one): its batches, then the state it left."""

    @property
    def state(self) -> dict[str, Any]: ...

    def batches(self) -> Iterator[Any]: ...


def source_from(tenant: Tenant, readings: Mapping[Entity, Readable]) -> DltSource:
    """The dlt source of readings started already (`ReadAhead`), one resource per entity, in the tenant's one
    schema: each yields its reading's batches, the first included, then hands dlt the state the reading left,
    which dlt commits with the load."""

    def reading(ahead: Readable) -> Callable[[], Iterator[Any]]:
        def read_entity() -> Iterator[Any]:
            state = dlt.current.resource_state()
            yield from ahead.batches()
            state.clear()  # what dlt restored from the warehouse is what the reading started from
            state.update(ahead.state)

        return read_entity

    resources = [_resource(entity, reading(ahead)) for entity, ahead in readings.items()]
    return DltSource(tenant_schema(tenant), "synchroteam", resources)


def _resource(entity: Entity, read_entity: Callable[[], Iterator[Any]]) -> Any:
    return dlt.resource(
        read_entity,
        name=entity.name,
        table_name=entity.name,
        primary_key=entity.primary_key,
        # one row per id in each load package (`EntityReader.emitted`): no window over the staged rows to drop repeats
        write_disposition={"disposition": "merge", "strategy": "delete-insert", "deduplicated": True},
        columns={"id": {"data_type": "text", "nullable": False}},
    )


def tenant_schema(tenant: Tenant) -> dlt.Schema:
    """The tenant's dlt schema, every entity's tables in it: amounts and coordinates DECIMAL by column name, in every table (the records keep
    them as JSON numbers, `decimal_columns`). dlt hands a source's schema settings to the stored schema on every
    run, so a warehouse loaded before gets them too."""
    schema = dlt.Schema(tenant_pipeline_name(tenant))
    schema.update_preferred_types(decimal_columns(schema.naming.normalize_identifier))
    return schema


def decimal_columns(normalize_identifier: Callable[[str], str]) -> dict[TSimpleRegex, TDataType]:
    """dlt's `preferred_types` for the columns of `DECIMAL_FIELDS`, by name, at any depth and in any table (a
    nested dict's field is `<parent>__<field>`, a child list's row a table of its own): `normalize_identifier` is the
    schema's naming convention (`unitPrice` -> `unit_price`)."""
    return {
        TSimpleRegex(f"re:(^|__){re.escape(normalize_identifier(name))}$"): "decimal" for name in sorted(DECIMAL_FIELDS)
    }
