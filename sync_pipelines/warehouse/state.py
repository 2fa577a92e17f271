"""dlt's pipeline state as the warehouse stores it (`_dlt_pipeline_state`), read with dlt's own functions.

A step reads its entities' resource states before any dlt pipeline exists (`reader.ReadAhead`): a run that finds
nothing to load then creates no pipeline at all.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sync_pipelines.catalogue import Entity, Tenant, pipeline_name, tenant_pipeline_name
from sync_pipelines.warehouse.settings import Warehouse
from sync_pipelines.warehouse.tables import StoredState, stored_states


@dataclass(frozen=True)
class TenantState:
    """What the warehouse holds of a tenant's dlt state: the tenant pipeline's newest stored state (`stored`, which
    `pipeline.run_pipeline` compares with its working folder's), and each entity's resource state in it."""

    stored: StoredState | None = None
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def of(self, entity: Entity) -> dict[str, Any]:
        """A copy of `entity`'s resource state (its cursor, its memos): empty before its first load."""
        return dict(self.resources.get(entity.name) or {})


def read_tenant_state(target: Warehouse, tenant: Tenant, entities: Iterable[Entity]) -> TenantState:
    """The tenant pipeline's newest state in the warehouse, decoded once, as dlt's `sync_destination` restores it.

    An entity the tenant pipeline holds no state for takes the state its own pipeline (`catalogue.pipeline_name`,
    one per entity until the tenant pipelines) stored last: the first load through the tenant's pipeline carries
    it over, cursor and memos, and the older one is not read again."""
    name = tenant_pipeline_name(tenant)
    stored = stored_states(target, tenant.name, [name]).get(name)
    resources = resource_states(stored, name)
    missing = {pipeline_name(tenant, entity): entity for entity in entities if entity.name not in resources}
    for legacy_name, legacy in stored_states(target, tenant.name, missing).items() if missing else ():
        found = resource_states(legacy, legacy_name).get(missing[legacy_name].name)
        if found is not None:
            resources[missing[legacy_name].name] = found
    return TenantState(stored, resources)


def resource_states(stored: StoredState | None, pipeline: str) -> dict[str, dict[str, Any]]:
    """The resources' states in `stored`, a state of `pipeline`, whose source schema is named after it."""
    if stored is None or not stored.encoded:
        return {}
    # imported here: the definitions import no dlt, and a run imports it when it reads a state
    from dlt.pipeline.state_sync import decompress_state, migrate_state_to_current

    state = migrate_state_to_current(pipeline, decompress_state(stored.encoded))
    sources: dict[str, Any] = state.get("sources") or {}
    return {name: dict(found) for name, found in ((sources.get(pipeline) or {}).get("resources") or {}).items()}
