"""The dimensions analysts join to (users, activities, equipment, job types, parts) against the emulator over real
HTTP: loaded exactly, followed incrementally, job types as a lookup list read whole, a missing list failing alone."""

from __future__ import annotations

import duckdb

from sync_pipelines.catalogue import DIMENSIONS, ENTITIES, TENANTS, tenant_pipeline_name
from sync_pipelines_tests.compare import assert_warehouse_equals_emulator, table_exists
from sync_pipelines_tests.conftest import DOMAINS, MAIN
from sync_pipelines_tests.helpers import requests_by, run_entity_job, run_sync_all, step_failures

MAIN_TENANT = TENANTS["synchroteam"]
JOB_TYPES = ENTITIES["job_types"]


def loads_of(path, tenant: str) -> int:
    """How many loads of the tenant's pipeline the warehouse holds (a run that loads nothing adds none)."""
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            f"SELECT count(*) FROM {tenant}._dlt_loads WHERE schema_name = ?", [tenant_pipeline_name(TENANTS[tenant])]
        ).fetchone()[0]


def live_ids(path, table: str) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {row[0] for row in con.execute(f"SELECT id FROM synchroteam.{table}_live").fetchall()}


def test_a_first_sync_all_loads_every_dimension_of_both_tenants_exactly(emulator, warehouse):
    result = run_sync_all()

    assert result.success
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, entities=list(DIMENSIONS))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        # the service job parts and invoice lines name by an empty reference is a part like the others
        assert con.execute("SELECT type FROM synchroteam.parts WHERE reference = ''").fetchall() == [("service",)]
        types = dict(
            con.execute(
                "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'synchroteam' AND column_name IN ('date_start', 'date_end', 'price', "
                "'tax_rate', 'duration')"
            ).fetchall()
        )
        assert types["activities.date_start"] == types["activities.date_end"] == "TIMESTAMP WITH TIME ZONE"
        assert types["parts.price"] == types["parts.tax_rate"] == "DECIMAL(38,9)"
        assert types["job_types.duration"] == "BIGINT"
        # HEC has no jobs, so no activities
        assert not table_exists(con, "synchroteam_hec", "activities")
    hec = emulator.tenant(DOMAINS["synchroteam_hec"])
    assert not hec.serves("activity") and requests_by(emulator, hec.domain, "activity") == (0, 0)


def test_edits_an_addition_and_deletions_of_the_dimensions_are_followed(emulator, warehouse):
    store = emulator.tenant(MAIN.domain)
    run_sync_all()
    store.advance_clock(minutes=5)
    user, activity, part = (store.records(r)[3] for r in ("user", "activity", "part"))
    store.edit("user", user["id"])
    store.edit("activity", activity["id"])
    store.edit("part", part["id"])
    job_type, gone_type = store.records("jobtype")[:2]
    store.edit("jobtype", job_type["id"])  # a lookup: no dateModified to bump
    added = store.add("equipment")
    gone_equipment = store.records("equipment")[0]
    store.delete("equipment", gone_equipment["id"])
    store.delete("jobtype", gone_type["id"])
    store.advance_clock(minutes=5)

    for name in DIMENSIONS:
        assert run_entity_job(MAIN_TENANT, ENTITIES[name]).success

    # edits and the addition landed; the deleted job type left the live view at once, the equipment is still there
    assert_warehouse_equals_emulator(
        emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=list(DIMENSIONS), extra_ids_allowed=True
    )
    assert str(added["id"]) in live_ids(warehouse, "equipment")
    assert str(gone_type["id"]) not in live_ids(warehouse, "job_types")
    assert str(gone_equipment["id"]) in live_ids(warehouse, "equipment")

    assert run_entity_job(MAIN_TENANT, ENTITIES["equipment"], {"mode": "full"}).success
    assert str(gone_equipment["id"]) not in live_ids(warehouse, "equipment")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        deleted = con.execute(
            "SELECT id FROM synchroteam.job_types WHERE _deleted_at IS NOT NULL "
            "UNION ALL SELECT id FROM synchroteam.equipment WHERE _deleted_at IS NOT NULL"
        ).fetchall()
    assert sorted(deleted) == sorted([(str(gone_type["id"]),), (str(gone_equipment["id"]),)])


