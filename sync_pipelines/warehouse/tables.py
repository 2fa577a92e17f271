"""The warehouse, outside dlt's loads: counts, deletions, live views, the quarantine table, exports.

The SQL is written once for DuckDB and PostgreSQL; `dialect.session` is the seam. Every function opens its own
short session and is called by the warehouse's one writer (`lock.step_turn`) or on a warehouse no sync is writing.
A sync opens one before its load (`before_load`) and one after it (`after_load`): each connection to a DuckDB file
of hundreds of MB costs tens of milliseconds, and on PostgreSQL `after_load` is one transaction, so an analyst
never sees a load whose deletions are not marked yet.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sync_pipelines.errors import SuspiciousDeletions
from sync_pipelines.synchroteam.quarantine import REJECTED_TABLE, RESOLVED
from sync_pipelines.warehouse.analytics_tests import TESTS_TABLE
from sync_pipelines.warehouse.dialect import Session, session
from sync_pipelines.warehouse.settings import DuckDBWarehouse, Warehouse

DELETED_AT = "_deleted_at"
STATE_VERSIONS_KEPT = 10


def exists_yet(target: Warehouse) -> bool:
    """False for a DuckDB file not created yet (reading would create it); a PostgreSQL database exists."""
    return not isinstance(target, DuckDBWarehouse) or target.path.exists()


@dataclass(frozen=True)
class BeforeLoad:
    rows: int = 0  # in the table
    quarantine: dict[str, dict[str, Any]] = field(default_factory=dict)  # the entity's stored quarantine rows


@dataclass(frozen=True)
class StoredState:
    """A dlt pipeline state as `_dlt_pipeline_state` holds it: what identifies it (its version and its hash) and
    the state itself, encoded as dlt stores it (`state.read_tenant_state` reads it)."""

    version: int
    version_hash: str
    encoded: str = field(default="", repr=False)


def before_load(target: Warehouse, schema: str, table: str) -> BeforeLoad:
    """Before a sync's load: the rows of `schema.table` and its stored quarantine rows. Raises `WarehouseLocked`
    if another process holds the DuckDB file, and a `SYNC_WAREHOUSE_URL` error if PostgreSQL cannot be reached;
    nothing when there is no warehouse yet."""
    if not exists_yet(target):
        return BeforeLoad()
    with session(target) as con:
        return BeforeLoad(_count(con, schema, table), _quarantine(con, schema, table))


def stored_states(target: Warehouse, schema: str, pipelines: Iterable[str]) -> dict[str, StoredState]:
    """The newest dlt state each of `pipelines` stored in `schema` with a completed load, as dlt's
    `sync_destination` reads it; a pipeline that stored none is left out."""
    if not exists_yet(target):
        return {}
    with session(target) as con:
        found = {pipeline: _stored_state(con, schema, pipeline) for pipeline in pipelines}
    return {pipeline: state for pipeline, state in found.items() if state is not None}


def _stored_state(con: Session, schema: str, pipeline: str) -> StoredState | None:
    """The newest state of `pipeline` that a completed load committed, as dlt's `sync_destination` reads it."""
    if not _exists(con, schema, "_dlt_pipeline_state") or not _exists(con, schema, "_dlt_loads"):
        return None
    found = con.rows(
        f"""SELECT s.version, s.version_hash, s.state FROM "{schema}"._dlt_pipeline_state s
        JOIN "{schema}"._dlt_loads l ON l.load_id = s._dlt_load_id
        WHERE s.pipeline_name = ? AND l.status = 0 ORDER BY s._dlt_load_id DESC LIMIT 1""",
        [pipeline],
    )
    if not found or found[0][1] is None:
        return None
    return StoredState(int(found[0][0]), str(found[0][1]), str(found[0][2] or ""))


