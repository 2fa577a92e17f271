"""PostgreSQL next to DuckDB, in one run on one machine: `python -m bench.postgres [--quick]`.

1. The first `sync_all` (every entity of both tenants, the realistic scale) and a no-change `sync_all` right
   after, into a DuckDB file and into a PostgreSQL database, one after the other against the same emulator.
2. Two tenants' first loads (`sync_synchroteam__invoices` and `sync_synchroteam_hec__invoices`) started at the
   same moment, then one after the other, each into a fresh warehouse: on PostgreSQL (a lock per tenant schema)
   and on DuckDB (one lock for the file).

PostgreSQL is a throwaway cluster on 127.0.0.1 (`sync_pipelines_tests/postgres_server.py`, fsync off as in the
tests: this measures the product's work, not the disk). Every run is `dagster job execute`, Dagster's start-up
included. Prints a Markdown table and writes bench/results/postgres-<scale>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import PYTHON, DagsterHome, EmulatorProcess, Measured, tenant_specs
from bench.run import RESULTS, SCALES, log, machine, product_version
from sync_pipelines_tests.postgres_server import running_postgres

PAIR = ("sync_synchroteam__invoices", "sync_synchroteam_hec__invoices")


def home_for(root: Path, emu: EmulatorProcess, url: str | None) -> DagsterHome:
    """A DAGSTER_HOME writing a DuckDB file under `root`, or the PostgreSQL database `url`. Its storage is created
    first, as a deployed DAGSTER_HOME has it: two runs creating a fresh SQLite store at once race on its schema."""
    extra = {"SYNC_WAREHOUSE_URL": url, "SYNC_DUCKDB_PATH": ""} if url else {}
    home = DagsterHome(root, emu.base_url, root / "warehouse.duckdb", extra)
    create = "from dagster import DagsterInstance; DagsterInstance.get().dispose()"
    subprocess.run([PYTHON, "-c", create], env=home.env, check=True)
    return home


def first_and_no_change(home: DagsterHome, emu: EmulatorProcess, timeout: float) -> dict[str, Any]:
    first = home.job("sync_all", timeout=timeout).check("first sync_all")
    first_requests = emu.stats(reset=True).raw["n"]
    again = home.job("sync_all", timeout=timeout).check("no-change sync_all")
    again_requests = emu.stats(reset=True).raw["n"]
    runs = home.runs(2)
    records = sum(m.get("loaded", 0) for m in runs[0]["materializations"].values())
    return {
        "records": records,
        "first": {"wall_s": first.wall_s, "rss_mb": first.peak_rss_mb, "requests": first_requests},
        "no_change": {"wall_s": again.wall_s, "rss_mb": again.peak_rss_mb, "requests": again_requests},
    }


def pair(home: DagsterHome, together: bool, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    if together:
        with ThreadPoolExecutor(2) as pool:
            results: list[Measured] = list(pool.map(lambda job: home.job(job, timeout=timeout), PAIR))
    else:
        results = [home.job(job, timeout=timeout) for job in PAIR]
    wall = time.monotonic() - started
    for job, m in zip(PAIR, results):
        m.check(job)
    return {"wall_s": wall, "each_s": [m.wall_s for m in results]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1/20 of the scale")
    args = parser.parse_args(argv)
    scale = SCALES["quick" if args.quick else "1x"]
    started = datetime.now()
    out: dict[str, Any] = {"started": started.isoformat(timespec="seconds"), "scale": scale.name}
    out.update(product=product_version(), machine=machine())
    with tempfile.TemporaryDirectory(prefix="bench-postgres-") as tmp:
        work = Path(tmp)
        with running_postgres(work / "pg") as server, EmulatorProcess(tenant_specs(scale.main, scale.hec)) as emu:
            version = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
            out["postgres_version"] = version or "?"
            for name in ("duckdb", "postgres"):
                url = server.create_database("bench_all") if name == "postgres" else None
                log(f"{name}: first sync_all, then a no-change sync_all")
                out[name] = first_and_no_change(home_for(work / f"all_{name}", emu, url), emu, scale.timeout_s)
                save(out, scale.name)
            for name in ("postgres", "duckdb"):
                for together in (True, False):
                    label = "together" if together else "one_after_the_other"
                    url = server.create_database(f"bench_pair_{label}") if name == "postgres" else None
                    log(f"{name}: two tenants' invoices, {label}")
                    home = home_for(work / f"pair_{name}_{label}", emu, url)
                    out.setdefault(f"{name}_pair", {})[label] = pair(home, together, scale.timeout_s)
                    emu.stats(reset=True)
                    save(out, scale.name)
    out["minutes"] = (datetime.now() - started).total_seconds() / 60
    save(out, scale.name)
    print(markdown(out))
    return 0


def save(out: dict[str, Any], scale: str) -> None:
    """The results so far (a failure later keeps what was measured)."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"postgres-{scale}.json").write_text(json.dumps(out, indent=2))


def markdown(r: dict[str, Any]) -> str:
    d, p = r["duckdb"], r["postgres"]
    rows = [
        "| run | DuckDB wall s | PostgreSQL wall s | PostgreSQL ÷ DuckDB | requests | peak RSS MB DuckDB / PostgreSQL |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in (
        ("first", f"first `sync_all` ({d['records']:,} records)"),
        ("no_change", "no-change `sync_all`"),
    ):
        rows.append(
            f"| {label} | {d[key]['wall_s']:.1f} | {p[key]['wall_s']:.1f} | {p[key]['wall_s'] / d[key]['wall_s']:.2f}× "
            f"| {d[key]['requests']:,} / {p[key]['requests']:,} | {d[key]['rss_mb']:.0f} / {p[key]['rss_mb']:.0f} |"
        )
    rows += [
        "",
        "| warehouse | both invoices loads at once: wall s (each run's) | one after the other: wall s"
        " | at once ÷ one after the other |",
        "|---|---:|---:|---:|",
    ]
    for name, label in (
        ("postgres", "PostgreSQL (a lock per tenant schema)"),
        ("duckdb", "DuckDB (one lock for the file)"),
    ):
        pr = r[f"{name}_pair"]
        together, serial = pr["together"]["wall_s"], pr["one_after_the_other"]["wall_s"]
        each = " / ".join(f"{s:.1f}" for s in pr["together"]["each_s"])
        rows.append(f"| {label} | {together:.1f} ({each}) | {serial:.1f} | {together / serial:.2f}× |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
