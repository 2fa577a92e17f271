"""A run whose process dies (SIGKILL, as a host that loses power) while it holds the warehouse holds up nothing: the
next run of its tenant proceeds within seconds, the dead run is marked failed saying that its process died, and
the warehouse is exact after the next run. On SQLite and on PostgreSQL instance storage, for runs of
`dagster job execute` and of the daemon, and for two hosts sharing one PostgreSQL deployment."""

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from sync_pipelines.catalogue import TENANTS
from sync_pipelines.defs.leases import LEASE_TAG, RELEASED
from sync_pipelines.defs.pools import writer_pool
from sync_pipelines.warehouse.settings import Warehouse
from sync_pipelines.warehouse.settings import warehouse as configured_warehouse
from sync_pipelines_tests.compare import assert_warehouse_equals_emulator
from sync_pipelines_tests.conftest import DOMAINS, MAIN
from sync_pipelines_tests.postgres_server import PostgresServer
from sync_pipelines_tests.processes import REPO, dagster_home, start_job, until, wait
from synchroteam_emulator import Emulator, Fault

DAGSTER = Path(sys.executable).with_name("dagster")
DAEMON = Path(sys.executable).with_name("dagster-daemon")
INVOICES_JOB = "sync_synchroteam__invoices"
# Far under the 5 minutes the issue allows, far over what the next run needs on a busy machine
NEXT_RUN_SECONDS = 150


