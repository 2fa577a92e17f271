"""The Synchroteam emulator over real HTTP: the contract in /work/shared/synchroteam-api.md, faults, mutations."""

from __future__ import annotations

import argparse
import math
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from synchroteam_emulator import (
    Emulator,
    Fault,
    TenantSpec,
    add_api_habit_arguments,
    apply_api_habits,
)
from synchroteam_emulator.habits import check_api_habits
from synchroteam_emulator_tests.helpers import walk

MAIN = TenantSpec(
    domain="acme",
    api_key="11111111-2222-3333-4444-555555555555",
    timezone="Europe/Paris",
    counts={"customer": 57, "site": 61, "job": 133, "invoice": 247, "quotation": 31, "creditnote": 12},
    seed=7,
)
HEC = TenantSpec(domain="acme-hec", api_key="hec-key", counts={"customer": 9, "invoice": 14}, seed=8)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator([MAIN, HEC]) as emulator:
        yield emulator


@pytest.fixture
def api(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url, auth=(MAIN.domain, MAIN.api_key), timeout=10) as client:
        yield client


# -- connection, auth, routing ------------------------------------------------------------------


def test_wrong_key_missing_auth_and_unknown_domain_are_401_json(emu):
    for auth in [(MAIN.domain, "wrong"), ("nobody", MAIN.api_key), None]:
        r = httpx.get(f"{emu.base_url}/invoice/list", auth=auth)
        assert r.status_code == 401
        assert r.json() == {"message": "Invalid domain or API key"}
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        assert "x-quota-remaining" in r.headers
    assert [rec.tenant for rec in emu.requests] == [None, None, None]


def test_urlsafe_base64_credentials_are_refused(emu):
    key = "a?b>c"  # encodes to characters that differ between standard and urlsafe base64
    spec = TenantSpec(domain="odd", api_key=key, counts={"customer": 1}, seed=1)
    with Emulator([spec]) as odd:
        import base64

        token = base64.urlsafe_b64encode(f"odd:{key}".encode()).decode()
        assert "-" in token or "_" in token
        assert (
            httpx.get(f"{odd.base_url}/customer/list", headers={"Authorization": f"Basic {token}"}).status_code == 401
        )
        assert httpx.get(f"{odd.base_url}/customer/list", auth=("odd", key)).status_code == 200


def test_lowercase_prefix_and_resource_case_are_accepted(emu, api):
    base = emu.base_url.replace("/Api/v3", "/api/v3")
    r = httpx.get(f"{base}/INVOICE/list", auth=(MAIN.domain, MAIN.api_key))
    assert r.status_code == 200 and r.json()["recordsTotal"] == 247
    assert emu.requests[-1].resource == "invoice" and emu.requests[-1].action == "list"


def test_unknown_paths_and_resources_the_tenant_does_not_serve_are_404_json(emu):
    hec = httpx.Client(base_url=emu.base_url, auth=(HEC.domain, HEC.api_key))
    for path in ["/job/list", "/nothing/list", "/invoice/sum"]:
        r = hec.get(path)
        assert r.status_code == 404, path
        assert "message" in r.json()
    assert httpx.get(f"http://127.0.0.1:{emu.port}/other").status_code == 404


def test_every_response_carries_the_quota_header_and_json_content_type(api):
    for path in ["/customer/list", "/customer/details?id=1", "/customer/list?page=x"]:
        r = api.get(path)
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        assert int(r.headers["x-quota-remaining"]) > 0


def test_server_listens_on_loopback_with_the_given_port(emu):
    assert emu.base_url == f"http://127.0.0.1:{emu.port}/Api/v3"
    assert emu.port > 0


