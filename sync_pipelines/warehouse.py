"""The DuckDB warehouse, outside dlt's loads: counts, deletions, live views, the quarantine table, exports.

Every function opens its own short connection and is called by the single writer (the `duckdb_writer` pool) or
on a warehouse no sync is writing.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from sync_pipelines.synchroteam.errors import SuspiciousDeletions, WarehouseLocked
from sync_pipelines.synchroteam.quarantine import REJECTED_TABLE, RESOLVED

DELETED_AT = "_deleted_at"
STATE_VERSIONS_KEPT = 10


def read_copy_path(path: Path) -> Path:
    """Where analysts read: `<stem>_read.duckdb` beside the warehouse, replaced after every load."""
    return path.with_name(f"{path.stem}_read{path.suffix}")


def check_writable(path: Path) -> None:
    """Raise `WarehouseLocked` if another process holds the DuckDB file (DuckDB allows one writing process)."""
    if not path.exists():
        return
    try:
        duckdb.connect(str(path)).close()
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


def publish_read_copy(path: Path) -> Path:
    """Checkpoint the warehouse and atomically replace its read copy. A reader holding the old copy open keeps
    reading it (the old file lives on until closed); new connections see the new data."""
    target = read_copy_path(path)
    with duckdb.connect(str(path)) as con:
        con.execute("CHECKPOINT")  # everything in the main file, nothing left in the WAL
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(path, partial)
    os.replace(partial, target)
    return target


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ? "
            "AND table_type = 'BASE TABLE'",
            [schema, table],
        ).fetchone()[0]
    )


@contextmanager
def _table(path: Path, schema: str, table: str, read_only: bool = True) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A connection when `schema.table` exists; None when the warehouse or the table does not exist yet."""
    if not path.exists():
        yield None
        return
    with duckdb.connect(str(path), read_only=read_only) as con:
        yield con if _exists(con, schema, table) else None


def count_rows(path: Path, schema: str, table: str, live: bool = False) -> int:
    """Rows in `schema.table` (only rows not marked deleted when `live`); 0 when it does not exist yet."""
    with _table(path, schema, table, read_only=False) as con:
        if con is None:
            return 0
        where = f' WHERE "{DELETED_AT}" IS NULL' if live and _has_column(con, schema, table, DELETED_AT) else ""
        return int(con.execute(f'SELECT count(*) FROM "{schema}"."{table}"{where}').fetchone()[0])


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
        ).fetchone()[0]
    )


def mark_deleted(
    path: Path, schema: str, table: str, seen_ids: Iterable[str], when: datetime, max_share: float = 1.0
) -> int:
    """After a full walk: rows whose id the API no longer lists get `_deleted_at` (kept, not erased).

    Marks nothing and raises `SuspiciousDeletions` when that would be more than `max_share` of the live rows
    (an empty or truncated answer is likelier than a tenant losing half its records).
    """
    with duckdb.connect(str(path)) as con:
        if not _exists(con, schema, table):
            return 0
        _ensure_deleted_column(con, schema, table)
        con.execute("CREATE TEMP TABLE seen_ids (id VARCHAR)")
        con.execute("INSERT INTO seen_ids SELECT unnest(?::VARCHAR[])", [list(seen_ids)])
        live_gone = f'"{DELETED_AT}" IS NULL AND id NOT IN (SELECT id FROM seen_ids)'
        gone, live = con.execute(
            f'SELECT count(*) FILTER (WHERE {live_gone}), count(*) FILTER (WHERE "{DELETED_AT}" IS NULL) '
            f'FROM "{schema}"."{table}"'
        ).fetchone()
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


def ensure_live_views(path: Path, schema: str, table: str) -> list[str]:
    """`<table>_live` and `<table>__<child>_live`: the rows not marked deleted; children follow their parent."""
    with duckdb.connect(str(path)) as con:
        if not _exists(con, schema, table):
            return []
        _ensure_deleted_column(con, schema, table)
        con.execute(
            f'CREATE OR REPLACE VIEW "{schema}"."{table}_live" AS SELECT * EXCLUDE ("{DELETED_AT}") '
            f'FROM "{schema}"."{table}" WHERE "{DELETED_AT}" IS NULL'
        )
        views = [f"{table}_live"]
        children = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' "
            "AND starts_with(table_name, ?)",
            [schema, f"{table}__"],
        ).fetchall()
        for (child,) in children:
            con.execute(
                f'CREATE OR REPLACE VIEW "{schema}"."{child}_live" AS SELECT c.* FROM "{schema}"."{child}" c '
                f'JOIN "{schema}"."{table}" p ON c._dlt_root_id = p._dlt_id WHERE p."{DELETED_AT}" IS NULL'
            )
            views.append(f"{child}_live")
        return views


def read_quarantine(path: Path, schema: str, entity: str) -> dict[str, dict[str, Any]]:
    """The stored quarantine rows of `entity`, by record id."""
    with _table(path, schema, REJECTED_TABLE) as con:
        if con is None:
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


def prune_resolved(path: Path, schema: str, before: datetime) -> int:
    """Retention: quarantine rows resolved before `before` are deleted."""
    with duckdb.connect(str(path)) as con:
        if not _exists(con, schema, REJECTED_TABLE):
            return 0
        return int(
            con.execute(
                f'DELETE FROM "{schema}"."{REJECTED_TABLE}" WHERE status = ? AND resolved_at < ?', [RESOLVED, before]
            ).fetchone()[0]
        )


def prune_pipeline_state(path: Path, schema: str, pipeline: str, keep: int = STATE_VERSIONS_KEPT) -> int:
    """Retention: dlt adds a `_dlt_pipeline_state` row at every load that changes the state (cursor, memo) and
    never removes one; all but the newest `keep` completed versions of `pipeline` are deleted (dlt restores
    the newest completed one)."""
    with duckdb.connect(str(path)) as con:
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
            ).fetchone()[0]
        )


def export_rejected(path: Path, schema: str, folder: Path) -> list[Path]:
    """One CSV per entity and reason of the records still in quarantine (open or unresolved)."""
    written = []
    with _table(path, schema, REJECTED_TABLE) as con:
        if con is None:
            return []
        cursor = con.execute(
            f'SELECT entity, reason, record_id, status, attempts, message, action, first_seen, last_seen, run_id, '
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
            writer = csv.writer(handle)
            writer.writerow(names)
            writer.writerows(rows)
        written.append(target)
    return written


def table_summary(path: Path) -> list[tuple[str, str, int]]:
    """(schema, table, rows) of every data table in the warehouse, dlt's bookkeeping tables and views left out."""
    with duckdb.connect(str(path), read_only=True) as con:
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
            (schema, table, con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0])
            for schema, table in tables
        ]
