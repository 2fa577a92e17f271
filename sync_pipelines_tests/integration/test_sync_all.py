"""`sync_all` against the emulator over real HTTP: complete, incremental, exact."""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import duckdb
from dagster import DagsterInstance

from sync_pipelines.catalogue import ENTITIES, TENANTS, tenant_entities
from sync_pipelines.defs import sync_step
from sync_pipelines.synchroteam.records import DECIMAL_FIELDS
from sync_pipelines.warehouse.settings import pipelines_dir
from sync_pipelines_tests.compare import NAMING, assert_warehouse_equals_emulator, table_exists
from sync_pipelines_tests.conftest import DOMAINS, HEC, MAIN
from sync_pipelines_tests.helpers import (
    expected_requests,
    materializations,
    max_modified,
    requests_by,
    run_sync_all,
    step_failures,
    sync_requests,
    window_start,
)
from synchroteam_emulator import Fault


def test_first_sync_all_lands_exactly_the_emulators_records(emulator, warehouse):
    result = run_sync_all()

    assert result.success
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS)
    for tenant in TENANTS.values():
        store = emulator.tenant(DOMAINS[tenant.name])
        for entity in tenant_entities(tenant):
            expected = expected_requests(entity, store.records(entity.resource), None)
            assert requests_by(emulator, DOMAINS[tenant.name], entity.resource) == expected, entity.name
    with duckdb.connect(str(warehouse), read_only=True) as con:
        child_tables = {
            name
            for (name,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'synchroteam'"
            ).fetchall()
        }
        assert {
            "jobs__parts",
            "jobs__time_entries",
            "invoices__lines",
            "quotations__lines",
            "credit_notes__lines",
        } <= child_tables
        id_types = con.execute(
            "SELECT DISTINCT data_type FROM information_schema.columns WHERE column_name = 'id' "
            "AND table_name IN ('jobs', 'invoices', 'customers')"
        ).fetchall()
        assert id_types == [("VARCHAR",)]  # string job ids and integer invoice ids alike
        contacts = con.execute(
            "SELECT count(contact_phone), count(contact_mobile) FROM synchroteam.customers"
        ).fetchone()
        assert contacts[0] > 0 and contacts[1] > 0
        modified_type = con.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = 'synchroteam' "
            "AND table_name = 'invoices' AND column_name = 'date_modified'"
        ).fetchone()
        assert modified_type == ("TIMESTAMP WITH TIME ZONE",)
        # amounts reach dlt as the API's JSON numbers: DECIMAL by column name, at any depth, in every table
        names = "|".join(NAMING.normalize_identifier(name) for name in DECIMAL_FIELDS)
        amounts = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema IN ('synchroteam', 'synchroteam_hec') AND regexp_matches(column_name, ?)",
            [f"(^|__)({names})$"],
        ).fetchall()
        assert {kind for _, _, kind in amounts} == {"DECIMAL(38,9)"}, amounts
        assert {("invoices", "total_incl_tax"), ("invoices__lines", "unit_price"), ("jobs__parts", "quantity")} <= {
            (table, column) for table, column, _ in amounts
        }


