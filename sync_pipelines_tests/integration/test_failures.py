"""Failures users can see, act on and retry: run-level categories, quarantined records, checks, deletions."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from sync_pipelines.catalogue import ENTITIES, TENANTS
from sync_pipelines.definitions import defs
from sync_pipelines.warehouse.settings import DuckDBWarehouse, rejected_folder
from sync_pipelines_tests.conftest import MAIN
from sync_pipelines_tests.helpers import (
    materializations,
    run_entity_job,
    run_row_count_checks,
    run_sync_all,
    step_failures,
)
from synchroteam_emulator import Fault

MAIN_TENANT = TENANTS["synchroteam"]


def quarantine_rows(path, entity: str | None = None) -> dict[str, dict]:
    with duckdb.connect(str(path), read_only=True) as con:
        cursor = con.execute(
            "SELECT * FROM synchroteam._rejected_records" + (" WHERE entity = ?" if entity else ""),
            [entity] if entity else [],
        )
        names = [d[0] for d in cursor.description]
        return {row["record_id"]: row for row in (dict(zip(names, r)) for r in cursor.fetchall())}


def ids_in(path, table: str) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {r[0] for r in con.execute(f"SELECT id FROM synchroteam.{table}").fetchall()}


def check(result, asset: str, name: str):
    (evaluation,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == asset and e.check_name == name
    ]
    return evaluation


def failure_metadata(result) -> dict:
    (event,) = result.get_step_failure_events()
    data = event.step_failure_data.user_failure_data
    return {key: value.value for key, value in data.metadata.items()}


@pytest.fixture
def bad_records(emulator):
    """One bad record of each kind; returns their ids."""
    store = emulator.tenant(MAIN.domain)
    invoice = store.records("invoice")[4]["id"]
    store.edit("invoice", invoice, {"totalInclTax": "N/A"})
    customer = store.records("customer")[9]["id"]
    store.edit("customer", customer, {"dateModified": "last tuesday"})
    sites = store.records("site")
    page = sites + [{**sites[0], "id": None, "name": "Ghost site"}]
    emulator.faults.add(
        Fault(
            status=200,
            tenant=MAIN.domain,
            resource="site",
            action="list",
            body=json.dumps(
                {"page": 1, "pageSize": 100, "records": len(page), "recordsTotal": len(page), "data": page}
            ),
            content_type="application/json; charset=utf-8",
        )
    )
    # details are fetched in parallel: whichever job's details come first answer 404
    emulator.faults.add(Fault(status=404, tenant=MAIN.domain, resource="job", action="details"))
    return {"invoices": str(invoice), "customers": str(customer)}


def test_each_kind_of_bad_record_is_quarantined_with_its_reason_and_the_rest_loads(emulator, warehouse, bad_records):
    result = run_sync_all()

    assert result.success
    rows = quarantine_rows(warehouse)
    reasons = {(row["entity"], row["reason"]) for row in rows.values()}
    assert reasons == {
        ("invoices", "type_mismatch"),
        ("customers", "bad_date_modified"),
        ("sites", "missing_id"),
        ("jobs", "details_not_found"),
    }
    invoice_row = rows[bad_records["invoices"]]
    assert "totalInclTax" in invoice_row["message"] and json.loads(invoice_row["payload"])["totalInclTax"] == "N/A"
    assert invoice_row["run_id"] == result.run_id and invoice_row["attempts"] == 1 and invoice_row["status"] == "open"
    assert invoice_row["first_seen"] == invoice_row["last_seen"]
    ghost = next(r for r in rows.values() if r["reason"] == "missing_id")
    assert ghost["record_id"].startswith("no-id:") and ghost["status"] == "unresolved"
    (vanished_job,) = [r["record_id"] for r in rows.values() if r["reason"] == "details_not_found"]
    for entity, bad_id in {**bad_records, "jobs": vanished_job}.items():
        landed = ids_in(warehouse, entity)
        assert bad_id not in landed
        assert len(landed) == MAIN.counts[ENTITIES[entity].resource] - 1
    assert len(ids_in(warehouse, "sites")) == MAIN.counts["site"]  # the ghost did not take a real site's place


def test_the_rejected_records_check_warns_with_counts_by_reason(emulator, warehouse, bad_records):
    result = run_sync_all()

    rejected = check(result, "synchroteam/invoices", "rejected_records")
    assert not rejected.passed and rejected.severity.value == "WARN"
    assert rejected.metadata["reason_type_mismatch"].value == 1
    assert check(result, "synchroteam/quotations", "rejected_records").passed
    assert check(result, "synchroteam/invoices", "no_duplicate_ids").passed


def test_a_record_that_recovers_leaves_the_quarantine_and_one_that_does_not_ends_unresolved(
    emulator, warehouse, bad_records
):
    run_sync_all()
    store = emulator.tenant(MAIN.domain)
    store.edit("invoice", bad_records["invoices"], {"totalInclTax": 120.0}, bump=False)  # fixed in Synchroteam

    for _ in range(2):
        run_entity_job(MAIN_TENANT, ENTITIES["invoices"])
        run_entity_job(MAIN_TENANT, ENTITIES["customers"])

    invoice = quarantine_rows(warehouse, "invoices")[bad_records["invoices"]]
    assert invoice["status"] == "resolved" and invoice["resolved_at"] is not None
    assert bad_records["invoices"] in ids_in(warehouse, "invoices")
    customer = quarantine_rows(warehouse, "customers")[bad_records["customers"]]
    assert (customer["status"], customer["attempts"], customer["reason"]) == ("unresolved", 3, "bad_date_modified")
    assert customer["first_seen"] < customer["last_seen"]

    # unresolved rows are left alone by scheduled runs, and re-read by the retry job once fixed
    store.edit("customer", bad_records["customers"], {"dateModified": "2025-02-02 10:00"}, bump=False)
    run_entity_job(MAIN_TENANT, ENTITIES["customers"])
    assert quarantine_rows(warehouse, "customers")[bad_records["customers"]]["status"] == "unresolved"
    defs.resolve_job_def("retry_rejected_records").execute_in_process()
    assert quarantine_rows(warehouse, "customers")[bad_records["customers"]]["status"] == "resolved"
    assert bad_records["customers"] in ids_in(warehouse, "customers")


def test_a_quarantined_record_fixed_and_listed_as_changed_loads_once_with_its_lines_once(
    emulator, warehouse, bad_records
):
    # the run re-reads it by id (quarantine) and lists it again (changed since the cursor): one row per id in the
    # load package is what lets dlt's merge skip de-duplicating (`deduplicated`), so the reader must not repeat it
    run_entity_job(MAIN_TENANT, ENTITIES["invoices"])
    store = emulator.tenant(MAIN.domain)
    store.edit("invoice", bad_records["invoices"], {"totalInclTax": 120.0})  # fixed, and dateModified moves

    result = run_entity_job(MAIN_TENANT, ENTITIES["invoices"])

    assert check(result, "synchroteam/invoices", "no_duplicate_ids").passed
    invoice = bad_records["invoices"]
    (record,) = [r for r in store.records("invoice") if str(r["id"]) == invoice]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (rows,) = con.execute("SELECT count(*) FROM synchroteam.invoices WHERE id = ?", [invoice]).fetchone()
        (lines,) = con.execute(
            "SELECT count(*) FROM synchroteam.invoices__lines l JOIN synchroteam.invoices i ON l._dlt_parent_id = "
            "i._dlt_id WHERE i.id = ?",
            [invoice],
        ).fetchone()
    assert (rows, lines) == (1, len(record.get("lines") or []))
    assert quarantine_rows(warehouse, "invoices")[invoice]["status"] == "resolved"


def test_a_quarantined_record_fixed_and_re_read_by_a_full_run_loads_once(emulator, warehouse, bad_records):
    # A full run's main walk keeps no ids of its own against repeats (the list yields each once): it must still
    # drop the record the quarantine retry loaded just before it.
    run_entity_job(MAIN_TENANT, ENTITIES["invoices"])
    store = emulator.tenant(MAIN.domain)
    store.edit("invoice", bad_records["invoices"], {"totalInclTax": 120.0}, bump=False)

    result = run_entity_job(MAIN_TENANT, ENTITIES["invoices"], {"mode": "full"})

    assert check(result, "synchroteam/invoices", "no_duplicate_ids").passed
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (rows,) = con.execute(
            "SELECT count(*) FROM synchroteam.invoices WHERE id = ?", [bad_records["invoices"]]
        ).fetchone()
    assert rows == 1
    assert quarantine_rows(warehouse, "invoices")[bad_records["invoices"]]["status"] == "resolved"


def test_the_export_writes_one_csv_per_entity_and_reason(emulator, warehouse, bad_records):
    run_sync_all()

    result = defs.resolve_job_def("export_rejected_records").execute_in_process()

    folder = rejected_folder(DuckDBWarehouse(warehouse)) / "synchroteam"
    assert sorted(p.name for p in folder.glob("*.csv")) == [
        "customers__bad_date_modified.csv",
        "invoices__type_mismatch.csv",
        "jobs__details_not_found.csv",
        "sites__missing_id.csv",
    ]
    with (folder / "invoices__type_mismatch.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["record_id"] == bad_records["invoices"] and "N/A" in row["payload"] and row["action"]
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    files = output.step_output_data.metadata["files"].value
    assert sorted(files) == sorted(str(p) for p in folder.glob("*.csv"))


def test_a_full_run_marks_deleted_records_and_their_children_while_neighbours_stay_live(emulator, warehouse):
    run_sync_all()
    store = emulator.tenant(MAIN.domain)
    gone, neighbour = store.records("invoice")[10], store.records("invoice")[11]
    store.delete("invoice", gone["id"])

    run_entity_job(MAIN_TENANT, ENTITIES["invoices"])  # incremental: cannot see a deletion
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM synchroteam.invoices_live WHERE id = ?", [str(gone["id"])]).fetchone()[
            0
        ]

    result = run_entity_job(MAIN_TENANT, ENTITIES["invoices"], {"mode": "full"})

    assert materializations(result, TENANTS["synchroteam"], ENTITIES["invoices"])[0].metadata["deleted"].value == 1
    with duckdb.connect(str(warehouse), read_only=True) as con:
        deleted_at = dict(con.execute("SELECT id, _deleted_at FROM synchroteam.invoices").fetchall())
        live = {r[0] for r in con.execute("SELECT id FROM synchroteam.invoices_live").fetchall()}
        live_lines = con.execute(
            "SELECT count(*) FROM synchroteam.invoices__lines_live l JOIN synchroteam.invoices i "
            "ON l._dlt_root_id = i._dlt_id WHERE i.id = ?",
            [str(gone["id"])],
        ).fetchone()[0]
        kept_lines = con.execute(
            "SELECT count(*) FROM synchroteam.invoices__lines l JOIN synchroteam.invoices i "
            "ON l._dlt_root_id = i._dlt_id WHERE i.id = ?",
            [str(gone["id"])],
        ).fetchone()[0]
    assert deleted_at[str(gone["id"])] is not None  # kept, with its deletion time
    assert deleted_at[str(neighbour["id"])] is None
    assert str(gone["id"]) not in live and str(neighbour["id"]) in live
    assert len(live) == MAIN.counts["invoice"] - 1
    assert live_lines == 0 and kept_lines == len(gone["lines"])
    assert check(run_row_count_checks(), "synchroteam/invoices", "row_count_matches_api").passed


def test_a_full_run_that_would_mark_most_rows_deleted_marks_none_and_says_why(emulator, warehouse):
    run_entity_job(MAIN_TENANT, ENTITIES["credit_notes"])
    store = emulator.tenant(MAIN.domain)
    for note in store.records("creditnote")[:15]:  # 15 of 25: an empty answer is likelier than this
        store.delete("creditnote", note["id"])

    result = run_entity_job(MAIN_TENANT, ENTITIES["credit_notes"], {"mode": "full"}, raise_on_error=False)

    (message,) = step_failures(result).values()
    assert "[suspicious_deletions]" in message and "15 of 25" in message and "max_deleted_share" in message
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM synchroteam.credit_notes_live").fetchone()[0] == 25
    assert run_entity_job(MAIN_TENANT, ENTITIES["credit_notes"], {"mode": "full", "max_deleted_share": 0.7}).success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM synchroteam.credit_notes_live").fetchone()[0] == 10


def test_row_count_check_warns_until_a_full_run_sweeps_a_deletion(emulator, warehouse):
    run_entity_job(MAIN_TENANT, ENTITIES["sites"])
    store = emulator.tenant(MAIN.domain)
    store.delete("site", store.records("site")[0]["id"])

    run_entity_job(MAIN_TENANT, ENTITIES["sites"])
    emulator.clear_requests()

    evaluation = check(run_row_count_checks(), "synchroteam/sites", "row_count_matches_api")
    assert not evaluation.passed and evaluation.metadata["difference"].value == 1
    # one request of page size 1 per entity, nothing else
    assert len(emulator.requests) == sum(len(t.entities) for t in TENANTS.values())
    assert {r.params.get("pageSize") for r in emulator.requests} == {"1"}


def test_duplicate_ids_fail_the_error_check(emulator, warehouse):
    run_entity_job(MAIN_TENANT, ENTITIES["quotations"])
    with duckdb.connect(str(warehouse)) as con:
        # a record no walk re-reads (old, not draft or new), so no merge rewrites it
        con.execute(
            "INSERT INTO synchroteam.quotations SELECT * FROM synchroteam.quotations "
            "WHERE status IN ('sent', 'accepted', 'denied') ORDER BY date_modified LIMIT 1"
        )

    result = run_entity_job(MAIN_TENANT, ENTITIES["quotations"], raise_on_error=False)

    evaluation = check(result, "synchroteam/quotations", "no_duplicate_ids")
    assert not evaluation.passed and evaluation.severity.value == "ERROR"
    assert evaluation.metadata["duplicate_ids"].value == 1


def test_resolved_quarantine_rows_are_pruned_after_180_days(emulator, warehouse, bad_records):
    run_sync_all()
    now = datetime.now(UTC)
    with duckdb.connect(str(warehouse)) as con:
        for record_id, days in (("old", 200), ("recent", 100)):
            con.execute(
                "INSERT INTO synchroteam._rejected_records (id, entity, record_id, reason, message, status, "
                "resolved_at, attempts, _dlt_load_id, _dlt_id) VALUES (?, 'invoices', ?, 'type_mismatch', 'm', "
                "'resolved', ?, 1, 'x', ?)",
                [f"invoices:{record_id}", record_id, now - timedelta(days=days), record_id],
            )

    run_entity_job(MAIN_TENANT, ENTITIES["invoices"])

    rows = quarantine_rows(warehouse, "invoices")
    assert "old" not in rows and "recent" in rows


# -- run-level errors: category and action in the message and the failure metadata ---------------------------------


@pytest.mark.parametrize("floor, quota, requests, left", [("0", 1, 2, 0), ("100", 100, 1, 99)])
def test_a_spent_daily_quota_fails_once_saying_how_much_is_left_and_when_it_resets(
    emulator, warehouse, monkeypatch, floor, quota, requests, left
):
    monkeypatch.setenv("SYNCHROTEAM_QUOTA_FLOOR", floor)  # 0: until the API says 429; 100: stop under 100 left
    emulator.set_daily_quota(MAIN.domain, quota)

    result = run_entity_job(MAIN_TENANT, ENTITIES["invoices"], raise_on_error=False)

    (message,) = step_failures(result).values()
    assert "[quota_spent]" in message and f"X-Quota-Remaining={left}" in message
    assert "reset" in message and "midnight UTC" in message
    assert failure_metadata(result)["category"] == "quota_spent"
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert emulator.request_count(tenant=MAIN.domain) == requests


def test_a_firewall_page_fails_once_as_not_json(emulator, warehouse):
    emulator.faults.add(Fault.firewall(status=200, times=100, tenant=MAIN.domain))

    result = run_entity_job(MAIN_TENANT, ENTITIES["sites"], raise_on_error=False)

    (message,) = step_failures(result).values()
    assert "[not_json]" in message and "text/html" in message and "firewall" in message
    metadata = failure_metadata(result)
    assert metadata["category"] == "not_json" and metadata["retryable"] is False
    assert emulator.request_count(tenant=MAIN.domain) == 1


def test_server_errors_are_retried_then_reported_as_api_errors(emulator, warehouse):
    emulator.faults.add(Fault(status=503, retry_after=0, times=1000, tenant=MAIN.domain))

    result = run_entity_job(MAIN_TENANT, ENTITIES["sites"], raise_on_error=False)

    (message,) = step_failures(result).values()
    assert "[api_error]" in message and "503" in message
    assert failure_metadata(result)["category"] == "api_error"
    assert emulator.request_count(tenant=MAIN.domain) == 3 * 6  # two Dagster retries of six attempts each


def rejected_columns(path) -> list[tuple[str, str, str]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'synchroteam' AND table_name = '_rejected_records' ORDER BY column_name"
        ).fetchall()


def test_the_quarantine_table_exists_empty_from_the_first_load_and_takes_rejects_later(
    emulator, warehouse, tmp_path, monkeypatch
):
    invoices = ENTITIES["invoices"]
    assert run_entity_job(MAIN_TENANT, invoices).success
    assert quarantine_rows(warehouse) == {}  # the analysts' query works on a warehouse that rejected nothing

    store = emulator.tenant(MAIN.domain)
    bad = str(store.records("invoice")[4]["id"])
    store.edit("invoice", bad, {"totalInclTax": "N/A"})
    assert run_entity_job(MAIN_TENANT, invoices).success
    assert {r["reason"] for r in quarantine_rows(warehouse).values()} == {"type_mismatch"}

    # the same table as dlt makes when the first load itself rejects a record
    monkeypatch.setenv("SYNC_DUCKDB_PATH", str(tmp_path / "fresh" / "warehouse.duckdb"))
    assert run_entity_job(MAIN_TENANT, invoices).success
    assert rejected_columns(tmp_path / "fresh" / "warehouse.duckdb") == rejected_columns(warehouse)
