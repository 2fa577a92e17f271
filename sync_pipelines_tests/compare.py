"""Warehouse == emulator, field by field: every record, every child row, no id twice."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
from dlt.common.normalizers.naming.snake_case import NamingConvention

from sync_pipelines.catalogue import TENANTS, tenant_entities
from sync_pipelines.synchroteam.records import normalise_record
from sync_pipelines.warehouse.dialect import Session, session
from sync_pipelines.warehouse.settings import DuckDBWarehouse, Warehouse
from synchroteam_emulator import Emulator

NAMING = NamingConvention()


def flatten(record: dict[str, Any], prefix: str = "") -> tuple[dict[str, Any], dict[str, list[dict]]]:
    """(scalar columns as dlt names them, child lists by their name) of a normalised record."""
    columns: dict[str, Any] = {}
    children: dict[str, list[dict]] = {}
    for key, value in record.items():
        name = f"{prefix}{NAMING.normalize_identifier(key)}"
        if isinstance(value, dict):
            nested, nested_children = flatten(value, f"{name}__")
            columns.update(nested)
            children.update(nested_children)
        elif isinstance(value, list):
            children[name] = value
        elif value is not None:
            columns[name] = value
    return columns, children


def _comparable(value: Any) -> Any:
    if hasattr(value, "astimezone") and getattr(value, "tzinfo", None) is not None:
        return value.astimezone(ZoneInfo("UTC"))
    if hasattr(value, "is_finite"):  # Decimal: DuckDB pads the scale
        return value.normalize()
    if isinstance(value, float):  # an amount the record keeps as the API's number: DECIMAL in the warehouse
        return Decimal(str(value)).normalize()
    return value


def warehouse_rows(con: duckdb.DuckDBPyConnection | Session, schema: str, table: str) -> list[dict[str, Any]]:
    """Every row of `schema.table`, over a DuckDB connection or a warehouse session (DuckDB or PostgreSQL)."""
    sql = f'SELECT * FROM "{schema}"."{table}"'
    if isinstance(con, duckdb.DuckDBPyConnection):
        cursor = con.execute(sql)
        names, rows = [d[0] for d in cursor.description], cursor.fetchall()
    else:
        names, rows = con.named_rows(sql)
    return [dict(zip(names, row)) for row in rows]


def table_exists(con: duckdb.DuckDBPyConnection | Session, schema: str, table: str) -> bool:
    sql = "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?"
    if isinstance(con, duckdb.DuckDBPyConnection):
        return bool(con.execute(sql, [schema, table]).fetchall())
    return bool(con.rows(sql, [schema, table]))


def assert_warehouse_equals_emulator(
    emulator: Emulator,
    path: Path | Warehouse,
    domains: dict[str, str],
    tenants: list[str] | None = None,
    entities: list[str] | None = None,
    extra_ids_allowed: bool = False,
) -> None:
    """Every record of the emulator is in the warehouse as the API has it now, each once.

    `tenants`/`entities` restrict the comparison; `extra_ids_allowed` tolerates rows of records deleted from the
    API that no full run has swept yet.
    """
    target = DuckDBWarehouse(path) if isinstance(path, Path) else path
    with session(target, read_only=True) as con:
        for tenant in TENANTS.values():
            if tenants is not None and tenant.name not in tenants:
                continue
            store = emulator.tenant(domains[tenant.name])
            tz = ZoneInfo(store.timezone)
            for entity in tenant_entities(tenant):
                if entities is not None and entity.name not in entities:
                    continue
                expected = {str(r["id"]): normalise_record(r, tz) for r in store.records(entity.resource)}
                _assert_entity(con, tenant.name, entity.name, expected, extra_ids_allowed)


def _assert_entity(con, schema: str, table: str, expected: dict[str, dict], extra_ids_allowed: bool) -> None:
    rows = warehouse_rows(con, schema, table)
    ids = [row["id"] for row in rows]
    duplicates = [i for i, n in Counter(ids).items() if n > 1]
    assert not duplicates, f"{schema}.{table}: ids loaded twice: {duplicates[:5]}"
    missing, unexpected = set(expected) - set(ids), set(ids) - set(expected)
    assert not missing and (extra_ids_allowed or not unexpected), (
        f"{schema}.{table}: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
    )
    rows = [row for row in rows if row["id"] in expected]
    by_id = {row["id"]: row for row in rows}
    child_rows: dict[str, list[dict]] = {}
    for record_id, record in expected.items():
        columns, children = flatten(record)
        row = by_id[record_id]
        for column, value in columns.items():
            assert column in row, f"{schema}.{table}: no column {column}"
            assert _comparable(row[column]) == _comparable(value), (
                f"{schema}.{table} id {record_id}: {column} is {row[column]!r}, API says {value!r}"
            )
        for child, items in children.items():
            child_rows.setdefault(child, []).extend(
                {"_parent": row["_dlt_id"], "_idx": idx, "item": item} for idx, item in enumerate(items)
            )
    parents = {row["_dlt_id"] for row in rows}
    for child, items in child_rows.items():
        _assert_children(con, schema, f"{table}__{child}", items, parents)


def _assert_children(con, schema: str, table: str, expected: list[dict], parents: set[str]) -> None:
    """The child rows of `parents` (the rows of records the API still has) are exactly `expected`."""
    if not table_exists(con, schema, table):
        assert not expected, f"{schema}.{table} is missing"
        return
    rows = {
        (r["_dlt_parent_id"], r["_dlt_list_idx"]): r
        for r in warehouse_rows(con, schema, table)
        if r["_dlt_parent_id"] in parents
    }
    assert len(rows) == len(expected), f"{schema}.{table}: {len(rows)} rows, API has {len(expected)}"
    for item in expected:
        row = rows[(item["_parent"], item["_idx"])]
        value = item["item"]
        columns = flatten(value)[0] if isinstance(value, dict) else {"value": value}
        for column, wanted in columns.items():
            assert _comparable(row[column]) == _comparable(wanted), f"{schema}.{table}: {column} differs"
