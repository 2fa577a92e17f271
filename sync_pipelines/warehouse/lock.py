"""One step at a time on the warehouse, across processes: a file lock beside the DuckDB file.

Every step of the `duckdb_writer` pool (syncs, their checks, the quarantine export) holds it while it touches the
warehouse. The pool is what schedules steps and what the UI shows as "blocked"; the lock is the guarantee, for
the cases the pool misses:
- on Dagster's default SQLite storage, two processes claiming the pool's one slot at the same instant can both
  get it (the claim reads, then writes; SQLite ignores `SELECT ... FOR UPDATE`);
- runs of separate instances share no pool at all: `dagster asset materialize` without DAGSTER_HOME, or two
  DAGSTER_HOMEs on one warehouse.
Without it, DuckDB refuses the second writer at once, or two dlt pipelines race on the same working folder and
state. The lock is an OS lock (flock): a process that dies releases it, so it never goes stale.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from sync_pipelines.warehouse.settings import warehouse_path

NOTICE_EVERY_SECONDS = 60.0


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


def step_turn(context: Any) -> AbstractContextManager[None]:
    """`warehouse_turn` on the configured warehouse for a Dagster op, asset or asset check `context`."""
    op_context = context.op_execution_context
    return warehouse_turn(
        warehouse_path(), f"run {op_context.run.run_id}, step {op_context.op_handle}", op_context.log.info
    )
