"""The cycle collector at load, side by side: the runs users make most (a no-change run of one entity's job, and a
no-change `sync_all` with look-back 0), from the product's code location (`sync_pipelines.definitions`, built in
`process.long_lived`) and from the same code location loaded as before it (`bench.collector_as_before`), in
alternating order, each run a fresh `dagster job execute` process on the same warehouse and DAGSTER_HOME.

    python -m bench.collector [--pairs 8] [--scale quick]
    python -m bench.collector --first-sync quotation:20000 [--pairs 4]

`--first-sync RESOURCE:COUNT` measures instead the first sync of that one entity (an emulator holding only it), each
run on a fresh warehouse and DAGSTER_HOME: wall time, the entity's step, the analytics step, and what is left
outside them. Prints each pair and the medians; writes `bench/results/collector-<scale>.json` (or
`collector-first-<resource>-<count>.json`). Not part of `make bench`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import ENTITIES, DagsterHome, EmulatorProcess, alternating, snapshot_code, tenant_specs
from bench.run import LOOKBACK_ZERO, SCALES, log, write_results

VARIANTS = {"now": "sync_pipelines.definitions", "as_before": "bench.collector_as_before"}
JOBS: dict[str, dict[str, dict[str, Any]] | None] = {"sync_synchroteam__credit_notes": None, "sync_all": LOOKBACK_ZERO}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--scale", default="quick", choices=sorted(SCALES))
    parser.add_argument("--first-sync", default=None, metavar="RESOURCE:COUNT")
    args = parser.parse_args(argv)
    if args.first_sync:
        resource, count = args.first_sync.split(":")
        return first_syncs(resource, int(count), args.pairs)
    scale = SCALES[args.scale]
    started = datetime.now()
    runs: dict[str, dict[str, list[dict[str, float]]]] = {job: {v: [] for v in VARIANTS} for job in JOBS}
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp:
        work = Path(tmp)
        snapshot_code(work / "code")
        with EmulatorProcess(tenant_specs(scale.main, scale.hec)) as emu:
            home = DagsterHome(work, emu.base_url, work / "warehouse.duckdb")
            log("first sync_all")
            home.job("sync_all", timeout=scale.timeout_s).check("first sync_all")
            home.job("sync_all").check("a first no-change sync_all")  # the analytics build once, then rest
            for pair in range(args.pairs):
                order = alternating(list(VARIANTS), pair)
                for job, ops_config in JOBS.items():
                    for variant in order:
                        m = home.job(job, ops_config, module=VARIANTS[variant]).check(f"{job} ({variant})")
                        runs[job][variant].append({"wall_s": m.wall_s, "rss_mb": m.peak_rss_mb})
                    now, before = (runs[job][v][-1]["wall_s"] for v in VARIANTS)
                    log(f"pair {pair + 1}/{args.pairs} {job}: now {now:.2f} s, as before {before:.2f} s")
    summary = {}
    for job, by_variant in runs.items():
        walls = {v: [r["wall_s"] for r in rows] for v, rows in by_variant.items()}
        summary[job] = {
            **{f"{v}_wall_s_median": round(statistics.median(w), 3) for v, w in walls.items()},
            **{f"{v}_wall_s": [round(x, 2) for x in w] for v, w in walls.items()},
            **{f"{v}_peak_rss_mb": round(max(r["rss_mb"] for r in rows)) for v, rows in by_variant.items()},
            "pairs_faster_now": sum(n < b for n, b in zip(walls["now"], walls["as_before"], strict=True)),
            "median_saving_s": round(
                statistics.median(b - n for n, b in zip(walls["now"], walls["as_before"], strict=True)), 3
            ),
        }
    fields = {"pairs": args.pairs, "summary": summary}
    path = write_results("collector", args.scale, started, fields)
    for job, row in summary.items():
        log(
            f"{job:<32} median now {row['now_wall_s_median']:.2f} s, as before {row['as_before_wall_s_median']:.2f} s; "
            f"faster now in {row['pairs_faster_now']} of {args.pairs} pairs, median saving {row['median_saving_s']:.2f} s; "
            f"peak RSS now {row['now_peak_rss_mb']} MB, as before {row['as_before_peak_rss_mb']} MB"
        )
    log(f"written {path}")
    return 0


def first_syncs(resource: str, count: int, pairs: int) -> int:
    """`pairs` alternating pairs of the first sync of one entity, each on a fresh warehouse and DAGSTER_HOME."""
    started = datetime.now()
    entity = next(e for tenant, e, r in ENTITIES if r == resource and tenant == "synchroteam")
    job, step = f"sync_synchroteam__{entity}", f"synchroteam__{entity}"
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp:
        work = Path(tmp)
        snapshot_code(work / "code")
        with EmulatorProcess(tenant_specs({resource: count}, None)) as emu:
            for pair in range(pairs):
                for variant in alternating(list(VARIANTS), pair):
                    root = work / f"{pair}-{variant}"
                    home = DagsterHome(root, emu.base_url, root / "warehouse.duckdb")
                    m = home.job(job, module=VARIANTS[variant]).check(f"{job} ({variant})")
                    steps = home.runs(1)[0]["steps"]
                    row = {"wall_s": m.wall_s, "step_s": steps[step], "analytics_s": steps.get("analytics", 0.0)}
                    row["outside_s"] = row["wall_s"] - row["step_s"] - row["analytics_s"]
                    runs[variant].append(row)
                    log(f"pair {pair + 1}/{pairs} {variant}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))
    summary = {
        variant: {name: round(statistics.median(r[name] for r in rows), 3) for name in rows[0]}
        for variant, rows in runs.items()
    }
    fields = {"entity": entity, "records": count, "pairs": pairs}
    path = write_results(
        "collector-first",
        f"{resource}-{count}",
        started,
        {**fields, "summary": summary, "runs": runs},
    )
    for variant, row in summary.items():
        log(f"{variant:<10} medians: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))
    log(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
