"""Crash recovery: the sync process SIGKILLed mid-extract and mid-load, then a normal run.

The sync runs in a subprocess (`crash_worker`: the entity's Dagster job in process, as a run worker would) against
this test's emulator, and is killed with SIGKILL, process group and all:

- mid-extract: the emulator holds one later request (a list page, a job's details) and the worker is killed while
  it waits for it;
- mid-load: the worker stops at a named step of dlt's load (normalize, a COPY into DuckDB, the merge of the
  staging tables, the package complete but its `_dlt_loads` row not written, the maintenance after the load) and
  is killed there; a sweep also kills it a few milliseconds *after* a step began, so the kill lands inside a
  running DuckDB statement rather than between two.

After every kill: the cursor stored in DuckDB is never past data that is not in the table, and is where it was
when the load had not committed; no id is twice in a table and no child row lost its parent. Then a normal run
(the default config, in process) must leave the entity's tables equal to the emulator, field by field, and
identical row by row to a clean run of the same data into a fresh warehouse (dlt's row ids aside); the read copy
analysts open, when there is one, must hold the same rows again.

`helpers.stored_cursor` is not used after a kill: it syncs the local dlt folder, which still holds the killed run's
own (never committed) state, and dlt keeps that local state when it is newer than the destination's; it would
report the killed run's cursor. `stored_cursor` here reads DuckDB the way dlt restores it (newest completed load).

Between runs the emulator changes (edits with new child lists, emptied child lists, a second edit in the same
minute, a late commit within the look-back, additions), so every killed run has real changes to load.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest
from dlt.common.versioned_state import decompress_state

from sync_pipelines.catalogue import ENTITIES, TENANTS, Entity, tenant_pipeline_name
from sync_pipelines.synchroteam.plan import Cursor
from sync_pipelines.synchroteam.records import normalise_record, parse_timestamp
from sync_pipelines_tests.compare import (
    _comparable,
    flatten,
    table_exists,
    warehouse_rows,
)
from sync_pipelines_tests.conftest import MAIN
from sync_pipelines_tests.helpers import run_entity_job
from synchroteam_emulator import Emulator, Fault

REPO = Path(__file__).resolve().parents[2]
TENANT = TENANTS["synchroteam"]
SCHEMA = TENANT.name
JOBS, INVOICES = ENTITIES["jobs"], ENTITIES["invoices"]
TZ = ZoneInfo(MAIN.timezone)
START = datetime(2026, 2, 9, 9, 0)  # tenant clock, frozen: after every seeded change, far from DST
LATE_COMMIT = timedelta(minutes=12)  # each cycle moves the clock 8 minutes: behind the cursor, within 30
WORKER_TIMEOUT = 60.0
HELD_REQUEST_SECONDS = 20.0
PRE_COMMIT_STEPS = ("read", "extract", "extracted", "normalize", "load", "copy", "merge", "complete")

KILLS: list[str] = []  # what each kill hit, printed at the end of the module (pytest -s shows it)


# -- the worker subprocess -------------------------------------------------------------------------------------


class Worker:
    """A `crash_worker --standby` subprocess: imports done, it waits for its order on stdin; killed as a group."""

    def __init__(self, folder: Path, name: str) -> None:
        self.log_path = folder / f"{name}.log"
        env = {**os.environ, "SYNC_DUCKDB_PATH": str(folder / f"{name}-import.duckdb"), "PYTHONUNBUFFERED": "1"}
        env.pop("CRASH_PAUSE_AT", None)
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sync_pipelines_tests.crash_worker", "--standby"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        self.events: list[tuple[str, str, float]] = []  # (kind, phase, worker's monotonic time)
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) == 4 and parts[0] == "CRASH-WORKER":
                with self._changed:
                    self.events.append((parts[1], parts[2], float(parts[3])))
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def phases(self) -> list[str]:
        return [phase for kind, phase, _ in self.events if kind == "PHASE"]

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = WORKER_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"worker exited ({self.proc.returncode}) before {what}: {self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"worker: no {what} in {timeout:.0f}s; phases {self.phases}: {self.tail()}")
                self._changed.wait(min(left, 0.05))

    def go(
        self, entity: Entity, path: Path | str, config: dict | None = None, pause_at: str | None = None, skip: int = 0
    ) -> None:
        """Run `entity`'s job on the DuckDB file `path`, or on the PostgreSQL database of the URL `path`."""
        self.wait_for(lambda: any(kind == "STANDBY" for kind, _, _ in self.events), "standby")
        env = {k: v for k, v in os.environ.items() if k.startswith("SYNCHROTEAM_")}
        if isinstance(path, Path):
            env.update({"SYNC_DUCKDB_PATH": str(path), "SYNC_WAREHOUSE_URL": ""})
        else:
            env.update({"SYNC_DUCKDB_PATH": "", "SYNC_WAREHOUSE_URL": path})
        env.update({"CRASH_PAUSE_AT": pause_at or "", "CRASH_PAUSE_SKIP": str(skip)})
        order = {"tenant": TENANT.name, "entity": entity.name, "config": config or {}, "env": env}
        self.proc.stdin.write(json.dumps(order) + "\n")
        self.proc.stdin.flush()

    def kill(self) -> str:
        """SIGKILL the process group; the last step the worker reported (`finished` if it ended first)."""
        finished = self.proc.poll() is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            finished = True
        self.proc.wait(timeout=30)
        self._reader.join(timeout=5)
        self._log.close()
        return "finished" if finished or "done" in self.phases else self.phases[-1]

    def tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]