def test_keep_alive_requests_are_not_stalled_by_nagle(api):
    api.get("/invoice/list")
    latencies = []
    for page in range(1, 41):
        started = time.perf_counter()
        assert api.get("/invoice/list", params={"page": page % 3 + 1, "pageSize": 100}).status_code == 200
        latencies.append(time.perf_counter() - started)
    # Nagle plus delayed ACK holds *every* keep-alive answer ~40 ms; a busy machine only slows some of them
    assert sorted(latencies)[len(latencies) // 2] < 0.025, latencies


# -- lists --------------------------------------------------------------------------------------


def test_paging_to_the_end_returns_every_id_exactly_once_with_a_partial_last_page(api, emu):
    bodies, page = [], 1
    while True:
        body = api.get("/invoice/list", params={"page": page, "pageSize": 20}).json()
        bodies.append(body)
        if not body["data"]:
            break
        page += 1
    assert [b["records"] for b in bodies] == [20] * 12 + [7, 0]
    assert all(b["recordsTotal"] == 247 and b["pageSize"] == 20 for b in bodies)
    ids = [row["id"] for b in bodies for row in b["data"]]
    assert len(ids) == len(set(ids)) == 247
    assert ids == [r["id"] for r in emu.tenant(MAIN.domain).records("invoice")]


def test_lists_are_ordered_by_id_never_by_date_modified(api):
    invoices = walk(api, "invoice", pageSize=100)
    ids = [r["id"] for r in invoices]
    assert ids == sorted(ids) and all(isinstance(i, int) for i in ids)
    assert [r["dateModified"] for r in invoices] != sorted(r["dateModified"] for r in invoices)
    job_ids = [r["id"] for r in walk(api, "job", pageSize=100)]
    assert job_ids == sorted(job_ids) and all(re.fullmatch(r"\d+_\d+", i) for i in job_ids)


def test_page_size_above_100_is_clamped_and_reported_in_envelope(api):
    body = api.get("/invoice/list", params={"pageSize": 500}).json()
    assert body["pageSize"] == 100 and body["records"] == 100 and len(body["data"]) == 100
    assert body["page"] == 1 and body["recordsTotal"] == 247


def test_page_size_defaults_to_25_and_page_to_1(api):
    body = api.get("/customer/list").json()
    assert (body["page"], body["pageSize"], body["records"], body["recordsTotal"]) == (1, 25, 25, 57)


def test_page_past_the_end_is_200_with_empty_data(api):
    r = api.get("/quotation/list", params={"page": 99, "pageSize": 100})
    assert r.status_code == 200
    assert r.json() == {"page": 99, "pageSize": 100, "records": 0, "recordsTotal": 31, "data": []}


@pytest.mark.parametrize(
    "params",
    [
        {"page": "x"},
        {"page": 0},
        {"pageSize": 0},
        {"pageSize": "big"},
        {"changedSince": "yesterday"},
        {"changedSince": "2025-02-30 10:00"},
        {"dateFrom": "2025-13-01"},
        {"dateTo": "2025-1-5"},
    ],
)
def test_bad_list_parameters_are_400_with_message_and_errors(api, params):
    r = api.get("/invoice/list", params=params)
    assert r.status_code == 400
    body = r.json()
    assert body["message"] and body["errors"]


def test_changed_since_is_inclusive_and_accepts_both_formats(api, emu):
    store = emu.tenant(MAIN.domain)
    target = store.records("customer")[4]["id"]
    store.edit("customer", target, {"name": "Edited"}, modified_at=datetime(2026, 3, 4, 10, 15))
    for since in ["2026-03-04 10:15", "2026-03-04 10:15:00"]:
        assert [r["id"] for r in walk(api, "customer", changedSince=since)] == [target]
    assert walk(api, "customer", changedSince="2026-03-04 10:15:01") == []
    assert walk(api, "customer", changedSince="2026-03-04 10:16") == []


def test_changed_since_compares_times_not_strings_when_seconds_are_present(api, emu):
    store = emu.tenant(MAIN.domain)
    with_seconds = next(r for r in store.records("invoice") if len(r["dateModified"]) == 19)
    minute = with_seconds["dateModified"][:16]
    ids = {r["id"] for r in walk(api, "invoice", changedSince=minute, pageSize=100)}
    assert with_seconds["id"] in ids
    expected = {r["id"] for r in store.records("invoice") if r["dateModified"][:16] >= minute}
    assert ids == expected


def test_date_from_and_date_to_are_inclusive_days_on_date_created_and_on_scheduled_start_for_jobs(api, emu):
    store = emu.tenant(MAIN.domain)
    day = store.records("invoice")[10]["dateCreated"][:10]
    got = walk(api, "invoice", dateFrom=day, dateTo=day)
    assert got and {r["dateCreated"][:10] for r in got} == {day}
    assert len(got) == sum(r["dateCreated"][:10] == day for r in store.records("invoice"))
    job_day = store.records("job")[3]["scheduledStart"][:10]
    jobs = walk(api, "job", dateFrom=job_day, dateTo=job_day)
    assert jobs and all(r["scheduledStart"].startswith(job_day) for r in jobs)
    assert len(walk(api, "invoice", dateFrom="2025-07-01", pageSize=100)) == sum(
        r["dateCreated"] >= "2025-07-01" for r in store.records("invoice")
    )


def test_status_filter_is_exact_and_combines_with_changed_since(api, emu):
    store = emu.tenant(MAIN.domain)
    paid = walk(api, "invoice", status="paid", pageSize=100)
    assert paid and {r["status"] for r in paid} == {"paid"}
    assert len(paid) == sum(r["status"] == "paid" for r in store.records("invoice"))
    assert walk(api, "invoice", status="PAID") == []
    since = "2025-10-01 00:00"
    both = walk(api, "invoice", status="paid", changedSince=since)
    assert {r["id"] for r in both} == {r["id"] for r in paid if r["dateModified"][:16] >= since}


def test_filtered_walk_sees_edits_made_between_pages(api, emu):
    store = emu.tenant(MAIN.domain)
    first = api.get("/invoice/list", params={"status": "paid", "pageSize": 10}).json()
    victim = first["data"][0]["id"]
    store.edit("invoice", victim, {"status": "late"})
    again = api.get("/invoice/list", params={"status": "paid", "pageSize": 10}).json()
    assert again["recordsTotal"] == first["recordsTotal"] - 1
    assert victim not in [r["id"] for r in again["data"]]


# -- list rows and details ---------------------------------------------------------------------


def test_job_list_rows_have_no_parts_but_details_have_parts_and_time_entries(api):
    rows = walk(api, "job", pageSize=100)
    assert rows and not any("parts" in r or "timeEntries" in r for r in rows)
    detail = api.get("/job/details", params={"id": rows[0]["id"]}).json()
    assert isinstance(detail["parts"], list) and isinstance(detail["timeEntries"], list)
    assert {k: v for k, v in detail.items() if k not in ("parts", "timeEntries")} == rows[0]
    with_entries = [api.get("/job/details", params={"id": r["id"]}).json() for r in rows[:40]]
    assert any(d["parts"] for d in with_entries) and any(d["timeEntries"] for d in with_entries)


def test_invoice_list_rows_are_full_records_with_lines(api):
    row = api.get("/invoice/list").json()["data"][0]
    assert row["lines"] and row == api.get("/invoice/details", params={"id": row["id"]}).json()


def test_details_of_an_unknown_id_is_404_record_not_found(api):
    for path, rid in [("/invoice/details", 1), ("/job/details", "1_2"), ("/customer/details", "abc")]:
        r = api.get(path, params={"id": rid})
        assert r.status_code == 404 and r.json() == {"message": "Record not found"}
    assert api.get("/invoice/details").status_code == 400


def test_records_carry_the_contracts_messy_values(emu):
    store = emu.tenant(MAIN.domain)
    jobs, invoices = store.records("job"), store.records("invoice")
    customers = store.records("customer") + store.records("site")
    assert all(isinstance(j["position"]["latitude"], str) for j in jobs)
    assert any("CustomFieldValues" in c for c in customers) and any("customFieldValues" in c for c in customers)
    assert any(isinstance(ln["quantity"], str) and "," in ln["quantity"] for i in invoices for ln in i["lines"])
    assert any(len(i["dateModified"]) == 19 for i in invoices) and any(len(i["dateModified"]) == 16 for i in invoices)
    assert any(c["myId"] is None for c in customers) and any(c["myId"] == "" for c in customers)
    assert all((i["num"] is None) == (i["status"] == "draft") for i in invoices)
    assert all((i["datePaid"] is not None) == (i["status"] == "paid") for i in invoices)
    job_ids = {j["id"] for j in jobs}
    assert all(i["job"] is None or i["job"]["id"] in job_ids for i in invoices)
    customer_ids = {c["id"] for c in store.records("customer")}
    assert all(s["customer"]["id"] in customer_ids for s in store.records("site"))
    invoice_ids = {i["id"] for i in invoices}
    assert all(n["invoice"]["id"] in invoice_ids for n in store.records("creditnote"))
    for inv in invoices:
        assert round(sum(ln["total"] for ln in inv["lines"]), 2) == inv["totalExclTax"]
        assert abs(inv["totalExclTax"] + inv["totalTax"] - inv["totalInclTax"]) < 0.011
    assert all(r["dateModified"][:16] >= r["dateCreated"][:16] for r in jobs + invoices + customers)


# -- mutations -----------------------------------------------------------------------------------


def test_edit_bumps_date_modified_to_the_tenant_clock_and_shows_over_http(api, emu):
    store = emu.tenant(MAIN.domain)
    store.set_clock(datetime(2026, 6, 1, 9, 30, 45))
    job_id = store.records("job")[0]["id"]
    edited = store.edit("job", job_id, {"description": "Replace the valve"})
    assert edited["dateModified"] == "2026-06-01 09:30"
    detail = api.get("/job/details", params={"id": job_id}).json()
    assert detail["description"] == "Replace the valve" and detail["dateModified"] == "2026-06-01 09:30"
    assert [r["id"] for r in walk(api, "job", changedSince="2026-06-01 09:30")] == [job_id]


def test_silent_edit_changes_the_record_but_not_date_modified(api, emu):
    store = emu.tenant(MAIN.domain)
    before = store.records("quotation")[2]
    store.edit("quotation", before["id"], {"status": "accepted"}, bump=False)
    after = api.get("/quotation/details", params={"id": before["id"]}).json()
    assert after["status"] == "accepted" and after["dateModified"] == before["dateModified"]


@pytest.mark.parametrize("resource", ["customer", "site", "job", "invoice", "quotation", "creditnote"])
def test_default_edit_changes_a_visible_field(emu, resource):
    store = emu.tenant(MAIN.domain)
    before = store.records(resource)[1]
    version = store.version
    after = store.edit(resource, before["id"])
    changed = {k for k in before if before[k] != after.get(k)} - {"dateModified"}
    assert changed and after["dateModified"] != before["dateModified"] and store.version == version + 1
    if resource in ("invoice", "creditnote"):
        assert round(sum(ln["total"] for ln in after["lines"]), 2) == after["totalExclTax"]


def test_add_gives_the_next_id_and_references_existing_records(api, emu):
    store = emu.tenant(MAIN.domain)
    store.set_clock(datetime(2026, 7, 1, 8, 0))
    site = store.add("site")
    assert site["id"] == 5001 + 61 and site["dateCreated"] == site["dateModified"] == "2026-07-01 08:00"
    assert store.get("customer", site["customer"]["id"]) is not None
    invoice = store.add("invoice", {"status": "sent"})
    assert invoice["id"] == 20001 + 247 and invoice["status"] == "sent"
    job = store.add("job")
    assert store.get("job", job["id"]) is not None and "parts" in store.get("job", job["id"])
    assert walk(api, "job", pageSize=100)[-1]["id"] <= max(r["id"] for r in store.records("job"))
    assert api.get("/site/list").json()["recordsTotal"] == 62
    assert [r["id"] for r in walk(api, "invoice", changedSince="2026-07-01 08:00")] == [invoice["id"]]


def test_delete_removes_from_lists_and_details_and_ids_are_never_reused(api, emu):
    store = emu.tenant(MAIN.domain)
    last = store.records("creditnote")[-1]["id"]
    store.delete("creditnote", last)
    assert api.get("/creditnote/details", params={"id": last}).status_code == 404
    assert last not in [r["id"] for r in walk(api, "creditnote")]
    assert api.get("/creditnote/list").json()["recordsTotal"] == 11
    assert store.add("creditnote")["id"] == last + 1
    with pytest.raises(KeyError):
        store.delete("creditnote", last)


def test_records_and_get_return_copies(emu):
    store = emu.tenant(MAIN.domain)
    rec = store.records("invoice")[0]
    rec["lines"][0]["total"] = -1
    assert store.get("invoice", str(rec["id"]))["lines"][0]["total"] != -1


def test_clock_follows_real_time_in_the_tenant_zone_until_set_then_advances(emu):
    store = emu.tenant(MAIN.domain)
    real = datetime.now(ZoneInfo("Europe/Paris")).replace(tzinfo=None)
    assert abs(store.now() - real) < timedelta(minutes=2) and store.now().second == 0
    store.set_clock(datetime(2026, 2, 3, 4, 5))
    store.advance_clock(minutes=90)
    assert store.now() == datetime(2026, 2, 3, 5, 35)


# -- faults, throttling, quota ---------------------------------------------------------------------


def test_429_fault_with_and_without_retry_after(api, emu):
    emu.faults.add(Fault(status=429, retry_after=1))
    emu.faults.add(Fault(status=429))
    emu.faults.add(Fault(status=429, retry_after=0))
    first, second, third = (api.get("/invoice/list") for _ in range(3))
    assert first.status_code == 429 and first.headers["retry-after"] == "1"
    assert first.json() == {"message": "Too many requests"}
    assert second.status_code == 429 and "retry-after" not in second.headers
    assert third.headers["retry-after"] == "0"
    assert api.get("/invoice/list").status_code == 200
    assert [r.status for r in emu.requests] == [429, 429, 429, 200]


def test_503_fault_is_json_and_consumed_times_times(api, emu):
    emu.faults.add(Fault(status=503, times=2))
    statuses = [api.get("/customer/list") for _ in range(3)]
    assert [r.status_code for r in statuses] == [503, 503, 200]
    assert statuses[0].json()["message"] and "x-quota-remaining" in statuses[0].headers


def test_fault_targets_only_its_tenant_resource_and_action(api, emu):
    emu.faults.add(Fault(status=500, tenant=MAIN.domain, resource="job", action="details"))
    assert api.get("/job/list").status_code == 200
    job_id = api.get("/job/list").json()["data"][0]["id"]
    assert api.get("/job/details", params={"id": job_id}).status_code == 500
    assert api.get("/job/details", params={"id": job_id}).status_code == 200


def test_delay_fault_slows_a_request_that_then_succeeds(api, emu):
    emu.faults.add(Fault(delay=0.3))
    started = time.perf_counter()
    assert api.get("/invoice/list").status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_html_firewall_page_fault(api, emu):
    emu.faults.add(Fault(status=403, body="<html><body>Request blocked</body></html>", content_type="text/html"))
    r = api.get("/invoice/list")
    assert r.status_code == 403 and r.headers["content-type"] == "text/html"
    assert r.text.startswith("<html>")
    emu.faults.add(Fault(status=429, retry_after=2))
    emu.faults.clear()
    assert api.get("/invoice/list").status_code == 200


def test_rate_limit_answers_429_with_retry_after_over_the_per_minute_budget(api, emu):
    emu.set_rate_limit(3)
    statuses = [api.get("/customer/list") for _ in range(5)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429]
    assert 1 <= int(statuses[3].headers["retry-after"]) <= 60
    other = httpx.get(f"{emu.base_url}/invoice/list", auth=(HEC.domain, HEC.api_key))
    assert other.status_code == 200  # the window is per tenant
    emu.set_rate_limit(1, retry_after=False)
    api.get("/customer/list")
    throttled = api.get("/customer/list")
    assert throttled.status_code == 429 and "retry-after" not in throttled.headers
    emu.set_rate_limit(None)
    assert api.get("/customer/list").status_code == 200


def test_daily_quota_counts_down_then_every_request_is_429_without_retry_after(api, emu):
    emu.set_daily_quota(MAIN.domain, 3)
    remaining = [api.get("/invoice/list").headers["x-quota-remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    spent = api.get("/invoice/details", params={"id": 20001})
    assert spent.status_code == 429 and spent.json() == {"message": "Daily quota exceeded"}
    assert "retry-after" not in spent.headers and spent.headers["x-quota-remaining"] == "0"
    hec = httpx.get(f"{emu.base_url}/invoice/list", auth=(HEC.domain, HEC.api_key))
    assert hec.status_code == 200 and hec.headers["x-quota-remaining"] == "99999"


# -- the real API's habits, each behind a switch ----------------------------------------------------


def rate(r: httpx.Response) -> tuple[int, int, int]:
    """(X-RateLimit-Limit, -Remaining, -Reset) of an answer."""
    return tuple(int(r.headers[f"x-ratelimit-{h}"]) for h in ("limit", "remaining", "reset"))


def sleep_until_wall(epoch: float) -> None:
    time.sleep(max(0.0, epoch - time.time()) + 0.05)


def test_a_fixed_window_admits_its_limit_then_answers_429_without_retry_after_until_its_reset(api, emu):
    emu.set_rate_limit(
        3,
        window_seconds=2,
        fixed=True,
        headers=True,
        retry_after=False,
        message="API calls quota exceeded! maximum admitted 3 per 2s.",
    )
    before = time.time()
    first = api.get("/invoice/list")
    after = time.time()
    limit, remaining, reset = rate(first)
    assert (first.status_code, limit, remaining) == (200, 3, 2)
    assert before + 2 <= reset <= math.ceil(after + 2)  # epoch seconds, rounded up, at the window's end
    time.sleep(0.7)  # later requests do not move a fixed window's end
    answers = [api.get("/invoice/list") for _ in range(3)]
    assert [(r.status_code, *rate(r)) for r in answers] == [(200, 3, 1, reset), (200, 3, 0, reset), (429, 3, 0, reset)]
    throttled = answers[-1]
    assert "retry-after" not in throttled.headers
    assert throttled.json() == {"message": "API calls quota exceeded! maximum admitted 3 per 2s."}
    assert int(throttled.headers["x-quota-remaining"]) == 99_997  # "quota" in the text, yet the daily one is not spent
    sleep_until_wall(reset)
    fresh = [api.get("/invoice/list") for _ in range(3)]  # a sliding window would still hold two of the last three
    assert [r.status_code for r in fresh] == [200, 200, 200]
    assert [rate(r)[1] for r in fresh] == [2, 1, 0] and rate(fresh[0])[2] >= reset + 2


def test_a_sliding_window_of_any_length_puts_its_headers_on_every_answer_and_frees_a_slot_as_its_oldest_leaves(
    api, emu
):
    emu.set_rate_limit(3, window_seconds=1.5, headers=True)
    before = time.time()
    first = api.get("/customer/list")
    started = time.monotonic()
    limit, remaining, reset = rate(first)
    assert (limit, remaining) == (3, 2) and before + 1.5 <= reset <= math.ceil(time.time() + 1.5)
    time.sleep(0.6)
    before_second = time.time()
    missing = api.get("/customer/details", params={"id": 999_999})
    after_second = time.time()
    bad = api.get("/customer/list", params={"page": "x"})
    throttled = api.get("/customer/list")
    assert [(r.status_code, *rate(r)) for r in (missing, bad, throttled)] == [
        (404, 3, 1, reset),
        (400, 3, 0, reset),
        (429, 3, 0, reset),
    ]  # the oldest request sets the reset
    assert throttled.headers["retry-after"] == "1" and throttled.json() == {"message": "Too many requests"}
    assert all(r.headers["x-quota-limit"] == "100000" for r in (first, missing, bad, throttled))
    time.sleep(max(0.0, started + 1.55 - time.monotonic()))  # the first request has left the window
    again = api.get("/customer/list")
    assert again.status_code == 200 and rate(again)[1] == 0  # the 404 and 400 were counted and are still in it
    assert before_second + 1.5 <= rate(again)[2] <= math.ceil(after_second + 1.5)
    assert "x-ratelimit-limit" not in httpx.get(f"{emu.base_url}/customer/list", auth=("nobody", "x")).headers


def test_rate_headers_ride_on_fault_and_daily_quota_answers_and_x_quota_limit_is_the_daily_total(emu):
    hec = httpx.Client(base_url=emu.base_url, auth=(HEC.domain, HEC.api_key))
    emu.set_rate_limit(1, window_seconds=240, headers=True)  # windows may be minutes long
    emu.set_daily_quota(HEC.domain, 2)
    emu.faults.add(Fault(status=503))
    faulty = hec.get("/invoice/list")  # not counted: the window is still empty
    assert faulty.status_code == 503 and rate(faulty)[:2] == (1, 1)
    assert faulty.headers["x-quota-limit"] == "2" and faulty.headers["x-quota-remaining"] == "2"
    assert 239 <= rate(faulty)[2] - time.time() <= 241
    admitted, throttled = hec.get("/invoice/list"), hec.get("/invoice/list")
    assert (admitted.status_code, rate(admitted)[1], admitted.headers["x-quota-remaining"]) == (200, 0, "1")
    assert throttled.status_code == 429 and 239 <= int(throttled.headers["retry-after"]) <= 240
    emu.set_rate_limit(5, headers=True)
    hec.get("/invoice/list")
    spent = hec.get("/invoice/list")
    assert spent.status_code == 429 and spent.json() == {"message": "Daily quota exceeded"}
    assert spent.headers["x-quota-remaining"] == "0" and spent.headers["x-quota-limit"] == "2"
    assert rate(spent)[:2] == (5, 4) and "retry-after" not in spent.headers
    emu.set_rate_limit(5)
    assert not any(h.startswith(("x-ratelimit", "x-quota-limit")) for h in hec.get("/site/list").headers)


def test_an_ignored_filter_is_neither_validated_nor_applied_so_the_list_comes_back_unfiltered(api, emu):
    every = [r["id"] for r in walk(api, "job", pageSize=100)]
    assert walk(api, "job", changedSince="2099-01-01 00:00") == []
    emu.ignore_filters("job", "changedSince", "status")
    assert [r["id"] for r in walk(api, "job", changedSince="2099-01-01 00:00", pageSize=100)] == every
    assert api.get("/job/list", params={"changedSince": "yesterday"}).status_code == 200
    assert [r["id"] for r in walk(api, "job", status="nonsense", pageSize=100)] == every
    assert emu.requests[-1].params["status"] == "nonsense"  # the log keeps what the client sent
    day = emu.tenant(MAIN.domain).records("job")[3]["scheduledStart"][:10]
    assert len(walk(api, "job", dateFrom=day, dateTo=day, pageSize=100)) < len(every)  # other filters still apply
    assert walk(api, "invoice", changedSince="2099-01-01 00:00") == []  # and other resources too
    emu.ignore_filters("job")
    assert walk(api, "job", changedSince="2099-01-01 00:00") == []


def test_the_firewall_answers_every_request_with_an_imperva_html_page_whatever_the_credentials(api, emu):
    emu.set_firewall()
    for r in (api.get("/invoice/list"), httpx.get(f"{emu.base_url}/job/list", auth=("nobody", "bad"))):
        assert r.status_code == 403 and r.headers["content-type"] == "text/html; charset=utf-8"
        assert r.text.startswith("<html") and "Request unsuccessful. Incapsula incident ID:" in r.text
        cookies = r.headers.get_list("set-cookie")
        assert any(c.startswith("visid_incap_") for c in cookies) and any(c.startswith("incap_ses_") for c in cookies)
        assert "x-quota-remaining" not in r.headers  # the page comes from the firewall, not the API
    assert [(q.tenant, q.resource, q.status) for q in emu.requests] == [
        (MAIN.domain, "invoice", 403),
        (None, "job", 403),
    ]
    emu.set_firewall(200)
    page = api.get("/invoice/list")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    emu.set_firewall(None)
    assert api.get("/invoice/list").json()["recordsTotal"] == 247


def test_a_firewall_fault_answers_the_matching_requests_with_the_html_page_and_is_logged(api, emu):
    emu.faults.add(Fault.firewall(resource="invoice"))
    emu.faults.add(Fault.firewall(200, times=2, action="details"))
    assert api.get("/customer/list").status_code == 200
    blocked = api.get("/invoice/list")
    assert blocked.status_code == 403 and blocked.headers["content-type"] == "text/html; charset=utf-8"
    assert "Incapsula incident ID" in blocked.text and "visid_incap_" in blocked.headers["set-cookie"]
    customer = emu.tenant(MAIN.domain).records("customer")[0]["id"]
    details = [api.get("/customer/details", params={"id": customer}) for _ in range(3)]
    assert [(r.status_code, r.headers["content-type"].split(";")[0]) for r in details] == [
        (200, "text/html"),
        (200, "text/html"),
        (200, "application/json"),
    ]
    assert api.get("/invoice/list").status_code == 200
    assert [q.status for q in emu.requests] == [200, 403, 200, 200, 200, 200]


def test_lean_lists_drop_lines_from_their_rows_while_details_keep_them(api, emu):
    emu.set_lean_lists("invoice", "creditnote")
    for resource in ("invoice", "creditnote"):
        rows = walk(api, resource, pageSize=100)
        assert rows and not any("lines" in r for r in rows)
        detail = api.get(f"/{resource}/details", params={"id": rows[0]["id"]}).json()
        assert detail["lines"] and {k: v for k, v in detail.items() if k != "lines"} == rows[0]
    assert all("lines" in r for r in walk(api, "quotation", pageSize=100))
    emu.set_lean_lists()
    assert "lines" in api.get("/invoice/list").json()["data"][0]


def test_the_command_line_switches_set_the_same_habits_on_the_emulator(emu, api):
    parser = argparse.ArgumentParser()
    add_api_habit_arguments(parser)
    args = parser.parse_args(
        [
            "--rate-limit",
            "2",
            "--rate-window",
            "240",
            "--fixed-window",
            "--rate-headers",
            "--no-retry-after",
            "--quota-message",
            "--ignore-filter",
            "job:changedSince",
            "--lean-lists",
            "invoice,creditnote",
        ]
    )
    check_api_habits(parser, args)
    apply_api_habits(emu, args)
    lean = api.get("/invoice/list")
    assert "lines" not in lean.json()["data"][0] and rate(lean)[:2] == (2, 1)
    assert api.get("/job/list", params={"changedSince": "2099-01-01 00:00"}).json()["data"]
    throttled = api.get("/job/list")
    assert throttled.status_code == 429 and "retry-after" not in throttled.headers
    assert throttled.json() == {"message": "API calls quota exceeded! maximum admitted 2 per 240s."}
    apply_api_habits(emu, parser.parse_args(["--firewall"]))
    assert api.get("/job/list").headers["content-type"] == "text/html; charset=utf-8"
    for wrong in (["--fixed-window"], ["--ignore-filter", "job"], ["--lean-lists", "bills"], ["--rate-window", "0"]):
        with pytest.raises(SystemExit):
            check_api_habits(parser, parser.parse_args(wrong))


# -- determinism and the request log ---------------------------------------------------------------


def test_same_seed_gives_the_same_data_and_another_seed_does_not():
    a = Emulator([MAIN]).tenant(MAIN.domain)
    b = Emulator([MAIN]).tenant(MAIN.domain)
    for resource in MAIN.counts:
        assert a.records(resource) == b.records(resource)
    other = TenantSpec(MAIN.domain, MAIN.api_key, counts=MAIN.counts, seed=MAIN.seed + 1)
    assert Emulator([other]).tenant(MAIN.domain).records("invoice") != a.records("invoice")


def test_demo_specs_scale_their_counts():
    main, hec = TenantSpec.demo_main(), TenantSpec.demo_hec(scale=0.001)
    assert (main.domain, main.api_key, main.seed) == ("demo", "demo-api-key-0000-main", 1)
    assert main.counts == {
        "customer": 120,
        "site": 150,
        "job": 250,
        "invoice": 200,
        "quotation": 80,
        "creditnote": 30,
        "user": 30,
        "activity": 530,
        "equipment": 225,
        "jobtype": 10,
        "part": 200,
    }
    # users, job types and parts never fall below what jobs and invoices name (14 technicians, 6 types, 12 products)
    assert hec.domain == "demo-hec" and hec.counts == {
        "customer": 1,
        "site": 1,
        "invoice": 1,
        "creditnote": 1,
        "user": 14,
        "equipment": 1,
        "jobtype": 6,
        "part": 12,
    }


def test_request_log_counts_by_tenant_resource_and_action(api, emu):
    api.get("/invoice/list")
    api.get("/invoice/list", params={"page": 2})
    api.get("/invoice/details", params={"id": 20001})
    api.get("/customer/list")
    httpx.get(f"{emu.base_url}/invoice/list", auth=(HEC.domain, HEC.api_key))
    httpx.get(f"{emu.base_url}/invoice/list", auth=(HEC.domain, "bad"))
    assert emu.request_count(tenant=MAIN.domain) == 4
    assert emu.request_count(tenant=MAIN.domain, resource="invoice", action="list") == 2
    assert emu.request_count(resource="invoice") == 5
    assert emu.request_count(action="details") == 1
    assert emu.requests[1].params == {"page": "2"} and emu.requests[1].path == "/Api/v3/invoice/list"
    assert (emu.requests[-1].tenant, emu.requests[-1].status) == (None, 401)
    emu.clear_requests()
    assert emu.requests == [] and emu.request_count() == 0


def test_stop_closes_kept_alive_connections():
    emulator = Emulator([HEC]).start()
    client = httpx.Client(base_url=emulator.base_url, auth=(HEC.domain, HEC.api_key))
    assert client.get("/invoice/list").status_code == 200
    emulator.stop()
    with pytest.raises(httpx.TransportError):
        client.get("/invoice/list")
