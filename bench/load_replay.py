"""Replay the DuckDB side of a dlt load package in a bare process: peak RSS and time per statement.

    .venv/bin/python -m bench.load_replay /tmp/phase_10x [--times 3] [--no-dedup] [--memory-limit 128MB] [--threads 2]

Takes the newest invoices load package under DIR/.dlt_pipelines (written by `bench.phase_rss`) and the table
layout of DIR/warehouse.duckdb, copies the package's files into fresh staging tables as dlt does
(`INSERT ... BY NAME SELECT * FROM read_json(file)`), multiplies them `--times` over with new ids (a bigger load
without a bigger emulator), then runs the package's merge SQL statement by statement. `--no-dedup` drops dlt's
`ROW_NUMBER()` de-duplication from that SQL, as dlt's `deduplicated: True` merge option would.
"""

from __future__ import annotations

import argparse
import re
import resource
import tempfile
import time
from pathlib import Path

import duckdb

DEDUP = re.compile(r'ROW_NUMBER\(\) OVER \(partition BY "[^"]+" ORDER BY \(SELECT NULL\)\)')


def peak_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--times", type=int, default=1)
    parser.add_argument("--no-dedup", action="store_true")
    parser.add_argument("--memory-limit", default="128MB")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    merge_sql = max(args.dir.glob(".dlt_pipelines/**/completed_jobs/invoices.*.sql"), key=lambda p: p.stat().st_mtime)
    package = merge_sql.parent
    sql = merge_sql.read_text()
    if args.no_dedup:
        sql = DEDUP.sub("1", sql)
    with tempfile.TemporaryDirectory() as scratch:
        con = duckdb.connect(
            f"{scratch}/replay.duckdb", config={"memory_limit": args.memory_limit, "threads": args.threads}
        )
        con.execute(f"ATTACH '{args.dir / 'warehouse.duckdb'}' AS src (READ_ONLY)")
        for schema in ("synchroteam", "synchroteam_staging"):
            con.execute(f"CREATE SCHEMA {schema}")
            for table in ("invoices", "invoices__lines"):
                con.execute(f"CREATE TABLE {schema}.{table} AS SELECT * FROM src.synchroteam.{table} LIMIT 0")
        con.execute("DETACH src")
        started = time.monotonic()
        for file in sorted(package.glob("*.jsonl.gz")):
            table = file.name.split(".")[0]
            con.execute(f"INSERT INTO synchroteam_staging.{table} BY NAME SELECT * FROM read_json('{file}')")
        for k in range(1, args.times):  # copies with new ids; originals are the rows without the suffix
            con.execute(
                f"INSERT INTO synchroteam_staging.invoices BY NAME SELECT * REPLACE (id || '-{k}' AS id, "
                f"_dlt_id || '-{k}' AS _dlt_id) FROM synchroteam_staging.invoices WHERE NOT contains(id, '-')"
            )
            con.execute(
                f"INSERT INTO synchroteam_staging.invoices__lines BY NAME SELECT * REPLACE ("
                f"_dlt_id || '-{k}' AS _dlt_id, _dlt_root_id || '-{k}' AS _dlt_root_id, _dlt_parent_id || "
                f"'-{k}' AS _dlt_parent_id) FROM synchroteam_staging.invoices__lines "
                f"WHERE NOT contains(_dlt_id, '-')"
            )
        rows = con.execute(
            "SELECT (SELECT count(*) FROM synchroteam_staging.invoices), "
            "(SELECT count(*) FROM synchroteam_staging.invoices__lines)"
        ).fetchone()
        print(
            f"staging: {rows[0]:,} invoices, {rows[1]:,} lines; peak {peak_mb()} MB, {time.monotonic() - started:.1f} s"
        )
        for statement in filter(str.strip, sql.splitlines()):
            began = time.monotonic()
            con.execute(statement)
            print(f"{' '.join(statement.split())[:60]:60s} peak {peak_mb():4d} MB {time.monotonic() - began:6.1f} s")
        con.close()
    print(f"peak RSS {peak_mb()} MB")


if __name__ == "__main__":
    main()
