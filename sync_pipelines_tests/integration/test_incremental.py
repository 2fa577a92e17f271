"""The incremental cursor at the dlt level: boundaries, look-back and page sizes against the emulator."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb

from sync_pipelines.catalogue import ENTITIES, TENANTS
from sync_pipelines.synchroteam import reader
from sync_pipelines.synchroteam.idset import IdSet
from sync_pipelines.synchroteam.plan import SyncPlan
from sync_pipelines.warehouse.tables import STATE_VERSIONS_KEPT
from sync_pipelines_tests.conftest import MAIN
from sync_pipelines_tests.helpers import run_entity, run_entity_job, stored_cursor

PARIS = ZoneInfo("Europe/Paris")

CUSTOMERS = ENTITIES["customers"]
MAIN_TENANT = TENANTS["synchroteam"]


def contact_phone(path, customer_id) -> str:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            "SELECT contact_phone FROM synchroteam.customers WHERE id = ?", [str(customer_id)]
        ).fetchone()[0]


def test_a_second_edit_in_the_cursors_own_minute_is_not_lost_even_without_look_back(emulator, warehouse):
    store = emulator.tenant(MAIN.domain)
    store.set_clock(datetime(2026, 6, 1, 9, 30))
    customer_id = store.records("customer")[0]["id"]
    no_look_back = SyncPlan(overlap=timedelta(0))
    store.edit("customer", customer_id, {"contactPhone": "first"})
    run_entity(MAIN_TENANT, CUSTOMERS, no_look_back)
    assert contact_phone(warehouse, customer_id) == "first"

    store.edit("customer", customer_id, {"contactPhone": "second"})  # same minute: same dateModified
    emulator.clear_requests()
    run_entity(MAIN_TENANT, CUSTOMERS, no_look_back)

    assert contact_phone(warehouse, customer_id) == "second"
    listed = [r for r in emulator.requests if r.resource == "customer"]
    assert [r.params.get("changedSince") for r in listed] == ["2026-06-01 09:30:00"]


def test_look_back_asks_for_changes_from_that_far_behind_the_cursor(emulator, warehouse):
    store = emulator.tenant(MAIN.domain)
    store.set_clock(datetime(2026, 6, 1, 9, 30))
    store.edit("customer", store.records("customer")[0]["id"])
    run_entity(MAIN_TENANT, CUSTOMERS, SyncPlan(overlap=timedelta(minutes=45)))
    emulator.clear_requests()

    run_entity(MAIN_TENANT, CUSTOMERS, SyncPlan(overlap=timedelta(minutes=45)))

    assert [r.params.get("changedSince") for r in emulator.requests] == ["2026-06-01 08:45:00"]


def test_a_page_size_above_100_still_reads_every_record(emulator, warehouse):
    run_entity(MAIN_TENANT, ENTITIES["jobs"], SyncPlan(page_size=250))

    with duckdb.connect(str(warehouse), read_only=True) as con:
        (count,) = con.execute("SELECT count(DISTINCT id) FROM synchroteam.jobs").fetchone()
    assert count == MAIN.counts["job"]
    assert emulator.request_count(tenant=MAIN.domain, resource="job", action="list") == 2  # 100 + 30


def job_details_calls(emulator) -> list[str]:
    return [r.params["id"] for r in emulator.requests if r.resource == "job" and r.action == "details"]


def test_jobs_the_look_back_lists_again_are_read_again_only_if_they_may_have_changed(emulator, warehouse):
    store = emulator.tenant(MAIN.domain)
    jobs = ENTITIES["jobs"]
    store.set_clock(datetime(2026, 6, 1, 9, 30))
    a, b = (str(r["id"]) for r in store.records("job")[:2])
    store.edit("job", a)
    store.edit("job", b)
    run_entity(MAIN_TENANT, jobs, SyncPlan())
    store.advance_clock(minutes=5)

    # listed in the very minute they were stamped: another edit in that minute would keep their dateModified,
    # so the look-back reads them again; listed later, they are not read again
    emulator.clear_requests()
    run_entity(MAIN_TENANT, jobs, SyncPlan())
    assert sorted(job_details_calls(emulator)) == sorted([a, b])
    emulator.clear_requests()
    run_entity(MAIN_TENANT, jobs, SyncPlan())
    assert job_details_calls(emulator) == []
    assert [r.params.get("changedSince") for r in emulator.requests] == ["2026-06-01 09:00:00"]  # still listed

    # an edit that does not bump dateModified but shows in the list row is read
    store.edit("job", a, {"description": "Rescheduled by the dispatcher"}, bump=False)
    emulator.clear_requests()
    run_entity(MAIN_TENANT, jobs, SyncPlan())
    assert job_details_calls(emulator) == [a]

    # two edits of b in one minute: the second changes only its parts, its list row stays the same
    store.edit("job", b)
    run_entity(MAIN_TENANT, jobs, SyncPlan())
    store.edit("job", b, {"parts": [{"reference": "VALVE-22", "quantity": 3}]})
    emulator.clear_requests()
    run_entity(MAIN_TENANT, jobs, SyncPlan())
    assert job_details_calls(emulator) == [b]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        parts = con.execute(
            "SELECT p.reference FROM synchroteam.jobs j JOIN synchroteam.jobs__parts p "
            "ON p._dlt_parent_id = j._dlt_id WHERE j.id = ?",
            [b],
        ).fetchall()
        (description,) = con.execute("SELECT description FROM synchroteam.jobs WHERE id = ?", [a]).fetchone()
    assert parts == [("VALVE-22",)]
    assert description == "Rescheduled by the dispatcher"


def newest_invoice_load(path) -> tuple[str, list[str]]:
    """The newest load that wrote invoice rows, and the ids it wrote."""
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "SELECT _dlt_load_id, id FROM synchroteam.invoices "
            "WHERE _dlt_load_id = (SELECT max(_dlt_load_id) FROM synchroteam.invoices) ORDER BY id"
        ).fetchall()
    return rows[0][0], [row[1] for row in rows]


def test_records_the_look_back_lists_again_unchanged_are_not_loaded_again(emulator, warehouse):
    store = emulator.tenant(MAIN.domain)
    invoices = ENTITIES["invoices"]  # list rows carry their lines: no details, only the load to spare
    store.set_clock(datetime(2026, 6, 1, 9, 30))
    a = str(store.records("invoice")[0]["id"])
    store.edit("invoice", a)
    run_entity(MAIN_TENANT, invoices, SyncPlan())  # a listed in its own minute: not remembered
    store.advance_clock(minutes=5)
    run_entity(MAIN_TENANT, invoices, SyncPlan())
    first, ids = newest_invoice_load(warehouse)
    assert ids == [a]  # listed again by the look-back, loaded again once; now remembered

    run_entity(MAIN_TENANT, invoices, SyncPlan())
    assert newest_invoice_load(warehouse) == (first, [a])  # listed again, unchanged: nothing loaded

    status = "cancelled" if store.records("invoice")[0]["status"] != "cancelled" else "paid"
    store.edit("invoice", a, {"status": status}, bump=False)  # shows in the list row only
    run_entity(MAIN_TENANT, invoices, SyncPlan())
    load, ids = newest_invoice_load(warehouse)
    assert load != first and ids == [a]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT status FROM synchroteam.invoices WHERE id = ?", [a]).fetchone() == (status,)


def test_a_first_load_keeps_the_memo_small_while_it_lists_everything(emulator, warehouse, monkeypatch):
    monkeypatch.setattr(reader, "MEMO_SLACK", 5)
    sizes: list[int] = []
    remember = reader.EntityReader._remember

    def measured(self, raw, modified, fingerprint):
        remember(self, raw, modified, fingerprint)
        sizes.append(len(self.memo))

    monkeypatch.setattr(reader.EntityReader, "_remember", measured)
    run_entity(MAIN_TENANT, ENTITIES["invoices"], SyncPlan())
    assert len(sizes) == MAIN.counts["invoice"]
    assert max(sizes) < MAIN.counts["invoice"] // 2  # pruned as it grew, not only at the end


def test_rows_only_a_re_fetch_walk_lists_stay_out_of_the_details_memo(emulator, warehouse, monkeypatch):
    # The re-fetch memo remembers every draft/new quotation; the details memo only the look-back window's records:
    # an older draft put there would only be pruned again (BENCHMARKS.md, the memo's cost on a first load).
    added_behind_window: list[str] = []
    walked: set[str] = set()
    complete = reader.EntityReader._complete

    def checked(self, page, force_details=False):
        bound, before = self._memo_bound(), set(self.memo)
        good = complete(self, page, force_details)
        for record_id, (modified, _) in self.memo.items():
            if record_id not in before and bound is not None and datetime.fromisoformat(modified) < bound:
                added_behind_window.append(record_id)
        walked.update(self.refetch_memo)
        return good

    monkeypatch.setattr(reader.EntityReader, "_complete", checked)
    statuses = ("draft", "new")
    run_entity(MAIN_TENANT, ENTITIES["quotations"], SyncPlan(page_size=10, refetch_statuses=statuses))
    store = emulator.tenant(MAIN.domain)
    drafts = {str(q["id"]) for q in store.records("quotation") if q["status"] in statuses}
    assert walked == drafts and len(drafts) > 10  # the walks' rows were remembered, over several pages
    assert added_behind_window == []


def test_a_first_load_holds_each_listed_id_once(emulator, warehouse, monkeypatch):
    # The walk's id set (for the deletion sweep and the list's repeats) is the only one a first load fills: a
    # second copy against repeats in the load package would double the ids a million-record load holds.
    added: list[str] = []
    add = IdSet.add

    def counted(self, key):
        added.append(key)
        add(self, key)

    monkeypatch.setattr(IdSet, "add", counted)
    statuses = ("draft", "new")
    run_entity(MAIN_TENANT, ENTITIES["quotations"], SyncPlan(mode="full", refetch_statuses=statuses))
    run_entity(MAIN_TENANT, CUSTOMERS, SyncPlan())

    listed = [
        str(r["id"]) for resource in ("quotation", "customer") for r in emulator.tenant(MAIN.domain).records(resource)
    ]
    assert sorted(added) == sorted(listed)


def test_list_row_fingerprints_match_the_memos_stored_before_orjson(emulator):
    # Memos in warehouses loaded before hold digests of `json.dumps` sorted and compact: the same rows must give the
    # same digests, or an upgrade would load every remembered record again once.
    def stored_digest(row) -> str:
        text = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
        return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()

    store = emulator.tenant(MAIN.domain)
    rows = [r for resource in ("quotation", "invoice", "job", "customer") for r in store.records(resource)]
    rows.append({"id": 2**70, "name": "Zoë", "amount": 2.5, "lines": [{"b": None, "a": True}]})  # beyond orjson
    assert [reader._fingerprint(r) for r in rows] == [stored_digest(r) for r in rows]


def test_old_versions_of_the_dlt_state_are_pruned_and_the_newest_still_drives_the_next_run(emulator, warehouse):
    store = emulator.tenant(MAIN.domain)
    store.set_clock(datetime(2026, 6, 1, 9, 30))
    customer_id = store.records("customer")[0]["id"]
    for run in range(STATE_VERSIONS_KEPT + 3):
        store.edit("customer", customer_id, {"contactPhone": f"call {run}"})  # moves the cursor: a new state
        store.advance_clock(minutes=2)
        assert run_entity_job(MAIN_TENANT, CUSTOMERS).success

    with duckdb.connect(str(warehouse), read_only=True) as con:
        (versions,) = con.execute(
            "SELECT count(*) FROM synchroteam._dlt_pipeline_state WHERE pipeline_name = 'synchroteam'"
        ).fetchone()
    assert versions == STATE_VERSIONS_KEPT
    assert stored_cursor(MAIN_TENANT, CUSTOMERS).at == datetime(2026, 6, 1, 9, 54, tzinfo=PARIS)
    emulator.clear_requests()
    assert run_entity_job(MAIN_TENANT, CUSTOMERS).success
    assert [r.params.get("changedSince") for r in emulator.requests] == ["2026-06-01 09:24:00"]
