"""One list entity's first sync three ways, alternating, each on a fresh warehouse (not part of `make bench`):

- `pipeline`: the product's dlt pipeline and source (`build_pipeline`, `entity_source`) in a bare Python process,
  no Dagster, timed by phase (extract, normalize, load);
- `job`: the product's entity job as users run it (`dagster job execute`), its steps read from the run's events;
- `rest_api`: dlt's `rest_api` source as in `make bench` (`bench.rest_api_source`, `jsonl`), timed by phase.

    python -m bench.three_ways [--entity quotations] [--size 100000] [--rounds 3] [--ways pipeline,job,rest_api]

It tells the product's per-record work (the pipeline) from what Dagster adds around it (the job), at one size.
Two more ways take the job's step apart: `pipeline_job_plan` is the bare pipeline with the plan the job's run
config gives by default (`to_plan(config_class(entity)())`: quotations' re-fetch walks and their memo), and
`pipeline_job_plan_held` the same with the DuckDB file held open as the step holds it (`held_open`).
`--normalize-workers 2` adds a fourth way, `pipeline_workers`: the same pipeline with its extract files rotated
every `--rotate` rows and normalized by that many processes (dlt's `normalize(workers=…)`); that way's peak RSS
is the parent's only, its workers being other processes. Writes `bench/results/three-ways-<entity>-<size>.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import (
    CODE_DIR,
    ENTITIES,
    MAIN_DOMAIN,
    MAIN_KEY,
    PYTHON,
    TIMEZONE,
    DagsterHome,
    EmulatorProcess,
    alternating,
    snapshot_code,
    tenant_specs,
)
from bench.run import log, write_results

# One first sync by phase, in its own process: argv = way entity rest_db rest_dir; prints one JSON line.
_CHILD = r"""
import contextlib, json, os, resource, sys, time
import dlt

way, entity, rest_db, rest_dir = sys.argv[1:5]
started = time.monotonic()
if way == "rest_api":
    from dlt.sources.rest_api import rest_api_source
    from bench.rest_api_source import source_config
    source = rest_api_source(source_config(os.environ["BENCH_BASE_URL"], os.environ["SYNCHROTEAM_DOMAIN"],
                                           os.environ["SYNCHROTEAM_API_KEY"], entity))
    pipeline = dlt.pipeline(pipeline_name=f"rest_api__{entity}", destination=dlt.destinations.duckdb(rest_db),
                            dataset_name="synchroteam", pipelines_dir=rest_dir)
    file_format, workers = "jsonl", 1
else:
    from sync_pipelines.catalogue import ENTITIES, TENANTS
    from sync_pipelines.defs.run_config import config_class, to_plan
    from sync_pipelines.synchroteam.client import SynchroteamClient
    from sync_pipelines.synchroteam.plan import SyncPlan
    from sync_pipelines.synchroteam.settings import TenantSettings
    from sync_pipelines.synchroteam.source import entity_source
    from sync_pipelines.warehouse.dialect import held_open
    from sync_pipelines.warehouse.pipeline import build_pipeline, load_file_format
    from sync_pipelines.warehouse.settings import duckdb_settings, warehouse
    tenant, ent = TENANTS["synchroteam"], ENTITIES[entity]
    settings, target = TenantSettings.from_env(tenant), warehouse()
    plan = to_plan(config_class(ent)(), ent, settings.timezone) if way.startswith("pipeline_job_plan") else SyncPlan()
    held = held_open(target) if way == "pipeline_job_plan_held" else contextlib.nullcontext()
    held.__enter__()  # held until the process ends, as the step holds it for its whole run
    client = SynchroteamClient.in_process(settings)
    source = entity_source(tenant, ent, client, plan)
    pipeline = build_pipeline(tenant, ent, duckdb_settings(), target=target)
    file_format, workers = load_file_format(pipeline), int(os.environ["BENCH_NORMALIZE_WORKERS"])
    if workers > 1:
        dlt.config["sources.data_writer.file_max_items"] = int(os.environ["BENCH_ROTATE"])
times = {"setup": time.monotonic() - started}
mark = time.monotonic()
pipeline.extract(source, loader_file_format=file_format)
times["extract"], mark = time.monotonic() - mark, time.monotonic()
pipeline.normalize(workers=workers)
times["normalize"], mark = time.monotonic() - mark, time.monotonic()
pipeline.load().raise_on_failed_jobs()
times["load"] = time.monotonic() - mark
times["total"] = time.monotonic() - started
print(json.dumps({**{k: round(v, 2) for k, v in times.items()},
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""


def run_child(way: str, entity: str, root: Path, emu: EmulatorProcess, workers: int, rotate: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCHROTEAM_", "SYNC_", "DAGSTER_"))}
    env.update(
        {
            "SYNCHROTEAM_BASE_URL": emu.base_url,
            "SYNCHROTEAM_DOMAIN": MAIN_DOMAIN,
            "SYNCHROTEAM_API_KEY": MAIN_KEY,
            "SYNCHROTEAM_TIMEZONE": TIMEZONE,
            "SYNC_DUCKDB_PATH": str(root / "warehouse.duckdb"),
            "BENCH_BASE_URL": emu.base_url,
            "BENCH_NORMALIZE_WORKERS": str(workers if way == "pipeline_workers" else 1),
            "BENCH_ROTATE": str(rotate),
        }
    )
    cmd = [PYTHON, "-c", _CHILD, way, entity, str(root / "rest.duckdb"), str(root / "dlt")]
    done = subprocess.run(cmd, env=env, cwd=CODE_DIR, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{way} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entity", default="quotations")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ways", default="pipeline,job,rest_api")
    parser.add_argument("--normalize-workers", type=int, default=1)
    parser.add_argument("--rotate", type=int, default=20_000, help="extract rows per file for pipeline_workers")
    args = parser.parse_args(argv)
    tenant, entity, resource = next(e for e in ENTITIES if e[0] == "synchroteam" and e[1] == args.entity)
    ways = args.ways.split(",") + (["pipeline_workers"] if args.normalize_workers > 1 else [])
    started = datetime.now()
    runs: dict[str, list[dict[str, Any]]] = {way: [] for way in ways}
    with tempfile.TemporaryDirectory(prefix="bench-three-ways-") as tmp:
        work = Path(tmp)
        snapshot_code(work / "code")
        with EmulatorProcess(tenant_specs({resource: args.size}, None)) as emu:
            for r in range(args.rounds):
                for way in alternating(ways, r):
                    root = work / f"{r}-{way}"
                    root.mkdir(parents=True)
                    if way == "job":
                        home = DagsterHome(root, emu.base_url, root / "warehouse.duckdb")
                        m = home.job(f"sync_{tenant}__{entity}").check(f"{entity} job")
                        steps = home.runs(1)[0]["steps"]
                        row = {"total": round(m.wall_s, 2), "rss_mb": round(m.peak_rss_mb)}
                        row.update({name: round(s, 2) for name, s in steps.items()})
                    else:
                        row = run_child(way, entity, root, emu, args.normalize_workers, args.rotate)
                    runs[way].append(row)
                    log(f"{entity} {args.size} round {r + 1} {way}: {json.dumps(row)}")
    medians = {
        way: {k: round(statistics.median(row[k] for row in rows), 2) for k in rows[0]} for way, rows in runs.items()
    }
    path = write_results(
        "three-ways",
        f"{entity}-{args.size}",
        started,
        {"size": args.size, "normalize_workers": args.normalize_workers, "runs": runs, "medians": medians},
    )
    for way, median in medians.items():
        log(f"{way} medians: {json.dumps(median)}")
    log(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