@pytest.fixture
def workers(tmp_path):
    """Spawns standby workers; whatever is left is killed at teardown."""
    spawned: list[Worker] = []

    def spawn() -> Worker:
        worker = Worker(tmp_path, f"worker-{len(spawned)}")
        spawned.append(worker)
        return worker

    yield spawn
    for worker in spawned:
        if worker.proc.poll() is None:
            try:
                os.killpg(worker.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            worker.proc.wait(timeout=30)


@pytest.fixture(scope="module", autouse=True)
def kill_report():
    yield
    if KILLS:
        print("\ncrash recovery, where the kills landed:\n  " + "\n  ".join(KILLS))


# -- reading the warehouse -------------------------------------------------------------------------------------


def stored_cursor(path: Path, entity: Entity) -> Cursor:
    """The cursor as stored in DuckDB: the state of the newest *completed* load (dlt's own rule), read directly,
    so that a local dlt folder left by the killed run cannot stand in for it."""
    with duckdb.connect(str(path), read_only=True) as con:
        if not table_exists(con, SCHEMA, "_dlt_pipeline_state"):
            return Cursor()
        row = con.execute(
            f"SELECT s.state FROM {SCHEMA}._dlt_pipeline_state s JOIN {SCHEMA}._dlt_loads l "
            "ON l.load_id = s._dlt_load_id WHERE s.pipeline_name = ? AND l.status = 0 "
            "ORDER BY l.load_id DESC LIMIT 1",
            [tenant_pipeline_name(TENANT)],
        ).fetchone()
    if row is None:
        return Cursor()
    state = decompress_state(row[0])
    resources = state.get("sources", {}).get(tenant_pipeline_name(TENANT), {}).get("resources", {})
    return Cursor.from_state(resources.get(entity.name, {}))


def modified(record: dict) -> datetime:
    return parse_timestamp(record["dateModified"], TZ)


def newest_change(emulator: Emulator, entity: Entity) -> datetime:
    return max(modified(r) for r in emulator.tenant(MAIN.domain).records(entity.resource))


def child_tables(con, entity: Entity) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' "
        "AND starts_with(table_name, ?) ORDER BY length(table_name), table_name",
        [SCHEMA, f"{entity.name}__"],
    ).fetchall()
    return [name for (name,) in rows]


def pending_changes(emulator: Emulator, path: Path, entity: Entity) -> int:
    """Records of the API whose row is missing or older than the API's."""
    with duckdb.connect(str(path), read_only=True) as con:
        loaded = dict(con.execute(f"SELECT id, date_modified FROM {SCHEMA}.{entity.name}").fetchall())
    return sum(
        1
        for r in emulator.tenant(MAIN.domain).records(entity.resource)
        if loaded.get(str(r["id"])) is None or loaded[str(r["id"])] < modified(r)
    )


