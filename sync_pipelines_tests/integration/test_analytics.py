"""The analytics layer: dbt models over both tenants' live rows, run by Dagster after the loads, on both warehouses.

Row counts equal the emulator's live records, joins on (tenant, <parent>_id) lose no row, a deletion leaves analytics
after a full run, the dbt tests are asset checks that fail on a planted duplicate, a failing model fails only its
own step, a run that changed nothing re-creates no view, and the README's analyst questions run as written.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import pytest
from dagster import AssetCheckEvaluation, AssetKey, DagsterInstance, ExecuteInProcessResult

from sync_pipelines.catalogue import ENTITIES, TENANTS
from sync_pipelines.definitions import defs
from sync_pipelines.warehouse.analytics import (
    PROJECT_DIR,
    DbtFailed,
    build_docs,
    prepared_manifest,
)
from sync_pipelines.warehouse.dialect import session
from sync_pipelines.warehouse.settings import DuckDBWarehouse, PostgresWarehouse, Warehouse, read_copy_path
from sync_pipelines.warehouse.settings import warehouse as configured_warehouse
from sync_pipelines_tests.analytics_models import MODELS, PARENT_MODEL, manifest, models_of
from sync_pipelines_tests.conftest import DOMAINS
from sync_pipelines_tests.helpers import readme_statements, run_entity_job, run_sync_all, step_failures
from synchroteam_emulator import Emulator

MAIN_TENANT, HEC_TENANT = TENANTS["synchroteam"], TENANTS["synchroteam_hec"]


def expected_counts(emulator: Emulator, model: str) -> dict[str, int]:
    """Per tenant that syncs the model's entity: its live records, or the sum of their child list's lengths; a
    tenant's job time entries are its activities on live jobs where it syncs activities."""
    entity, resource, child, _ = MODELS[model]
    counts = {}
    for tenant in TENANTS.values():
        if entity in tenant.entities:
            store = emulator.tenant(DOMAINS[tenant.name])
            records = store.records(resource)
            counts[tenant.name] = sum(len(r.get(child) or []) for r in records) if child else len(records)
            if model == "job_time_entries" and "activities" in tenant.entities and store.serves("activity"):
                jobs = {str(r["id"]) for r in records}
                activities = store.records("activity")
                counts[tenant.name] = sum(1 for a in activities if a["job"] and str(a["job"]["id"]) in jobs)
    return {tenant: count for tenant, count in counts.items() if count}


def rows(target: Warehouse, sql: str, params: list[Any] | None = None) -> list[tuple]:
    with session(target, read_only=True) as con:
        return con.rows(sql, params or [])


def counts_by_tenant(target: Warehouse, model: str) -> dict[str, int]:
    return {t: int(n) for t, n in rows(target, f"SELECT tenant, count(*) FROM analytics.{model} GROUP BY tenant")}


def dbt_checks(result: ExecuteInProcessResult) -> dict[str, AssetCheckEvaluation]:
    """The run's evaluations of the analytics checks (dbt's tests), by check name."""
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    return {
        e.check_name: e
        for e in evaluations
        if isinstance(e, AssetCheckEvaluation) and e.asset_key.path[0] == "analytics"
    }


def materialized(result: ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}


# -- the project, without a warehouse ----------------------------------------------------------------------------


def test_a_dbt_project_that_does_not_parse_fails_when_the_definitions_load_with_dbt_s_message(tmp_path):
    project = tmp_path / "analytics"
    shutil.copytree(PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "models" / "broken.sql").write_text("select {% if %} 1\n")  # Jinja that cannot be compiled
    with pytest.raises(DbtFailed, match="broken"):
        prepared_manifest(project)
    (project / "models" / "broken.sql").unlink()
    assert prepared_manifest(project).exists()  # and once fixed, it parses


# -- after sync_all, on both warehouses --------------------------------------------------------------------------


