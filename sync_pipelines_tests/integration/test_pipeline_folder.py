"""dlt's local working folder on DuckDB: kept after a clean run (a run that changes nothing restores nothing from
the warehouse, and builds no pipeline at all), dropped when a run fails or finds a package a killed run left, so
that the warehouse's committed state is the only truth the next run starts from."""

import shutil
from pathlib import Path

import dlt
import duckdb
from dagster import DagsterInstance

from sync_pipelines.catalogue import ENTITIES, TENANTS, tenant_pipeline_name
from sync_pipelines.synchroteam import source
from sync_pipelines.synchroteam.client import SynchroteamClient
from sync_pipelines.synchroteam.plan import SyncPlan
from sync_pipelines.synchroteam.records import to_api_timestamp
from sync_pipelines.synchroteam.settings import TenantSettings
from sync_pipelines.synchroteam.source import entity_source
from sync_pipelines.warehouse import pipeline as pipeline_module
from sync_pipelines.warehouse.pipeline import build_pipeline
from sync_pipelines.warehouse.settings import pipelines_dir
from sync_pipelines_tests.compare import assert_warehouse_equals_emulator
from sync_pipelines_tests.conftest import DOMAINS, MAIN
from sync_pipelines_tests.helpers import materializations, run_entity_job, stored_cursor, stored_state, sync_requests

MAIN_TENANT = TENANTS["synchroteam"]
INVOICES = ENTITIES["invoices"]


def marker(warehouse: Path) -> Path:
    """A file of our own in the pipeline's working folder: it survives exactly as long as the folder does."""
    return pipelines_dir(warehouse) / tenant_pipeline_name(MAIN_TENANT) / "kept.marker"


def test_a_clean_run_keeps_the_working_folder_for_the_next(emulator, warehouse):
    assert run_entity_job(MAIN_TENANT, INVOICES).success
    marker(warehouse).write_text("")

    emulator.tenant(MAIN.domain).add("invoice")
    assert run_entity_job(MAIN_TENANT, INVOICES).success

    assert marker(warehouse).exists()
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["invoices"])


def test_the_working_folder_keeps_no_copy_of_what_was_loaded(emulator, warehouse):
    """dlt keeps every load package it completed, a raw JSONL copy of each record loaded, one more per run: the
    warehouse holds them, so each run that loads deletes its own."""
    folder = pipelines_dir(warehouse) / tenant_pipeline_name(MAIN_TENANT)
    store = emulator.tenant(MAIN.domain)
    assert run_entity_job(MAIN_TENANT, INVOICES).success
    store.add("invoice")
    assert run_entity_job(MAIN_TENANT, INVOICES).success

    assert (folder / "state.json").exists()  # the folder itself is kept (the test above)
    loaded = folder / "load" / "loaded"
    assert [path.relative_to(folder) for path in loaded.rglob("*") if path.is_file()] == []
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["invoices"])


def test_a_run_that_fails_inside_dlt_drops_the_working_folder_and_the_next_starts_from_the_warehouse(
    emulator, warehouse, monkeypatch
):
    assert run_entity_job(MAIN_TENANT, INVOICES).success
    marker(warehouse).write_text("")
    emulator.tenant(MAIN.domain).add("invoice")  # a change: the run builds its pipeline and dlt extracts it

    def broken_normalize(self, *args, **kwargs):
        raise RuntimeError("normalize broke")

    with monkeypatch.context() as patched:  # fails after dlt extracted the change and moved its local state
        patched.setattr(dlt.Pipeline, "normalize", broken_normalize)
        assert not run_entity_job(MAIN_TENANT, INVOICES, raise_on_error=False).success

    assert not marker(warehouse).exists()
    assert run_entity_job(MAIN_TENANT, INVOICES).success
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["invoices"])