def assert_integrity(path: Path, entity: Entity) -> None:
    """No id twice; every child row has its parent; no two child rows at the same place of one parent."""
    with duckdb.connect(str(path), read_only=True) as con:
        dupes = con.execute(
            f"SELECT id, count(*) FROM {SCHEMA}.{entity.name} GROUP BY id HAVING count(*) > 1 LIMIT 5"
        ).fetchall()
        assert not dupes, f"{entity.name}: ids loaded twice: {dupes}"
        for child in child_tables(con, entity):
            parent = child.rsplit("__", 1)[0]
            orphans = con.execute(
                f"SELECT count(*) FROM {SCHEMA}.{child} c WHERE c._dlt_parent_id NOT IN "
                f"(SELECT _dlt_id FROM {SCHEMA}.{parent})"
            ).fetchone()[0]
            assert orphans == 0, f"{child}: {orphans} rows whose parent is not in {parent}"
            twice = con.execute(
                f"SELECT _dlt_parent_id, _dlt_list_idx, count(*) FROM {SCHEMA}.{child} "
                "GROUP BY ALL HAVING count(*) > 1 LIMIT 5"
            ).fetchall()
            assert not twice, f"{child}: child rows twice at the same place: {twice}"


def assert_cursor_not_past_unloaded(
    emulator: Emulator, path: Path, entity: Entity, cursor: Cursor, excused: tuple[str, ...] = ()
) -> None:
    """Every change at or behind the stored cursor is in the table, with that dateModified or newer
    (`excused`: late commits made behind a cursor that has not moved since)."""
    if cursor.at is None:
        return
    with duckdb.connect(str(path), read_only=True) as con:
        loaded = dict(con.execute(f"SELECT id, date_modified FROM {SCHEMA}.{entity.name}").fetchall())
    behind_lost = []
    for record in emulator.tenant(MAIN.domain).records(entity.resource):
        record_id, at = str(record["id"]), modified(record)
        if not cursor.covers(at, record_id) or record_id in excused:
            continue
        if record_id not in loaded or loaded[record_id] < at:
            behind_lost.append((record_id, record["dateModified"], loaded.get(record_id)))
    assert not behind_lost, (
        f"{entity.name}: the stored cursor {cursor} is past changes that are not in the table "
        f"(id, API dateModified, table date_modified): {behind_lost[:5]}"
    )


def entity_mismatches(con, entity: Entity, expected: dict[str, dict]) -> list[str]:
    """How the rows of `expected` (id -> normalised record) differ from the API's records: every field, no other
    non-null column, and the child rows of each record exactly its lists, in order."""
    problems = []
    rows = {row["id"]: row for row in warehouse_rows(con, SCHEMA, entity.name)}
    children: dict[str, dict[str, list[dict]]] = {}
    for table in child_tables(con, entity):
        grouped = children.setdefault(table, {})
        for row in warehouse_rows(con, SCHEMA, table):
            grouped.setdefault(row["_dlt_parent_id"], []).append(row)
    for record_id, record in expected.items():
        row = rows.get(record_id)
        if row is None:
            problems.append(f"{record_id}: not in the table")
            continue
        columns, lists = flatten(record)
        for column, value in columns.items():
            if _comparable(row.get(column)) != _comparable(value):
                problems.append(f"{record_id}: {column} is {row.get(column)!r}, the API says {value!r}")
        stale = {c for c, v in row.items() if v is not None and not c.startswith("_")} - set(columns)
        if stale:
            problems.append(f"{record_id}: columns the API no longer has: {sorted(stale)}")
        for name in {f"{entity.name}__{child}" for child in lists} | set(children):
            items = lists.get(name[len(entity.name) + 2 :], [])
            got = sorted(children.get(name, {}).get(row["_dlt_id"], []), key=lambda r: r["_dlt_list_idx"])
            if [r["_dlt_list_idx"] for r in got] != list(range(len(items))):
                problems.append(f"{record_id}: {len(got)} rows in {name}, the API has {len(items)}")
                continue
            for child_row, item in zip(got, items):
                wanted = flatten(item)[0] if isinstance(item, dict) else {"value": item}
                for column, value in wanted.items():
                    if _comparable(child_row.get(column)) != _comparable(value):
                        problems.append(f"{record_id}: {name}.{column} is {child_row.get(column)!r}, API {value!r}")
    return problems


