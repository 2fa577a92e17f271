"""Faults of the world around a sync: readers, concurrent runs, quotas, broken answers, secrets."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance

from sync_pipelines.catalogue import ENTITIES, TENANTS
from sync_pipelines.warehouse import lock as warehouse_lock
from sync_pipelines.warehouse.settings import read_copy_path
from sync_pipelines_tests.compare import assert_warehouse_equals_emulator
from sync_pipelines_tests.conftest import DOMAINS, MAIN
from sync_pipelines_tests.helpers import (
    run_entity_job,
    run_sync_all,
    step_failures,
    stored_cursor,
    sync_requests,
)
from sync_pipelines_tests.processes import (
    analyst,
    holding_the_warehouse,
)
from synchroteam_emulator import Fault

MAIN_TENANT = TENANTS["synchroteam"]
INVOICES = ENTITIES["invoices"]


def count_invoices(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT count(*) FROM synchroteam.invoices").fetchone()[0]


# -- analysts reading while syncs run -------------------------------------------------------------------------------


def test_an_analyst_reading_the_read_copy_neither_blocks_a_sync_nor_is_interrupted(emulator, warehouse):
    run_entity_job(MAIN_TENANT, INVOICES)
    store = emulator.tenant(MAIN.domain)
    for _ in range(3):
        store.add("invoice")

    with analyst(read_copy_path(warehouse)) as reader:
        assert reader.first_count == MAIN.counts["invoice"]
        result = run_entity_job(MAIN_TENANT, INVOICES)  # starts while the analyst's connection is open
        assert result.success
        assert reader.count() == MAIN.counts["invoice"]  # still reading, its snapshot intact
        reader.close()

    assert count_invoices(read_copy_path(warehouse)) == MAIN.counts["invoice"] + 3  # new readers see the load
    assert count_invoices(warehouse) == MAIN.counts["invoice"] + 3


def test_an_analyst_holding_the_warehouse_itself_gets_a_clear_message_and_a_bounded_wait(emulator, warehouse):
    run_entity_job(MAIN_TENANT, INVOICES)
    emulator.clear_requests()

    with analyst(warehouse):
        result = run_entity_job(MAIN_TENANT, INVOICES, raise_on_error=False)

    assert not result.success
    (message,) = step_failures(result).values()
    assert "[warehouse_locked]" in message and str(read_copy_path(warehouse)) in message
    assert sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY") == 2
    assert emulator.requests == []  # refused before any API call
    assert run_entity_job(MAIN_TENANT, INVOICES).success  # once the analyst is gone


# -- concurrent runs -----------------------------------------------------------------------------------------------


def test_a_step_waits_while_another_process_holds_the_warehouse_and_says_who(emulator, warehouse, monkeypatch):
    monkeypatch.setattr(warehouse_lock, "NOTICE_EVERY_SECONDS", 0.5)
    instance = DagsterInstance.ephemeral()
    results = []
    with holding_the_warehouse(warehouse) as holder:
        sync = threading.Thread(target=lambda: results.append(run_entity_job(MAIN_TENANT, INVOICES, instance=instance)))
        sync.start()
        time.sleep(2)
        assert sync.is_alive() and emulator.requests == []  # not one request while the warehouse is held
        holder.stdin.close()
        sync.join(timeout=120)

    assert results and results[0].success
    messages = [record.user_message for record in instance.all_logs(results[0].run_id)]
    waits = [m for m in messages if "the test's holder" in m]
    assert waits[0].startswith("Waiting for the warehouse") and len(waits) >= 2  # then a notice every 0.5 s
    assert any(m.startswith("Warehouse free after") for m in messages)
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["invoices"])
    assert not warehouse_lock._holder_path(warehouse).exists()  # who held it: gone with the lock


# -- the API misbehaving -------------------------------------------------------------------------------------------


def test_a_quota_that_runs_out_mid_run_stops_cleanly_and_the_next_run_completes(emulator, warehouse, monkeypatch):
    monkeypatch.setenv("SYNCHROTEAM_QUOTA_FLOOR", "0")
    run_entity_job(MAIN_TENANT, ENTITIES["jobs"])
    before = stored_cursor(MAIN_TENANT, ENTITIES["jobs"])
    store = emulator.tenant(MAIN.domain)
    for job in store.records("job")[:40]:
        store.edit("job", job["id"])
    emulator.set_daily_quota(MAIN.domain, 12)  # the list page, then details run out after ~11 jobs

    result = run_entity_job(MAIN_TENANT, ENTITIES["jobs"], raise_on_error=False)

    assert "[quota_spent]" in next(iter(step_failures(result).values()))
    assert stored_cursor(MAIN_TENANT, ENTITIES["jobs"]) == before  # nothing half-loaded moved it
    emulator.set_daily_quota(MAIN.domain, 100_000)  # the next day
    assert run_entity_job(MAIN_TENANT, ENTITIES["jobs"]).success
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["jobs"])


@pytest.mark.parametrize(
    "faults",
    [
        [Fault(status=500, times=2), Fault(status=502, times=2), Fault(status=503, retry_after=1, times=1)],
        [Fault(status=429, retry_after=None, times=4)],
        [Fault(status=429, retry_after=1, times=3)],
        [Fault(delay=1.5, times=3)],
        [
            Fault(
                status=200,
                body='{"page": 1, "pageSize": 100, "data": [{"id": 1',
                times=2,
                content_type="application/json",
            )
        ],
    ],
    ids=["5xx-burst", "429-storm-without-retry-after", "429-with-retry-after", "slow-answers", "truncated-body"],
)
def test_bursts_of_broken_answers_end_in_an_exact_warehouse(emulator, warehouse, faults, short_backoff):
    for fault in faults:
        fault.tenant = MAIN.domain
        emulator.faults.add(fault)

    assert run_sync_all().success

    assert emulator.faults.pending() == []
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS)


def test_a_firewall_page_fails_the_run_and_the_next_run_completes(emulator, warehouse):
    emulator.faults.add(Fault.firewall(status=200, times=1, tenant=MAIN.domain, resource="invoice"))

    assert not run_entity_job(MAIN_TENANT, INVOICES, raise_on_error=False).success
    assert run_entity_job(MAIN_TENANT, INVOICES).success
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["invoices"])


def test_records_shifting_while_the_list_is_walked_are_neither_lost_nor_doubled(emulator, warehouse):
    store = emulator.tenant(MAIN.domain)
    # the first load walks every invoice; while page 2 is being answered (slowly), a record of page 1 is
    # deleted (every later record moves back one place: the first of page 2 slides onto page 1, already read)
    # and two records of page 1 are edited
    emulator.faults.add(Fault(delay=1.0, tenant=MAIN.domain, resource="invoice", action="list"))
    emulator.faults.add(Fault(delay=1.0, tenant=MAIN.domain, resource="invoice", action="list"))
    victims = [r["id"] for r in store.records("invoice")[:3]]
    slid_back = str(store.records("invoice")[100]["id"])

    def page_one_answered() -> bool:
        return any(r.resource == "invoice" and r.params.get("page") == "1" for r in emulator.requests)

    def mutate_during_walk():
        deadline = time.monotonic() + 60
        while not page_one_answered() and time.monotonic() < deadline:
            time.sleep(0.01)
        # page 1 is read; page 2 is in its one-second delay
        store.delete("invoice", victims[0])
        store.edit("invoice", victims[1])
        store.edit("invoice", victims[2])

    thread = threading.Thread(target=mutate_during_walk)
    thread.start()
    assert run_entity_job(MAIN_TENANT, INVOICES, {"refetch_recent_days": 0}).success
    thread.join()

    with duckdb.connect(str(warehouse), read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT id FROM synchroteam.invoices").fetchall()]
    assert len(ids) == len(set(ids))
    # recordsTotal fell while the list was walked, so it is walked again: the record that slid back is not lost
    assert slid_back in ids
    assert {str(r["id"]) for r in store.records("invoice")} <= set(ids)
    walks = [r for r in sync_requests(emulator) if r.resource == "invoice" and r.params.get("page") == "1"]
    assert len(walks) == 2  # the second walk found the record that slid back, and held still

    # records edited after their page was read come with the next run's look-back: exact in the end
    assert run_entity_job(MAIN_TENANT, INVOICES).success
    assert_warehouse_equals_emulator(
        emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["invoices"], extra_ids_allowed=True
    )  # the deleted record waits for a full run's sweep


# -- secrets -------------------------------------------------------------------------------------------------------


def test_the_emulator_listens_on_loopback_only(emulator):
    assert emulator.base_url.startswith("http://127.0.0.1:")
    assert emulator._server.server_address[0] == "127.0.0.1"  # the socket itself, not just the URL