def test_a_run_that_fails_before_its_pipeline_exists_leaves_the_working_folder_as_it_was(
    emulator, warehouse, monkeypatch
):
    """The API refuses the key at the first listing: no pipeline was built, the folder still holds what the
    warehouse committed, and the next run uses it."""
    assert run_entity_job(MAIN_TENANT, INVOICES).success
    marker(warehouse).write_text("")
    emulator.tenant(MAIN.domain).add("invoice")
    monkeypatch.setenv("SYNCHROTEAM_API_KEY", "wrong-key")

    assert not run_entity_job(MAIN_TENANT, INVOICES, raise_on_error=False).success

    assert marker(warehouse).exists()
    monkeypatch.setenv("SYNCHROTEAM_API_KEY", MAIN.api_key)
    assert run_entity_job(MAIN_TENANT, INVOICES).success
    assert marker(warehouse).exists()
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["invoices"])


def test_a_package_a_killed_run_left_is_dropped_not_loaded_and_its_changes_are_read_again(emulator, warehouse):
    assert run_entity_job(MAIN_TENANT, INVOICES).success
    store = emulator.tenant(MAIN.domain)
    store.add("invoice")
    # what a run killed after its extract leaves: a package, and a local cursor past what the warehouse holds
    with SynchroteamClient(TenantSettings.from_env(MAIN_TENANT)) as client:
        pipeline = build_pipeline(MAIN_TENANT)
        pipeline.extract(entity_source(MAIN_TENANT, INVOICES, client, SyncPlan()), loader_file_format="jsonl")
    assert pipeline.has_pending_data
    marker(warehouse).write_text("")
    store.add("invoice")

    assert run_entity_job(MAIN_TENANT, INVOICES).success

    assert not marker(warehouse).exists()
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["invoices"])


def test_a_run_that_finds_nothing_loads_nothing_and_says_so(emulator, warehouse):
    assert run_entity_job(MAIN_TENANT, INVOICES, config={"refetch_recent_days": 0}).success
    loads_before = dlt_loads(warehouse)

    with DagsterInstance.ephemeral() as instance:
        result = run_entity_job(MAIN_TENANT, INVOICES, config={"refetch_recent_days": 0}, instance=instance)
        messages = [record.user_message for record in instance.all_logs(result.run_id)]

    assert result.success
    assert dlt_loads(warehouse) == loads_before  # no load package, no state version, no `_dlt_loads` row
    (materialization,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path[0] in TENANTS]
    assert materialization.materialization.metadata["loaded"].value == 0
    assert "synchroteam/invoices: nothing changed since the last run (1 API request); nothing to load." in messages
    pipeline = build_pipeline(MAIN_TENANT)
    assert not pipeline.has_pending_data and marker(warehouse).parent.exists()  # nothing left behind, folder kept


def test_a_run_that_finds_nothing_builds_no_pipeline_and_reports_the_stored_columns(emulator, warehouse, monkeypatch):
    """The run reads the API before any dlt pipeline exists: finding nothing, it builds none, restores no state,
    and its materialization still describes the table's columns, from the dlt schema stored in the warehouse."""
    first = materializations(run_entity_job(MAIN_TENANT, INVOICES), TENANTS["synchroteam"], ENTITIES["invoices"])[0]

    def refuse(*args, **kwargs):
        raise AssertionError("a dlt pipeline was built")

    monkeypatch.setattr(pipeline_module, "build_pipeline", refuse)  # the step imports it when it needs it
    quiet = materializations(run_entity_job(MAIN_TENANT, INVOICES), TENANTS["synchroteam"], ENTITIES["invoices"])[0]

    columns = quiet.metadata["dagster/column_schema"].value.columns
    assert [c.name for c in columns] == [c.name for c in first.metadata["dagster/column_schema"].value.columns]
    assert columns == first.metadata["dagster/column_schema"].value.columns and len(columns) > 5
    emulator.tenant(MAIN.domain).add("invoice")  # a change: that run needs its pipeline
    assert not run_entity_job(MAIN_TENANT, INVOICES, raise_on_error=False).success


