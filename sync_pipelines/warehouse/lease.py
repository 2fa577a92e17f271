"""A run's lease: held by the process that runs it for as long as it runs, and released by the operating system
(DuckDB: a file lock in `<warehouse>.runs/`) or by PostgreSQL (a session's advisory lock) when that process dies,
however it dies. Any other process, on any host that reaches the warehouse, can then tell a dead run from a live
one, which Dagster cannot do for runs of its default run launcher or of `dagster job execute`.
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from sync_pipelines.warehouse.dialect import postgres_connection
from sync_pipelines.warehouse.lock import advisory_key, pg_locks_ids
from sync_pipelines.warehouse.settings import DuckDBWarehouse, PostgresWarehouse, Warehouse


def leases_folder(warehouse: Path) -> Path:
    """`<warehouse>.runs/`, beside the DuckDB file: one lock file per running run."""
    return warehouse.with_name(f"{warehouse.name}.runs")


def _lease_file(warehouse: Path, run_id: str) -> Path:
    return leases_folder(warehouse) / f"{run_id}.lock"


def _lease_key(run_id: str) -> int:
    return advisory_key(f"run:{run_id}")


@contextmanager
def holding(target: Warehouse, run_id: str, holder: str) -> Iterator[None]:
    """Hold the run's lease for the block (and for no longer than this process lives)."""
    if isinstance(target, DuckDBWarehouse):
        folder = leases_folder(target.path)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = _lease_file(target.path, run_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a run id is taken once: never waits
            os.write(fd, f"{holder}\n".encode())
            yield
        finally:
            with suppress(OSError):
                path.unlink()
            os.close(fd)  # releases the lock
        return
    con = postgres_connection(target, application_name=f"{holder} lease"[:63])
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", [_lease_key(run_id)])
        yield
    finally:
        con.close()  # ends the session, and with it the lock


def held(target: Warehouse, run_id: str) -> bool:
    """Whether a live process holds the run's lease."""
    if isinstance(target, DuckDBWarehouse):
        try:
            fd = os.open(_lease_file(target.path, run_id), os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False
    return _advisory_held(target, _lease_key(run_id))


def _advisory_held(target: PostgresWarehouse, key: int) -> bool:
    con = postgres_connection(target, application_name="sync_pipelines lease check")
    try:
        with con.cursor() as cur:
            cur.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1)",
                list(pg_locks_ids(key)),
            )
            return bool(cur.fetchone()[0])
    finally:
        con.close()
