"""Run config: each knob's effect against the emulator, and each invalid value's error before any request."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pytest
from dagster import DagsterInstance, DagsterInvalidConfigError

from sync_pipelines.catalogue import ENTITIES, TENANTS
from sync_pipelines.defs.run_config import Mode
from sync_pipelines.synchroteam.plan import MODES
from sync_pipelines_tests.conftest import MAIN
from sync_pipelines_tests.helpers import (
    local_time,
    materializations,
    max_modified,
    pages,
    requests_by,
    run_entity_job,
    step_failures,
    stored_cursor,
    stored_state,
    sync_requests,
)

MAIN_TENANT = TENANTS["synchroteam"]
PARIS = ZoneInfo("Europe/Paris")


def value_of(path, table: str, record_id, column: str):
    with duckdb.connect(str(path), read_only=True) as con:
        row = con.execute(f"SELECT {column} FROM synchroteam.{table} WHERE id = ?", [str(record_id)]).fetchone()
    return row[0] if row else None


# -- invalid values fail before any API call, naming the field ---------------------------------------------------


def test_mode_is_a_choice_the_launchpad_offers_and_an_unknown_one_is_refused_before_the_run(emulator, warehouse):
    assert tuple(mode.value for mode in Mode) == MODES  # the launchpad's choices are the plan's modes
    with pytest.raises(DagsterInvalidConfigError, match="sometimes") as err:
        run_entity_job(MAIN_TENANT, ENTITIES["invoices"], {"mode": "sometimes"})
    assert "config:invoices:mode not in enum type Mode" in str(err.value)
    assert emulator.requests == []


def test_an_invalid_value_fails_the_run_before_any_api_request(emulator, warehouse):
    result = run_entity_job(MAIN_TENANT, ENTITIES["quotations"], {"page_size": 101}, raise_on_error=False)

    assert not result.success
    (message,) = step_failures(result).values()
    assert "page_size=101" in message and "between 1 and 100" in message
    assert emulator.requests == []


# -- each knob's effect --------------------------------------------------------------------------------------------


def test_page_size_sets_the_pages_walked(emulator, warehouse):
    run_entity_job(MAIN_TENANT, ENTITIES["invoices"], {"page_size": 10, "refetch_recent_days": 0})

    assert requests_by(emulator, MAIN.domain, "invoice") == (pages(MAIN.counts["invoice"], 10), 0)
    assert value_of(warehouse, "invoices", emulator.tenant(MAIN.domain).records("invoice")[-1]["id"], "id")


def test_revisit_days_re_reads_changes_that_far_behind_the_cursor(emulator, warehouse):
    sites = ENTITIES["sites"]
    store = emulator.tenant(MAIN.domain)
    run_entity_job(MAIN_TENANT, sites)
    site_id = store.records("site")[7]["id"]
    cursor = max_modified(store.records("site"))
    store.edit("site", site_id, {"contactPhone": "late"}, modified_at=cursor - timedelta(days=2))

    run_entity_job(MAIN_TENANT, sites)  # revisit_days 0: only the 30-minute look-back
    assert value_of(warehouse, "sites", site_id, "contact_phone") != "late"

    emulator.clear_requests()
    run_entity_job(MAIN_TENANT, sites, {"revisit_days": 3})
    assert value_of(warehouse, "sites", site_id, "contact_phone") == "late"
    (request,) = [r for r in sync_requests(emulator) if r.resource == "site"]
    assert request.params["changedSince"] == (cursor - timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")


def test_refetch_recent_days_catches_edits_that_do_not_move_date_modified(emulator, warehouse):
    invoices = ENTITIES["invoices"]
    store = emulator.tenant(MAIN.domain)
    run_entity_job(MAIN_TENANT, invoices)
    store.set_clock(datetime.now(PARIS).replace(tzinfo=None, second=0, microsecond=0) - timedelta(hours=3))
    new_invoice = store.add("invoice")  # created three hours ago, long out of the look-back window
    store.advance_clock(hours=3)
    store.edit("invoice", store.records("invoice")[0]["id"])  # moves the cursor to now
    run_entity_job(MAIN_TENANT, invoices)
    store.edit("invoice", new_invoice["id"], {"status": "paid"}, bump=False)  # a background payment

    run_entity_job(MAIN_TENANT, invoices, {"refetch_recent_days": 0})
    assert value_of(warehouse, "invoices", new_invoice["id"], "status") == "new"

    emulator.clear_requests()
    result = run_entity_job(MAIN_TENANT, invoices)  # default: the last 7 days
    assert value_of(warehouse, "invoices", new_invoice["id"], "status") == "paid"
    refetch = [r for r in sync_requests(emulator) if "dateFrom" in r.params]
    # the tenant's today (Paris), not the machine's: they differ for an hour or two around midnight
    assert [r.params["dateFrom"] for r in refetch] == [(datetime.now(PARIS).date() - timedelta(days=7)).isoformat()]
    assert materializations(result, TENANTS["synchroteam"], ENTITIES["invoices"])[0].metadata["refetched"].value >= 1


def test_refetch_statuses_re_reads_draft_and_new_quotations(emulator, warehouse):
    quotations = ENTITIES["quotations"]
    store = emulator.tenant(MAIN.domain)
    run_entity_job(MAIN_TENANT, quotations)
    draft = next(q for q in store.records("quotation") if q["status"] == "draft")
    store.edit("quotation", draft["id"], {"validUntil": "2030-01-31"}, bump=False)

    run_entity_job(MAIN_TENANT, quotations, {"refetch_statuses": []})
    assert value_of(warehouse, "quotations", draft["id"], "valid_until") != date(2030, 1, 31)

    emulator.clear_requests()
    run_entity_job(MAIN_TENANT, quotations)
    assert value_of(warehouse, "quotations", draft["id"], "valid_until") == date(2030, 1, 31)
    assert sorted(r.params["status"] for r in sync_requests(emulator) if "status" in r.params) == ["draft", "new"]


def test_records_the_re_fetch_walks_list_as_they_were_loaded_are_not_loaded_again(emulator, warehouse):
    quotations = ENTITIES["quotations"]
    store = emulator.tenant(MAIN.domain)
    emulator.clear_requests()
    first = materializations(run_entity_job(MAIN_TENANT, quotations), TENANTS["synchroteam"], ENTITIES["quotations"])[0]
    # a first sync lists every record: walking the drafts again would list them twice for nothing
    assert not [r for r in sync_requests(emulator) if "status" in r.params]
    assert first.metadata["loaded"].value == len(store.records("quotation"))

    def re_read() -> set[str]:
        return {str(q["id"]) for q in store.records("quotation") if q["status"] in ("draft", "new")}

    quiet = materializations(run_entity_job(MAIN_TENANT, quotations), TENANTS["synchroteam"], ENTITIES["quotations"])[0]
    assert (quiet.metadata["loaded"].value, quiet.metadata["refetched"].value) == (0, 0)
    assert quiet.metadata["unchanged"].value >= len(re_read()) > 0  # and what the look-back listed again
    assert set(stored_state(MAIN_TENANT, quotations)["refetch_memo"]) == re_read()

    draft, other = [q for q in store.records("quotation") if q["status"] == "draft"][:2]
    store.edit("quotation", draft["id"], {"validUntil": "2030-01-31"}, bump=False)
    store.edit("quotation", other["id"], {"status": "accepted"}, bump=False)  # no walk lists it any more
    edited = materializations(run_entity_job(MAIN_TENANT, quotations), TENANTS["synchroteam"], ENTITIES["quotations"])[
        0
    ]
    assert (edited.metadata["loaded"].value, edited.metadata["refetched"].value) == (1, 1)
    assert value_of(warehouse, "quotations", draft["id"], "valid_until") == date(2030, 1, 31)
    assert set(stored_state(MAIN_TENANT, quotations)["refetch_memo"]) == re_read()  # the accepted one let go


def test_capped_runs_over_unsorted_changes_converge_without_skipping_any(emulator, warehouse):
    customers = ENTITIES["customers"]
    store = emulator.tenant(MAIN.domain)
    run_entity_job(MAIN_TENANT, customers)
    start = max_modified(store.records("customer")) + timedelta(minutes=1)
    ids = [c["id"] for c in store.records("customer")]
    rng = random.Random(5)
    changed = rng.sample(ids, 45)
    for n, customer_id in enumerate(changed):
        # ids and times in unrelated orders; six edits share the minute where the first cap falls
        minute = 20 if 17 <= n < 23 else n
        store.edit("customer", customer_id, {"contactMobile": f"m{n}"}, modified_at=start + timedelta(minutes=minute))
    by_age = sorted(changed, key=lambda i: (local_time(store.get("customer", i)["dateModified"]), str(i)))

    landed_per_run, capped_per_run = [], []
    for _ in range(4):
        result = run_entity_job(MAIN_TENANT, customers, {"max_records": 20, "lookback_minutes": 0})
        metadata = materializations(result, TENANTS["synchroteam"], ENTITIES["customers"])[0].metadata
        capped_per_run.append(metadata["capped"].value)
        landed = [
            i
            for i in changed
            if value_of(warehouse, "customers", i, "contact_mobile") == store.get("customer", i)["contactMobile"]
        ]
        assert sorted(landed, key=by_age.index) == by_age[: len(landed)], "a capped run skipped an older change"
        landed_per_run.append(len(landed))
    assert landed_per_run == [20, 40, 45, 45]
    assert capped_per_run == [True, True, False, False]
    assert stored_cursor(MAIN_TENANT, customers).id is None  # converged: back to a plain cursor


def test_full_mode_reads_everything_and_keeps_the_cursor(emulator, warehouse):
    sites = ENTITIES["sites"]
    run_entity_job(MAIN_TENANT, sites)
    before = stored_cursor(MAIN_TENANT, sites)
    emulator.clear_requests()

    run_entity_job(MAIN_TENANT, sites, {"mode": "full"})

    assert requests_by(emulator, MAIN.domain, "site") == (pages(MAIN.counts["site"]), 0)
    assert [r.params.get("changedSince") for r in sync_requests(emulator)] == [None]
    assert stored_cursor(MAIN_TENANT, sites) == before


# -- reconciliation by day -----------------------------------------------------------------------------------------


def reconcile(partition_key: str | None = None, tags: dict | None = None, instance: DagsterInstance | None = None):
    from dagster import AssetKey

    from sync_pipelines.definitions import defs

    job = defs.resolve_job_def("reconcile_synchroteam")
    return job.execute_in_process(
        partition_key=partition_key,
        tags=tags,
        asset_selection=[AssetKey(["synchroteam", "invoices_reconciliation"])],
        instance=instance,
    )


def test_a_partition_run_re_reads_that_day_and_leaves_the_cursor_where_it_was(emulator, warehouse):
    invoices = ENTITIES["invoices"]
    store = emulator.tenant(MAIN.domain)
    run_entity_job(MAIN_TENANT, invoices)
    cursor = stored_cursor(MAIN_TENANT, invoices)
    invoice_id = store.records("invoice")[3]["id"]
    store.edit("invoice", invoice_id, {"currency": "CHF"}, modified_at=datetime(2025, 6, 10, 12, 0))
    run_entity_job(MAIN_TENANT, invoices)  # far behind the cursor: incremental does not see it
    assert value_of(warehouse, "invoices", invoice_id, "currency") == "EUR"
    emulator.clear_requests()
    instance = DagsterInstance.ephemeral()

    result = reconcile("2025-06-10", instance=instance)

    assert value_of(warehouse, "invoices", invoice_id, "currency") == "CHF"
    assert stored_cursor(MAIN_TENANT, invoices) == cursor
    assert [r.params.get("changedSince") for r in sync_requests(emulator)] == ["2025-06-10 00:00:00"]
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags["sync/mode"] == "reconcile"
    assert (tags["sync/window_start"], tags["sync/window_end"]) == ("2025-06-10", "2025-06-10")


def test_a_backfilled_range_runs_as_one_run_over_the_whole_window(emulator, warehouse):
    instance = DagsterInstance.ephemeral()
    result = reconcile(
        tags={"dagster/asset_partition_range_start": "2025-06-08", "dagster/asset_partition_range_end": "2025-06-11"},
        instance=instance,
    )

    assert [r.params.get("changedSince") for r in sync_requests(emulator)] == ["2025-06-08 00:00:00"]
    materialization = result.asset_materializations_for_node("synchroteam__invoices_reconciliation")[0]
    expected = [
        r
        for r in emulator.tenant(MAIN.domain).records("invoice")
        if datetime(2025, 6, 8) <= local_time(r["dateModified"]) < datetime(2025, 6, 12)
    ]
    assert materialization.metadata["loaded"].value == len(expected)
    assert instance.get_run_by_id(result.run_id).tags["sync/window_end"] == "2025-06-11"


# -- run log: tags and metadata ------------------------------------------------------------------------------------


def test_runs_are_tagged_and_materializations_carry_the_numbers(emulator, warehouse):
    invoices = ENTITIES["invoices"]
    store = emulator.tenant(MAIN.domain)
    run_entity_job(MAIN_TENANT, invoices)
    store.add("invoice")
    store.add("invoice")
    store.edit("invoice", store.records("invoice")[0]["id"])
    emulator.clear_requests()
    instance = DagsterInstance.ephemeral()

    result = run_entity_job(MAIN_TENANT, invoices, {"max_records": 500, "refetch_recent_days": 0}, instance=instance)

    metadata = materializations(result, TENANTS["synchroteam"], ENTITIES["invoices"])[0].metadata
    assert metadata["inserted"].value == 2
    assert metadata["updated"].value == metadata["loaded"].value - 2 >= 1
    assert metadata["api_requests"].value == len(sync_requests(emulator))
    assert metadata["retries_429"].value == 0
    assert metadata["dagster/row_count"].value == MAIN.counts["invoice"] + 2
    assert metadata["quota_remaining"].value > 0
    assert metadata["window_start"].value < metadata["cursor_after"].value <= metadata["window_end"].value
    tags = instance.get_run_by_id(result.run_id).tags
    assert (tags["sync/mode"], tags["sync/max_records"], tags["synchroteam/tenant"]) == (
        "incremental",
        "500",
        "synchroteam",
    )
    assert datetime.fromisoformat(tags["sync/window_start"]).timestamp() == metadata["window_start"].value


def test_a_run_of_several_entities_leaves_the_sync_tags_to_each_materialization(emulator, warehouse):
    from sync_pipelines_tests.helpers import run_sync_all

    instance = DagsterInstance.ephemeral()
    result = run_sync_all(instance=instance)

    assert not any(key.startswith("sync/") for key in instance.get_run_by_id(result.run_id).tags)


def test_reconcile_mode_on_the_entity_asset_re_reads_its_window_and_keeps_the_cursor(emulator, warehouse):
    sites = ENTITIES["sites"]
    store = emulator.tenant(MAIN.domain)
    run_entity_job(MAIN_TENANT, sites)
    before = stored_cursor(MAIN_TENANT, sites)
    site_id = store.records("site")[2]["id"]
    store.edit("site", site_id, {"contactPhone": "reconciled"}, modified_at=datetime(2025, 3, 4, 23, 59))
    emulator.clear_requests()

    run_entity_job(MAIN_TENANT, sites, {"mode": "reconcile", "window_start": "2025-03-03", "window_end": "2025-03-04"})

    assert value_of(warehouse, "sites", site_id, "contact_phone") == "reconciled"
    assert [r.params.get("changedSince") for r in sync_requests(emulator)] == ["2025-03-03 00:00:00"]
    assert stored_cursor(MAIN_TENANT, sites) == before
