"""IdSet: a set of ids that spills to SQLite's temporary database, and behaves the same on either side."""

import random

import pytest

from sync_pipelines.synchroteam import idset
from sync_pipelines.synchroteam.idset import IdSet


@pytest.mark.parametrize("spill_after", [3, 10_000])
def test_it_answers_like_a_set_before_and_after_spilling(spill_after):
    rng = random.Random(5)
    keys = [str(rng.randrange(2_000)) for _ in range(5_000)] + ["160453_2111190756181", "", "é"]
    expected: set[str] = set()
    with IdSet(spill_after=spill_after) as ids:
        for key in keys:
            assert (key in ids) == (key in expected)
            ids.add(key)
            expected.add(key)
            assert len(ids) == len(expected)
        assert ids.spilled == (len(expected) > spill_after)
        assert sorted(ids) == sorted(expected)
        assert "never added" not in ids


def test_a_long_walk_spills_and_close_frees_it(monkeypatch):
    monkeypatch.setattr(idset, "SPILL_AFTER", 100)
    ids = IdSet(str(i) for i in range(250))
    assert ids.spilled and len(ids) == 250 and "249" in ids
    ids.close()
    assert len(ids) == 0 and "249" not in ids and not ids.spilled
