"""Peak RSS of one invoices first load, per phase (extract, normalize, load, after the load, the analytics step,
the read copy), in process.

    .venv/bin/python -m bench.phase_rss 100000 /tmp/phase_1x      # 1x, ~45 s
    .venv/bin/python -m bench.phase_rss 1000000 /tmp/phase_10x    # 10x, ~6 min

The emulator runs in its own process (`bench.emulator_server`); the sync runs the product's
`sync_synchroteam__invoices` job in this process, with dlt's steps and the warehouse calls timed by wrappers, and
RSS sampled every 0.1 s. The load package stays under OUTDIR/.dlt_pipelines for `bench.load_replay`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from bench.common import DagsterHome, EmulatorProcess, tenant_specs


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(count: int, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    samples: list[tuple[float, float]] = []
    marks: list[tuple[float, str]] = [(0.0, "start-up")]
    started, done = time.monotonic(), threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.monotonic() - started, rss_mb()))
            time.sleep(0.1)

    def timed(owner: object, name: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            marks.append((time.monotonic() - started, name))
            try:
                return original(*args, **kwargs)
            finally:
                marks.append((time.monotonic() - started, f"after {name}"))

        setattr(owner, name, wrapper)

    with EmulatorProcess(tenant_specs({"invoice": count}, None)) as emu:
        os.environ.update(DagsterHome(out, emu.base_url, out / "warehouse.duckdb").env)
        threading.Thread(target=sample, daemon=True).start()
        from dagster import DagsterInstance
        from dlt.pipeline.pipeline import Pipeline

        import sync_pipelines.defs.analytics as analytics
        import sync_pipelines.defs.assets as assets
        import sync_pipelines.defs.read_copy as read_copy
        from sync_pipelines.definitions import defs

        for step in ("extract", "normalize", "load"):
            timed(Pipeline, step)
        for call in ("before_load", "after_load"):
            timed(assets, call)
        timed(read_copy, "refresh_read_copy")
        timed(analytics, "unchanged_since_built")  # the analytics step begins: "after …" is dbt's build
        with DagsterInstance.get() as instance:
            result = defs.resolve_job_def("sync_synchroteam__invoices").execute_in_process(instance=instance)
        done.set()
    peaks: dict[str, float] = {}
    for at, rss in samples:
        phase = [name for mark, name in marks if mark <= at][-1]
        peaks[phase] = max(peaks.get(phase, 0.0), rss)
    report = {
        "invoices": count,
        "success": result.success,
        "peak_rss_mb": max(r for _, r in samples),
        "peak_rss_mb_by_phase": {k: round(v) for k, v in peaks.items()},
        "marks": marks,
    }
    (out / "phase_rss.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "marks"}, indent=1))


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
