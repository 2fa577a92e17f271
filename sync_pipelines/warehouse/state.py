"""dlt's pipeline state as the warehouse stores it (`_dlt_pipeline_state`), read with dlt's own functions.

A step reads its entity's resource state before any dlt pipeline exists (`reader.ReadAhead`): a run that finds
nothing to load then creates no pipeline at all.
"""

from typing import Any

from sync_pipelines.warehouse.tables import StoredState


def stored_resource_state(
    stored: StoredState | None,
    pipeline: str,
    resource: str,
    legacy: StoredState | None = None,
    legacy_pipeline: str | None = None,
) -> dict[str, Any]:
    """The state of dlt resource `resource` in `stored`, the newest state of `pipeline` in the warehouse, as dlt's
    `sync_destination` restores it; each pipeline's source schema is named after it (`catalogue`).

    While `pipeline` (the tenant's) holds no state for `resource`, the entity's state is the one `legacy_pipeline`
    (the entity's own pipeline, before the tenant pipelines) stored last, `legacy`: the first load through the
    tenant's pipeline carries it over, cursor and memos, and the older one is not read again. Empty when neither
    stored one."""
    found = _resource_state(stored, pipeline, resource)
    if found is None and legacy is not None and legacy_pipeline is not None:
        found = _resource_state(legacy, legacy_pipeline, resource)
    return found or {}


def _resource_state(stored: StoredState | None, pipeline: str, resource: str) -> dict[str, Any] | None:
    """The resource's state in `stored`; None when `stored` holds none for it."""
    if stored is None or not stored.encoded:
        return None
    # imported here: the definitions import no dlt, and a run imports it when it reads a state
    from dlt.pipeline.state_sync import decompress_state, migrate_state_to_current

    state = migrate_state_to_current(pipeline, decompress_state(stored.encoded))
    sources: dict[str, Any] = state.get("sources") or {}
    found = (sources.get(pipeline) or {}).get("resources", {}).get(resource)
    return None if found is None else dict(found)
