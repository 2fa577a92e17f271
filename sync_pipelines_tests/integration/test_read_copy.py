"""The read copy analysts open: current after every run that loaded anything, copied once per run, left alone
when the warehouse did not change."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
from dagster import DagsterInstance

from sync_pipelines.catalogue import ENTITIES, TENANTS
from sync_pipelines.warehouse.settings import read_copy_path
from sync_pipelines_tests.helpers import run_entity_job, run_sync_all, step_failures

MAIN_TENANT = TENANTS["synchroteam"]
INVOICES = ENTITIES["invoices"]


def contents(path: Path) -> dict[str, list[tuple]]:
    """Every table of the DuckDB file (dlt's bookkeeping included), its rows sorted; dlt's `*_staging` schemas
    left out (the read copy drops them)."""
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND NOT ends_with(table_schema, '_staging')"
        ).fetchall()
        return {
            f"{schema}.{table}": sorted(map(repr, con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()))
            for schema, table in tables
        }


def file_identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


def refreshes_logged(instance: DagsterInstance, run_id: str) -> int:
    return sum(1 for record in instance.all_logs(run_id) if record.user_message == "Read copy refreshed.")


def test_sync_all_copies_the_warehouse_once_at_its_end_and_the_copy_is_exact(emulator, warehouse):
    with DagsterInstance.ephemeral() as instance:
        result = run_sync_all(instance=instance)

        assert result.success
        assert refreshes_logged(instance, result.run_id) == 1  # not once per entity
        # the copy is an asset of its own, materialized last, after every entity's step
        (copy,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path[0] == "warehouse"]
        assert result.get_asset_materialization_events()[-1] is copy
        assert copy.materialization.metadata["size_mb"].value > 0
    assert contents(read_copy_path(warehouse)) == contents(warehouse)


def test_a_run_that_changed_nothing_leaves_the_read_copy_untouched(emulator, warehouse):
    run_entity_job(MAIN_TENANT, INVOICES)
    before = file_identity(read_copy_path(warehouse))

    # re-reading an empty quarantine loads nothing: the warehouse file is not written
    result = run_entity_job(MAIN_TENANT, INVOICES, config={"mode": "retry_rejected"})

    assert result.success
    assert file_identity(read_copy_path(warehouse)) == before
    # and its asset is not materialized: its materializations say when analysts last got new data
    assert "warehouse" not in {e.asset_key.path[0] for e in result.get_asset_materialization_events()}


def test_a_run_that_loaded_something_replaces_the_read_copy(emulator, warehouse):
    run_entity_job(MAIN_TENANT, INVOICES)
    before = file_identity(read_copy_path(warehouse))
    emulator.tenant("acme").add("invoice")

    assert run_entity_job(MAIN_TENANT, INVOICES).success

    assert file_identity(read_copy_path(warehouse)) != before
    assert contents(read_copy_path(warehouse)) == contents(warehouse)


def test_a_read_copy_removed_behind_the_syncs_back_is_published_again_even_if_nothing_changed(emulator, warehouse):
    run_entity_job(MAIN_TENANT, INVOICES)
    os.remove(read_copy_path(warehouse))

    assert run_entity_job(MAIN_TENANT, INVOICES, config={"mode": "retry_rejected"}).success

    assert contents(read_copy_path(warehouse)) == contents(warehouse)


def test_a_run_whose_last_steps_fail_still_publishes_what_its_first_steps_loaded(emulator, warehouse, monkeypatch):
    monkeypatch.delenv("SYNCHROTEAM_HEC_API_KEY")  # the HEC steps, last in the run, fail before any request

    result = run_sync_all(raise_on_error=False)

    assert set(step_failures(result)) == {"synchroteam_hec"}
    # the read copy's own step did not run (its upstream failed): the failing steps published the copy
    assert "warehouse__read_copy" not in {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    copy = contents(read_copy_path(warehouse))
    assert copy == contents(warehouse)
    assert copy["synchroteam.invoices"]  # the main tenant's loads are in it