@dataclass(frozen=True)
class AfterLoad:
    rows: int  # in the table, deleted or not
    live_rows: int  # not marked deleted
    deleted: int  # marked deleted by this run
    duplicate_ids: list[str] = field(default_factory=list)  # ids in the table more than once (at most 20)
    rejected: dict[str, int] = field(default_factory=dict)  # records the run quarantined, unresolved, by reason
    last_load: str | None = None  # the newest dlt load that wrote a row of the table (dlt's load id)
    columns: dict[str, dict[str, Any]] | None = None  # the table's columns in dlt's stored schema, when asked

    @property
    def content_version(self) -> str:
        """Changes when the table's content may have: a load of its rows (a sync or a reconciliation), a row
        marked deleted, a row added or removed by anything else. Dagster's data version of the entity asset."""
        return f"{self.last_load or 'never'}:{self.rows}:{self.live_rows}"


def after_load(
    target: Warehouse,
    schema: str,
    table: str,
    seen_ids: Iterable[str] | None,
    when: datetime,
    max_deleted_share: float,
    pipeline: str | None = None,
    run_id: str | None = None,
    stored_columns: bool = False,
    legacy_pipeline: str | None = None,
    catalog: Catalog | None = None,
) -> AfterLoad:
    """After a sync's load, in one connection: count the rows, mark what a full walk (`seen_ids`) no longer saw
    as deleted (`mark_deleted`), keep the live views (`ensure_live_views`), count the live rows; and what the
    sync's checks report: duplicate ids, and what `run_id` quarantined. `stored_columns`: also the table's columns
    as `pipeline`'s dlt schema stored in the warehouse has them (a run that built no pipeline), or
    `legacy_pipeline`'s while the tenant's schema has not loaded the table yet. `catalog`: what the step's other
    entities' upkeep read of the schema already (`Catalog`). The schema's retention follows, once per step
    (`prune`)."""
    if not exists_yet(target):
        return AfterLoad(0, 0, 0)
    try:
        with session(target) as con:
            if catalog is not None:
                _catalogs[con] = catalog
            after = _upkeep(con, schema, table, seen_ids, when, max_deleted_share, run_id)
            if stored_columns:
                after = replace(after, columns=_stored_columns_of(con, schema, table, pipeline, legacy_pipeline))
            return after
    except BaseException:
        if catalog is not None:  # on PostgreSQL the session rolled back what the catalog says it did
            catalog.forget()
        raise


def _upkeep(
    con: Session,
    schema: str,
    table: str,
    seen_ids: Iterable[str] | None,
    when: datetime,
    max_deleted_share: float,
    run_id: str | None,
) -> AfterLoad:
    rows = _count(con, schema, table)
    deleted = 0
    if seen_ids is not None:
        deleted = _mark_deleted(con, schema, table, seen_ids, when, max_deleted_share)
    _ensure_live_views(con, schema, table)
    _ensure_rejected_table(con, schema)
    live = _count(con, schema, table, live=True)
    duplicates = _duplicate_ids(con, schema, table) if rows else []
    rejected = _rejected_counts(con, schema, table, run_id) if run_id is not None else {}
    last_load = _last_load(con, schema, table) if rows else None
    return AfterLoad(rows, live, deleted, duplicates, rejected, last_load)


def _stored_columns_of(
    con: Session, schema: str, table: str, pipeline: str | None, legacy_pipeline: str | None
) -> dict[str, dict[str, Any]]:
    """`table`'s columns in `pipeline`'s stored dlt schema, else in `legacy_pipeline`'s; {} in neither."""
    names = [name for name in (pipeline, legacy_pipeline) if name is not None]
    return next((found for name in names if (found := _stored_columns(con, schema, name, table))), {})


def prune(target: Warehouse, schema: str, resolved_before: datetime, pipeline: str | None = None) -> None:
    """The schema's retention, once per step after its entities' `after_load`: quarantine rows resolved before
    `resolved_before` (`_prune_resolved`) and `pipeline`'s old dlt state versions (`_prune_pipeline_state`)."""
    if not exists_yet(target):
        return
    with session(target) as con:
        _prune_resolved(con, schema, resolved_before)
        if pipeline is not None:
            _prune_pipeline_state(con, schema, pipeline)