def test_after_sync_all_analytics_holds_every_live_record_of_both_tenants_typed_and_joinable(emulator, any_warehouse):
    planted = plant_last_month_s_time(emulator)
    result = run_sync_all(analytics=True)
    assert result.success
    checks = dbt_checks(result)
    tests = [node for node in manifest()["nodes"].values() if node["resource_type"] == "test"]
    assert len(checks) == len(tests) and all(check.passed for check in checks.values()), {
        name: check.passed for name, check in checks.items()
    }
    assert {f"analytics/{model}" for model in MODELS} <= materialized(result)
    assert_analytics_equals_emulator(emulator, any_warehouse)

    documented = models_of(manifest())
    for model in MODELS:
        columns = rows(
            any_warehouse,
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'analytics' "
            "AND table_name = ? ORDER BY ordinal_position",
            [model],
        )
        assert [name for name, _ in columns] == list(documented[model]["columns"]), model
        for name, kind in columns:
            assert_typed(model, name, kind.lower())

    for statement in readme_statements("analytics questions"):
        assert rows(any_warehouse, statement), statement
    hours, per_equipment = readme_statements("dimension questions")
    assert [(t, name, float(h)) for t, name, h in rows(any_warehouse, hours)] == [planted]
    assert {tuple(map(str, row)) for row in rows(any_warehouse, per_equipment)} == jobs_per_equipment(emulator)

    # a record deleted in the API leaves analytics after the next full run of its entity
    main, hec = emulator.tenant(DOMAINS["synchroteam"]), emulator.tenant(DOMAINS["synchroteam_hec"])
    gone = {"invoice": str(main.records("invoice")[3]["id"]), "job": str(main.records("job")[4]["id"])}
    gone_hec = str(hec.records("invoice")[1]["id"])
    main.delete("invoice", gone["invoice"])
    main.delete("job", gone["job"])
    hec.delete("invoice", gone_hec)
    for tenant, entity in ((MAIN_TENANT, "invoices"), (MAIN_TENANT, "jobs"), (HEC_TENANT, "invoices")):
        assert run_entity_job(tenant, ENTITIES[entity], {"mode": "full"}).success
    assert_analytics_equals_emulator(emulator, any_warehouse)
    assert not rows(
        any_warehouse, "SELECT 1 FROM analytics.invoices WHERE tenant = 'synchroteam' AND id = ?", [gone["invoice"]]
    )
    assert not rows(
        any_warehouse,
        "SELECT 1 FROM analytics.invoice_lines WHERE tenant = 'synchroteam_hec' AND invoice_id = ?",
        [gone_hec],
    )
    assert not rows(any_warehouse, "SELECT 1 FROM analytics.job_parts WHERE job_id = ?", [gone["job"]])


def plant_last_month_s_time(emulator: Emulator) -> tuple[str, str, float]:
    """Two activities on a job in the middle of last month (the emulator's own time is older): 2 h 30 of work and
    30 min of travel by the job's technician. What the README's question must answer: (tenant, name, hours)."""
    store = emulator.tenant(DOMAINS["synchroteam"])
    job = store.records("job")[5]
    [user] = [u for u in store.records("user") if u["id"] == job["technician"]["id"]]
    day = (date.today().replace(day=1) - timedelta(days=1)).replace(day=15).isoformat()
    for kind, start, end in (("travel", "08:30", "09:00"), ("work", "09:00", "11:30")):
        store.add(
            "activity",
            {
                "activityType": {"id": 1 if kind == "work" else 2, "name": kind},
                "user": {"id": user["id"], "login": user["login"]},
                "job": {"id": job["id"]},
                "dateStart": f"{day} {start}",
                "dateEnd": f"{day} {end}",
            },
        )
    return "synchroteam", f"{user['firstName']} {user['lastName']}", 3.0


def jobs_per_equipment(emulator: Emulator) -> set[tuple[str, ...]]:
    """(tenant, equipment id, name, jobs at its site) for every piece of equipment, as text."""
    expected = set()
    for tenant in TENANTS.values():
        store = emulator.tenant(DOMAINS[tenant.name])
        jobs = store.records("job") if store.serves("job") else []
        for piece in store.records("equipment"):
            site = (piece.get("site") or {}).get("id")
            count = sum(1 for job in jobs if site is not None and (job.get("site") or {}).get("id") == site)
            expected.add((tenant.name, str(piece["id"]), piece["name"], str(count)))
    return expected


def assert_analytics_equals_emulator(emulator: Emulator, target: Warehouse) -> None:
    for model, (_, _, _, parent_id) in MODELS.items():
        assert counts_by_tenant(target, model) == expected_counts(emulator, model), model
        if parent_id:  # the join on (tenant, <parent>_id) loses no row
            parent = PARENT_MODEL[parent_id]
            joined = rows(
                target,
                f"SELECT count(*) FROM analytics.{model} c JOIN analytics.{parent} p "
                f"ON p.tenant = c.tenant AND p.id = c.{parent_id}",
            )[0][0]
            assert joined == sum(expected_counts(emulator, model).values()), model