def test_a_job_types_run_where_nothing_changed_loads_nothing_and_an_edit_loads_that_type_alone(emulator, warehouse):
    store = emulator.tenant(MAIN.domain)
    assert run_entity_job(MAIN_TENANT, JOB_TYPES).success
    loads = loads_of(warehouse, "synchroteam")

    quiet = run_entity_job(MAIN_TENANT, JOB_TYPES)
    assert quiet.success and loads_of(warehouse, "synchroteam") == loads  # listed whole, loaded nothing
    assert requests_by(emulator, MAIN.domain, "jobtype") == (2, 0)  # one page each run, no details

    edited = store.records("jobtype")[-1]
    store.edit("jobtype", edited["id"])
    assert run_entity_job(MAIN_TENANT, JOB_TYPES).success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        newest = con.execute("SELECT max(_dlt_load_id) FROM synchroteam.job_types").fetchone()[0]
        reloaded = con.execute("SELECT id FROM synchroteam.job_types WHERE _dlt_load_id = ?", [newest]).fetchall()
    assert reloaded == [(str(edited["id"]),)]
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["job_types"])


def test_a_tenant_without_activity_list_fails_only_that_entity_naming_the_variable_that_switches_it_off(
    emulator, warehouse
):
    emulator.set_no_activity_list(tenant=MAIN.domain)

    result = run_sync_all(raise_on_error=False)

    failures = step_failures(result)
    assert set(failures) == {"synchroteam"}, failures  # the tenant's step, once its other entities are loaded
    message = failures["synchroteam"]
    assert message.startswith("[no_such_resource]") and "activity/list" in message
    assert "SYNCHROTEAM_ENTITIES" in message and "activities" in message
    assert requests_by(emulator, MAIN.domain, "activity") == (1, 0)  # not retried
    assert_warehouse_equals_emulator(
        emulator, warehouse, DOMAINS, entities=[e for e in DIMENSIONS if e != "activities"]
    )


def test_a_quarantined_activity_is_read_again_from_the_list_which_is_all_the_api_has(emulator, warehouse):
    store = emulator.tenant(MAIN.domain)
    activities = ENTITIES["activities"]
    assert run_entity_job(MAIN_TENANT, activities).success
    store.advance_clock(minutes=5)
    broken = store.records("activity")[7]
    store.edit("activity", broken["id"], {"dateStart": "le 10 janvier"})  # no timestamp: quarantined
    assert run_entity_job(MAIN_TENANT, activities).success
    store.advance_clock(minutes=5)
    store.edit("activity", broken["id"], {"dateStart": broken["dateStart"]}, bump=False)  # fixed, dateModified kept
    emulator.clear_requests()

    assert run_entity_job(MAIN_TENANT, activities).success

    with duckdb.connect(str(warehouse), read_only=True) as con:
        status = con.execute(
            "SELECT status FROM synchroteam._rejected_records WHERE entity = 'activities' AND record_id = ?",
            [str(broken["id"])],
        ).fetchall()
    assert status == [("resolved",)]
    assert requests_by(emulator, MAIN.domain, "activity")[1] == 0  # activity/details does not exist: never asked
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["activities"])


def test_an_entity_s_first_job_runs_its_relationships_to_entities_not_synced_yet_and_warns(emulator, warehouse):
    """The jobs' schedule fires before the users' on a new deployment: the jobs' job builds the views its tests
    read (users, job types, parts: empty, their tables not loaded yet), so the tests run and warn, and nothing
    fails."""
    result = run_entity_job(MAIN_TENANT, ENTITIES["jobs"], raise_on_error=False, analytics=True)

    assert step_failures(result) == {}
    evaluations = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    technician = [data for name, data in evaluations.items() if "technician_id" in name and "users" in name]
    assert technician and not technician[0].passed and technician[0].severity.value == "WARN", sorted(evaluations)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM analytics.users").fetchone() == (0,)


def test_a_first_customers_job_builds_the_views_its_tests_reach_through_equipment(emulator, warehouse):
    """Equipment's test reads customers, and its other test reads sites: a first customers job needs both views."""
    result = run_entity_job(MAIN_TENANT, ENTITIES["customers"], raise_on_error=False, analytics=True)

    assert step_failures(result) == {}


def test_job_time_entries_come_from_the_jobs_details_until_the_tenant_has_activities_then_from_those(
    emulator, warehouse
):
    store = emulator.tenant(MAIN.domain)

    assert run_entity_job(MAIN_TENANT, ENTITIES["jobs"], analytics=True).success
    from_details = {str(e["id"]) for job in store.records("job") for e in job.get("timeEntries") or []}
    assert from_details and time_entry_ids(warehouse) == from_details

    assert run_entity_job(MAIN_TENANT, ENTITIES["activities"], analytics=True).success
    from_activities = {str(a["id"]) for a in store.records("activity") if a["job"]}
    assert time_entry_ids(warehouse) == from_activities  # the activities' job rebuilt the view over them


def time_entry_ids(path) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {row[0] for row in con.execute("SELECT id FROM analytics.job_time_entries").fetchall()}