def _stored_columns(con: Session, schema: str, schema_name: str, table: str) -> dict[str, dict[str, Any]]:
    """`table`'s columns in the newest version of the dlt schema `schema_name` stored in `_dlt_version`, the one
    dlt itself restores (each column as dlt describes it: `name`, `data_type`, `nullable`...)."""
    if not _exists(con, schema, "_dlt_version"):
        return {}
    stored = _catalog(con).dlt_schemas
    if (schema, schema_name) not in stored:
        found = con.rows(
            f"""SELECT schema FROM "{schema}"._dlt_version WHERE schema_name = ? ORDER BY inserted_at DESC LIMIT 1""",
            [schema_name],
        )
        stored[schema, schema_name] = json.loads(found[0][0]).get("tables", {}) if found else {}
    return dict(stored[schema, schema_name].get(table, {}).get("columns", {}))


class Catalog:
    """The base tables of the schemas looked at, their columns, views' comments and stored dlt schemas, each read
    once: a query on `information_schema` is slow on DuckDB, and `after_load` asks a dozen. A session has its own;
    a step shares one across its entities' `after_load` sessions. This module's own DDL keeps it current, and no
    other DDL reaches the schema while it is used: the sessions run in the warehouse's writer turn
    (`lock.step_turn`: the DuckDB file's one writer, PostgreSQL's advisory lock on the tenant's schema), after
    dlt's load, which creates tables and stores dlt's schema."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Read everything again when next asked."""
        self.tables: dict[str, set[str]] = {}
        self.columns: dict[tuple[str, str], list[str]] = {}
        self.columns_read: set[str] = set()  # the schemas whose columns were all read at once
        self.view_comments: dict[str, dict[str, str]] = {}
        self.dlt_schemas: dict[tuple[str, str], dict[str, Any]] = {}


_catalogs: WeakKeyDictionary[Session, Catalog] = WeakKeyDictionary()


def _catalog(con: Session) -> Catalog:
    return _catalogs.setdefault(con, Catalog())


def _base_tables(con: Session, schema: str) -> set[str]:
    catalog = _catalog(con)
    if schema not in catalog.tables:
        catalog.tables[schema] = {
            r[0]
            for r in con.rows(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'",
                [schema],
            )
        }
    return catalog.tables[schema]


def _exists(con: Session, schema: str, table: str) -> bool:
    return table in _base_tables(con, schema)


@contextmanager
def _table(target: Warehouse, schema: str, table: str, read_only: bool = True) -> Iterator[Session | None]:
    """A session when `schema.table` exists; None when the warehouse or the table does not exist yet."""
    if not exists_yet(target):
        yield None
        return
    with session(target, read_only=read_only) as con:
        yield con if _exists(con, schema, table) else None


def count_rows(target: Warehouse, schema: str, table: str, live: bool = False) -> int:
    """Rows in `schema.table` (only rows not marked deleted when `live`); 0 when it does not exist yet."""
    with _table(target, schema, table, read_only=False) as con:
        return 0 if con is None else _count(con, schema, table, live)


def _count(con: Session, schema: str, table: str, live: bool = False) -> int:
    if not _exists(con, schema, table):
        return 0
    where = f' WHERE "{DELETED_AT}" IS NULL' if live and _has_column(con, schema, table, DELETED_AT) else ""
    return int(con.rows(f'SELECT count(*) FROM "{schema}"."{table}"{where}')[0][0])


def _duplicate_ids(con: Session, schema: str, table: str) -> list[str]:
    return [r[0] for r in con.rows(f'SELECT id FROM "{schema}"."{table}" GROUP BY id HAVING count(*) > 1 LIMIT 20')]


def _has_column(con: Session, schema: str, table: str, column: str) -> bool:
    return bool(_columns(con, schema, table, column))