def assert_equals_emulator(emulator: Emulator, path: Path, entity: Entity) -> None:
    """The entity's tables hold exactly the API's records, field by field, each once."""
    records = emulator.tenant(MAIN.domain).records(entity.resource)
    expected = {str(r["id"]): normalise_record(r, TZ) for r in records}
    with duckdb.connect(str(path), read_only=True) as con:
        ids = [row[0] for row in con.execute(f"SELECT id FROM {SCHEMA}.{entity.name}").fetchall()]
        problems = entity_mismatches(con, entity, expected)
    unexpected = sorted(set(ids) - set(expected))
    assert not problems and not unexpected and len(ids) == len(set(ids)), (
        f"{entity.name} differs from the API: {problems[:6]}; ids the API does not have: {unexpected[:5]}"
    )


def snapshot(path: Path, entity: Entity) -> dict[str, Counter]:
    """Every row of the entity's tables without dlt's row ids: child rows name their parent by its record id
    and list index, so two warehouses holding the same data compare equal whatever loads built them."""
    tables: dict[str, Counter] = {}
    with duckdb.connect(str(path), read_only=True) as con:
        identity: dict[str, Any] = {}
        for table in [entity.name, *child_tables(con, entity)]:
            rows = Counter()
            for row in warehouse_rows(con, SCHEMA, table):
                if table == entity.name:
                    place: Any = ("id", row["id"])
                else:
                    place = (
                        identity.get(row["_dlt_parent_id"], ("ORPHAN", row["_dlt_parent_id"])),
                        row["_dlt_list_idx"],
                    )
                identity[row["_dlt_id"]] = place
                values = tuple(
                    sorted(
                        (name, _comparable(value))
                        for name, value in row.items()
                        if value is not None and not name.startswith("_dlt_")
                    )
                )
                rows[(repr(place), values)] += 1
            tables[table] = rows
    return tables


def assert_same_rows(victim: Path, reference: Path, entity: Entity) -> None:
    mine, clean = snapshot(victim, entity), snapshot(reference, entity)
    tables = {t for t in set(mine) | set(clean) if mine.get(t) or clean.get(t)}
    for table in sorted(tables):
        extra, missing = (
            mine.get(table, Counter()) - clean.get(table, Counter()),
            clean.get(table, Counter()) - mine.get(table, Counter()),
        )
        assert not extra and not missing, (
            f"{table} differs from a clean run's: {sum(extra.values())} rows only after the crash, "
            f"{sum(missing.values())} only in the clean run; e.g. extra {list(extra)[:2]}, missing {list(missing)[:2]}"
        )


# -- running ---------------------------------------------------------------------------------------------------


def run_job(entity: Entity, config: dict | None = None) -> None:
    result = run_entity_job(TENANT, entity, config or {}, raise_on_error=False)
    assert result.success, f"{entity.name} run failed: {[e.message for e in result.get_step_failure_events()]}"


def clean_reference(monkeypatch, folder: Path, entity: Entity, name: str) -> Path:
    """The same emulator data loaded from scratch by a normal run into a fresh warehouse."""
    path = folder / name / "reference.duckdb"
    path.parent.mkdir()
    with monkeypatch.context() as patch:
        patch.setenv("SYNC_DUCKDB_PATH", str(path))
        run_job(entity)
    return path


