"""The resource state a step reads from the warehouse before any dlt pipeline exists: what dlt itself would restore,
whatever the state holds, its engine version included, whether decoded by dlt or read back from the cache."""

import json
import stat
import tempfile
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dlt.common.versioned_state import compress_state, decompress_state
from dlt.pipeline.state_sync import PIPELINE_STATE_ENGINE_VERSION, migrate_state_to_current
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sync_pipelines.warehouse import state
from sync_pipelines.warehouse.state import StateCache
from sync_pipelines.warehouse.state import resource_states as stored_resources
from sync_pipelines.warehouse.tables import StoredState

PIPELINE = "synchroteam"

# What a resource state may hold: the product's strings (a cursor, ids, digests), and what dlt's typed JSON writes
# behind a private-use character (datetimes, dates, decimals, bytes), non-ASCII text, numbers, nesting
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.datetimes(timezones=st.just(UTC)),
    st.dates(),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.binary(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
resource_states = st.dictionaries(st.text(max_size=10), values, max_size=5)


def pipeline_state(resource: dict[str, Any], engine: int = PIPELINE_STATE_ENGINE_VERSION) -> dict[str, Any]:
    """A pipeline state as dlt stores it in `_dlt_pipeline_state`, the resource's state inside."""
    return {
        "_state_version": 3,
        "_state_engine_version": engine,
        "_version_hash": "hash",
        "pipeline_name": PIPELINE,
        "dataset_name": "synchroteam",
        "default_schema_name": PIPELINE,
        "schema_names": [PIPELINE],
        "destination_type": "dlt.destinations.duckdb",
        "destination_name": "duckdb",
        "sources": {PIPELINE: {"resources": {"invoices": resource}}},
    }


def by_dlt(encoded: str) -> dict[str, Any]:
    restored = migrate_state_to_current(PIPELINE, decompress_state(encoded))
    return dict(restored["sources"][PIPELINE]["resources"]["invoices"])


@settings(max_examples=300, deadline=None)
@given(resource=resource_states, engine=st.sampled_from([3, PIPELINE_STATE_ENGINE_VERSION]))
@example(
    resource={"cursor": "2026-12-03T07:00:00+00:00", "details_memo": {"12": ["2026-12-03T06:59:00", "ab12"]}}, engine=4
)
@example(
    resource={"cursor": datetime(2026, 12, 3, tzinfo=UTC), "amount": Decimal("1.10"), "day": date(2026, 12, 3)},
    engine=4,
)
@example(resource={"name": "Crédit à l'unité"}, engine=4)
def test_a_stored_resource_state_reads_as_dlt_restores_it(resource, engine):
    encoded = compress_state(pipeline_state(resource, engine))

    assert stored_resources(StoredState(3, "hash", encoded), PIPELINE)["invoices"] == by_dlt(encoded)


def test_nothing_stored_reads_as_no_state():
    assert stored_resources(None, PIPELINE) == {}
    assert stored_resources(StoredState(3, "hash", ""), PIPELINE) == {}
    other = compress_state(pipeline_state({"cursor": "2026-12-03T07:00:00+00:00"}))
    assert set(stored_resources(StoredState(3, "hash", other), PIPELINE)) == {"invoices"}
    assert stored_resources(StoredState(3, "hash", other), "synchroteam_hec") == {}  # another pipeline's source


@settings(max_examples=100, deadline=None)
@given(resource=resource_states)
def test_a_state_read_again_through_the_cache_reads_as_dlt_restores_it(resource):
    encoded = compress_state(pipeline_state(resource))
    with tempfile.TemporaryDirectory() as folder:
        cache = StateCache(Path(folder))
        first = cache.resource_states(StoredState(3, "hash", encoded), PIPELINE)
        again = cache.resource_states(StoredState(3, "hash", encoded), PIPELINE)

    assert first["invoices"] == again["invoices"] == by_dlt(encoded)


def test_a_state_read_before_is_read_from_its_file_without_dlt(tmp_path, monkeypatch):
    cache = StateCache(tmp_path)
    encoded = compress_state(pipeline_state({"cursor": "2026-12-03T07:00:00+00:00", "memo": {"12": ["a", "b"]}}))
    assert cache.resource_states(StoredState(3, "hash", encoded), PIPELINE)["invoices"] == by_dlt(encoded)
    (kept,) = tmp_path.iterdir()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # what the warehouse holds stays private

    monkeypatch.setattr(state, "resource_states", _no_decoding)
    assert cache.resource_states(StoredState(3, "hash", encoded), PIPELINE)["invoices"] == by_dlt(encoded)

    # another state (a new load, a restored backup) has another digest, even with the same version and hash
    newer = compress_state(pipeline_state({"cursor": "2026-12-04T07:00:00+00:00"}))
    with pytest.raises(AssertionError, match="decoded"):
        cache.resource_states(StoredState(3, "hash", newer), PIPELINE)
    monkeypatch.undo()
    assert cache.resource_states(StoredState(3, "hash", newer), PIPELINE)["invoices"] == by_dlt(newer)


def test_a_state_json_cannot_hold_exactly_is_decoded_every_time(tmp_path):
    encoded = compress_state(pipeline_state({"cursor": datetime(2026, 12, 3, tzinfo=UTC), "amount": Decimal("1.10")}))
    cache = StateCache(tmp_path)

    for _ in range(2):
        assert cache.resource_states(StoredState(3, "hash", encoded), PIPELINE)["invoices"] == by_dlt(encoded)
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_or_unwritable_cache_is_decoded_again(tmp_path):
    encoded = compress_state(pipeline_state({"cursor": "2026-12-03T07:00:00+00:00"}))
    StateCache(tmp_path).resource_states(StoredState(3, "hash", encoded), PIPELINE)
    (kept,) = tmp_path.iterdir()
    kept.write_text('{"digest": "')  # a file cut short

    assert StateCache(tmp_path).resource_states(StoredState(3, "hash", encoded), PIPELINE)["invoices"] == by_dlt(
        encoded
    )
    assert json.loads(kept.read_text())["resources"]["invoices"] == by_dlt(encoded)  # written whole again

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    found = StateCache(not_a_folder).resource_states(StoredState(3, "hash", encoded), PIPELINE)
    assert found["invoices"] == by_dlt(encoded)


def _no_decoding(*args):
    raise AssertionError("decoded with dlt")
