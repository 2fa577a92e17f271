"""The run users make most, side by side: a no-change `sync_all` of both tenants, a no-change run of one entity's
job, and dlt's `rest_api` pipeline over the same entities (the plain dlt pipeline), alternating, several rounds.

    python -m bench.nochange [--rounds 5] [--scale quick] [--singles synchroteam/quotations,...|all] [--profile DIR]
                             [--base REVISION]

Each product run is `dagster job execute`, Dagster's start-up included, on a warehouse and a DAGSTER_HOME that
already hold the first sync. `--base REVISION` runs every product job with that git revision's code too, next to
the current code's run, in alternating order, on a warehouse of its own that the base code synced first: a change
measured against what it changes (rows `base:<job>`, and `vs_base`). `--profile DIR` also runs one no-change `sync_all` and each `--singles` job under
cProfile and writes `DIR/<job>.prof` (read it with `python -m pstats`). Results: `bench/results/nochange-<scale>.json`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    DagsterHome,
    EmulatorProcess,
    Measured,
    export_revision,
    snapshot_code,
    tenant_specs,
)
from bench.run import ENTITIES, LOOKBACK_ZERO, SCALES, log, run_rest, write_results

SINGLE = "synchroteam/invoices"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", default="quick", choices=sorted(SCALES))
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="work here (kept) instead of a temporary folder")
    parser.add_argument("--base", default=None, help="a git revision whose code runs every product job too")
    parser.add_argument(
        "--singles", default=SINGLE, help="the entities whose own job runs each round, comma-separated, or all"
    )
    args = parser.parse_args(argv)
    known = [f"{t}/{e}" for t, e, _ in ENTITIES]
    singles = known if args.singles == "all" else [s.strip() for s in args.singles.split(",")]
    if unknown := [s for s in singles if s not in known]:
        parser.error(f"unknown entities {unknown}: choose among {', '.join(known)}")
    jobs = [f"sync_{s.replace('/', '__')}" for s in singles]
    scale = SCALES[args.scale]
    started = datetime.now()
    with tempfile.TemporaryDirectory(prefix="bench-nochange-") as tmp:
        work = args.keep.resolve() if args.keep else Path(tmp)
        code = snapshot_code(work / "code")
        with EmulatorProcess(tenant_specs(scale.main, scale.hec)) as emu:
            home = DagsterHome(work, emu.base_url, work / "warehouse.duckdb")
            log("first sync_all (product) and first rest_api load")
            home.job("sync_all", timeout=scale.timeout_s).check("first sync_all")
            homes = {"": home}
            if args.base:
                base_code = export_revision(args.base, work / "base_code")
                base = DagsterHome(work / "base", emu.base_url, work / "base" / "warehouse.duckdb", code=base_code)
                log(f"first sync_all with the code of {args.base}")
                base.job("sync_all", timeout=scale.timeout_s).check("first sync_all (base)")
                homes["base:"] = base
            run_rest(emu, work / "rest.duckdb", work / "rest_dlt", ENTITIES, scale.timeout_s)
            emu.stats(reset=True)
            product_runs: list[tuple[str, str, dict[str, dict[str, Any]] | None]] = [
                ("sync_all_lookback0", "sync_all", LOOKBACK_ZERO),
                ("sync_all_defaults", "sync_all", None),
                *((job, job, None) for job in jobs),
            ]
            rows: dict[str, list[dict[str, Any]]] = {f"{p}{name}": [] for name, _, _ in product_runs for p in homes}
            rows["rest_api"] = []
            for k in range(args.rounds):
                log(f"round {k + 1}/{args.rounds}")
                order = list(homes) if k % 2 == 0 else list(reversed(homes))  # who goes first alternates
                for name, job, config in product_runs:
                    for prefix in order:
                        measured = homes[prefix].job(job, config).check(f"{prefix}{job}")
                        rows[f"{prefix}{name}"].append(_row(measured, emu))
                rest, _, rest_stats = run_rest(emu, work / "rest.duckdb", work / "rest_dlt", ENTITIES, scale.timeout_s)
                rows["rest_api"].append(
                    {"wall_s": rest.wall_s, "rss_mb": rest.peak_rss_mb, "requests": rest_stats.count()}
                )
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                for job in ("sync_all", *jobs):
                    prof = args.profile.resolve() / f"{job}.prof"
                    cmd = ["-m", "cProfile", "-o", str(prof), "-m", "dagster", "job", "execute", "-m"]
                    cmd += ["sync_pipelines.definitions", "-j", job]
                    subprocess.run([PYTHON, *cmd], env=home.env, cwd=code, check=True, capture_output=True)
                    log(f"profile: {prof}")
    summary = {
        name: {
            "wall_s_median": statistics.median(r["wall_s"] for r in runs),
            "wall_s": [round(r["wall_s"], 2) for r in runs],
            "requests": [r["requests"] for r in runs],
            "peak_rss_mb": max(r["rss_mb"] for r in runs),
        }
        for name, runs in rows.items()
    }
    plain = summary["rest_api"]["wall_s_median"]
    for name, row in summary.items():
        row["vs_rest_api"] = round(row["wall_s_median"] / plain, 2)
        if (base_row := summary.get(f"base:{name}")) is not None:
            row["vs_base"] = round(row["wall_s_median"] / base_row["wall_s_median"], 3)
    fields = {"rounds": args.rounds, "base": args.base, "summary": summary}
    path = write_results("nochange", args.scale, started, fields)
    for name, row in summary.items():
        log(
            f"{name:<28} median {row['wall_s_median']:6.2f} s  ({row['vs_rest_api']:.2f}x rest_api)  "
            f"runs {row['wall_s']}  requests {row['requests']}  peak RSS {row['peak_rss_mb']:.0f} MB"
            + (f"  ({row['vs_base']:.3f}x base)" if "vs_base" in row else "")
        )
    log(f"written {path}")
    return 0


def _row(measured: Measured, emu: EmulatorProcess) -> dict[str, Any]:
    stats = emu.stats(reset=True)
    return {"wall_s": measured.wall_s, "rss_mb": measured.peak_rss_mb, "requests": stats.count()}


if __name__ == "__main__":
    raise SystemExit(main())
