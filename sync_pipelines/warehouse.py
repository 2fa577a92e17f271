"""Reading the DuckDB warehouse: row counts for run metadata and the demo's summary."""

from __future__ import annotations

from pathlib import Path

import duckdb


def count_rows(path: Path, schema: str, table: str) -> int:
    """Rows in `schema.table`; 0 when the warehouse or the table does not exist yet."""
    if not path.exists():
        return 0
    with duckdb.connect(str(path)) as con:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchone()[0]
        return int(con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0]) if exists else 0


def table_summary(path: Path) -> list[tuple[str, str, int]]:
    """(schema, table, rows) of every data table in the warehouse, dlt's bookkeeping tables left out."""
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            """
            SELECT table_schema, table_name FROM information_schema.tables
            WHERE table_schema NOT LIKE '%\\_staging' ESCAPE '\\'
              AND table_name NOT LIKE '\\_dlt\\_%' ESCAPE '\\'
              AND table_schema NOT IN ('information_schema', 'main', 'pg_catalog')
            ORDER BY table_schema, table_name
            """
        ).fetchall()
        return [
            (schema, table, con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0])
            for schema, table in tables
        ]
