"""What the analytics layer (dbt models, their tests, the read copy after them) adds to the runs users make: a
first `sync_all` into an empty warehouse, then no-change `sync_all`s, by the product without it (`--base`, default
`main` before the layer) and with it (this checkout), side by side: each round runs both, alternating which goes
first, each on its own warehouse and DAGSTER_HOME, against one emulator.

    python -m bench.analytics [--rounds 3] [--scale 1x|quick] [--base <git revision>] [--nochange 2]

Every run is `dagster job execute -j sync_all`, Dagster's start-up included; the analytics step's own seconds come
from the run's event log. Results: `bench/results/analytics-<scale>.json`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path

from bench import common
from bench.common import (
    REPO,
    SNAPSHOT_IGNORED,
    SNAPSHOT_ITEMS,
    CpuMeter,
    DagsterHome,
    EmulatorProcess,
    alternating,
    code_fingerprint,
    other_load,
    tenant_specs,
)
from bench.run import SCALES, log, write_results


def export(revision: str, target: Path) -> Path:
    """The product at `revision` (committed files only), for PYTHONPATH."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", revision], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def snapshot(target: Path) -> Path:
    """This checkout's product, the dbt project included (its parsed manifest too: parsed once, not per run)."""
    for item in SNAPSHOT_ITEMS:
        source = REPO / item
        if source.is_dir():
            shutil.copytree(source, target / item, ignore=shutil.ignore_patterns(*SNAPSHOT_IGNORED))
        elif source.exists():
            shutil.copy2(source, target / item)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nochange", type=int, default=2, help="no-change sync_all runs after each first sync")
    parser.add_argument("--scale", default="quick", choices=sorted(SCALES))
    parser.add_argument("--base", default="main", help="the product without the analytics layer (a git revision)")
    args = parser.parse_args(argv)
    scale = SCALES[args.scale]
    started = datetime.now()
    base_commit = subprocess.run(
        ["git", "rev-parse", "--short", args.base], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()
    rows: dict[str, dict[str, list[float]]] = {
        variant: {"first_wall_s": [], "first_analytics_s": [], "nochange_wall_s": [], "nochange_analytics_s": []}
        for variant in ("without", "with")
    }
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as tmp:
        work = Path(tmp)
        code = {"without": export(args.base, work / "without"), "with": snapshot(work / "with")}
        meter = CpuMeter()
        begin = meter.mark()
        with EmulatorProcess(tenant_specs(scale.main, scale.hec)) as emu:
            for k in range(args.rounds):
                for variant in alternating(["without", "with"], k):
                    log(f"round {k + 1}/{args.rounds}: {variant} the analytics layer")
                    root = work / f"{variant}-{k}"
                    root.mkdir()
                    # runs start in the variant's folder: `dagster -m` imports from its working directory first
                    common.CODE_DIR = code[variant]
                    home = DagsterHome(root, emu.base_url, root / "warehouse.duckdb")
                    env = {"PYTHONPATH": str(code[variant])}
                    first = home.job("sync_all", timeout=scale.timeout_s, env=env).check(f"first sync_all {variant}")
                    rows[variant]["first_wall_s"].append(first.wall_s)
                    for _ in range(args.nochange):
                        again = home.job("sync_all", env=env).check(f"no-change sync_all {variant}")
                        rows[variant]["nochange_wall_s"].append(again.wall_s)
                    runs = home.runs(1 + args.nochange)
                    analytics = [run["steps"].get("analytics", 0.0) for run in runs]
                    assert (variant == "with") == all(analytics), f"{variant}: analytics steps {analytics}"
                    rows[variant]["first_analytics_s"].append(analytics[0])
                    rows[variant]["nochange_analytics_s"].extend(analytics[1:])
                    shutil.rmtree(root)
        load = other_load(begin, meter.mark())
    summary = {
        variant: {
            name: {"median": statistics.median(values), "runs": [round(v, 2) for v in values]}
            for name, values in cols.items()
        }
        for variant, cols in rows.items()
    }
    fields = {
        "rounds": args.rounds,
        "without": f"{args.base} ({base_commit})",
        "with": f"this checkout (fingerprint {code_fingerprint(REPO)})",
        "other_processes_cores": round(load["other_cores"], 2),
        "summary": summary,
    }
    path = write_results("analytics", args.scale, started, fields)
    for name in ("first_wall_s", "nochange_wall_s"):
        without, with_ = summary["without"][name]["median"], summary["with"][name]["median"]
        log(
            f"{name}: without {without:.2f} s, with {with_:.2f} s (+{with_ - without:.2f} s); "
            f"analytics step {summary['with'][name.replace('wall', 'analytics')]['median']:.2f} s"
        )
    log(f"other processes used {load['other_cores']:.2f} cores on average meanwhile; written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
