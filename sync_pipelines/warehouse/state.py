"""dlt's pipeline state as the warehouse stores it (`_dlt_pipeline_state`), decoded without importing dlt when dlt's
own decoding would give the same.

A step reads its entity's resource state before any dlt pipeline exists (`reader.ReadAhead`); when the reading
finds nothing to load, the run needs nothing else from dlt, and importing it would cost a third of a second or
more of every such run (BENCHMARKS.md). dlt stores a state as its typed JSON, zlib-compressed, base64-encoded
(`compress_state`). Its typed JSON writes a datetime, a decimal, a date or bytes as a string behind a
private-use character, and `decompress_state` turns those back; a state made of plain JSON values only (the
product's cursor and memos are strings) is pure ASCII, and for it the two decodings are the same JSON parse.
Whatever is not (a typed value, a non-ASCII string, an uncompressed state, another engine version) is left to
dlt's `decompress_state` and `migrate_state_to_current`, imported then.
"""

import base64
import binascii
import zlib
from typing import Any

import orjson

from sync_pipelines.warehouse.tables import StoredState

# dlt's PIPELINE_STATE_ENGINE_VERSION (dlt/pipeline/state_sync.py), which a test holds equal to dlt's: a state of
# another engine version goes through dlt's migration
STATE_ENGINE_VERSION = 4


def stored_resource_state(stored: StoredState | None, pipeline: str, resource: str) -> dict[str, Any]:
    """The state of dlt resource `resource` in `stored`, the newest state of `pipeline` in the warehouse, decoded
    as dlt's `sync_destination` restores it; empty when nothing was stored. Each entity's source schema is named
    after its pipeline (`catalogue.pipeline_name`). A run reads its entity from it before any pipeline exists
    (`reader.ReadAhead`)."""
    if stored is None or not stored.encoded:
        return {}
    state = _decoded(stored.encoded, pipeline)
    sources: dict[str, Any] = state.get("sources") or {}
    return dict((sources.get(pipeline) or {}).get("resources", {}).get(resource) or {})


def _decoded(encoded: str, pipeline: str) -> dict[str, Any]:
    """`pipeline`'s state from its stored encoding, its sources as dlt's
    `migrate_state_to_current(decompress_state(...))` gives them: plain ASCII JSON of the current engine version
    here (dlt's migration of such a state only renames its destination), anything else by dlt."""
    try:
        data = zlib.decompress(base64.b64decode(encoded, validate=True))
    except (binascii.Error, zlib.error):
        return _decoded_by_dlt(encoded, pipeline)  # uncompressed, or not a state: dlt decodes it or says why
    if not data.isascii():  # dlt's typed values start with a private-use character
        return _decoded_by_dlt(encoded, pipeline)
    state = orjson.loads(data)
    if not isinstance(state, dict) or state.get("_state_engine_version") != STATE_ENGINE_VERSION:
        return _decoded_by_dlt(encoded, pipeline)
    return state


def _decoded_by_dlt(encoded: str, pipeline: str) -> dict[str, Any]:
    from dlt.pipeline.state_sync import decompress_state, migrate_state_to_current

    return dict(migrate_state_to_current(pipeline, decompress_state(encoded)))
