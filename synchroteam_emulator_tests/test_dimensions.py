"""Users, activities, equipment, job types and parts over real HTTP: paging, what they join to, filters, hooks."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from functools import partial

import httpx
import pytest

from synchroteam_emulator import Emulator, Fault, TenantSpec, TenantStore, add_api_habit_arguments, apply_api_habits
from synchroteam_emulator.habits import describe_api_habits
from synchroteam_emulator_tests import helpers

DIMENSIONS = {"user": 23, "activity": 260, "equipment": 83, "jobtype": 9, "part": 47}
MAIN = TenantSpec(
    domain="acme",
    api_key="11111111-2222-3333-4444-555555555555",
    counts={"customer": 57, "site": 61, "job": 133, "invoice": 47, "quotation": 11, "creditnote": 12, **DIMENSIONS},
    seed=7,
)
# like the HEC tenant: no jobs (so no activities), yet users, job types, parts, and equipment on its sites
HEC = TenantSpec(
    domain="acme-hec",
    api_key="hec-key",
    counts={"customer": 9, "site": 6, "invoice": 14, "user": 16, "equipment": 8, "jobtype": 6, "part": 20},
    seed=8,
)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator([MAIN, HEC]) as emulator:
        yield emulator


@pytest.fixture
def api(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url, auth=(MAIN.domain, MAIN.api_key), timeout=10) as client:
        yield client


walk = partial(helpers.walk, pageSize=100)  # pages of 100 unless a test asks otherwise


def by_id(rows: list[dict]) -> dict:
    return {r["id"]: r for r in rows}


@pytest.mark.parametrize("resource", list(DIMENSIONS))
def test_each_dimension_list_pages_to_its_total_with_a_partial_last_page(api, emu, resource):
    stored = emu.tenant(MAIN.domain).records(resource)
    total = len(stored)
    assert total >= DIMENSIONS[resource] and total % 7
    bodies = [api.get(f"/{resource}/list", params={"page": p, "pageSize": 7}).json() for p in range(1, total // 7 + 3)]
    assert [b["records"] for b in bodies] == [7] * (total // 7) + [total % 7, 0]
    assert all(b["recordsTotal"] == total and b["pageSize"] == 7 for b in bodies)
    rows = [row for b in bodies for row in b["data"]]
    assert rows == stored and len({r["id"] for r in rows}) == total
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows) and all(isinstance(r["id"], int) for r in rows)


def test_counts_are_exact_except_where_other_records_need_more():
    store = TenantStore(MAIN)
    assert {r: len(store.records(r)) for r in ("user", "equipment", "jobtype", "part", "activity")} == DIMENSIONS
    small = TenantStore(replace(MAIN, counts={**MAIN.counts, "user": 3, "jobtype": 1, "part": 2, "activity": 1}))
    work = sum(len(j["timeEntries"]) for j in small.records("job"))
    # the 14 technicians jobs name, their 6 types, the 12 products job parts and invoice lines name; all the work
    assert [len(small.records(r)) for r in ("user", "jobtype", "part", "activity")] == [14, 6, 12, work]


def test_every_job_names_a_user_and_a_job_type_and_every_part_or_line_code_is_a_part(api):
    users, types = by_id(walk(api, "user")), by_id(walk(api, "jobtype"))
    references = {p["reference"] for p in walk(api, "part")}
    jobs = walk(api, "job")
    for job in jobs:
        tech, user = job["technician"], users[job["technician"]["id"]]
        assert (user["login"], f"{user['firstName']} {user['lastName']}") == (tech["login"], tech["name"])
        assert user["profile"] == "technician"
        assert types[job["type"]["id"]]["name"] == job["type"]["name"]
    for job in jobs[::5]:
        assert {p["reference"] for p in api.get("/job/details", params={"id": job["id"]}).json()["parts"]} <= references
    assert {ln["partProductCode"] for i in walk(api, "invoice") for ln in i["lines"]} <= references
    assert "" in references  # "Forfait intervention" has no reference: a join on it must keep the empty string
    assert all(set(types[t]) == {"id", "name", "duration"} for t in types)  # a lookup: no dates


def test_activities_are_the_jobs_work_and_travel_within_their_day_plus_breaks(api):
    activities, users = walk(api, "activity"), by_id(walk(api, "user"))
    jobs = {j["id"]: api.get("/job/details", params={"id": j["id"]}).json() for j in walk(api, "job")}
    assert {a["activityType"]["name"] for a in activities} == {"work", "travel", "break"}
    on_jobs = [a for a in activities if a["job"] is not None]
    entries = [(j["id"], e) for j in jobs.values() for e in j["timeEntries"]]
    assert len(on_jobs) == len(entries)
    starts = {(a["job"]["id"], a["dateStart"], a["activityType"]["name"]): a for a in on_jobs}
    for job_id, entry in entries:
        activity = starts[(job_id, entry["start"], entry["type"])]
        tech = jobs[job_id]["technician"]
        assert activity["user"] == {"id": tech["id"], "login": tech["login"]}
        assert activity["dateEnd"] == min(entry["end"], entry["start"][:10] + " 23:59")  # cut at midnight
    for a in activities:
        assert a["dateStart"][:10] == a["dateEnd"][:10] and a["dateStart"] <= a["dateEnd"] <= a["dateModified"][:16]
        assert users[a["user"]["id"]]["login"] == a["user"]["login"]
        assert (a["job"] is None) == (a["activityType"]["name"] == "break")
    breaks = [a for a in activities if a["job"] is None]
    days = {}
    for a in activities:
        days.setdefault((a["user"]["id"], a["dateStart"][:10]), []).append(a)
    for a in breaks:  # a break never overlaps its technician's work that day
        others = [o for o in days[(a["user"]["id"], a["dateStart"][:10])] if o is not a]
        assert all(a["dateEnd"] <= o["dateStart"] or a["dateStart"] >= o["dateEnd"] for o in others)


def test_equipment_sits_on_existing_sites_of_their_customers(api):
    sites, customers = by_id(walk(api, "site")), by_id(walk(api, "customer"))
    equipment = walk(api, "equipment")
    assert any(e["site"] is None for e in equipment) and any(e["site"] for e in equipment)
    for e in equipment:
        assert customers[e["customer"]["id"]]["name"] == e["customer"]["name"]
        if e["site"]:
            site = sites[e["site"]["id"]]
            assert site["name"] == e["site"]["name"] and site["customer"]["id"] == e["customer"]["id"]
            assert e["dateCreated"][:16] >= site["dateCreated"][:16]
        assert e["dateModified"][:16] >= e["dateCreated"][:16] and e["serialNumber"]
    assert {type(e["myId"]) for e in equipment} == {str, type(None)} and any(e["myId"] == "" for e in equipment)


def test_users_and_equipment_have_details_and_the_other_dimensions_are_lists_only(api):
    for resource in ("user", "equipment"):
        row = api.get(f"/{resource}/list").json()["data"][3]
        assert api.get(f"/{resource}/details", params={"id": row["id"]}).json() == row
        assert api.get(f"/{resource}/details", params={"id": 1}).json() == {"message": "Record not found"}
    for resource in ("activity", "jobtype", "part"):
        row = api.get(f"/{resource}/list").json()["data"][0]
        r = api.get(f"/{resource}/details", params={"id": row["id"]})
        assert (r.status_code, r.json()) == (404, {"message": "Not found"})  # as an unknown path


@pytest.mark.parametrize("resource", ["user", "activity", "equipment", "part"])
def test_changed_since_filters_dimensions_on_date_modified_inclusively(api, emu, resource):
    stored = emu.tenant(MAIN.domain).records(resource)
    since = sorted(r["dateModified"][:16] for r in stored)[len(stored) // 2]
    got = [r["id"] for r in walk(api, resource, changedSince=since)]
    assert got == [r["id"] for r in stored if r["dateModified"][:16] >= since] and 0 < len(got) < len(stored)


def test_job_types_are_served_whole_whatever_changed_since_and_dates_filter_activities_on_their_start(api, emu):
    every = walk(api, "jobtype")
    assert walk(api, "jobtype", changedSince="2099-01-01 00:00") == every
    assert walk(api, "part", dateFrom="2099-01-01") == walk(api, "part")  # parts have no dateCreated
    day = emu.tenant(MAIN.domain).records("activity")[40]["dateStart"][:10]
    got = walk(api, "activity", dateFrom=day, dateTo=day)
    assert got and {a["dateStart"][:10] for a in got} == {day}
    assert len(got) == sum(a["dateStart"].startswith(day) for a in emu.tenant(MAIN.domain).records("activity"))


def test_edits_adds_and_deletes_show_in_the_dimension_lists(api, emu):
    store = emu.tenant(MAIN.domain)
    store.set_clock(datetime(2026, 7, 1, 8, 0))
    user = store.records("user")[20]["id"]
    store.edit("user", user, {"active": False})
    assert [(u["id"], u["active"]) for u in walk(api, "user", changedSince="2026-07-01 08:00")] == [(user, False)]
    jobtype = store.records("jobtype")[0]
    edited = store.edit("jobtype", jobtype["id"], {"duration": 75})
    assert edited == {**jobtype, "duration": 75}  # no dateModified appears
    added = {r: store.add(r) for r in DIMENSIONS}
    assert added["part"]["id"] == max(p["id"] for p in walk(api, "part")) == 80001 + 47
    assert added["user"]["id"] == 300 + 23 and added["user"]["dateCreated"] == "2026-07-01 08:00"
    assert added["jobtype"] == walk(api, "jobtype")[-1] and "dateModified" not in added["jobtype"]
    assert added["equipment"]["dateCreated"] == added["equipment"]["dateModified"] == "2026-07-01 08:00"
    site = added["equipment"]["site"]
    assert site is None or store.get("site", site["id"])["customer"]["id"] == added["equipment"]["customer"]["id"]
    job = store.get("job", added["activity"]["job"]["id"])
    assert added["activity"]["user"] == {"id": job["technician"]["id"], "login": job["technician"]["login"]}
    assert {a["id"] for a in walk(api, "activity", changedSince="2026-07-01 08:00")} == {added["activity"]["id"]}
    assert {r: api.get(f"/{r}/list").json()["recordsTotal"] for r in DIMENSIONS} == {
        r: len(store.records(r)) for r in DIMENSIONS
    }
    for resource in ("jobtype", "equipment"):
        gone = store.records(resource)[2]["id"]
        before = api.get(f"/{resource}/list").json()["recordsTotal"]
        store.delete(resource, gone)
        assert gone not in {r["id"] for r in walk(api, resource)}
        assert api.get(f"/{resource}/list").json()["recordsTotal"] == before - 1
    assert api.get("/equipment/details", params={"id": gone}).status_code == 404


@pytest.mark.parametrize("resource", list(DIMENSIONS))
def test_default_edit_changes_a_visible_field_of_a_dimension(emu, resource):
    store = emu.tenant(MAIN.domain)
    before = store.records(resource)[1]
    after = store.edit(resource, before["id"])
    assert {k for k in before if before[k] != after[k]} - {"dateModified"}
    assert ("dateModified" in after) == (resource != "jobtype") and set(after) == set(before)


def test_a_tenant_without_activity_list_answers_404_there_only_as_for_an_unknown_resource(emu):
    hec = httpx.Client(base_url=emu.base_url, auth=(HEC.domain, HEC.api_key))
    assert hec.get("/activity/list").json() == {"message": "Resource 'activity' is not available"}  # no jobs there
    spec = replace(MAIN, domain="no-activities", no_activity_list=True)
    with Emulator([spec]) as bare, httpx.Client(base_url=bare.base_url, auth=(spec.domain, spec.api_key)) as api:
        missing, unknown = api.get("/activity/list"), api.get("/nothing/list")
        assert (
            (missing.status_code, missing.json())
            == (unknown.status_code, unknown.json())
            == (404, {"message": "Not found"})
        )
        assert missing.headers["content-type"] == "application/json; charset=utf-8"
        assert "x-quota-remaining" in missing.headers
        for resource in ("user", "equipment", "jobtype", "part", "job", "invoice"):
            assert api.get(f"/{resource}/list").status_code == 200, resource
        bare.set_no_activity_list(False)
        assert api.get("/activity/list").json()["recordsTotal"] == len(bare.tenant(spec.domain).records("activity"))


def test_the_no_activity_list_switch_on_the_command_line_applies_to_every_tenant(emu, api):
    parser = argparse.ArgumentParser()
    add_api_habit_arguments(parser)
    args = parser.parse_args(["--no-activity-list"])
    assert api.get("/activity/list").status_code == 200
    apply_api_habits(emu, args)
    assert api.get("/activity/list").status_code == 404 and api.get("/user/list").status_code == 200
    assert describe_api_habits(args) == ["no activity/list: it answers 404 Not found, as an unknown resource"]
    emu.set_no_activity_list(False, tenant=MAIN.domain)
    assert api.get("/activity/list").status_code == 200


def test_the_other_habits_apply_to_dimensions_too(api, emu):
    emu.ignore_filters("user", "changedSince")
    assert len(walk(api, "user", changedSince="2099-01-01 00:00")) == len(emu.tenant(MAIN.domain).records("user"))
    assert walk(api, "part", changedSince="2099-01-01 00:00") == []
    emu.faults.add(Fault(status=503, resource="equipment"))
    assert api.get("/equipment/list").status_code == 503 and api.get("/equipment/list").status_code == 200
    emu.set_rate_limit(2, headers=True)
    answers = [api.get("/jobtype/list"), api.get("/part/list"), api.get("/activity/list")]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in answers] == ["1", "0", "0"]


def test_a_tenant_without_jobs_serves_users_job_types_parts_and_equipment(emu):
    hec = httpx.Client(base_url=emu.base_url, auth=(HEC.domain, HEC.api_key))
    totals = {r: hec.get(f"/{r}/list").json()["recordsTotal"] for r in ("user", "jobtype", "part", "equipment")}
    assert totals == {"user": 16, "jobtype": 6, "part": 20, "equipment": 8}
    sites = {s["id"] for s in walk(hec, "site")}
    assert all(e["site"] is None or e["site"]["id"] in sites for e in walk(hec, "equipment"))


def test_dimensions_leave_the_other_resources_and_what_add_builds_unchanged():
    bare = replace(MAIN, counts={k: v for k, v in MAIN.counts.items() if k not in DIMENSIONS})
    stores = [TenantStore(bare), TenantStore(MAIN)]
    for resource in bare.counts:
        assert stores[0].records(resource) == stores[1].records(resource), resource
    for store in stores:
        store.set_clock(datetime(2026, 7, 1, 8, 0))
    stores[1].add("user"), stores[1].add("equipment"), stores[1].add("activity")  # drawn apart from the bulk's
    assert [stores[0].add(r) for r in bare.counts] == [stores[1].add(r) for r in bare.counts]