def mutate(emulator: Emulator, rng: random.Random, cycle: int) -> list[str]:
    """Real changes for the next run of jobs and invoices: edits, new and emptied child lists, a second edit in
    the same minute, a late commit inside the look-back, additions. Returns the ids of the late commits: their
    dateModified is behind the cursor already stored, so until a run re-reads them they are the one legitimate
    exception to "everything behind the cursor is loaded"."""
    store = emulator.tenant(MAIN.domain)
    store.advance_clock(minutes=7)
    now = store.now()
    job_ids = [r["id"] for r in store.records("job")]
    picked = rng.sample(job_ids, 4)
    for n, job_id in enumerate(picked[:3]):
        parts = [
            {
                "reference": f"C{cycle}-{n}-{k}",
                "name": "Pièce",
                "quantity": rng.choice([1, "2,50", 0.5]),
                "unitPrice": round(rng.uniform(1, 90), 2),
            }
            for k in range(rng.randint(1, 4))
        ]
        store.edit("job", job_id, {"description": f"crash cycle {cycle}", "parts": parts})
    store.edit("job", picked[3])
    store.edit("job", picked[3], {"parts": [], "timeEntries": []})  # same minute: emptied child lists
    late = [picked[0]]
    store.edit("job", picked[0], modified_at=now - LATE_COMMIT)  # behind the stored cursor, inside the look-back
    store.add("job")
    store.add("job")
    invoice_ids = [r["id"] for r in store.records("invoice")]
    chosen = rng.sample(invoice_ids, 4)
    for invoice_id in chosen[:3]:
        store.edit("invoice", invoice_id)
    store.edit("invoice", chosen[3], {"lines": [], "totalExclTax": 0.0, "totalTax": 0.0, "totalInclTax": 0.0})
    store.edit("invoice", chosen[0])  # a second edit in the same minute
    store.edit("invoice", chosen[1], modified_at=now - LATE_COMMIT)
    late.append(str(chosen[1]))
    store.add("invoice")
    store.add("invoice", {"status": "draft"})
    store.advance_clock(minutes=1)
    return late


def kill_and_check(
    emulator: Emulator,
    path: Path,
    entity: Entity,
    worker: Worker,
    before: tuple[Cursor, int],
    late: list[str],
    label: str,
    paused: bool = False,
) -> tuple[str, Cursor]:
    """Kill `worker`, then the invariants a crash must keep; returns (step hit, stored cursor).

    `before`: the stored cursor and the number of changed records not in the table, before the killed run.
    Killed before dlt wrote the package's `_dlt_loads` row (any step up to `complete`, included when the worker
    was paused there), the stored cursor must not have moved.
    """
    before, pending = before
    hit = worker.kill()
    emulator.faults.clear()
    after = stored_cursor(path, entity)
    committed = after != before
    merged = pending - pending_changes(emulator, path, entity)
    KILLS.append(
        f"{label}: killed at '{hit}'; {merged}/{pending} changed records merged into the table, "
        f"load {'committed' if committed else 'not committed'} (cursor {before.at:%H:%M} -> {after.at:%H:%M})"
    )
    assert_cursor_not_past_unloaded(emulator, path, entity, after, tuple(late) if not committed else ())
    assert_integrity(path, entity)
    if hit in PRE_COMMIT_STEPS and (paused or hit != "complete"):
        assert after == before, f"{label}: killed at {hit}, yet the stored cursor moved {before} -> {after}"
    return hit, after


def recover_and_compare(emulator: Emulator, path: Path, entity: Entity, monkeypatch, folder: Path, label: str) -> None:
    """A normal run after the crash: equal to the emulator and to a clean run, cursor at the newest change."""
    run_job(entity)
    assert_integrity(path, entity)
    assert_equals_emulator(emulator, path, entity)
    assert stored_cursor(path, entity).at == newest_change(emulator, entity), label
    assert_same_rows(path, clean_reference(monkeypatch, folder, entity, label), entity)
    read_copy = read_copy_of(path)
    if read_copy is not None:  # what analysts open: republished by the normal run
        assert_same_rows(read_copy, path, entity)


def read_copy_of(path: Path) -> Path | None:
    try:
        from sync_pipelines.warehouse.settings import read_copy_path
    except ImportError:  # a warehouse without a read copy
        return None
    copy = read_copy_path(path)
    return copy if copy.exists() else None


@pytest.fixture
def frozen(emulator):
    emulator.tenant(MAIN.domain).set_clock(START)
    return emulator


# -- the tests -------------------------------------------------------------------------------------------------