def assert_typed(model: str, column: str, kind: str) -> None:
    """Ids as text, amounts and quantities DECIMAL, instants TIMESTAMPTZ, as both engines name them."""
    if column == "id" or column.endswith("_id") or column == "tenant":
        assert kind in ("varchar", "text"), (model, column, kind)
    elif column in ("quantity", "unit_price", "tax_rate", "total") or column.startswith("total_"):
        assert kind in ("decimal(38,9)", "numeric"), (model, column, kind)
    elif column.startswith(("date_created", "date_modified", "date_paid", "scheduled_", "actual_")) or column in (
        "started_at",
        "ended_at",
    ):
        assert kind == "timestamp with time zone", (model, column, kind)


def test_a_planted_duplicate_fails_the_unique_check_and_holds_up_neither_the_load_nor_the_read_copy(
    emulator, any_warehouse
):
    assert run_entity_job(HEC_TENANT, ENTITIES["invoices"], analytics=True).success
    with session(any_warehouse) as con:  # a second row with the id of the first, as a bad merge would leave
        con.execute("CREATE TEMP TABLE planted AS SELECT * FROM synchroteam_hec.invoices LIMIT 1")
        con.execute("UPDATE planted SET _dlt_id = 'planted-duplicate', status = 'archived'")  # and a bad status
        con.execute("INSERT INTO synchroteam_hec.invoices SELECT * FROM planted")
    result = run_entity_job(HEC_TENANT, ENTITIES["invoices"], raise_on_error=False, analytics=True)
    checks = dbt_checks(result)
    assert not checks["unique_key_invoices_tenant__id"].passed
    assert not checks["invoices_status_accepted_values"].passed
    assert checks["unique_key_invoices_tenant__id"].severity.value == "ERROR"
    assert (
        checks["not_null_invoices_id"].passed
        and checks["unique_key_invoice_lines_tenant__invoice_id__line_number"].passed
    )
    assert {"synchroteam_hec/invoices", "analytics/invoices", "analytics/invoice_lines"} <= materialized(result)
    assert step_failures(result) == {}  # a failed check fails no step
    if isinstance(any_warehouse, DuckDBWarehouse):
        assert "warehouse/read_copy" in materialized(result)  # and skips nothing downstream

    with session(any_warehouse) as con:
        con.execute("DELETE FROM synchroteam_hec.invoices WHERE _dlt_id = 'planted-duplicate'")
    healed = dbt_checks(run_entity_job(HEC_TENANT, ENTITIES["invoices"], analytics=True))
    assert healed["unique_key_invoices_tenant__id"].passed and healed["invoices_status_accepted_values"].passed


def test_a_model_that_fails_fails_the_analytics_step_with_dbt_s_message_after_the_loads_and_heals_next_run(
    emulator, any_warehouse
):
    assert run_sync_all(analytics=True).success
    # HEC's missing job number appears as a column no cast makes a number: the re-defined view fails to read
    # (PostgreSQL refuses it at once, DuckDB when every row is read before the commit) and is rolled back
    array = "'{1}'" if isinstance(any_warehouse, PostgresWarehouse) else "[1]"
    with session(any_warehouse) as con:
        con.execute(f"ALTER TABLE synchroteam_hec.invoices ADD COLUMN job__num INTEGER[] DEFAULT {array}")
    hec = emulator.tenant(DOMAINS["synchroteam_hec"])
    hec.add("invoice")
    result = run_entity_job(HEC_TENANT, ENTITIES["invoices"], raise_on_error=False, analytics=True)
    failures = step_failures(result)
    assert set(failures) == {"analytics"}, failures
    assert "invoices" in failures["analytics"] and "bigint" in failures["analytics"].lower(), failures
    assert "synchroteam_hec/invoices" in materialized(result)  # the load committed first
    assert "analytics/invoice_lines" in materialized(result)  # the step's other model is built
    loaded = len(hec.records("invoice"))
    # analysts keep the previous view (its definition rolled back), which shows the new load
    assert counts_by_tenant(any_warehouse, "invoices")["synchroteam_hec"] == loaded
    if isinstance(any_warehouse, DuckDBWarehouse):  # the read copy got the load all the same, from the failing step
        with duckdb.connect(str(read_copy_path(any_warehouse.path)), read_only=True) as copy:
            assert copy.execute("SELECT count(*) FROM synchroteam_hec.invoices").fetchone()[0] == loaded

    with session(any_warehouse) as con:
        con.execute("DROP VIEW synchroteam_hec.invoices_live")  # the next load defines it again
        con.execute("ALTER TABLE synchroteam_hec.invoices DROP COLUMN job__num")
    healed = run_entity_job(HEC_TENANT, ENTITIES["invoices"], analytics=True)
    assert healed.success and "analytics/invoices" in materialized(healed)
    assert counts_by_tenant(any_warehouse, "invoices")["synchroteam_hec"] == loaded


