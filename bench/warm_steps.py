"""A first sync's per-record work side by side, warm, in one process: the product's entity step against dlt's
`rest_api` pipeline run, alternating, several rounds (not part of `make bench`).

    python -m bench.warm_steps [--entities credit_notes,quotations] [--rounds 3]

`make bench` times each in a process of its own, so each pays its first use of dlt's modules inside the timed
part. Here both run in this process, after a first round that warms them: what is left is the work per record.
Each round syncs a fresh DuckDB file: the product's `sync_synchroteam__<entity>` job in process (its step timed
from the entity step's start to its end; the analytics and read-copy steps aside), then `bench.rest_api_source`
with dlt's defaults for the data writer (compressed files, 5,000 items a buffer) and `jsonl` load files, as in
`make bench`. Prints each round and the medians, with dlt's extract, normalize and load times of each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import MAIN_DOMAIN, MAIN_KEY, DagsterHome, EmulatorProcess, tenant_specs
from bench.rest_api_source import RESOURCES
from bench.run import SCALES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entities", default="credit_notes,quotations")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    entities = args.entities.split(",")
    counts = SCALES["1x"].main
    root = Path(tempfile.mkdtemp(prefix="bench-warm-"))
    try:
        with EmulatorProcess(tenant_specs({RESOURCES[e]: counts[RESOURCES[e]] for e in entities}, None)) as emu:
            os.environ.update(DagsterHome(root, emu.base_url, root / "warehouse.duckdb").env)
            measure(entities, args.rounds, root, emu.base_url)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def measure(entities: list[str], rounds: int, root: Path, base_url: str) -> None:
    import dlt
    from dagster import DagsterInstance
    from dlt.pipeline.pipeline import Pipeline

    import sync_pipelines.defs.assets as assets
    from bench.rest_api_source import run as rest_api_run
    from sync_pipelines.definitions import defs

    phases: list[tuple[str, float]] = []
    steps: list[float] = []

    def timed(call: Callable[..., Any], into: Callable[[float], None]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                into(time.perf_counter() - started)

        return wrapper

    assets._sync_entity = timed(assets._sync_entity, steps.append)  # type: ignore[assignment]
    for phase in ("extract", "normalize", "load"):
        setattr(Pipeline, phase, timed(getattr(Pipeline, phase), lambda s, p=phase: phases.append((p, s))))
    results: dict[str, dict[str, list[float]]] = {e: {"step": [], "rest_api": []} for e in entities}
    with DagsterInstance.get() as instance:
        for round_no in range(rounds + 1):  # round 0 warms both up
            for entity in entities:
                os.environ["SYNC_DUCKDB_PATH"] = str(root / f"product-{round_no}-{entity}.duckdb")
                job = defs.resolve_job_def(f"sync_synchroteam__{entity}")
                assert job.execute_in_process(instance=instance, raise_on_error=True).success
                product_phases, step = _phases(phases), steps[-1]
                # dlt's settings are process-wide: the product's (uncompressed files, 1,000 items a buffer) would
                # otherwise carry over into rest_api's run
                dlt.config["data_writer.disable_compression"] = False
                dlt.config["data_writer.buffer_max_items"] = 5_000
                spec = {"entity": entity, "schema": "synchroteam", "domain": MAIN_DOMAIN, "api_key": MAIN_KEY}
                started = time.perf_counter()
                rest_api_run(
                    spec,
                    base_url,
                    str(root / f"rest-{round_no}-{entity}.duckdb"),
                    str(root / f"rest-{round_no}"),
                    "jsonl",
                )
                run = time.perf_counter() - started
                rest_phases = _phases(phases)
                label = "warm-up" if round_no == 0 else f"round {round_no}"
                print(
                    f"{entity} {label}: step {step:.2f} s ({product_phases}), rest_api run {run:.2f} s "
                    f"({rest_phases}), step ÷ run in records/s {run / step:.2f}×",
                    flush=True,
                )
                if round_no:
                    results[entity]["step"].append(step)
                    results[entity]["rest_api"].append(run)
    for entity, times in results.items():
        step, run = statistics.median(times["step"]), statistics.median(times["rest_api"])
        print(f"{entity}: median step {step:.2f} s, rest_api run {run:.2f} s, records/s {run / step:.2f}×")


def _phases(phases: list[tuple[str, float]]) -> str:
    text = ", ".join(f"{name} {seconds:.2f}" for name, seconds in phases)
    phases.clear()
    return text


if __name__ == "__main__":
    raise SystemExit(main())
