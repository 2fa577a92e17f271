"""The sync against an API that behaves like the real one (../shared/synchroteam-api.md), not our emulator's habits:
rate windows announced in headers, filters silently ignored, a firewall's HTML pages, list rows without children,
timestamps without a zone. Every test runs over real HTTP against the emulator with the habit switched on."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from sync_pipelines.catalogue import ENTITIES, TENANTS, tenant_entities
from sync_pipelines_tests.compare import assert_warehouse_equals_emulator
from sync_pipelines_tests.conftest import DOMAINS, HEC, MAIN
from sync_pipelines_tests.helpers import materializations, run_entity_job, run_sync_all, step_failures
from sync_pipelines_tests.jobs import run_job
from synchroteam_emulator import Emulator, Fault, TenantSpec
from synchroteam_emulator.env import tenant_env

MAIN_TENANT = TENANTS["synchroteam"]
JOBS = ENTITIES["jobs"]
# The real API's window is 40 requests per 240 s; the test's is 40 per 30 s, long enough for the first 40 requests of
# the sync to fit in it (a few seconds), short enough to wait one out. The client's tests prove the 240 s schedule
# with a fake clock.
WINDOW_SECONDS = 30
QUOTA_SOUNDING = f"API calls quota exceeded! maximum admitted 40 per {WINDOW_SECONDS}s."


def point_at(emulator: Emulator, specs: dict[str, TenantSpec], monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Both tenants' settings at `emulator`, the warehouse at `path`."""
    for variable, value in tenant_env(emulator.base_url, specs).items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("SYNC_DUCKDB_PATH", str(path))


# -- rate windows ----------------------------------------------------------------------------------------------

# Small tenants: the main one needs two windows of 40 requests for its first sync, HEC one.
SMALL_MAIN = TenantSpec(
    "small",
    "small-key",
    "Europe/Paris",
    {"customer": 20, "site": 20, "job": 45, "invoice": 30, "quotation": 12, "creditnote": 8}
    | {"user": 14, "activity": 1, "equipment": 20, "jobtype": 6, "part": 12},  # the dimensions at their floors
    31,
)
SMALL_HEC = TenantSpec(
    "small-hec",
    "small-hec-key",
    "Europe/Paris",
    {"customer": 5, "site": 5, "invoice": 20, "creditnote": 6, "user": 14, "equipment": 5, "jobtype": 6, "part": 12},
    32,
)


@pytest.fixture
def windowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Emulator, Path]]:
    with Emulator([SMALL_MAIN, SMALL_HEC]) as emulator:
        point_at(
            emulator,
            {"synchroteam": SMALL_MAIN, "synchroteam_hec": SMALL_HEC},
            monkeypatch,
            tmp_path / "warehouse.duckdb",
        )
        yield emulator, tmp_path / "warehouse.duckdb"


def test_a_first_sync_all_under_40_requests_per_window_completes_in_one_run_within_one_window_of_the_least(
    windowed,
):
    emulator, path = windowed
    # a fixed window per tenant, announced in X-RateLimit-*; its 429s carry no Retry-After and speak of a quota
    emulator.set_rate_limit(
        40, window_seconds=WINDOW_SECONDS, fixed=True, headers=True, retry_after=False, message=QUOTA_SOUNDING
    )
    started = time.monotonic()

    result = run_sync_all(raise_on_error=False)

    elapsed = time.monotonic() - started
    assert result.success, step_failures(result)
    domains = {"synchroteam": SMALL_MAIN.domain, "synchroteam_hec": SMALL_HEC.domain}
    assert_warehouse_equals_emulator(emulator, path, domains)
    sent = {d: [r for r in emulator.requests if r.tenant == d] for d in domains.values()}
    for domain, requests in sent.items():
        assert sum(r.status == 429 for r in requests) <= 1, domain
    windows = max(math.ceil(sum(r.status == 200 for r in requests) / 40) for requests in sent.values())
    assert windows == 2  # the main tenant needed a second window: the test waited for one reset
    least = (windows - 1) * WINDOW_SECONDS  # the shortest time the limit allows
    assert elapsed <= least + WINDOW_SECONDS
    waits = [
        m.metadata["rate_limit_wait_seconds"].value
        for m in result.get_asset_materialization_events()
        for m in [m.materialization]
        if m.asset_key.path[0] in domains  # the syncs, not the read copy
    ]
    assert 0 < sum(waits) <= WINDOW_SECONDS + 2


# -- filters the API ignores ---------------------------------------------------------------------------------------


def test_after_5_job_changes_an_api_ignoring_changed_since_costs_5_details_calls_and_stays_exact(emulator, warehouse):
    run_entity_job(MAIN_TENANT, JOBS)
    emulator.ignore_filters("job", "changedSince")
    store = emulator.tenant(MAIN.domain)
    changed = [str(r["id"]) for r in store.records("job")[:5]]
    for job_id in changed:
        store.edit("job", job_id)
    emulator.clear_requests()

    result = run_entity_job(MAIN_TENANT, JOBS)

    details = [r.params["id"] for r in emulator.requests if r.action == "details"]
    assert sorted(details) == sorted(changed)
    metadata = materializations(result, MAIN_TENANT, JOBS)[0].metadata
    assert metadata["filter_ignored"].value is True
    assert metadata["filters_ignored"].value == "job/list changedSince"
    assert metadata["loaded"].value == 5
    # the rest cost their list row only: older than the look-back, or in it and unchanged since loaded
    assert metadata["filtered_out"].value + metadata["unchanged"].value == MAIN.counts["job"] - 5
    assert metadata["filtered_out"].value > metadata["unchanged"].value
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["jobs"])


