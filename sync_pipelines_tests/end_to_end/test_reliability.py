"""Faults of the world around a sync: readers, concurrent runs, quotas, broken answers, secrets."""

from __future__ import annotations

from pathlib import Path

import duckdb

from sync_pipelines.catalogue import ENTITIES
from sync_pipelines.warehouse.settings import pipelines_dir, read_copy_path
from sync_pipelines_tests.compare import assert_warehouse_equals_emulator
from sync_pipelines_tests.conftest import DOMAINS, HEC, MAIN
from sync_pipelines_tests.helpers import (
    expected_requests,
    files_containing,
    sync_requests,
)
from sync_pipelines_tests.processes import (
    dagster_home,
    run_messages,
    start_job,
    wait,
)

INVOICES = ENTITIES["invoices"]


def count_invoices(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT count(*) FROM synchroteam.invoices").fetchone()[0]


# -- analysts reading while syncs run -------------------------------------------------------------------------------


# -- concurrent runs -----------------------------------------------------------------------------------------------


def invoice_listings(emulator) -> tuple[int, bool]:
    """(pages listing every invoice, whether a run listed the changes since a cursor) of the main tenant."""
    lists = [r for r in sync_requests(emulator) if (r.tenant, r.resource, r.action) == (MAIN.domain, "invoice", "list")]
    everything = [r for r in lists if not {"changedSince", "dateFrom"} & r.params.keys()]
    return len(everything), any("changedSince" in r.params for r in lists)


def test_two_runs_of_the_same_entity_at_once_take_turns_and_never_race_the_state(emulator, warehouse, tmp_path):
    home = dagster_home(tmp_path)
    invoices = emulator.tenant(MAIN.domain).records("invoice")

    runs = [start_job("sync_synchroteam__invoices", home, tmp_path / f"run{i}.log") for i in range(2)]
    codes = [wait(run) for run in runs]

    logs = [(tmp_path / f"run{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], "\n\n".join(log[-6000:] for log, code in zip(logs, codes) if code)
    first_load, _ = expected_requests(INVOICES, invoices, None)
    # the second ran after the first committed: one listing of every invoice, then an incremental run
    assert invoice_listings(emulator) == (first_load, True)
    assert count_invoices(warehouse) == len(invoices)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) - count(DISTINCT id) FROM synchroteam.invoices").fetchone()[0] == 0
    # one waited for the other: for the pool's slot, or (both granted it at once, as SQLite storage can) the lock
    messages = run_messages(home)
    assert any("blocked by limit for pool duckdb_writer" in m or "Waiting for the warehouse" in m for m in messages)


def test_runs_that_share_no_pool_still_take_turns_on_the_warehouse(emulator, warehouse, tmp_path):
    # two DAGSTER_HOMEs on one warehouse (or `dagster asset materialize` without one): no pool between them
    homes = [dagster_home(tmp_path, f"home{i}") for i in range(2)]
    invoices = emulator.tenant(MAIN.domain).records("invoice")

    runs = [start_job("sync_synchroteam__invoices", home, tmp_path / f"run{i}.log") for i, home in enumerate(homes)]
    codes = [wait(run) for run in runs]

    logs = [(tmp_path / f"run{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], "\n\n".join(log[-6000:] for log, code in zip(logs, codes) if code)
    assert any("Waiting for the warehouse" in log for log in logs)
    first_load, _ = expected_requests(INVOICES, invoices, None)
    # the second ran after the first committed: one listing of every invoice, then an incremental run
    assert invoice_listings(emulator) == (first_load, True)
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["invoices"])


# -- the API misbehaving -------------------------------------------------------------------------------------------


# -- secrets -------------------------------------------------------------------------------------------------------


def test_the_api_key_appears_in_no_log_tag_metadata_error_warehouse_or_file(emulator, warehouse, tmp_path, monkeypatch):
    home = dagster_home(tmp_path)
    assert wait(start_job("sync_all", home, tmp_path / "ok.log")) == 0
    wrong_key = "a3f1c2e4-0000-4bad-8bad-0123456789ab"
    monkeypatch.setenv("SYNCHROTEAM_HEC_API_KEY", wrong_key)
    assert wait(start_job("sync_all", home, tmp_path / "failed.log")) != 0
    assert "SYNCHROTEAM_HEC_API_KEY" in (tmp_path / "failed.log").read_text()

    written = [tmp_path]  # DAGSTER_HOME (runs, event logs, compute logs), the warehouse, its read copy, dlt's folder
    assert pipelines_dir(warehouse).is_relative_to(tmp_path) and read_copy_path(warehouse).exists()
    for secret in (MAIN.api_key, HEC.api_key, wrong_key):
        for root in written:
            assert files_containing(root, secret.encode()) == [], f"{secret[:4]}… found"