def test_a_run_that_changed_no_column_re_creates_no_view(emulator, any_warehouse):
    assert run_sync_all(analytics=True).success
    before = view_identities(any_warehouse)
    assert set(before) == set(MODELS)
    second = run_sync_all(analytics=True)
    assert second.success and {f"analytics/{model}" for model in MODELS} <= materialized(second)
    assert view_identities(any_warehouse) == before
    if isinstance(any_warehouse, DuckDBWarehouse):  # a run that loads nothing writes nothing, analytics included
        copy = read_copy_path(any_warehouse.path).stat()
        nothing = run_entity_job(MAIN_TENANT, ENTITIES["invoices"], {"mode": "retry_rejected"}, analytics=True)
        assert nothing.success and "analytics/invoices" in materialized(nothing)
        after = read_copy_path(any_warehouse.path).stat()
        assert (after.st_ino, after.st_mtime_ns) == (copy.st_ino, copy.st_mtime_ns)


QUIET = {"lookback_minutes": 0, "revisit_days": 0}  # an incremental run that re-reads nothing already loaded


def analytics_said(instance: DagsterInstance, result: ExecuteInProcessResult) -> list[str]:
    """What the run's analytics step said it did (its one summary line, or why dbt did not start)."""
    return [e.user_message for e in instance.all_logs(result.run_id) if e.user_message.startswith("Analytics:")]


def test_dbt_starts_only_when_a_model_would_change_or_when_asked_for_alone_and_the_checks_run_after_every_load(
    emulator, warehouse
):
    instance = DagsterInstance.ephemeral()  # one instance for every run: it keeps what dbt last built from
    first = run_entity_job(HEC_TENANT, ENTITIES["invoices"], QUIET, instance=instance, analytics=True)
    assert {"analytics/invoices", "analytics/invoice_lines"} <= materialized(first)
    assert analytics_said(instance, first)[0].startswith("Analytics: 2 models (")  # dbt built them
    tests = len(dbt_checks(first))  # the two models' tests, as dbt ran them

    nothing = run_entity_job(HEC_TENANT, ENTITIES["invoices"], QUIET, instance=instance, analytics=True)
    assert nothing.success and materialized(nothing) >= {"synchroteam_hec/invoices"}
    assert not {key for key in materialized(nothing) if key.startswith("analytics/")}
    assert dbt_checks(nothing) == {}
    said = analytics_said(instance, nothing)
    assert len(said) == 1 and "dbt not started" in said[0] and "synchroteam_hec/invoices" in said[0], said

    # rows changed, no model did: the tests run from dbt's compiled SQL, dbt does not start
    hec = emulator.tenant(DOMAINS["synchroteam_hec"])

    def changed_run() -> ExecuteInProcessResult:
        """A new HEC invoice, then the entity's job, analytics included, on the same instance."""
        hec.add("invoice")
        return run_entity_job(
            HEC_TENANT, ENTITIES["invoices"], QUIET, instance=instance, raise_on_error=False, analytics=True
        )

    hec.add("invoice")
    changed = run_entity_job(HEC_TENANT, ENTITIES["invoices"], QUIET, instance=instance, analytics=True)
    assert {"analytics/invoices", "analytics/invoice_lines"} <= materialized(changed)
    assert counts_by_tenant(configured_warehouse(), "invoices")["synchroteam_hec"] == len(hec.records("invoice"))
    said = analytics_said(instance, changed)
    assert len(said) == 1 and "dbt not started" in said[0] and f"{tests} of {tests} tests passed" in said[0], said
    assert set(dbt_checks(changed)) == set(dbt_checks(first)) and all(c.passed for c in dbt_checks(changed).values())

    # a row the sync did not write (here planted by hand; a reconciliation's load alike) is a change too
    with session(configured_warehouse()) as con:
        con.execute("CREATE TEMP TABLE planted AS SELECT * FROM synchroteam_hec.invoices LIMIT 1")
        con.execute("UPDATE planted SET _dlt_id = 'planted-duplicate'")
        con.execute("INSERT INTO synchroteam_hec.invoices SELECT * FROM planted")
    planted = run_entity_job(
        HEC_TENANT, ENTITIES["invoices"], QUIET, instance=instance, raise_on_error=False, analytics=True
    )
    duplicate = dbt_checks(planted)["unique_key_invoices_tenant__id"]
    assert not duplicate.passed and duplicate.severity.value == "ERROR"
    assert duplicate.description == "Got 1 result, configured to fail if != 0"  # dbt's own words
    assert duplicate.metadata["dagster_dbt/failed_row_count"].value == 1
    assert "dbt not started" in analytics_said(instance, planted)[0]

    # a column dlt adds to a table re-defines the views that read it: dbt builds them, then steps aside again
    with session(configured_warehouse()) as con:
        con.execute("ALTER TABLE synchroteam_hec.invoices ADD COLUMN note TEXT")
    widened = changed_run()
    assert analytics_said(instance, widened)[0].startswith("Analytics: 2 models (")
    assert not dbt_checks(widened)["unique_key_invoices_tenant__id"].passed  # dbt's own run of the test
    after = changed_run()
    assert "dbt not started" in analytics_said(instance, after)[0]

    # a kept query that no longer runs (here: broken by hand) is left to dbt, which runs and keeps it anew
    with session(configured_warehouse()) as con:
        con.execute("UPDATE analytics._analytics_tests SET sql = 'select no_such_column' WHERE name <> ''")
    broken = changed_run()
    said = analytics_said(instance, broken)
    assert "could not run" in said[0] and said[1].startswith("Analytics: 2 models ("), said
    mended = changed_run()
    assert "dbt not started" in analytics_said(instance, mended)[0]

    alone = defs.resolve_job_def("sync_all").execute_in_process(
        asset_selection=[AssetKey(["analytics", "invoices"])], instance=instance, raise_on_error=False
    )
    assert materialized(alone) == {"analytics/invoices"}
    # dbt ran, with the model the selected one's tests read besides (invoice_lines' relationship to invoices)
    assert analytics_said(instance, alone)[0].startswith("Analytics: 2 models (")