def _columns(con: Session, schema: str, table: str, only: str | None = None) -> list[str]:
    """The columns of `schema.table` in their order (or just `only`, if it is one of them)."""
    catalog = _catalog(con)
    if schema not in catalog.columns_read:  # every table's at once: one query costs about as much as one table's
        catalog.columns_read.add(schema)
        for name, column in con.rows(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = ? "
            "ORDER BY table_name, ordinal_position",
            [schema],
        ):
            catalog.columns.setdefault((schema, name), []).append(column)
    if (schema, table) not in catalog.columns:  # changed since (`_ensure_deleted_column`)
        catalog.columns[schema, table] = [
            r[0]
            for r in con.rows(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
                "ORDER BY ordinal_position",
                [schema, table],
            )
        ]
    columns = catalog.columns[schema, table]
    return columns if only is None else [c for c in columns if c == only]


def _mark_deleted(
    con: Session, schema: str, table: str, seen_ids: Iterable[str], when: datetime, max_share: float
) -> int:
    """After a full walk: rows whose id the API no longer lists get `_deleted_at` (kept, not erased).

    Marks nothing and raises `SuspiciousDeletions` when that would be more than `max_share` of the live rows
    (an empty or truncated answer is likelier than a tenant losing half its records).
    """
    if not _exists(con, schema, table):
        return 0
    _ensure_deleted_column(con, schema, table)
    con.execute("CREATE TEMP TABLE seen_ids (id VARCHAR)")  # each session is a connection of its own
    ids = iter(seen_ids)
    while chunk := list(islice(ids, 100_000)):  # never a second million-long copy of the ids at once
        con.execute("INSERT INTO seen_ids SELECT unnest(?::VARCHAR[])", [chunk])
    con.execute("ANALYZE seen_ids")  # PostgreSQL then plans a hashed anti-join, not a nested loop
    # NOT EXISTS, not NOT IN: PostgreSQL turns it into an anti-join however many ids there are
    live_gone = f'"{DELETED_AT}" IS NULL AND NOT EXISTS (SELECT 1 FROM seen_ids s WHERE s.id = "{schema}"."{table}".id)'
    gone, live = con.rows(
        f'SELECT count(*) FILTER (WHERE {live_gone}), count(*) FILTER (WHERE "{DELETED_AT}" IS NULL) '
        f'FROM "{schema}"."{table}"'
    )[0]
    if gone > max(1, max_share * live):
        raise SuspiciousDeletions(
            f"A full run of {schema}.{table} would mark {gone} of {live} live rows deleted "
            f"(more than max_deleted_share={max_share:g}); nothing was marked.",
            action="Check that the tenant's domain and base URL are right. If the records really are gone, "
            "run mode=full again with a higher max_deleted_share.",
        )
    con.execute(f'UPDATE "{schema}"."{table}" SET "{DELETED_AT}" = ? WHERE {live_gone}', [when])
    return int(gone)


def _ensure_deleted_column(con: Session, schema: str, table: str) -> None:
    # looked up first: on PostgreSQL, ALTER TABLE waits for every reader of the table, even when it adds nothing
    if not _has_column(con, schema, table, DELETED_AT):
        con.execute(f'ALTER TABLE "{schema}"."{table}" ADD COLUMN IF NOT EXISTS "{DELETED_AT}" TIMESTAMPTZ')
        _catalog(con).columns.pop((schema, table), None)