def test_a_run_that_loads_nothing_but_changed_its_state_commits_the_state(emulator, warehouse):
    """A draft quotation accepted without a new `dateModified`: no walk lists it any more, nothing is loaded, and
    the re-fetch memo lets it go; that state change is committed (a load of the state alone)."""
    quotations = ENTITIES["quotations"]
    store = emulator.tenant(MAIN.domain)
    assert run_entity_job(MAIN_TENANT, quotations).success
    assert run_entity_job(MAIN_TENANT, quotations).success  # the re-fetch walks remember what they listed
    draft = next(q for q in store.records("quotation") if q["status"] == "draft")
    assert str(draft["id"]) in stored_state(MAIN_TENANT, quotations)["refetch_memo"]
    loads_before = dlt_loads(warehouse)

    store.edit("quotation", draft["id"], {"status": "accepted"}, bump=False)
    result = run_entity_job(MAIN_TENANT, quotations)

    assert materializations(result, TENANTS["synchroteam"], ENTITIES["quotations"])[0].metadata["loaded"].value == 0
    assert str(draft["id"]) not in stored_state(MAIN_TENANT, quotations)["refetch_memo"]
    assert dlt_loads(warehouse) == loads_before + 1


def dlt_loads(warehouse: Path) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("SELECT count(*) FROM synchroteam._dlt_loads").fetchone()[0]


def test_a_folder_that_holds_the_warehouse_s_state_is_trusted_and_one_behind_it_is_restored(
    emulator, warehouse, monkeypatch
):
    synced: list[str] = []
    sync_destination = dlt.Pipeline.sync_destination

    def counted(self, *args, **kwargs):
        synced.append(self.pipeline_name)
        return sync_destination(self, *args, **kwargs)

    monkeypatch.setattr(dlt.Pipeline, "sync_destination", counted)
    store = emulator.tenant(MAIN.domain)
    assert run_entity_job(MAIN_TENANT, INVOICES).success
    assert synced == [tenant_pipeline_name(MAIN_TENANT)]  # a new folder: the warehouse is asked
    folder = marker(warehouse).parent
    behind = folder.with_name("behind")
    shutil.copytree(folder, behind)

    store.add("invoice")
    assert run_entity_job(MAIN_TENANT, INVOICES).success
    assert len(synced) == 1  # the folder holds the state the warehouse has: not read again
    cursor = stored_cursor(MAIN_TENANT, INVOICES)  # (reads the warehouse's state into a new folder)

    # the folder one state behind the warehouse (as a copy restored from a backup would be)
    shutil.rmtree(folder)
    behind.rename(folder)
    store.add("invoice")  # something to load: the run builds its pipeline
    emulator.clear_requests()
    synced.clear()
    assert run_entity_job(MAIN_TENANT, INVOICES, config={"lookback_minutes": 0, "revisit_days": 0}).success
    assert synced == [tenant_pipeline_name(MAIN_TENANT)]  # restored from the warehouse
    (walk,) = [r for r in sync_requests(emulator) if r.resource == "invoice" and "changedSince" in r.params]
    assert walk.params["changedSince"] == to_api_timestamp(cursor.at, TenantSettings.from_env(MAIN_TENANT).timezone)
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["invoices"])


def test_a_schema_stored_without_the_amount_types_gets_them_from_the_next_run(emulator, warehouse, monkeypatch):
    """A warehouse loaded before amounts were typed by column name: its stored schema takes the source's."""

    def stored_preferred_types() -> dict:
        pipeline = build_pipeline(MAIN_TENANT)
        pipeline.drop()  # the warehouse's schema, not the local folder's
        pipeline.sync_destination()
        return dict(pipeline.default_schema.settings.get("preferred_types") or {})

    with monkeypatch.context() as patched:
        patched.setattr(source, "tenant_schema", lambda tenant: dlt.Schema(tenant_pipeline_name(tenant)))
        assert run_entity_job(MAIN_TENANT, INVOICES).success
    assert not stored_preferred_types()

    emulator.tenant(MAIN.domain).add("invoice")
    assert run_entity_job(MAIN_TENANT, INVOICES).success

    naming = dlt.Schema("x").naming.normalize_identifier
    assert stored_preferred_types() == source.decimal_columns(naming)
