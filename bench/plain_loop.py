"""Baseline (a): the obvious hand-written loop. httpx pages a list endpoint to the end, fetches `details` for every
record of a resource listed without its children (jobs), and inserts each page into a flat DuckDB table (one column
per top-level field, nested values as JSON text) with `executemany`, one transaction per page. Incremental:
`changedSince` = the largest `dateModified` already in the table; a lookup list without `dateModified` (job types)
is read whole every run.

    python -m bench.plain_loop --base-url URL --db FILE [--incremental] --entities '[{"domain": "...",
        "api_key": "...", "schema": "synchroteam", "resource": "invoice", "table": "invoices", "details": false,
        "dated": true}]'

No retries, no pacing, no normalisation (timestamps stay text in the tenant's zone), no de-duplication beyond
delete-then-insert by id per page. Entities run one after the other in one process. Prints one JSON line per
entity: records, requests, seconds in HTTP + JSON and in DuckDB.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import duckdb
import httpx


def column_type(value: object) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, (int, float)):
        return "DOUBLE"
    return "VARCHAR"


def cell(value: object) -> object:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


def table_columns(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> list[str]:
    return [
        row[0]
        for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [schema, name],
        ).fetchall()
    ]


def fetch_page(client: httpx.Client, spec: dict, page: int, since: Any) -> tuple[dict, list[dict], int]:
    """One list page, and with `details` each listed record's details: (the page's body, its rows, requests)."""
    params: dict[str, Any] = {"page": page, "pageSize": 100}
    if since:
        params["changedSince"] = since
    response = client.get(f"{spec['resource']}/list", params=params)
    response.raise_for_status()
    body = response.json()
    rows, requests = body["data"], 1
    if spec.get("details"):
        full = []
        for row in rows:
            detail = client.get(f"{spec['resource']}/details", params={"id": row["id"]})
            requests += 1
            if detail.status_code == 404:
                continue
            detail.raise_for_status()
            full.append(detail.json())
        rows = full
    return body, rows, requests


def store_page(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], rows: list[dict]) -> list[str]:
    """Delete-then-insert the page's rows by id in one transaction, creating the table or adding the columns the
    page brings first. Returns the table's columns."""
    flat = [{k.lower(): cell(v) for k, v in row.items()} for row in rows]
    for row in flat:
        row["id"] = str(row["id"])
    if not columns:
        first: dict[str, object] = {}
        for row in flat:
            for k, v in row.items():
                if v is not None and k not in first:
                    first[k] = v
        columns = ["id"] + [k for k in first if k != "id"]
        declared = ", ".join(f'"{c}" {column_type(first[c])}' for c in columns)
        con.execute(f"CREATE TABLE {table} ({declared})")
    for k in sorted({k for row in flat for k in row} - set(columns)):
        value = next((row[k] for row in flat if row.get(k) is not None), "")
        con.execute(f'ALTER TABLE {table} ADD COLUMN "{k}" {column_type(value)}')
        columns.append(k)
    names = ", ".join(f'"{c}"' for c in columns)
    placeholders = ", ".join("?" for _ in columns)
    con.execute("BEGIN")  # one transaction per page (row-by-row autocommit is ~4x slower)
    con.execute(f"DELETE FROM {table} WHERE id IN (SELECT unnest(?))", [[row["id"] for row in flat]])
    con.executemany(
        f"INSERT INTO {table} ({names}) VALUES ({placeholders})", [[row.get(c) for c in columns] for row in flat]
    )
    con.execute("COMMIT")
    return columns


def sync(con: duckdb.DuckDBPyConnection, base_url: str, spec: dict, incremental: bool) -> dict:
    started = time.monotonic()
    t_http = t_db = 0.0
    requests = records = 0
    schema, name = spec["schema"], spec["table"]
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    table = f'"{schema}"."{name}"'
    columns = table_columns(con, schema, name)
    since = None
    if incremental and columns and spec["dated"]:  # a lookup list (no dateModified) is read whole every run
        latest = con.execute(f"SELECT max(datemodified) FROM {table}").fetchone()
        since = latest[0] if latest else None
    with httpx.Client(base_url=base_url + "/", auth=(spec["domain"], spec["api_key"]), timeout=60) as client:
        page = 1
        while True:
            t0 = time.monotonic()
            body, rows, made = fetch_page(client, spec, page, since)
            requests += made
            t1 = time.monotonic()
            t_http += t1 - t0
            if rows:
                columns = store_page(con, table, columns, rows)
                records += len(rows)
            t_db += time.monotonic() - t1
            size = body.get("pageSize") or 100
            if not body["data"] or len(body["data"]) < size or page * size >= (body.get("recordsTotal") or 0):
                break
            page += 1
    return {
        "schema": schema,
        "table": name,
        "records": records,
        "requests": requests,
        "http_s": round(t_http, 3),
        "db_s": round(t_db, 3),
        "wall_s": round(time.monotonic() - started, 3),
        "since": since,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--entities", required=True, help="JSON list of entity specs")
    parser.add_argument("--incremental", action="store_true")
    args = parser.parse_args(argv)
    con = duckdb.connect(args.db)
    for spec in json.loads(args.entities):
        print(json.dumps(sync(con, args.base_url, spec, args.incremental)), flush=True)
    con.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