def _ensure_live_views(con: Session, schema: str, table: str) -> list[str]:
    """`<table>_live` and `<table>__<child>_live`: the rows not marked deleted; children follow their parent.

    Columns are listed (a new column re-defines the view). A view is (re)created only when missing or defined
    otherwise: each carries a comment naming its definition, so a run that changed nothing writes nothing (it
    leaves DuckDB's read copy current, and on PostgreSQL waits for no reader of the view).
    """
    if not _exists(con, schema, table):
        return []
    _ensure_deleted_column(con, schema, table)
    kept = ", ".join(f'"{c}"' for c in _columns(con, schema, table) if c != DELETED_AT)
    views = {
        f"{table}_live": (
            f'SELECT {kept} FROM "{schema}"."{table}" WHERE "{DELETED_AT}" IS NULL',
            f"Rows of {schema}.{table} not marked deleted",
        )
    }
    for child in sorted(t for t in _base_tables(con, schema) if t.startswith(f"{table}__")):
        columns = ", ".join(f'c."{c}"' for c in _columns(con, schema, child))
        views[f"{child}_live"] = (
            f'SELECT {columns} FROM "{schema}"."{child}" c JOIN "{schema}"."{table}" p ON c._dlt_root_id = p._dlt_id '
            f'WHERE p."{DELETED_AT}" IS NULL',
            f"Rows of {schema}.{child} whose parent is not marked deleted",
        )
    comments = _catalog(con).view_comments
    if schema not in comments:
        comments[schema] = con.view_comments(schema)
    for name, (select, description) in views.items():
        comment = f"{description} (definition {hashlib.sha256(select.encode()).hexdigest()[:12]})"
        if comments[schema].get(name) != comment:
            con.execute(f'DROP VIEW IF EXISTS "{schema}"."{name}"')  # a column may have moved: not OR REPLACE
            con.execute(f'CREATE VIEW "{schema}"."{name}" AS {select}')
            quoted = comment.replace("'", "''")  # COMMENT takes no parameter
            con.execute(f'COMMENT ON VIEW "{schema}"."{name}" IS \'{quoted}\'')
            comments[schema][name] = comment
    return list(views)


# The quarantine table as dlt creates it at the first rejected record (the hints in `quarantine.REJECTED_TABLE_HINTS`):
# created empty beforehand, so analysts' queries on it work on a warehouse that never rejected anything. dlt
# compares its tables with the destination's before a load, and finds this one complete.
REJECTED_COLUMNS = {
    "entity": "VARCHAR NOT NULL",
    "record_id": "VARCHAR NOT NULL",
    "reason": "VARCHAR",
    "message": "VARCHAR",
    "action": "VARCHAR",
    "payload": "VARCHAR",
    "first_seen": "TIMESTAMPTZ",
    "last_seen": "TIMESTAMPTZ",
    "attempts": "BIGINT",
    "status": "VARCHAR",
    "run_id": "VARCHAR",
    "resolved_at": "TIMESTAMPTZ",
    "_dlt_load_id": "VARCHAR NOT NULL",
    "_dlt_id": "VARCHAR NOT NULL",
}


def _ensure_rejected_table(con: Session, schema: str) -> None:
    if _exists(con, schema, REJECTED_TABLE):
        return
    columns = ", ".join(f'"{name}" {kind}' for name, kind in REJECTED_COLUMNS.items())
    con.execute(f'CREATE TABLE IF NOT EXISTS "{schema}"."{REJECTED_TABLE}" ({columns})')
    _base_tables(con, schema).add(REJECTED_TABLE)


def _quarantine(con: Session, schema: str, entity: str) -> dict[str, dict[str, Any]]:
    """The stored quarantine rows of `entity`, by record id."""
    if not _exists(con, schema, REJECTED_TABLE):
        return {}
    names, rows = con.named_rows(f'SELECT * FROM "{schema}"."{REJECTED_TABLE}" WHERE entity = ?', [entity])
    return {row["record_id"]: row for row in (dict(zip(names, r)) for r in rows)}


def _rejected_counts(con: Session, schema: str, entity: str, run_id: str) -> dict[str, int]:
    """Records `run_id` quarantined for `entity` and did not resolve, by reason."""
    if not _exists(con, schema, REJECTED_TABLE):
        return {}
    rows = con.rows(
        f'SELECT reason, count(*) FROM "{schema}"."{REJECTED_TABLE}" WHERE entity = ? AND run_id = ? '
        "AND status <> ? GROUP BY reason",
        [entity, run_id, RESOLVED],
    )
    return {reason: int(count) for reason, count in rows}


