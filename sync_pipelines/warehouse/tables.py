"""The DuckDB warehouse, outside dlt's loads: counts, deletions, live views, the quarantine table, exports.

Every function opens its own short connection and is called by the single writer (the `duckdb_writer` pool) or
on a warehouse no sync is writing. A sync opens one before its load (`before_load`) and one after it
(`after_load`): each connection to a file of hundreds of MB costs tens of milliseconds. Every connection is
bounded like dlt's loads (`settings.duckdb_settings`), so a deletion sweep over a million rows stays small.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import duckdb

from sync_pipelines.errors import SuspiciousDeletions, WarehouseLocked
from sync_pipelines.synchroteam.quarantine import REJECTED_TABLE, RESOLVED
from sync_pipelines.warehouse.settings import duckdb_settings

DELETED_AT = "_deleted_at"
STATE_VERSIONS_KEPT = 10


def read_copy_path(path: Path) -> Path:
    """Where analysts read: `<stem>_read.duckdb` beside the warehouse (see `read_copy.py`)."""
    return path.with_name(f"{path.stem}_read{path.suffix}")


def _connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Every connection to the warehouse, bounded like dlt's loads (`settings.duckdb_settings`)."""
    return duckdb.connect(str(path), read_only=read_only, config=dict(duckdb_settings()))


@contextmanager
def writer(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection; `WarehouseLocked` if another process holds the file (DuckDB allows one writing
    process)."""
    try:
        con = _connect(path)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise WarehouseLocked(
            f"{path} is held by another process ({str(exc).splitlines()[0][:200]}).",
            action=(
                f"Close that connection: analysts should open the read copy {read_copy_path(path)} (refreshed after "
                "every sync) instead of the warehouse itself. The run retries, with growing waits."
            ),
        ) from None
    with con:
        yield con


def check_writable(path: Path) -> None:
    """Raise `WarehouseLocked` if another process holds the DuckDB file."""
    if path.exists():
        with writer(path):
            pass


def before_load(path: Path, schema: str, table: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """Before a sync's load, in one connection: the rows of `schema.table` and its stored quarantine rows (see
    `read_quarantine`). Raises `WarehouseLocked` like `check_writable`; (0, {}) when there is no warehouse yet."""
    if not path.exists():
        return 0, {}
    with writer(path) as con:
        return _count(con, schema, table), _quarantine(con, schema, table)


@dataclass(frozen=True)
class AfterLoad:
    rows: int  # in the table, deleted or not
    live_rows: int  # not marked deleted
    deleted: int  # marked deleted by this run


def after_load(
    path: Path,
    schema: str,
    table: str,
    seen_ids: Iterable[str] | None,
    when: datetime,
    max_deleted_share: float,
    resolved_before: datetime,
    pipeline: str | None = None,
) -> AfterLoad:
    """After a sync's load, in one connection: count the rows, mark what a full walk (`seen_ids`) no longer saw
    as deleted (`mark_deleted`), keep the live views (`ensure_live_views`), prune the quarantine
    (`prune_resolved`) and `pipeline`'s old dlt state versions (`_prune_pipeline_state`), count the live rows."""
    if not path.exists():
        return AfterLoad(0, 0, 0)
    with writer(path) as con:
        rows = _count(con, schema, table)
        deleted = 0
        if seen_ids is not None:
            deleted = _mark_deleted(con, schema, table, seen_ids, when, max_deleted_share)
        _ensure_live_views(con, schema, table)
        _prune_resolved(con, schema, resolved_before)
        if pipeline is not None:
            _prune_pipeline_state(con, schema, pipeline)
        return AfterLoad(rows, _count(con, schema, table, live=True), deleted)


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ? "
            "AND table_type = 'BASE TABLE'",
            [schema, table],
        ).fetchall()[0][0]
    )


