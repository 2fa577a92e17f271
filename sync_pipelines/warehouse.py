"""Reading the DuckDB warehouse: row counts for run metadata and the demo's summary."""

from __future__ import annotations

from pathlib import Path

import dlt
import duckdb


def live_row_count(pipeline: dlt.Pipeline, table: str) -> int:
    """Rows in `table` of the pipeline's dataset, through the pipeline's own connection (the single writer)."""
    with pipeline.sql_client() as client:
        qualified = client.make_qualified_table_name(table)
        rows = client.execute_sql(f"SELECT count(*) FROM {qualified}")
    return int(rows[0][0]) if rows else 0


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