def view_identities(target: Warehouse) -> dict[str, Any]:
    """Each analytics view's identity: PostgreSQL's oid and row version; DuckDB's SQL and comment (and the file)."""
    if isinstance(target, PostgresWarehouse):
        sql = (
            "SELECT c.relname, c.oid::bigint, c.xmin::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'analytics' AND c.relkind = 'v'"
        )
    else:
        sql = "SELECT view_name, sql, comment FROM duckdb_views() WHERE schema_name = 'analytics'"
    return {name: tuple(rest) for name, *rest in rows(target, sql)}


def test_the_read_copy_holds_analytics_and_the_tenants_tables_not_dlt_s_staging_and_make_docs_builds_the_site(
    emulator, warehouse
):
    assert run_sync_all(analytics=True).success
    with duckdb.connect(str(read_copy_path(warehouse)), read_only=True) as copy:
        schemas = {s for (s,) in copy.execute("SELECT schema_name FROM duckdb_schemas() WHERE NOT internal").fetchall()}
        assert {"analytics", "synchroteam", "synchroteam_hec"} <= schemas
        assert not {s for s in schemas if s.endswith("_staging")}
        assert copy.execute("SELECT count(*) FROM analytics.invoices").fetchone()[0] == sum(
            expected_counts(emulator, "invoices").values()
        )
    index = build_docs(DuckDBWarehouse(warehouse))
    assert index.exists()
    catalog = json.loads((index.parent / "catalog.json").read_text())
    assert catalog["nodes"]["model.analytics.invoices"]["columns"]["total_incl_tax"]["type"] == "DECIMAL(38,9)"
    # the relations as analysts open them (`make sql` on the read copy), the sources' columns described
    docs_manifest = json.loads((index.parent / "manifest.json").read_text())
    invoices = docs_manifest["nodes"]["model.analytics.invoices"]
    assert invoices["relation_name"].replace('"', "") == f"{read_copy_path(warehouse).stem}.analytics.invoices"
    source = docs_manifest["sources"]["source.analytics.synchroteam.invoices"]
    assert source["description"] and source["columns"]["date_modified"]["description"]
    assert "paid" in source["columns"]["status"]["description"]