@contextmanager
def _table(path: Path, schema: str, table: str, read_only: bool = True) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A connection when `schema.table` exists; None when the warehouse or the table does not exist yet."""
    if not path.exists():
        yield None
        return
    with _connect(path, read_only=read_only) as con:
        yield con if _exists(con, schema, table) else None


def count_rows(path: Path, schema: str, table: str, live: bool = False) -> int:
    """Rows in `schema.table` (only rows not marked deleted when `live`); 0 when it does not exist yet."""
    with _table(path, schema, table, read_only=False) as con:
        return 0 if con is None else _count(con, schema, table, live)


def _count(con: duckdb.DuckDBPyConnection, schema: str, table: str, live: bool = False) -> int:
    if not _exists(con, schema, table):
        return 0
    where = f' WHERE "{DELETED_AT}" IS NULL' if live and _has_column(con, schema, table, DELETED_AT) else ""
    return int(con.execute(f'SELECT count(*) FROM "{schema}"."{table}"{where}').fetchall()[0][0])


def duplicate_ids(path: Path, schema: str, table: str) -> list[str]:
    with _table(path, schema, table) as con:
        if con is None:
            return []
        rows = con.execute(f'SELECT id FROM "{schema}"."{table}" GROUP BY id HAVING count(*) > 1 LIMIT 20')
        return [r[0] for r in rows.fetchall()]


def _has_column(con: duckdb.DuckDBPyConnection, schema: str, table: str, column: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "AND column_name = ?",
            [schema, table, column],
        ).fetchall()[0][0]
    )


def _mark_deleted(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, seen_ids: Iterable[str], when: datetime, max_share: float
) -> int:
    """After a full walk: rows whose id the API no longer lists get `_deleted_at` (kept, not erased).

    Marks nothing and raises `SuspiciousDeletions` when that would be more than `max_share` of the live rows
    (an empty or truncated answer is likelier than a tenant losing half its records).
    """
    if not _exists(con, schema, table):
        return 0
    _ensure_deleted_column(con, schema, table)
    con.execute("CREATE OR REPLACE TEMP TABLE seen_ids (id VARCHAR)")
    ids = iter(seen_ids)
    while chunk := list(islice(ids, 100_000)):  # never a second million-long copy of the ids at once
        con.execute("INSERT INTO seen_ids SELECT unnest(?::VARCHAR[])", [chunk])
    live_gone = f'"{DELETED_AT}" IS NULL AND id NOT IN (SELECT id FROM seen_ids)'
    gone, live = con.execute(
        f'SELECT count(*) FILTER (WHERE {live_gone}), count(*) FILTER (WHERE "{DELETED_AT}" IS NULL) '
        f'FROM "{schema}"."{table}"'
    ).fetchall()[0]
    if gone > max(1, max_share * live):
        raise SuspiciousDeletions(
            f"A full run of {schema}.{table} would mark {gone} of {live} live rows deleted "
            f"(more than max_deleted_share={max_share:g}); nothing was marked.",
            action="Check that the tenant's domain and base URL are right. If the records really are gone, "
            "run mode=full again with a higher max_deleted_share.",
        )
    con.execute(f'UPDATE "{schema}"."{table}" SET "{DELETED_AT}" = ? WHERE {live_gone}', [when])
    return int(gone)


def _ensure_deleted_column(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> None:
    con.execute(f'ALTER TABLE "{schema}"."{table}" ADD COLUMN IF NOT EXISTS "{DELETED_AT}" TIMESTAMPTZ')


def _ensure_live_views(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str]:
    """`<table>_live` and `<table>__<child>_live`: the rows not marked deleted; children follow their parent.

    A view is (re)created only when missing or defined otherwise: each carries a comment naming its definition,
    so a run that changed nothing writes nothing (and leaves the read copy current).
    """
    if not _exists(con, schema, table):
        return []
    _ensure_deleted_column(con, schema, table)
    views = {
        f"{table}_live": (
            f'SELECT * EXCLUDE ("{DELETED_AT}") FROM "{schema}"."{table}" WHERE "{DELETED_AT}" IS NULL',
            f"Rows of {schema}.{table} not marked deleted",
        )
    }
    children = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' "
        "AND starts_with(table_name, ?)",
        [schema, f"{table}__"],
    ).fetchall()
    for (child,) in children:
        views[f"{child}_live"] = (
            f'SELECT c.* FROM "{schema}"."{child}" c JOIN "{schema}"."{table}" p ON c._dlt_root_id = p._dlt_id '
            f'WHERE p."{DELETED_AT}" IS NULL',
            f"Rows of {schema}.{child} whose parent is not marked deleted",
        )
    comments = dict(
        con.execute(
            "SELECT view_name, comment FROM duckdb_views() WHERE schema_name = ? AND NOT internal", [schema]
        ).fetchall()
    )
    for name, (select, description) in views.items():
        comment = f"{description} (definition {hashlib.sha256(select.encode()).hexdigest()[:12]})"
        if comments.get(name) != comment:
            con.execute(f'CREATE OR REPLACE VIEW "{schema}"."{name}" AS {select}')
            quoted = comment.replace("'", "''")  # COMMENT takes no parameter
            con.execute(f'COMMENT ON VIEW "{schema}"."{name}" IS \'{quoted}\'')
    return list(views)


def _quarantine(con: duckdb.DuckDBPyConnection, schema: str, entity: str) -> dict[str, dict[str, Any]]:
    """The stored quarantine rows of `entity`, by record id."""
    if not _exists(con, schema, REJECTED_TABLE):
        return {}
    cursor = con.execute(f'SELECT * FROM "{schema}"."{REJECTED_TABLE}" WHERE entity = ?', [entity])
    names = [d[0] for d in cursor.description]
    return {row["record_id"]: row for row in (dict(zip(names, r)) for r in cursor.fetchall())}


def rejected_counts(path: Path, schema: str, entity: str, run_id: str) -> dict[str, int]:
    """Records `run_id` quarantined for `entity` and did not resolve, by reason."""
    with _table(path, schema, REJECTED_TABLE) as con:
        if con is None:
            return {}
        rows = con.execute(
            f'SELECT reason, count(*) FROM "{schema}"."{REJECTED_TABLE}" WHERE entity = ? AND run_id = ? '
            "AND status <> ? GROUP BY reason",
            [entity, run_id, RESOLVED],
        ).fetchall()
        return {reason: int(count) for reason, count in rows}


def _prune_resolved(con: duckdb.DuckDBPyConnection, schema: str, before: datetime) -> int:
    """Retention: quarantine rows resolved before `before` are deleted."""
    if not _exists(con, schema, REJECTED_TABLE):
        return 0
    return int(
        con.execute(
            f'DELETE FROM "{schema}"."{REJECTED_TABLE}" WHERE status = ? AND resolved_at < ?', [RESOLVED, before]
        ).fetchall()[0][0]
    )


def _prune_pipeline_state(
    con: duckdb.DuckDBPyConnection, schema: str, pipeline: str, keep: int = STATE_VERSIONS_KEPT
) -> int:
    """Retention: dlt adds a `_dlt_pipeline_state` row at every load that changes the state (cursor, memo) and
    never removes one; all but the newest `keep` completed versions of `pipeline` are deleted (dlt restores
    the newest completed one)."""
    if not _exists(con, schema, "_dlt_pipeline_state") or not _exists(con, schema, "_dlt_loads"):
        return 0
    return int(
        con.execute(
            f"""DELETE FROM "{schema}"._dlt_pipeline_state WHERE pipeline_name = $name AND _dlt_load_id < (
                SELECT min(load_id) FROM (
                    SELECT s._dlt_load_id AS load_id FROM "{schema}"._dlt_pipeline_state s
                    JOIN "{schema}"._dlt_loads l ON l.load_id = s._dlt_load_id
                    WHERE l.status = 0 AND s.pipeline_name = $name
                    ORDER BY s._dlt_load_id DESC LIMIT $keep))""",
            {"name": pipeline, "keep": keep},
        ).fetchall()[0][0]
    )


def export_rejected(path: Path, schema: str, folder: Path) -> list[Path]:
    """One CSV per entity and reason of the records still in quarantine (open or unresolved)."""
    written = []
    with _table(path, schema, REJECTED_TABLE) as con:
        if con is None:
            return []
        cursor = con.execute(
            f"SELECT entity, reason, record_id, status, attempts, message, action, first_seen, last_seen, run_id, "
            f'payload FROM "{schema}"."{REJECTED_TABLE}" WHERE status <> ? ORDER BY entity, reason, record_id',
            [RESOLVED],
        )
        names = [d[0] for d in cursor.description]
        groups: dict[tuple[str, str], list[tuple]] = {}
        for row in cursor.fetchall():
            groups.setdefault((row[0], row[1]), []).append(row)
    folder.mkdir(parents=True, exist_ok=True)
    for (entity, reason), rows in sorted(groups.items()):
        target = folder / f"{entity}__{reason}.csv"
        with target.open("w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(names)
            out.writerows(rows)
        written.append(target)
    return written


def table_summary(path: Path) -> list[tuple[str, str, int]]:
    """(schema, table, rows) of every data table in the warehouse, dlt's bookkeeping tables and views left out."""
    with _connect(path, read_only=True) as con:
        tables = con.execute(
            """
            SELECT table_schema, table_name FROM information_schema.tables
            WHERE table_type = 'BASE TABLE'
              AND table_schema NOT LIKE '%\\_staging' ESCAPE '\\'
              AND table_name NOT LIKE '\\_dlt\\_%' ESCAPE '\\'
              AND table_schema NOT IN ('information_schema', 'main', 'pg_catalog')
            ORDER BY table_schema, table_name
            """
        ).fetchall()
        return [
            (schema, table, con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchall()[0][0])
            for schema, table in tables
        ]
