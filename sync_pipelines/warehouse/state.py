"""dlt's pipeline state as the warehouse stores it (`_dlt_pipeline_state`), read with dlt's own functions.

A step reads its entities' resource states before any dlt pipeline exists (`reader.ReadAhead`): a run that finds
nothing to load then creates no pipeline at all. What dlt decoded is kept in the working folder (`StateCache`),
under the stored text's digest: the next run that finds the same state reads it back without importing dlt.
"""

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync_pipelines.catalogue import Entity, Tenant, pipeline_name, tenant_pipeline_name
from sync_pipelines.warehouse.settings import Warehouse, working_folder
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
    cache = StateCache(working_folder(target))
    resources = cache.resource_states(stored, name)
    missing = {pipeline_name(tenant, entity): entity for entity in entities if entity.name not in resources}
    for legacy_name, legacy in stored_states(target, tenant.name, missing).items() if missing else ():
        found = resource_states(legacy, legacy_name).get(missing[legacy_name].name)
        if found is not None:
            resources[missing[legacy_name].name] = found
    return TenantState(stored, resources)


def remember_tenant_state(target: Warehouse, tenant: Tenant) -> None:
    """After a load: decode the state it stored while dlt is imported anyway, so that the next run, if it finds
    nothing to load, reads its cursors without importing dlt."""
    name = tenant_pipeline_name(tenant)
    StateCache(working_folder(target)).resource_states(stored_states(target, tenant.name, [name]).get(name), name)


class StateCache:
    """The resource states dlt decoded from a stored state, one JSON file per pipeline in `folder`, under the
    SHA-256 of the stored text: a state the warehouse holds no longer (another load, a restored backup, another
    host's run) has another digest and is decoded again. Only what reads back from JSON exactly as dlt decoded
    it is kept (the product's states are strings); anything else is decoded by dlt every time."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def resource_states(self, stored: StoredState | None, pipeline: str) -> dict[str, dict[str, Any]]:
        """`resource_states(stored, pipeline)`, from the file when it holds that very state."""
        if stored is None or not stored.encoded:
            return {}
        digest = hashlib.sha256(stored.encoded.encode()).hexdigest()
        path = self.folder / f"{pipeline}.resource_states.json"
        kept = _read_json(path)
        if isinstance(kept, dict) and kept.get("digest") == digest and isinstance(kept.get("resources"), dict):
            return kept["resources"]
        resources = resource_states(stored, pipeline)
        text = json.dumps({"digest": digest, "resources": resources}, separators=(",", ":"), default=_not_json)
        if json.loads(text)["resources"] == resources:
            try:
                _write_private(path, text)
            except OSError:  # a full disk, a folder gone: the next run decodes it again
                pass
        return resources


def resource_states(stored: StoredState | None, pipeline: str) -> dict[str, dict[str, Any]]:
    """The resources' states in `stored`, a state of `pipeline`, whose source schema is named after it."""
    if stored is None or not stored.encoded:
        return {}
    # imported here: the definitions import no dlt, and a run imports it when it reads a state it has not cached
    from dlt.pipeline.state_sync import decompress_state, migrate_state_to_current

    state = migrate_state_to_current(pipeline, decompress_state(stored.encoded))
    sources: dict[str, Any] = state.get("sources") or {}
    return {name: dict(found) for name, found in ((sources.get(pipeline) or {}).get("resources") or {}).items()}


def _not_json(value: object) -> str:
    """A value JSON has no type for (a datetime, a decimal): written as its repr, which reads back unequal."""
    return repr(value)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or cut short: decoded again
        return None


def _write_private(path: Path, text: str) -> None:
    """`text` into `path`, whole or not at all (a file beside it, renamed), owner-only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(partial, path)