def _prune_resolved(con: Session, schema: str, before: datetime) -> int:
    """Retention: quarantine rows resolved before `before` are deleted."""
    if not _exists(con, schema, REJECTED_TABLE):
        return 0
    return con.execute(
        f'DELETE FROM "{schema}"."{REJECTED_TABLE}" WHERE status = ? AND resolved_at < ?', [RESOLVED, before]
    )


def _last_load(con: Session, schema: str, table: str) -> str | None:
    """The id of the newest dlt load that wrote a row of `schema.table`: a load merges every record it carries
    into the table with its load id, so a load of other entities of the tenant (one dlt schema, one load) leaves
    this one as it was. None before the first."""
    found = con.rows(f'SELECT max(_dlt_load_id) FROM "{schema}"."{table}"')
    return str(found[0][0]) if found and found[0][0] is not None else None


def _prune_pipeline_state(con: Session, schema: str, pipeline: str, keep: int = STATE_VERSIONS_KEPT) -> int:
    """Retention: dlt adds a `_dlt_pipeline_state` row at every load that changes the state (cursor, memo) and
    never removes one; all but the newest `keep` completed versions of `pipeline` are deleted (dlt restores
    the newest completed one)."""
    if not _exists(con, schema, "_dlt_pipeline_state") or not _exists(con, schema, "_dlt_loads"):
        return 0
    return con.execute(
        f"""DELETE FROM "{schema}"._dlt_pipeline_state WHERE pipeline_name = ? AND _dlt_load_id < (
            SELECT min(load_id) FROM (
                SELECT s._dlt_load_id AS load_id FROM "{schema}"._dlt_pipeline_state s
                JOIN "{schema}"._dlt_loads l ON l.load_id = s._dlt_load_id
                WHERE l.status = 0 AND s.pipeline_name = ?
                ORDER BY s._dlt_load_id DESC LIMIT ?) AS newest)""",
        [pipeline, pipeline, keep],
    )


def export_rejected(target: Warehouse, schema: str, folder: Path) -> list[Path]:
    """One CSV per entity and reason of the records still in quarantine (open or unresolved)."""
    written = []
    with _table(target, schema, REJECTED_TABLE) as con:
        if con is None:
            return []
        names, rows = con.named_rows(
            f"SELECT entity, reason, record_id, status, attempts, message, action, first_seen, last_seen, run_id, "
            f'payload FROM "{schema}"."{REJECTED_TABLE}" WHERE status <> ? ORDER BY entity, reason, record_id',
            [RESOLVED],
        )
        groups: dict[tuple[str, str], list[tuple]] = {}
        for row in rows:
            groups.setdefault((row[0], row[1]), []).append(row)
    folder.mkdir(parents=True, exist_ok=True)
    for (entity, reason), group in sorted(groups.items()):
        file = folder / f"{entity}__{reason}.csv"
        with file.open("w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(names)
            out.writerows(group)
        written.append(file)
    return written


def table_summary(target: Warehouse) -> list[tuple[str, str, int]]:
    """(schema, table, rows) of every data table in the warehouse; dlt's bookkeeping tables, the analytics step's
    kept tests and views left out."""
    with session(target, read_only=True) as con:
        tables = con.rows(
            """
            SELECT table_schema, table_name FROM information_schema.tables
            WHERE table_type = 'BASE TABLE'
              AND table_schema NOT LIKE '%\\_staging' ESCAPE '\\'
              AND table_name NOT LIKE '\\_dlt\\_%' ESCAPE '\\'
              AND table_name <> ?
              AND table_schema NOT IN ('information_schema', 'main', 'pg_catalog', 'public')
              AND table_schema NOT LIKE 'pg\\_%' ESCAPE '\\'
            ORDER BY table_schema, table_name
            """,
            [TESTS_TABLE],
        )
        return [
            (schema, table, int(con.rows(f'SELECT count(*) FROM "{schema}"."{table}"')[0][0]))
            for schema, table in tables
        ]
