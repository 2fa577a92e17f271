"""One writer at a time, across processes: a file lock beside a DuckDB warehouse (one writer for the whole file),
a PostgreSQL advisory lock per tenant schema (tenants load in parallel, across hosts).

Every step of the writer pool (syncs, their checks, the quarantine export) holds it while it touches the
warehouse. The pool is what schedules steps and what the UI shows as "blocked"; the lock is the guarantee, for
the cases the pool misses:
- on Dagster's default SQLite storage, two processes claiming the pool's one slot at the same instant can both
  get it (the claim reads, then writes; SQLite ignores `SELECT ... FOR UPDATE`);
- runs of separate instances share no pool at all: `dagster asset materialize` without DAGSTER_HOME, or two
  DAGSTER_HOMEs on one warehouse.
Without it, DuckDB refuses the second writer at once, or two dlt pipelines race on the same working folder and
state. The DuckDB lock is an OS lock (flock): a process that dies releases it, so it never goes stale. The
PostgreSQL lock is a session's advisory lock: held by the step's own connection (named after the run and step, so
whoever waits is told who holds it, on any host), released when that connection ends, including when its process
dies. A host that vanishes holds it until PostgreSQL notices the dead connection (its `tcp_keepalives_*`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
from filelock import FileLock, Timeout

from sync_pipelines.warehouse.dialect import postgres_connection
from sync_pipelines.warehouse.settings import DuckDBWarehouse, PostgresWarehouse, Warehouse

NOTICE_EVERY_SECONDS = 60.0
LOCK_NAMESPACE = "sync_pipelines.warehouse"


def lock_path(warehouse: Path) -> Path:
    """`<warehouse>.lock`, beside the DuckDB file."""
    return warehouse.with_name(f"{warehouse.name}.lock")


def _holder_path(warehouse: Path) -> Path:
    return warehouse.with_name(f"{warehouse.name}.lock.holder")


def _holder(warehouse: Path) -> str:
    try:
        return _holder_path(warehouse).read_text().strip() or "another process"
    except OSError:
        return "another process"


@contextmanager
def warehouse_turn(warehouse: Path, holder: str, log: Callable[[str], object]) -> Iterator[None]:
    """Wait for the warehouse, hold it for the block. `holder` says who holds it (run and step), for whoever
    waits; `log` is told when the wait starts and every NOTICE_EVERY_SECONDS after, with the holder's name.

    There is no timeout, like the pool's own wait: a holder is a step at work, bounded by its own HTTP and run
    timeouts (`dagster/max_runtime`), and its death releases the lock."""
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path(warehouse))
    started = time.monotonic()
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log(f"Waiting for the warehouse {warehouse}: {_holder(warehouse)} is using it.")
        while True:
            try:
                lock.acquire(timeout=NOTICE_EVERY_SECONDS)
                break
            except Timeout:
                log(
                    f"Still waiting for the warehouse after {time.monotonic() - started:.0f} s: "
                    f"{_holder(warehouse)} is using it."
                )
        log(f"Warehouse free after {time.monotonic() - started:.1f} s of waiting.")
    try:
        since = datetime.now(UTC).isoformat(timespec="seconds")
        _holder_path(warehouse).write_text(f"{holder} (pid {os.getpid()}, since {since})\n")
        yield
    finally:
        with suppress(OSError):
            _holder_path(warehouse).unlink()
        lock.release()


def advisory_key(schema: str) -> int:
    """The advisory lock of a tenant schema: a signed 64-bit key, the same on every host."""
    digest = hashlib.sha256(f"{LOCK_NAMESPACE}:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def pg_locks_ids(key: int) -> tuple[int, int]:
    """How `pg_locks` shows a 64-bit advisory key: (classid, objid), its high and low 32 bits, with objsubid 1."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


@contextmanager
def schema_turn(target: PostgresWarehouse, schema: str, holder: str, log: Callable[[str], object]) -> Iterator[None]:
    """Wait for the tenant schema's advisory lock, hold it for the block (like `warehouse_turn`)."""
    key = advisory_key(schema)
    con = postgres_connection(target, application_name=holder)
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", [key])
            if not cur.fetchone()[0]:
                started = time.monotonic()
                log(f"Waiting for the warehouse schema {schema} ({target}): {_advisory_holder(cur, key)} is using it.")
                cur.execute("SET lock_timeout = %s", [f"{int(NOTICE_EVERY_SECONDS * 1000)}ms"])
                while True:
                    try:
                        cur.execute("SELECT pg_advisory_lock(%s)", [key])
                        break
                    except psycopg2.errors.LockNotAvailable:
                        log(
                            f"Still waiting for the warehouse schema {schema} after "
                            f"{time.monotonic() - started:.0f} s: {_advisory_holder(cur, key)} is using it."
                        )
                log(f"Warehouse schema {schema} free after {time.monotonic() - started:.1f} s of waiting.")
        yield
    finally:
        con.close()  # ends the session, and with it the lock


def _advisory_holder(cur: Any, key: int) -> str:
    """Who holds the advisory lock `key`, as its connection names itself (run and step), and from where."""
    cur.execute(
        "SELECT a.application_name, a.client_addr, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s AND l.objid::bigint = %s "
        "AND l.objsubid = 1",
        list(pg_locks_ids(key)),
    )
    row = cur.fetchone()
    if row is None:
        return "another session"
    name, address, pid = row
    name = name or "another session"
    return f"{name} (backend pid {pid}{f', from {address}' if address else ''})"


def turn(target: Warehouse, schema: str, holder: str, log: Callable[[str], object]) -> AbstractContextManager[None]:
    """The writer's turn on `schema`: the whole DuckDB file, or the schema's advisory lock on PostgreSQL."""
    if isinstance(target, DuckDBWarehouse):
        return warehouse_turn(target.path, holder, log)
    return schema_turn(target, schema, holder, log)


def step_turn(context: Any, target: Warehouse, schema: str) -> AbstractContextManager[None]:
    """`turn` on `schema` of the warehouse `target` (the step's `settings.warehouse()`) for a Dagster op, asset or
    asset check `context`."""
    op_context = context.op_execution_context
    # the run id's first 8 characters, as the UI shows them: PostgreSQL keeps 63 characters of a connection's name
    holder = f"run {op_context.run.run_id[:8]} step {op_context.op_handle}"
    return turn(target, schema, holder, op_context.log.info)