@pytest.fixture(params=["duckdb", "postgres"])
def deployment(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Warehouse:
    """One machine's deployment: a DuckDB warehouse with the instance on SQLite, or a PostgreSQL warehouse with
    the instance on PostgreSQL (`SYNC_DAGSTER_POSTGRES_URL`), as docs/scaling-out.md recommends."""
    if request.param == "duckdb":
        request.getfixturevalue("warehouse")
    else:
        request.getfixturevalue("pg_warehouse")
        server = request.getfixturevalue("postgres")
        monkeypatch.setenv("SYNC_DAGSTER_POSTGRES_URL", server.create_database(f"instance_{uuid.uuid4().hex[:8]}"))
    return configured_warehouse()


def slow_invoice_pages(emulator: Emulator) -> None:
    """Every invoice list page of the main tenant answers a second late: a run holds its step for seconds."""
    emulator.faults.add(Fault(delay=1.0, times=10_000, tenant=MAIN.domain, resource="invoice", action="list"))


def leased_runs(home: Path) -> list[DagsterRun]:
    """The instance's started runs that hold a lease, newest first."""
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
    return [r for r in runs if r.status == DagsterRunStatus.STARTED and r.tags.get(LEASE_TAG, RELEASED) != RELEASED]


def holding_the_warehouse(home: Path, emulator: Emulator, runs_before: int = 0) -> DagsterRun:
    """Wait for a run holding its lease whose step reads invoices (it holds the warehouse and its pool slot)."""
    run = until(lambda: (leased_runs(home) or [None])[0], "run holding its lease")
    until(lambda: len([r for r in emulator.requests if r.resource == "invoice"]) > runs_before, "invoice request")
    assert isinstance(run, DagsterRun)
    return run


def pid_of(run: DagsterRun) -> int:
    match = re.search(r" pid (\d+)$", run.tags[LEASE_TAG])
    assert match, run.tags
    return int(match.group(1))


def assert_died_and_freed(home: Path, run_id: str) -> None:
    """The dead run is failed with a message that says its process died, and holds no pool slot."""
    with DagsterInstance.from_config(str(home)) as instance:
        dead = instance.get_run_by_id(run_id)
        assert dead is not None and dead.status == DagsterRunStatus.FAILURE, dead
        messages = [
            (record.dagster_event.message if record.dagster_event else None) or record.user_message or ""
            for record in instance.all_logs(run_id)
        ]
        assert any("The process of run" in m and "died" in m for m in messages), messages[-5:]
        pool = writer_pool(TENANTS["synchroteam"])
        assert pool is not None
        claims = instance.event_log_storage.get_concurrency_info(pool).claimed_slots
        assert [claim for claim in claims if claim.run_id == run_id] == []


def test_a_dagster_job_execute_run_killed_holding_the_warehouse_holds_up_the_next_by_seconds(
    deployment, emulator, tmp_path
):
    slow_invoice_pages(emulator)
    home = dagster_home(tmp_path)
    killed = start_job(INVOICES_JOB, home, tmp_path / "killed.log")
    dead = holding_the_warehouse(home, emulator)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    emulator.faults.clear()

    started = time.monotonic()
    assert wait(start_job(INVOICES_JOB, home, tmp_path / "next.log"), timeout=NEXT_RUN_SECONDS) == 0, (
        tmp_path / "next.log"
    ).read_text()[-4000:]
    assert time.monotonic() - started < NEXT_RUN_SECONDS

    assert_died_and_freed(home, dead.run_id)
    assert_warehouse_equals_emulator(emulator, deployment, DOMAINS, tenants=["synchroteam"], entities=["invoices"])


class Daemons:
    """`dagster-daemon run` processes on one DAGSTER_HOME, run monitoring polling every second; each in a process
    group of its own (the daemon, its code server and their run workers), stopped at the end."""

    def __init__(self, home: Path, folder: Path) -> None:
        self.home, self.folder = home, folder
        yaml = home / "dagster.yaml"
        faster, count = re.subn(r"(?m)^(\s*poll_interval_seconds:\s*)\d+", r"\g<1>1", yaml.read_text())
        assert count == 1
        yaml.write_text(faster)
        self.processes: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        log = (self.folder / f"daemon_{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [str(DAEMON), "run", "-m", "sync_pipelines.definitions"],
            cwd=REPO,
            env={**os.environ, "DAGSTER_HOME": str(self.home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@pytest.fixture
def daemons(warehouse: Path, tmp_path: Path) -> Iterator[Daemons]:
    started = Daemons(dagster_home(tmp_path), tmp_path)
    try:
        yield started
    finally:
        started.stop()


def launch(home: Path) -> str:
    run_id = str(uuid.uuid4())
    subprocess.run(
        [str(DAGSTER), "job", "launch", "-m", "sync_pipelines.definitions", "-j", INVOICES_JOB, "--run-id", run_id],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return run_id


def run_status(home: Path, run_id: str) -> DagsterRunStatus | None:
    with DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
    return None if run is None else run.status


def test_a_host_that_dies_under_a_daemon_s_run_frees_its_tenant_s_queue_lane_within_seconds_of_coming_back(
    daemons, emulator, warehouse, tmp_path
):
    """The host loses power: the daemon, its code server and the run worker die together, and nothing is left to
    report the run's end. The run queue admits one run per tenant: back up, the dead run would hold the lane until
    its `dagster/max_runtime` (2 h for invoices) without run monitoring's health check."""
    slow_invoice_pages(emulator)
    before = daemons.start()
    dead = launch(daemons.home)
    holding = holding_the_warehouse(daemons.home, emulator)
    assert holding.run_id == dead
    os.killpg(before.pid, signal.SIGKILL)
    with suppress(ProcessLookupError):
        os.kill(pid_of(holding), signal.SIGKILL)  # the run worker, were it in a group of its own
    emulator.faults.clear()

    daemons.start()
    started = time.monotonic()
    following = launch(daemons.home)
    until(
        lambda: run_status(daemons.home, following) == DagsterRunStatus.SUCCESS,
        "the next run's success",
        NEXT_RUN_SECONDS,
    )
    assert time.monotonic() - started < NEXT_RUN_SECONDS

    assert_died_and_freed(daemons.home, dead)
    assert_warehouse_equals_emulator(emulator, warehouse, DOMAINS, tenants=["synchroteam"], entities=["invoices"])


def main_tenant_holder(postgres: PostgresServer, database: str) -> str | None:
    """The run (8 characters) whose step holds the main tenant's schema lock, if one does."""
    con = postgres.connect(database)
    try:
        with con.cursor() as cur:
            cur.execute(
                "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'run % step synchroteam'"
            )
            row = cur.fetchone()
    finally:
        con.close()
    return row[0].split()[1] if row else None


def test_two_hosts_sharing_one_postgresql_deployment_take_turns_and_the_death_of_one_holds_up_nothing(
    emulator, pg_warehouse, postgres, tmp_path, monkeypatch
):
    """Two DAGSTER_HOMEs (two machines) on one PostgreSQL instance storage and one PostgreSQL warehouse: both run
    `sync_all` at the same moment and both succeed, exact; then both again, and one is killed reading invoices:
    the other completes, the next run of the dead one's host too, exact."""
    monkeypatch.setenv("SYNC_DAGSTER_POSTGRES_URL", postgres.create_database(f"instance_{uuid.uuid4().hex[:8]}"))
    hosts = [dagster_home(tmp_path, "host_a"), dagster_home(tmp_path, "host_b")]

    first = [start_job("sync_all", home, tmp_path / f"first_{i}.log") for i, home in enumerate(hosts)]
    assert [wait(process, timeout=600) for process in first] == [0, 0]
    assert_warehouse_equals_emulator(emulator, pg_warehouse, DOMAINS)

    store = emulator.tenant(MAIN.domain)
    for invoice in store.records("invoice")[:10]:
        store.edit("invoice", invoice["id"])
    store.add("invoice")
    slow_invoice_pages(emulator)
    second = [start_job("sync_all", home, tmp_path / f"second_{i}.log") for i, home in enumerate(hosts)]
    holder = until(lambda: main_tenant_holder(postgres, pg_warehouse.database), "main tenant's step holding its schema")
    runs = {run.run_id[:8]: run for run in leased_runs(hosts[0])}
    dead = runs[str(holder)]
    victim = next(process for process in second if process.pid == pid_of(dead))
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    emulator.faults.clear()

    survivor = next(process for process in second if process is not victim)
    assert wait(survivor, timeout=NEXT_RUN_SECONDS) == 0
    again = hosts[second.index(victim)]
    assert wait(start_job("sync_all", again, tmp_path / "next.log"), timeout=NEXT_RUN_SECONDS) == 0

    assert_died_and_freed(hosts[0], dead.run_id)
    assert_warehouse_equals_emulator(emulator, pg_warehouse, DOMAINS)