def test_a_sync_all_is_one_step_per_tenant_and_the_read_copy_with_the_checks_evaluated_in_the_sync_steps(
    emulator, warehouse
):
    instance = DagsterInstance.ephemeral()  # one for both runs: the second knows what dbt built
    result = run_sync_all(analytics=True, instance=instance)  # the whole job, as a user's run

    steps = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    pairs = [(tenant, entity) for tenant in TENANTS.values() for entity in tenant_entities(tenant)]
    assert sorted(steps) == sorted([*TENANTS, "analytics", "warehouse__read_copy"])
    assert steps[-2:] == ["analytics", "warehouse__read_copy"]  # the copy holds the views dbt built
    with duckdb.connect(str(warehouse), read_only=True) as con:  # each tenant's entities in one dlt load
        loads = {t: con.execute(f"SELECT schema_name FROM {t}._dlt_loads").fetchall() for t in TENANTS}
    assert loads == {t: [(t,)] for t in TENANTS}
    # no check is planned: each is reported by the step that evaluates it (check_results)
    assert not [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION_PLANNED"]
    evaluations = [
        e
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.step_key != "analytics"  # dbt's: test_analytics.py
    ]
    assert {(e.step_key, e.asset_check_evaluation_data.check_name) for e in evaluations} == {
        (t.name, name) for t, e in pairs for name in ("no_duplicate_ids", "rejected_records")
    }
    assert all(e.asset_check_evaluation_data.passed for e in evaluations)

    # a run that changed nothing: the read copy still last, nothing skipped, and Dagster says nothing of the checks
    quiet = run_sync_all(analytics=True, instance=instance)
    steps = [e.step_key for e in quiet.all_events if e.event_type_value == "STEP_START"]
    assert quiet.success and steps[-2:] == ["analytics", "warehouse__read_copy"]
    assert not [e for e in quiet.all_events if e.event_type_value in ("STEP_SKIPPED", "ASSET_CHECK_EVALUATION_PLANNED")]
    said = [entry.user_message for entry in instance.all_logs(quiet.run_id)]
    assert [m for m in said if "dbt not started" in m], said  # a run that changed nothing indeed
    assert not [m for m in said if "did not yield" in m or "Skipping step" in m], said


def test_localized_quantities_land_as_numbers(emulator, warehouse):
    run_sync_all()
    store = emulator.tenant(MAIN.domain)
    localized = [
        (job["id"], idx, part["quantity"])
        for job in store.records("job")
        for idx, part in enumerate(job.get("parts") or [])
        if isinstance(part["quantity"], str) and "," in part["quantity"]
    ]
    assert localized, "the emulator should serve some localized quantities"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for job_id, idx, raw in localized[:10]:
            (value,) = con.execute(
                "SELECT p.quantity FROM synchroteam.jobs j JOIN synchroteam.jobs__parts p "
                "ON p._dlt_parent_id = j._dlt_id WHERE j.id = ? AND p._dlt_list_idx = ?",
                [job_id, idx],
            ).fetchone()
            assert float(value) == float(raw.replace(",", "."))


def test_second_run_fetches_only_what_changed_and_the_warehouse_follows(emulator, warehouse):
    run_sync_all()
    main, hec = emulator.tenant(MAIN.domain), emulator.tenant(HEC.domain)
    windows = {
        (tenant.name, entity.name): window_start(emulator.tenant(DOMAINS[tenant.name]).records(entity.resource), entity)
        for tenant in TENANTS.values()
        for entity in tenant_entities(tenant)
    }
    jobs_loaded = main.records("job")
    first_invoice, first_job = main.records("invoice")[0], main.records("job")[3]
    main.edit("invoice", first_invoice["id"])
    main.edit("job", first_job["id"], {"description": "Replace the boiler valve"})
    main.add("customer")
    main.add("job")
    hec.edit("creditnote", hec.records("creditnote")[-1]["id"])
    # An edit that lands late with a timestamp before the stored cursor, inside the look-back window.
    sites_cursor = max_modified(main.records("site"))
    back_dated = main.records("site")[5]
    main.edit(
        "site",
        back_dated["id"],
        {"contactPhone": "+33 1 23 45 67 89"},
        modified_at=sites_cursor - timedelta(minutes=10),
    )
    emulator.clear_requests()

    run_sync_all()

    for (tenant_name, entity_name), since in windows.items():
        entity = ENTITIES[entity_name]
        store = emulator.tenant(DOMAINS[tenant_name])
        previous = jobs_loaded if entity.name == "jobs" else None
        expected = expected_requests(entity, store.records(entity.resource), since, previous=previous)
        assert requests_by(emulator, DOMAINS[tenant_name], entity.resource) == expected, entity_name
    # the jobs listed again by the look-back are not read again: only the edited one and the new one
    assert emulator.request_count(tenant=MAIN.domain, resource="job", action="details") == 2
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (phone,) = con.execute(
            "SELECT contact_phone FROM synchroteam.sites WHERE id = ?", [str(back_dated["id"])]
        ).fetchone()
    assert phone == "+33 1 23 45 67 89"


def test_deleting_the_local_dlt_folder_between_runs_changes_nothing(emulator, warehouse):
    run_sync_all()
    jobs = emulator.tenant(MAIN.domain).records("job")
    since = window_start(jobs, ENTITIES["jobs"])
    shutil.rmtree(pipelines_dir(warehouse))
    emulator.clear_requests()

    run_sync_all()

    # The cursors (and what the look-back window holds) came back from DuckDB: still incremental, no details
    # read again for the jobs the look-back lists, not a full reload.
    expected = expected_requests(ENTITIES["jobs"], jobs, since, previous=jobs)
    assert expected[1] == 0
    assert requests_by(emulator, MAIN.domain, "job") == expected
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS)


def test_a_tenant_s_entities_are_read_at_once_after_the_first(emulator, warehouse):
    """An entity waiting on a slow answer does not hold up the tenant's others: with the customers' list held, the
    sites' is asked for (and the run completes once the customers' answer comes)."""
    release = threading.Event()
    emulator.faults.add(Fault(hold=release, tenant=MAIN.domain, resource="customer", action="list"))
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(run_sync_all)
        try:
            deadline = time.monotonic() + 60
            while emulator.request_count(tenant=MAIN.domain, resource="site") == 0:
                assert time.monotonic() < deadline and not run.done(), "the sites waited for the customers"
                time.sleep(0.05)
            assert emulator.request_count(tenant=MAIN.domain, resource="customer") == 0  # its answer still held
        finally:
            release.set()
        assert run.result(timeout=120).success
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS)


