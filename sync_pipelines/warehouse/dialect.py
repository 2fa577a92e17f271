"""The seam between the warehouse's SQL and its two engines: one `Session` API over DuckDB and PostgreSQL.

`tables.py` writes its SQL once, with `?` placeholders and the SQL both engines speak (information_schema,
`count(*) FILTER`, `starts_with`, `ALTER TABLE ... ADD COLUMN`). What differs is here: connecting (and what a
failure to connect means), placeholders, affected-row counts, view comments, and transactions: a PostgreSQL
session is one transaction, committed when the block ends, so readers see all of a session's changes or none.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import duckdb
import psycopg2
import psycopg2.extensions

from sync_pipelines.errors import ConfigurationError, WarehouseLocked, WarehouseUnavailable
from sync_pipelines.warehouse.settings import (
    WAREHOUSE_URL,
    DuckDBWarehouse,
    PostgresWarehouse,
    Warehouse,
    duckdb_settings,
    read_copy_path,
)

CONNECT_TIMEOUT_SECONDS = 10
APPLICATION_NAME = "sync_pipelines"
_HELD: set[str] = set()  # the DuckDB files this process holds open (`held_open`)


class Session(Protocol):
    """One connection to the warehouse, for one block."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...

    def named_rows(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; the rows it changed (0 for DDL)."""
        ...

    def view_comments(self, schema: str) -> dict[str, str]: ...


class DuckDBSession:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.con.execute(sql, list(params)).fetchall()

    def named_rows(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        cursor = self.con.execute(sql, list(params))
        return [d[0] for d in cursor.description or ()], cursor.fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = self.con.execute(sql, list(params))
        if cursor.description is None or [d[0] for d in cursor.description] != ["Count"]:
            return 0
        rows = cursor.fetchall()  # DuckDB answers a DML statement with its count (DDL with no row)
        return int(rows[0][0]) if rows else 0

    def view_comments(self, schema: str) -> dict[str, str]:
        return dict(
            self.rows("SELECT view_name, comment FROM duckdb_views() WHERE schema_name = ? AND NOT internal", [schema])
        )


class PostgresSession:
    def __init__(self, con: psycopg2.extensions.connection) -> None:
        self.con = con

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.named_rows(sql, params)[1]

    def named_rows(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        with self.con.cursor() as cursor:
            cursor.execute(_pyformat(sql), list(params))
            return [d[0] for d in cursor.description or ()], cursor.fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self.con.cursor() as cursor:
            cursor.execute(_pyformat(sql), list(params))
            return max(0, cursor.rowcount) if cursor.statusmessage.split()[0] in ("UPDATE", "DELETE", "INSERT") else 0

    def view_comments(self, schema: str) -> dict[str, str]:
        return dict(
            self.rows(
                "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ? AND c.relkind = 'v'",
                [schema],
            )
        )


def _pyformat(sql: str) -> str:
    """psycopg2 takes `%s` placeholders, and a literal `%` doubled."""
    return sql.replace("%", "%%").replace("?", "%s")


@contextmanager
def session(target: Warehouse, read_only: bool = False) -> Iterator[Session]:
    """A connection to the warehouse for the block: DuckDB's bounded like dlt's loads (`duckdb_settings`),
    PostgreSQL's one transaction, committed at the end (rolled back if the block raises)."""
    if isinstance(target, DuckDBWarehouse):
        with duckdb_connection(target, read_only) as con:
            yield DuckDBSession(con)
        return
    con = postgres_connection(target)
    try:
        if read_only:
            con.set_session(readonly=True)
        yield PostgresSession(con)
        con.commit()
    finally:
        con.close()  # without a commit, this rolls back


@contextmanager
def held_open(target: Warehouse) -> Iterator[None]:
    """Holds the DuckDB file open for the block (a sync step, in the writer's turn). DuckDB keeps one database
    instance per file in a process while a connection to it is open: every connection opened in the block, dlt's
    included, joins it instead of opening the file again, and none checkpoints it on close. A step otherwise
    opens and closes the file about ten times (the product's sessions before and after the load, dlt's state
    restore, each load job), each close a checkpoint. Nothing to hold on PostgreSQL."""
    if not isinstance(target, DuckDBWarehouse):
        yield
        return
    path = str(target.path)
    with duckdb_connection(target):
        _HELD.add(path)
        try:
            yield
        finally:
            _HELD.discard(path)


@contextmanager
def duckdb_connection(target: DuckDBWarehouse, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the DuckDB file; `WarehouseLocked` if another process holds it (one writing process).

    Every connection to one file in a process must be opened with the same configuration for DuckDB to share its
    instance (`held_open`): like dlt's, this one opens with DuckDB's and then sets the bounds (`duckdb_settings`)
    for the whole instance, and it is read-only only when the process does not hold the file open already (DuckDB
    refuses a read-only connection next to a read-write one)."""
    path, bounds = str(target.path), duckdb_settings()
    try:
        con = duckdb.connect(path, read_only=read_only and path not in _HELD)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise WarehouseLocked(
            f"{target.path} is held by another process ({str(exc).splitlines()[0][:200]}).",
            action=(
                f"Close that connection: analysts should open the read copy {read_copy_path(target.path)} "
                "(refreshed after every sync) instead of the warehouse itself. The run retries, with growing waits."
            ),
        ) from None
    with con:
        for key, value in bounds.items():
            con.execute(f"SET GLOBAL {key} = ?", [value])
        yield con


def postgres_connection(
    target: PostgresWarehouse, application_name: str = APPLICATION_NAME
) -> psycopg2.extensions.connection:
    """A connection to the PostgreSQL warehouse. A failure names `SYNC_WAREHOUSE_URL` and what to check, and
    never the password: `ConfigurationError` for what a setting must fix (host name, password, database),
    `WarehouseUnavailable` (retried) for a server that does not answer."""
    try:
        return psycopg2.connect(
            host=target.host,
            port=target.port,
            dbname=target.database,
            user=target.user,
            password=target.password,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name=application_name[:63],
            **target.options(),
        )
    except psycopg2.Error as exc:
        raise connection_error(target, exc) from None


def connection_error(target: PostgresWarehouse, exc: BaseException) -> ConfigurationError | WarehouseUnavailable:
    reason = " ".join(str(exc).split())[:300] or type(exc).__name__
    if target.password:
        reason = reason.replace(target.password, "***")
    lower = str(exc).lower()
    where = f"{WAREHOUSE_URL}={target}"
    if "password authentication failed" in lower or "no password supplied" in lower:
        return ConfigurationError(
            f"{where}: PostgreSQL refused the user {target.user!r} ({reason}).",
            action=f"Check the user and password in {WAREHOUSE_URL} (quote special characters with %XX).",
        )
    if "does not exist" in lower:
        return ConfigurationError(
            f"{where}: {reason}.",
            action=f"Create the database (CREATE DATABASE {target.database}) or fix its name in {WAREHOUSE_URL}.",
        )
    if "could not translate host name" in lower or "name or service not known" in lower:
        return ConfigurationError(
            f"{where}: unknown host {target.host!r} ({reason}).",
            action=f"Check the host name in {WAREHOUSE_URL}.",
        )
    if "permission denied" in lower or "not permitted" in lower or "pg_hba" in lower:
        return ConfigurationError(
            f"{where}: PostgreSQL refused the connection ({reason}).",
            action="Grant the user CONNECT and CREATE on the database (docs/scaling-out.md), or check pg_hba.conf.",
        )
    return WarehouseUnavailable(
        f"{where}: no answer from PostgreSQL ({reason}).",
        action=f"Check that the server runs and that {target.host}:{target.port} is reachable from this host "
        f"(firewall, port in {WAREHOUSE_URL}). The run retries, with growing waits.",
    )