def test_killed_mid_extract_then_a_normal_run_loads_everything_once(frozen, warehouse, workers, tmp_path, monkeypatch):
    emulator = frozen
    rng = random.Random(20260209)
    for entity in (JOBS, INVOICES):
        run_job(entity)
    scenarios = [
        # (entity, run config of the killed run, the resource/action held, requests let through first)
        (JOBS, {}, ("job", "details"), 3),
        (INVOICES, {"mode": "full", "page_size": 20}, ("invoice", "list"), 3),
        (INVOICES, {"page_size": 2}, ("invoice", "list"), 2),
    ]
    worker = workers()
    killed_in = []
    for cycle, (entity, config, (resource, action), let_through) in enumerate(scenarios):
        late = mutate(emulator, rng, cycle)
        before = stored_cursor(warehouse, entity), pending_changes(emulator, warehouse, entity)
        emulator.faults.add(Fault(times=let_through, tenant=MAIN.domain, resource=resource, action=action))
        held = emulator.faults.add(
            Fault(delay=HELD_REQUEST_SECONDS, tenant=MAIN.domain, resource=resource, action=action)
        )
        worker.go(entity, warehouse, config)
        upcoming = workers()  # the next worker imports while this one runs
        worker.wait_for(lambda: held.times == 0, f"the held {resource}/{action} request")
        time.sleep(0.2)  # the other detail threads finish theirs; the walk is blocked on the held one
        # reading: ahead of the pipeline (the first batch), or in dlt's extract (the rest)
        assert worker.phases[-1] in ("read", "extract"), worker.phases
        killed_in.append(worker.phases[-1])
        label = f"mid-extract {entity.name} {config or 'incremental'} ({resource}/{action} #{let_through + 1} held)"
        kill_and_check(emulator, warehouse, entity, worker, before, late, label)
        recover_and_compare(emulator, warehouse, entity, monkeypatch, tmp_path, f"extract-{cycle}")
        worker = upcoming
    assert "extract" in killed_in and "read" in killed_in, killed_in  # both sides of the pipeline's creation


@pytest.mark.parametrize(
    ("entity", "steps"),
    [
        # (step, arrivals to let pass first): copy #1 = one load file already COPYed, the next one not
        (JOBS, [("normalize", 0), ("copy", 1), ("merge", 0), ("complete", 0), ("post_load", 0)]),
        (INVOICES, [("copy", 0), ("merge", 0), ("complete", 0)]),
    ],
    ids=["jobs", "invoices"],
)
def test_killed_at_each_step_of_the_load_then_a_normal_run_recovers(
    entity, steps, frozen, warehouse, workers, tmp_path, monkeypatch
):
    emulator = frozen
    rng = random.Random(len(entity.name))
    run_job(entity)
    worker = workers()
    for cycle, (step, skip) in enumerate(steps):
        late = mutate(emulator, rng, cycle)
        before = stored_cursor(warehouse, entity), pending_changes(emulator, warehouse, entity)
        worker.go(entity, warehouse, pause_at=step, skip=skip)
        upcoming = workers()
        worker.wait_for(lambda: any(kind == "PAUSED" for kind, _, _ in worker.events), f"the pause at {step}")
        label = f"{entity.name} paused at {step}" + (f" #{skip + 1}" if skip else "")
        hit, after = kill_and_check(emulator, warehouse, entity, worker, before, late, label, paused=True)
        assert hit == step
        if step == "post_load":  # the load itself committed: data and cursor together
            assert after.at == newest_change(emulator, entity), label
            assert pending_changes(emulator, warehouse, entity) == 0, label
        recover_and_compare(emulator, warehouse, entity, monkeypatch, tmp_path, f"{entity.name}-{step}")
        worker = upcoming


def test_killed_inside_running_statements_then_a_normal_run_recovers(frozen, warehouse, workers, tmp_path, monkeypatch):
    """No pause: the kill is sent a few milliseconds after a step began, so it lands inside DuckDB statements
    (a COPY, the merge transaction, the `_dlt_loads` insert) or wherever the run has got to by then."""
    emulator = frozen
    rng = random.Random(7)
    entity = JOBS
    run_job(entity)
    trials = [("copy", 0.0), ("merge", 0.0), ("merge", 0.015), ("complete", 0.0)]
    worker = workers()
    for cycle, (step, delay) in enumerate(trials):
        late = mutate(emulator, rng, cycle)
        before = stored_cursor(warehouse, entity), pending_changes(emulator, warehouse, entity)
        worker.go(entity, warehouse)
        upcoming = workers()
        worker.wait_for(lambda: step in worker.phases or "done" in worker.phases, f"step {step}")
        time.sleep(delay)
        label = f"jobs swept: {delay * 1000:.0f} ms after '{step}' began"
        kill_and_check(emulator, warehouse, entity, worker, before, late, label)
        recover_and_compare(emulator, warehouse, entity, monkeypatch, tmp_path, f"sweep-{cycle}")
        worker = upcoming