def test_an_api_ignoring_status_re_reads_only_the_quotations_in_those_statuses(emulator, warehouse):
    quotations = ENTITIES["quotations"]
    run_entity_job(MAIN_TENANT, quotations)
    emulator.ignore_filters("quotation", "status")
    store = emulator.tenant(MAIN.domain)
    in_statuses = [r for r in store.records("quotation") if r["status"] in ("draft", "new")]
    store.edit("quotation", in_statuses[0]["id"], {"validUntil": "2030-01-31"}, bump=False)

    result = run_entity_job(MAIN_TENANT, quotations)

    metadata = materializations(result, MAIN_TENANT, quotations)[0].metadata
    assert metadata["refetched"].value == 1  # of the draft and new ones, the edited one: the rest are as loaded
    assert metadata["unchanged"].value >= len(in_statuses) - 1
    assert metadata["filters_ignored"].value == "quotation/list status"
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["quotations"])


# -- errors that point the right way ----------------------------------------------------------------------------


def test_an_html_403_from_the_firewall_ends_as_not_json_and_the_next_run_is_exact(emulator, warehouse):
    emulator.faults.add(Fault.firewall(status=403, tenant=MAIN.domain, resource="invoice", action="list"))

    failed = run_sync_all(raise_on_error=False)

    messages = step_failures(failed)
    [message] = [m for step, m in messages.items() if step == "synchroteam"]
    assert message.startswith("[not_json]") and "HTTP 403" in message and "firewall" in message
    assert "Incapsula" in message and "auth_rejected" not in message and "API key" in message
    assert run_sync_all().success
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS)


def test_a_tenant_without_a_time_zone_fails_before_any_request(emulator, warehouse, monkeypatch):
    monkeypatch.delenv("SYNCHROTEAM_TIMEZONE")

    result = run_entity_job(MAIN_TENANT, ENTITIES["invoices"], raise_on_error=False)

    [message] = step_failures(result).values()
    assert message.startswith("[configuration]") and "SYNCHROTEAM_TIMEZONE is not set" in message
    assert emulator.requests == []


# -- an explicit cap is a promise from the first run on ---------------------------------------------------------------


def capped_config(cap: int) -> dict:
    """`max_records` for every dated entity; a lookup list (job types) is read whole and has no such field."""
    return {
        "ops": {
            tenant.name: {
                "config": {entity.name: {"max_records": cap} for entity in tenant_entities(tenant) if entity.dated}
            }
            for tenant in TENANTS.values()
        }
    }


def table_counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {
            f"{tenant.name}.{entity.name}": con.execute(f"SELECT count(*) FROM {tenant.name}.{entity.name}").fetchone()[
                0
            ]
            for tenant in TENANTS.values()
            for entity in tenant_entities(tenant)
            if entity.dated
        }


def test_max_records_given_holds_on_a_first_load_and_capped_runs_converge(windowed):
    emulator, path = windowed
    first = run_job("sync_all", capped_config(10))
    assert first.success
    # customers too, whose default cap (200) would leave a first load uncapped: the run config gave this one
    assert all(0 < count <= 10 for count in table_counts(path).values()), table_counts(path)

    # what the emulator serves: activities cover the jobs' work and travel, more than their count asks
    served = [emulator.tenant(spec.domain).records(r) for spec in (SMALL_MAIN, SMALL_HEC) for r in spec.counts]
    largest = max(len(records) for records in served)
    for _ in range(math.ceil(largest / 10) - 1):
        assert run_job("sync_all", capped_config(10)).success

    domains = {"synchroteam": SMALL_MAIN.domain, "synchroteam_hec": SMALL_HEC.domain}
    assert_warehouse_equals_emulator(emulator, path, domains)


# -- list rows without children ------------------------------------------------------------------------------------


def test_billing_list_rows_without_lines_are_read_from_details_once_per_changed_document(emulator, warehouse):
    emulator.set_lean_lists("invoice", "quotation", "creditnote")
    assert run_sync_all().success
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS)
    first = {(r.tenant, r.resource) for r in emulator.requests if r.action == "details"}
    assert {(MAIN.domain, "invoice"), (HEC.domain, "creditnote"), (MAIN.domain, "quotation")} <= first

    store = emulator.tenant(MAIN.domain)
    edited = [str(r["id"]) for r in store.records("invoice")[:3]]
    for invoice_id in edited:
        store.edit("invoice", invoice_id)
    emulator.clear_requests()
    assert run_sync_all().success

    details = [(r.resource, r.params["id"]) for r in emulator.requests if r.action == "details" and r.resource != "job"]
    assert sorted(details) == sorted(("invoice", i) for i in edited) + draft_and_new_quotations(emulator)
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS)


def draft_and_new_quotations(emulator: Emulator) -> list[tuple[str, str]]:
    """Quotations are re-read by status every run (edits that do not move dateModified): without lines in
    their list rows, each costs a details call."""
    records = emulator.tenant(MAIN.domain).records("quotation")
    return sorted(("quotation", str(r["id"])) for r in records if r["status"] in ("draft", "new"))
