"""The warehouse on PostgreSQL (`SYNC_WAREHOUSE_URL`), against a real server the tests start (conftest `postgres`).

The exactness scenarios run on both warehouses (`any_warehouse`); what only PostgreSQL has (an analyst's snapshot,
the advisory lock per tenant schema, connection errors) runs on it alone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest
from dagster import DagsterInstance, ExecuteInProcessResult
from dlt.common.versioned_state import decompress_state

from sync_pipelines.catalogue import ENTITIES, TENANTS, tenant_entities, tenant_pipeline_name
from sync_pipelines.synchroteam.plan import Cursor
from sync_pipelines.warehouse.analytics import PROJECT_DIR as ANALYTICS_PROJECT
from sync_pipelines.warehouse.dialect import postgres_connection, session
from sync_pipelines.warehouse.lock import advisory_key, pg_locks_ids
from sync_pipelines.warehouse.settings import PostgresWarehouse, Warehouse
from sync_pipelines.warehouse.settings import warehouse as configured_warehouse
from sync_pipelines_tests.analytics_models import MODELS
from sync_pipelines_tests.compare import assert_warehouse_equals_emulator
from sync_pipelines_tests.conftest import DOMAINS, HEC, MAIN
from sync_pipelines_tests.helpers import run_entity_job, run_sync_all, step_failures
from sync_pipelines_tests.postgres_server import PASSWORD, PostgresServer
from synchroteam_emulator import Emulator

REPO = Path(__file__).resolve().parents[2]
MAIN_TENANT, HEC_TENANT = TENANTS["synchroteam"], TENANTS["synchroteam_hec"]
INVOICES = ENTITIES["invoices"]
WAIT_SECONDS = 120


def run_every_entity(config: dict) -> None:
    for tenant in TENANTS.values():
        for entity in tenant_entities(tenant):
            assert run_entity_job(tenant, entity, config).success, f"{tenant.name}.{entity.name}"


def live_ids(target: Warehouse, schema: str, view: str) -> set[str]:
    with session(target, read_only=True) as con:
        return {row[0] for row in con.rows(f'SELECT id FROM "{schema}"."{view}"')}


def change_both_tenants(emulator: Emulator) -> dict[str, list[str]]:
    """Edits (new child lists), additions and deletions in both tenants; the ids deleted, by schema.table."""
    main, hec = emulator.tenant(MAIN.domain), emulator.tenant(HEC.domain)
    main.edit("invoice", main.records("invoice")[0]["id"])
    main.edit("job", main.records("job")[3]["id"], {"description": "Replace the boiler valve"})
    main.add("customer")
    main.add("job")
    hec.edit("creditnote", hec.records("creditnote")[-1]["id"])
    hec.add("invoice")
    deleted = {
        "synchroteam.invoices": [str(main.records("invoice")[5]["id"])],
        "synchroteam.jobs": [str(main.records("job")[7]["id"])],
        "synchroteam_hec.invoices": [str(hec.records("invoice")[2]["id"])],
    }
    main.delete("invoice", deleted["synchroteam.invoices"][0])
    main.delete("job", deleted["synchroteam.jobs"][0])
    hec.delete("invoice", deleted["synchroteam_hec.invoices"][0])
    return deleted


# -- exactness, on both warehouses ------------------------------------------------------------------------------


def test_sync_all_then_changes_then_a_full_run_leave_the_warehouse_equal_to_the_emulator(emulator, any_warehouse):
    assert run_sync_all().success
    assert_warehouse_equals_emulator(emulator, any_warehouse, DOMAINS)

    deleted = change_both_tenants(emulator)
    assert run_sync_all().success  # incremental: edits and additions, deletions not seen yet
    assert_warehouse_equals_emulator(emulator, any_warehouse, DOMAINS, extra_ids_allowed=True)

    run_every_entity({"mode": "full"})
    assert_warehouse_equals_emulator(emulator, any_warehouse, DOMAINS, extra_ids_allowed=True)
    for table, ids in deleted.items():
        schema, name = table.split(".")
        with session(any_warehouse, read_only=True) as con:
            marked = dict(con.rows(f'SELECT id, "_deleted_at" IS NOT NULL FROM "{schema}"."{name}"'))
        assert {i for i, gone in marked.items() if gone} == set(ids), table
        api = {str(r["id"]) for r in emulator.tenant(DOMAINS[schema]).records(ENTITIES[name].resource)}
        assert live_ids(any_warehouse, schema, f"{name}_live") == api, table
    with session(any_warehouse, read_only=True) as con:  # child rows follow their parent out of the live view
        (orphans,) = con.rows(
            "SELECT count(*) FROM synchroteam.jobs__parts_live l JOIN synchroteam.jobs j ON j._dlt_id = l._dlt_root_id "
            "WHERE j._deleted_at IS NOT NULL"
        )[0]
    assert orphans == 0


def test_two_runs_of_one_tenant_take_turns_while_another_tenant_loads_at_once(emulator, any_warehouse, tmp_path):
    """Three `dagster job execute` processes, three DAGSTER_HOMEs (no pool between them): two of the same
    tenant's invoices, one of the other tenant's. The warehouse lock alone orders them."""
    from sync_pipelines_tests.processes import dagster_home, start_job, until, wait
    from synchroteam_emulator import Fault

    # the first of the main tenant's invoice pages is held until the other run of that tenant is seen waiting:
    # the two overlap whatever the machine's start-up jitter
    release = threading.Event()
    gate = emulator.faults.add(Fault(hold=release, tenant=MAIN.domain, resource="invoice", action="list"))
    jobs = ["sync_synchroteam__invoices", "sync_synchroteam__invoices", "sync_synchroteam_hec__invoices"]
    logs = [tmp_path / f"run{i}.log" for i in range(len(jobs))]
    runs = [start_job(job, dagster_home(tmp_path, f"home{i}"), logs[i]) for i, job in enumerate(jobs)]
    postgres = isinstance(any_warehouse, PostgresWarehouse)
    # on PostgreSQL, one of the two waits for the other's sync, named; DuckDB's one file has one writer
    waited = (
        r"Waiting for the warehouse schema synchroteam .*: run \w{8} step synchroteam\b"
        if postgres
        else r"Waiting for the warehouse "
    )
    try:
        until(lambda: gate.times == 0, "a run of the main tenant holding the lock, mid-request", timeout=180)
        until(
            lambda: any(re.search(waited, log.read_text()) for log in logs[:2]),
            "the other run of the main tenant waiting for it",
            timeout=180,
        )
        if postgres:  # the other tenant's schema is free: its whole run ends while the main tenant's is held
            assert wait(runs[2], timeout=180) == 0, logs[2].read_text()[-6000:]
            assert not release.is_set()
    finally:
        release.set()
    codes = [wait(run, timeout=300) for run in runs]
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0, 0], "\n\n".join(text[-6000:] for text, code in zip(texts, codes) if code)
    if postgres:
        assert "Waiting for the warehouse schema synchroteam_hec" not in texts[2]
    assert_warehouse_equals_emulator(emulator, any_warehouse, DOMAINS, entities=["invoices"])


def test_a_third_tenant_is_a_catalogue_row_and_its_variables(any_warehouse):
    done = subprocess.run(
        [sys.executable, "-m", "sync_pipelines_tests.third_tenant"],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "THIRD-TENANT OK" in done.stdout, done.stderr[-4000:]
    with session(any_warehouse, read_only=True) as con:
        tables = {
            name
            for (name,) in con.rows(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'synchroteam_north'"
            )
        }
    assert {"invoices", "invoices__lines", "customers", "invoices_live", "customers_live"} <= tables


# -- only on PostgreSQL ------------------------------------------------------------------------------------------


def analyst_connection(target: PostgresWarehouse) -> psycopg2.extensions.connection:
    con = postgres_connection(target, application_name="the test's analyst")
    con.set_session(isolation_level="REPEATABLE READ", readonly=True)
    return con


def snapshot(cur) -> tuple:
    cur.execute(
        "SELECT (SELECT count(*) FROM synchroteam.invoices_live), (SELECT count(*) FROM synchroteam.invoices__lines_live),"
        " (SELECT count(*) FROM synchroteam.invoices WHERE _deleted_at IS NOT NULL),"
        " (SELECT string_agg(md5(i::text), '' ORDER BY i.id) FROM synchroteam.invoices i),"
        " (SELECT count(*) FROM analytics.invoices), (SELECT count(*) FROM analytics.invoice_lines)"
    )
    return cur.fetchone()


def test_an_analysts_snapshot_is_neither_blocked_nor_shown_a_half_loaded_state(emulator, pg_warehouse):
    assert run_entity_job(MAIN_TENANT, INVOICES, analytics=True)  # the snapshot reads analytics too.success
    main = emulator.tenant(MAIN.domain)
    for invoice in main.records("invoice")[:20]:
        main.edit("invoice", invoice["id"])
    for _ in range(5):
        main.add("invoice")
    main.delete("invoice", main.records("invoice")[10]["id"])

    analyst = analyst_connection(pg_warehouse)
    cur = analyst.cursor()
    cur.execute("SET statement_timeout = '5s'")  # a read the sync blocked would fail here
    before = snapshot(cur)
    results: list[ExecuteInProcessResult] = []
    sync = threading.Thread(target=lambda: results.append(run_entity_job(MAIN_TENANT, INVOICES, {"mode": "full"})))
    sync.start()
    reads, deadline = 0, time.monotonic() + WAIT_SECONDS
    while sync.is_alive():  # the analyst keeps reading while the sync loads
        assert time.monotonic() < deadline, "the sync waited for the analyst's transaction"
        assert snapshot(cur) == before
        reads += 1
        time.sleep(0.05)
    sync.join(WAIT_SECONDS)
    assert results and results[0].success  # the open snapshot did not block the load
    assert snapshot(cur) == before and reads > 0
    analyst.commit()  # a new snapshot sees the whole load: the edits, additions and the deletion marked
    after = snapshot(cur)
    analyst.close()
    assert after[0] == len(main.records("invoice")) and after[2] == 1 and after != before


@pytest.mark.parametrize(
    ("url", "category", "says"),
    [
        ("mysql://sync:{password}@127.0.0.1:{port}/warehouse", "configuration", "unknown scheme 'mysql'"),
        ("postgresql://sync@127.0.0.1:{port}/warehouse", "configuration", "has no password"),
        ("postgresql://sync_admin:{password}@127.0.0.1:{closed}/warehouse", "warehouse_unavailable", "no answer"),
        ("postgresql://sync_admin:{wrong}@127.0.0.1:{port}/{db}", "configuration", "refused the user"),
        ("postgresql://sync_admin:{password}@127.0.0.1:{port}/no_such_db", "configuration", "CREATE DATABASE"),
        ("postgresql://sync_admin:{password}@no-such-host.invalid:{port}/{db}", "configuration", "unknown host"),
    ],
    ids=["scheme", "no-password", "unreachable", "wrong-password", "missing-database", "unknown-host"],
)
def test_a_bad_warehouse_url_fails_before_any_request_naming_the_variable_never_the_password(
    url, category, says, emulator, pg_warehouse, postgres, monkeypatch
):
    from sync_pipelines_tests.postgres_server import free_port

    wrong = "Wrong-" + PASSWORD
    filled = url.format(
        password=quoted(PASSWORD), wrong=quoted(wrong), port=postgres.port, closed=free_port(), db=pg_warehouse.database
    )
    monkeypatch.setenv("SYNC_WAREHOUSE_URL", filled)
    result = run_entity_job(MAIN_TENANT, INVOICES, raise_on_error=False)
    assert not result.success
    (message,) = step_failures(result).values()
    assert message.startswith(f"[{category}]") and "SYNC_WAREHOUSE_URL" in message and says in message, message
    for secret in (PASSWORD, wrong, quoted(PASSWORD), quoted(wrong)):
        assert secret not in message
    assert emulator.requests == []


@contextmanager
def holding_schema(target: PostgresWarehouse, schema: str) -> Iterator[subprocess.Popen]:
    """Another process holding `schema`'s advisory lock, named "the test's holder", until killed or released."""
    code = (
        "import sys\n"
        "from sync_pipelines.warehouse.lock import schema_turn\n"
        "from sync_pipelines.warehouse.settings import warehouse\n"
        'with schema_turn(warehouse(), sys.argv[1], "the test\'s holder", print):\n'
        "    print('holding', flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, schema], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert process.stdout.readline() == "holding\n"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def waiting_for(target: PostgresWarehouse, schema: str) -> bool:
    with session(target, read_only=True) as con:
        return bool(
            con.rows(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND classid::bigint = ? AND objid::bigint = ?",
                list(pg_locks_ids(advisory_key(schema))),
            )[0][0]
        )


def test_the_schema_lock_holds_one_tenant_says_who_holds_it_and_dies_with_its_process(emulator, pg_warehouse):
    instance = DagsterInstance.ephemeral()
    with holding_schema(pg_warehouse, "synchroteam") as holder:
        # the other tenant's schema is free: its sync runs to the end while the first is held
        assert run_entity_job(HEC_TENANT, INVOICES, instance=instance).success
        results: list[ExecuteInProcessResult] = []
        sync = threading.Thread(target=lambda: results.append(run_entity_job(MAIN_TENANT, INVOICES, instance=instance)))
        sync.start()
        deadline = time.monotonic() + WAIT_SECONDS
        while not waiting_for(pg_warehouse, "synchroteam"):
            assert time.monotonic() < deadline and sync.is_alive(), "the sync never waited for the lock"
            time.sleep(0.1)
        assert not results  # still waiting
        os.kill(holder.pid, signal.SIGKILL)  # a holder that dies releases the lock with its connection
        sync.join(WAIT_SECONDS)
    assert results and results[0].success
    messages = [e.user_message for e in instance.all_logs(results[0].run_id)]
    assert any(
        m.startswith("Waiting for the warehouse schema synchroteam") and "the test's holder" in m for m in messages
    )
    assert_warehouse_equals_emulator(emulator, pg_warehouse, DOMAINS, entities=["invoices"])


def test_the_documented_analyst_role_reads_every_tenant_and_writes_nothing(emulator, pg_warehouse, postgres):
    assert run_sync_all(analytics=True).success
    sql = docs_block("analyst role")
    admin = postgres.connect(pg_warehouse.database)
    with admin.cursor() as cur:
        cur.execute(
            sql.replace("CHANGE-ME", "analyst-pw")
            .replace("DATABASE warehouse", f"DATABASE {pg_warehouse.database}")
            .replace("FOR ROLE sync ", f"FOR ROLE {pg_warehouse.user} ")
        )
    admin.close()
    analyst = psycopg2.connect(
        host="127.0.0.1", port=postgres.port, dbname=pg_warehouse.database, user="analyst", password="analyst-pw"
    )
    analyst.autocommit = True
    with analyst.cursor() as cur:
        for schema in ("synchroteam", "synchroteam_hec"):
            cur.execute(f"SELECT count(*) FROM {schema}.invoices_live")
            assert cur.fetchone()[0] == len(emulator.tenant(DOMAINS[schema]).records("invoice"))
            cur.execute("SELECT count(*) FROM analytics.invoices WHERE tenant = %s", [schema])
            assert cur.fetchone()[0] == len(emulator.tenant(DOMAINS[schema]).records("invoice"))
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("DELETE FROM synchroteam.invoices")
    analyst.close()
    assert run_entity_job(MAIN_TENANT, INVOICES, {"mode": "full"}).success  # a load re-creating nothing keeps grants


def docs_block(name: str) -> str:
    """The SQL block of docs/scaling-out.md that follows `<!-- sql: name -->`."""
    text = (REPO / "docs" / "scaling-out.md").read_text()
    match = re.search(rf"<!-- sql: {name} -->\s*```sql\n(.*?)```", text, re.S)
    assert match, f"docs/scaling-out.md has no SQL block '{name}'"
    return match.group(1)


def test_sync_all_then_changes_then_a_full_run_through_a_postgres_instance_under_an_analysts_snapshot(
    emulator, pg_warehouse, postgres: PostgresServer, tmp_path, monkeypatch
):
    """The issue's whole scenario, as `dagster job execute` runs it: the instance and the warehouse on PostgreSQL;
    `sync_all`, changes, then `sync_all` in `mode: full` while an analyst holds a REPEATABLE READ snapshot; then a
    run with a wrong warehouse password. The runs are in the instance's database, the warehouse equals the API
    with its deletions marked, the snapshot never moved nor waited, and no password is written anywhere."""
    from sync_pipelines_tests.processes import dagster_home, start_job, wait

    monkeypatch.setenv("SYNC_DAGSTER_POSTGRES_URL", postgres.create_database("dagster_instance"))
    home = dagster_home(tmp_path)
    assert "env: SYNC_DAGSTER_POSTGRES_URL" in (home / "dagster.yaml").read_text()

    def run(job: str, log: str, config: Path | None = None) -> int:
        return wait(start_job(job, home, tmp_path / log, config), timeout=300)

    assert run("sync_all", "first.log") == 0, (tmp_path / "first.log").read_text()[-6000:]
    deleted = change_both_tenants(emulator)
    assert run("sync_all", "incremental.log") == 0, (tmp_path / "incremental.log").read_text()[-6000:]

    full = tmp_path / "full.yaml"
    ops = {t.name: {"config": {e.name: {"mode": "full"} for e in tenant_entities(t)}} for t in TENANTS.values()}
    full.write_text(json.dumps({"ops": ops}))  # JSON is YAML
    analyst = analyst_connection(pg_warehouse)
    cur = analyst.cursor()
    cur.execute("SET statement_timeout = '5s'")  # a read the sync blocked would fail here
    before = snapshot(cur)
    process = start_job("sync_all", home, tmp_path / "full.log", full)
    reads, deadline = 0, time.monotonic() + 300
    while process.poll() is None:
        assert time.monotonic() < deadline, "the full run waited for the analyst's transaction"
        assert snapshot(cur) == before
        reads += 1
        time.sleep(0.1)
    assert process.returncode == 0, (tmp_path / "full.log").read_text()[-6000:]
    assert snapshot(cur) == before and reads > 0
    analyst.close()
    assert_warehouse_equals_emulator(emulator, pg_warehouse, DOMAINS, extra_ids_allowed=True)
    for table, ids in deleted.items():
        schema, name = table.split(".")
        with session(pg_warehouse, read_only=True) as con:
            marked = {i for (i,) in con.rows(f'SELECT id FROM "{schema}"."{name}" WHERE _deleted_at IS NOT NULL')}
        assert marked == set(ids), table

    monkeypatch.setenv("SYNC_WAREHOUSE_URL", pg_warehouse_url_with(pg_warehouse, password="Wrong-" + PASSWORD))
    assert run("sync_synchroteam__invoices", "failed.log") != 0
    assert "SYNC_WAREHOUSE_URL" in (tmp_path / "failed.log").read_text()

    instance_db = postgres.connect("dagster_instance")
    with instance_db.cursor() as cur:
        cur.execute("SELECT pipeline_name, status FROM runs ORDER BY create_timestamp")
        assert cur.fetchall() == [("sync_all", "SUCCESS")] * 3 + [("sync_synchroteam__invoices", "FAILURE")]
        cur.execute(
            "SELECT asset_key LIKE '[\"analytics\"%', count(*) FROM event_logs "
            "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' GROUP BY 1 ORDER BY 1"
        )
        entities = sum(len(tenant_entities(t)) for t in TENANTS.values())
        assert cur.fetchall() == [(False, 3 * entities), (True, 3 * len(MODELS))]  # the loads, the analytics models
    instance_db.close()

    secrets = [PASSWORD, "Wrong-" + PASSWORD, quoted(PASSWORD)]
    for database in ("dagster_instance", pg_warehouse.database):
        dump = database_text(postgres, database)
        for secret in secrets:
            assert secret not in dump, f"a password is in the database {database}"
    from sync_pipelines.warehouse.settings import POSTGRES_PIPELINES_ROOT
    from sync_pipelines_tests.helpers import files_containing

    # DAGSTER_HOME (compute logs, yaml), dlt's scratch folder, the dbt project's (artifacts, logs)
    for root in (tmp_path, POSTGRES_PIPELINES_ROOT, ANALYTICS_PROJECT):
        for secret in secrets:
            assert files_containing(root, secret.encode()) == [], f"a password is in a file under {root}"


def quoted(password: str) -> str:
    from urllib.parse import quote

    return quote(password, safe="")


def pg_warehouse_url_with(target: PostgresWarehouse, password: str) -> str:
    return f"postgresql://{target.user}:{quoted(password)}@{target.host}:{target.port}/{target.database}"


def database_text(postgres: PostgresServer, database: str) -> str:
    """Every text-like value of every table of `database`, as one string."""
    con = postgres.connect(database)
    parts: list[str] = []
    with con.cursor() as cur:
        cur.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        for schema, table in cur.fetchall():
            cur.execute(f'SELECT t::text FROM "{schema}"."{table}" t')
            parts.extend(row[0] for row in cur.fetchall())
    con.close()
    return "\n".join(parts)


# -- a crash in the middle, on PostgreSQL ------------------------------------------------------------------------


def stored_cursor(target: Warehouse, entity) -> Cursor:
    """The cursor of the newest completed load, read from the warehouse as dlt restores it."""
    with session(target, read_only=True) as con:
        rows = con.rows(
            "SELECT s.state FROM synchroteam._dlt_pipeline_state s JOIN synchroteam._dlt_loads l "
            "ON l.load_id = s._dlt_load_id WHERE s.pipeline_name = ? AND l.status = 0 ORDER BY l.load_id DESC LIMIT 1",
            [tenant_pipeline_name(MAIN_TENANT)],
        )
    state = decompress_state(rows[0][0])
    resources = state.get("sources", {}).get(tenant_pipeline_name(MAIN_TENANT), {}).get("resources", {})
    return Cursor.from_state(resources.get(entity.name, {}))


@pytest.mark.parametrize(("step", "delay"), [("merge", None), ("complete", None), ("post_load", None), ("merge", 0.01)])
def test_killed_mid_load_then_a_normal_run_completes_the_warehouse(step, delay, emulator, pg_warehouse, tmp_path):
    """The jobs' load killed (SIGKILL, process group) paused before the merge, before `_dlt_loads` is written,
    before the upkeep after the load, and 10 ms into the merge: PostgreSQL rolls back what was not committed,
    the cursor moves only with a committed load, and the next run leaves the warehouse equal to the API."""
    from sync_pipelines_tests.end_to_end.test_crash_recovery import Worker

    jobs = ENTITIES["jobs"]
    assert run_entity_job(MAIN_TENANT, jobs).success
    before = stored_cursor(pg_warehouse, jobs)
    main = emulator.tenant(MAIN.domain)
    for record in main.records("job")[:6]:
        main.edit("job", record["id"], {"description": "Changed while a load was killed"})
    main.add("job")
    worker = Worker(tmp_path, "worker")
    url = os.environ["SYNC_WAREHOUSE_URL"]
    worker.go(jobs, url, pause_at=None if delay is not None else step)
    if delay is None:
        worker.wait_for(lambda: any(kind == "PAUSED" for kind, _, _ in worker.events), f"the pause at {step}")
    else:
        worker.wait_for(lambda: step in worker.phases or "done" in worker.phases, f"step {step}")
        time.sleep(delay)
    hit = worker.kill()
    assert hit == step or delay is not None, hit

    after = stored_cursor(pg_warehouse, jobs)
    if delay is None and hit in ("merge", "complete"):  # paused there, killed: nothing committed, the cursor stayed
        assert after == before, hit
    elif after != before:  # 10 ms later, the kill may land after the commit: then the cursor came with the whole load
        with session(pg_warehouse, read_only=True) as con:
            (changed,) = con.rows(
                "SELECT count(*) FROM synchroteam.jobs WHERE description = 'Changed while a load was killed'"
            )[0]
        assert changed == 6, hit
    with session(pg_warehouse, read_only=True) as con:
        assert con.rows("SELECT count(*) - count(DISTINCT id) FROM synchroteam.jobs")[0][0] == 0
        (orphans,) = con.rows(
            "SELECT count(*) FROM synchroteam.jobs__parts c LEFT JOIN synchroteam.jobs p ON p._dlt_id = c._dlt_root_id "
            "WHERE p._dlt_id IS NULL"
        )[0]
        assert orphans == 0, f"killed at {hit}: child rows without their parent"

    assert run_entity_job(MAIN_TENANT, jobs).success
    assert_warehouse_equals_emulator(emulator, pg_warehouse, DOMAINS, tenants=["synchroteam"], entities=["jobs"])
    assert stored_cursor(pg_warehouse, jobs) != before


# -- the same warehouse on both engines --------------------------------------------------------------------------

# Each engine's name for the types dlt gives our columns, as one vocabulary
TYPE_NAMES = {
    "varchar": "text",
    "character varying": "text",
    "text": "text",
    "timestamp with time zone": "timestamp",
    "bigint": "bigint",
    "double": "double",
    "double precision": "double",
    "boolean": "boolean",
    "decimal": "decimal",
    "numeric": "decimal",
    "date": "date",
    "json": "json",
    "jsonb": "json",
}


def columns_by_table(target: Warehouse) -> dict[str, list[tuple[str, str]]]:
    """Every table and view of both tenants' schemas: its columns in order, with their type in one vocabulary."""
    with session(target, read_only=True) as con:
        rows = con.rows(
            "SELECT table_schema || '.' || table_name, column_name, lower(data_type) FROM information_schema.columns "
            "WHERE table_schema IN ('synchroteam', 'synchroteam_hec') ORDER BY 1, ordinal_position"
        )
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in rows:
        tables.setdefault(table, []).append((column, TYPE_NAMES.get(kind.split("(")[0], kind)))
    return tables


def test_both_engines_hold_the_same_schemas_tables_columns_and_types(emulator, tmp_path, postgres, monkeypatch):
    from synchroteam_emulator.env import tenant_env

    for variable, value in tenant_env(emulator.base_url, {"synchroteam": MAIN, "synchroteam_hec": HEC}).items():
        monkeypatch.setenv(variable, value)
    found = {}
    for name in ("duckdb", "postgres"):
        if name == "duckdb":
            monkeypatch.delenv("SYNC_WAREHOUSE_URL", raising=False)
            monkeypatch.setenv("SYNC_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
        else:
            monkeypatch.delenv("SYNC_DUCKDB_PATH")
            monkeypatch.setenv("SYNC_WAREHOUSE_URL", postgres.create_database("wh_same_tables"))
        assert run_sync_all().success
        found[name] = columns_by_table(configured_warehouse())
    assert found["duckdb"] == found["postgres"]
    assert "synchroteam.jobs__parts_live" in found["postgres"] and len(found["postgres"]) > 20
