"""dlt's pipeline state as the warehouse stores it (`_dlt_pipeline_state`), read with dlt's own functions.

A step reads its entity's resource state before any dlt pipeline exists (`reader.ReadAhead`): a run that finds
nothing to load then creates no pipeline at all.
"""

from typing import Any

from sync_pipelines.warehouse.tables import StoredState


def stored_resource_state(stored: StoredState | None, pipeline: str, resource: str) -> dict[str, Any]:
    """The state of dlt resource `resource` in `stored`, the newest state of `pipeline` in the warehouse, as dlt's
    `sync_destination` restores it; empty when nothing was stored. Each entity's source schema is named after its
    pipeline (`catalogue.pipeline_name`)."""
    if stored is None or not stored.encoded:
        return {}
    # imported here: the definitions import no dlt, and a run imports it when it reads a state
    from dlt.pipeline.state_sync import decompress_state, migrate_state_to_current

    state = migrate_state_to_current(pipeline, decompress_state(stored.encoded))
    sources: dict[str, Any] = state.get("sources") or {}
    return dict((sources.get(pipeline) or {}).get("resources", {}).get(resource) or {})