def test_what_a_load_runs_is_imported_while_the_other_entities_wait_on_the_api(emulator, warehouse, monkeypatch):
    """Once an entity has something to load, dlt (about 0.5 s) is imported while the others' answers are awaited,
    not after them: with the customers' list held, the import happens before its answer comes. It happens in a
    thread of its own: the step's thread only waits, where an interrupt (Terminate) reaches it."""
    release = threading.Event()
    emulator.faults.add(Fault(hold=release, tenant=MAIN.domain, resource="customer", action="list"))
    imported = threading.Event()
    importers: list[threading.Thread] = []
    steps: list[threading.Thread] = []
    real = sync_step._import_loading

    def recorded() -> None:
        importers.append(threading.current_thread())
        imported.set()
        real()

    def sync_all_here() -> Any:
        steps.append(threading.current_thread())  # the in-process executor runs the steps in this thread
        return run_sync_all()

    monkeypatch.setattr(sync_step, "_import_loading", recorded)
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(sync_all_here)
        try:
            assert imported.wait(60), "what the load runs was not imported while the customers' answer was held"
            assert len(importers) == 1 and importers[0] not in steps
            assert emulator.request_count(tenant=MAIN.domain, resource="customer") == 0  # its answer still held
        finally:
            release.set()
        assert run.result(timeout=120).success
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS)


def test_wrong_api_key_fails_once_without_retries_naming_the_tenant_and_writes_nothing(
    emulator, warehouse, monkeypatch
):
    wrong_key = "00000000-dead-beef-0000-000000000000"
    monkeypatch.setenv("SYNCHROTEAM_API_KEY", wrong_key)

    result = run_sync_all(raise_on_error=False)

    assert not result.success
    failures = step_failures(result)
    assert set(failures) == {"synchroteam"}
    for message in failures.values():
        assert "tenant 'main'" in message and "SYNCHROTEAM_API_KEY" in message and "401" in message
        assert wrong_key not in message
    unauthorised = [r for r in sync_requests(emulator) if r.status == 401]
    assert len(unauthorised) == 1  # not retried, and the tenant's other entities not asked: same key, same answer
    assert [r for r in sync_requests(emulator) if r.tenant != HEC.domain] == unauthorised
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert not any(table_exists(con, "synchroteam", e) for e in TENANTS["synchroteam"].entities)
        assert table_exists(con, "synchroteam_hec", "invoices")  # the other tenant is unaffected


def test_a_tenant_without_credentials_fails_naming_the_missing_variables(emulator, warehouse, monkeypatch):
    monkeypatch.delenv("SYNCHROTEAM_HEC_API_KEY")
    monkeypatch.delenv("SYNCHROTEAM_HEC_DOMAIN")

    result = run_sync_all(raise_on_error=False)

    failures = step_failures(result)
    assert set(failures) == {"synchroteam_hec"}
    for message in failures.values():
        assert "SYNCHROTEAM_HEC_DOMAIN" in message and "SYNCHROTEAM_HEC_API_KEY" in message
    assert emulator.request_count(tenant=HEC.domain) == 0


def test_429s_with_and_without_retry_after_still_end_in_a_complete_warehouse(emulator, warehouse):
    emulator.faults.add(Fault(status=429, retry_after=1, times=2, tenant=MAIN.domain, resource="invoice"))
    emulator.faults.add(
        Fault(status=429, retry_after=None, times=3, tenant=MAIN.domain, resource="job", action="details")
    )
    emulator.faults.add(Fault(status=429, retry_after=0, times=2, tenant=HEC.domain))

    result = run_sync_all()

    assert result.success
    assert sum(1 for r in sync_requests(emulator) if r.status == 429) == 7
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS)
    invoices = materializations(result, TENANTS["synchroteam"], ENTITIES["invoices"])[0]
    assert invoices.metadata["retries_429"].value == 2


def test_a_warehouse_file_named_like_a_schema_is_refused_before_any_request(emulator, warehouse, monkeypatch):
    monkeypatch.setenv("SYNC_DUCKDB_PATH", str(warehouse.with_name("synchroteam.duckdb")))

    result = run_sync_all(raise_on_error=False)

    assert not result.success
    assert all("SYNC_DUCKDB_PATH" in message for message in step_failures(result).values())
    assert emulator.requests == []