def test_no_password_reaches_dbt_s_files(emulator, pg_warehouse):
    from sync_pipelines_tests.helpers import files_containing
    from sync_pipelines_tests.postgres_server import PASSWORD

    assert run_sync_all(analytics=True).success
    build_docs(pg_warehouse)
    assert files_containing(PROJECT_DIR, PASSWORD.encode()) == []


def test_on_postgresql_a_view_to_re_define_waits_10_s_for_an_analyst_then_fails_alone_and_never_blocks_the_reads(
    emulator, pg_warehouse
):
    import threading
    import time

    from sync_pipelines.warehouse.dialect import postgres_connection

    assert run_entity_job(HEC_TENANT, ENTITIES["invoices"], analytics=True).success
    view = view_identities(pg_warehouse)["invoices"]
    with session(pg_warehouse) as con:  # a field HEC never sent, as dlt adds it: analytics.invoices must change
        con.execute("ALTER TABLE synchroteam_hec.invoices ADD COLUMN job__id VARCHAR")
    analyst = postgres_connection(pg_warehouse, application_name="the test's analyst")
    analyst.set_session(isolation_level="REPEATABLE READ", readonly=True)
    cur = analyst.cursor()
    cur.execute("SET statement_timeout = '5s'")  # a read the run blocked would fail here
    cur.execute("SELECT count(*) FROM analytics.invoices")
    before = cur.fetchone()
    results: list[ExecuteInProcessResult] = []
    run = threading.Thread(
        target=lambda: results.append(
            run_entity_job(HEC_TENANT, ENTITIES["invoices"], raise_on_error=False, analytics=True)
        )
    )
    started = time.monotonic()
    run.start()
    while run.is_alive():  # the analyst keeps reading, never waiting, while the view waits for them
        cur.execute("SELECT count(*) FROM analytics.invoices")
        assert cur.fetchone() == before
        time.sleep(0.2)
    waited = time.monotonic() - started
    analyst.close()
    (result,) = results
    failures = step_failures(result)
    assert set(failures) == {"analytics"} and "lock timeout" in failures["analytics"], failures
    assert "synchroteam_hec/invoices" in materialized(result) and waited >= 10
    assert view_identities(pg_warehouse)["invoices"] == view  # the previous view, untouched
    # the analyst gone, the next run re-defines it
    assert run_entity_job(HEC_TENANT, ENTITIES["invoices"], analytics=True).success
    assert view_identities(pg_warehouse)["invoices"] != view


def test_activities_join_their_users_and_jobs_within_the_tenant_and_say_how_long_they_lasted(emulator, warehouse):
    assert run_sync_all(analytics=True).success
    target = configured_warehouse()
    store = emulator.tenant(DOMAINS["synchroteam"])
    expected = {
        str(a["id"]): (str(a["user"]["id"]), str(a["job"]["id"]) if a["job"] else None, a["activityType"]["name"])
        for a in store.records("activity")
    }
    minutes = {
        str(a["id"]): int(
            (datetime.fromisoformat(a["dateEnd"]) - datetime.fromisoformat(a["dateStart"])).total_seconds()
        )
        // 60
        for a in store.records("activity")
    }
    found = rows(
        target,
        "SELECT a.id, a.user_id, a.job_id, a.activity_type_name, a.duration_minutes, u.login, j.technician_id "
        "FROM analytics.activities a JOIN analytics.users u ON u.tenant = a.tenant AND u.id = a.user_id "
        "LEFT JOIN analytics.jobs j ON j.tenant = a.tenant AND j.id = a.job_id",
    )
    assert {row[0]: tuple(row[1:4]) for row in found} == expected
    assert {row[0]: row[4] for row in found} == minutes
    assert all(row[6] is None or row[6] == row[1] for row in found)  # the job's technician logged its time
    # parts by reference: every part a job used, the service with the empty reference included
    unmatched = rows(
        target,
        "SELECT count(*) FROM analytics.job_parts jp LEFT JOIN analytics.parts p "
        "ON p.tenant = jp.tenant AND p.reference = jp.reference WHERE p.id IS NULL",
    )
    assert unmatched == [(0,)]
    assert rows(target, "SELECT DISTINCT tenant FROM analytics.equipment ORDER BY 1") == [
        ("synchroteam",),
        ("synchroteam_hec",),
    ]
