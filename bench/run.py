"""`make bench`: the sync measured against the emulator over loopback; writes BENCHMARKS.md's tables.

    python -m bench.run                      # the realistic scale (1.5-2.5 h on 2 cores), rewrites BENCHMARKS.md's tables
    python -m bench.run --quick              # a smoke run at 1/20 of the scale, writes bench/results/quick.*
    python -m bench.run --phases rate_window # one section (or several) again, beside the last results of the others

Phases, in the order of a full run, each against an emulator in its own process (bench/emulator_server.py):
- full: every entity's first sync, one `dagster job execute` each (as users run it): wall, records/s, peak RSS
  (section 1); dagster_floor: a job of one asset that does nothing (bench/dagster_floor.py), run the same way;
- alternatives_full: the same first syncs by (a) a hand-written httpx loop (bench/plain_loop.py) and (b) dlt's
  rest_api source with its defaults (bench/dlt_alternatives.py) (section 5);
- incremental: `sync_all` runs (every entity of every tenant, Dagster's start-up included) after 1% of every entity
  changed and after no change, at look-back 0 and at the entity defaults, against the minimum number of requests;
  the alternatives' incremental runs on the same data; every entity's own no-change run (section 2);
- scheduled: the scheduled run side by side, 1% of every entity changed and nothing changed: `sync_all` with its
  defaults, each entity's own job, rest_api, the plain loop and the straightforward dlt pipeline
  (bench/dlt_alternatives.py), on the incremental phase's first syncs or, measured alone, its own (section 2b);
- memory_1x, memory_10x: peak RSS of the largest list table's sync at 1x and 10x (section 4);
- rate, rate_window: a first sync under an emulator rate limit, known (paced) and unknown (429s), and under a
  window announced in headers (sections 3 and 3b);
- per_record: the list entities' first syncs at two sizes, by the product and by rest_api, alternating pairs over
  several rounds: the records a second one more record costs (section 5b).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bench import api_use, common, first_syncs, report
from bench.common import PYTHON, REPO, RESULTS, SCALES, DagsterHome, EmulatorProcess, Scale, log, tenant_specs

Phase = Any  # (emu, home, work, scale) -> the phase's results


@dataclasses.dataclass(frozen=True)
class PhaseDef:
    shared: bool  # runs against the scale's emulator and the product's warehouse, after the phases before it
    measure: Phase


# the order of a full run
PHASES: dict[str, PhaseDef] = {
    "full": PhaseDef(True, lambda emu, home, work, scale: first_syncs.phase_full_product(emu, home, scale)),
    "dagster_floor": PhaseDef(True, lambda emu, home, work, scale: first_syncs.phase_dagster_floor(work, scale)),
    "alternatives_full": PhaseDef(
        True, lambda emu, home, work, scale: first_syncs.phase_full_alternatives(emu, work, scale)
    ),
    "incremental": PhaseDef(True, api_use.phase_incremental),
    "scheduled": PhaseDef(True, api_use.phase_scheduled),
    "memory_1x": PhaseDef(True, first_syncs.phase_memory_1x),
    "rate": PhaseDef(True, lambda emu, home, work, scale: api_use.phase_rate(emu, work, scale)),
    "rate_window": PhaseDef(True, lambda emu, home, work, scale: api_use.phase_rate_window(emu, work, scale)),
    "memory_10x": PhaseDef(False, lambda emu, home, work, scale: first_syncs.phase_memory_10x(work, scale)),
    "per_record": PhaseDef(False, lambda emu, home, work, scale: first_syncs.phase_per_record(work, scale)),
}


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    cli.add_argument("--quick", action="store_true", help="1/20 of the scale, a smoke run of every phase")
    cli.add_argument("--workdir", help="keep DuckDB files and Dagster instances here (default: a temp dir, removed)")
    cli.add_argument("--no-markdown", action="store_true", help="do not rewrite BENCHMARKS.md (1x only)")
    cli.add_argument(
        "--phases",
        type=phase_list,
        help=f"comma-separated phases to measure again (of: {', '.join(PHASES)}), kept beside the last results of "
        "the others, each with its own date and commit",
    )
    cli.add_argument("--rounds", type=int, help="rounds of per_record's side-by-side pairs (default: 3, quick 2)")
    return cli


def phase_list(text: str) -> list[str]:
    phases = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in phases if p not in PHASES]
    if unknown or not phases:
        raise argparse.ArgumentTypeError(f"unknown phases {unknown}: choose among {', '.join(PHASES)}")
    return phases


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    scale = SCALES["quick" if args.quick else "1x"]
    if args.rounds:
        scale = dataclasses.replace(scale, pair_rounds=args.rounds)
    started = time.monotonic()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="sync-bench-"))
    version = prepare(work)
    results = last_results(scale) if args.phases else new_results(scale, args)
    try:
        if args.phases:
            log(f"phases {', '.join(args.phases)}, measured again")
            stamp = {**run_stamp(scale, args), "product": version}
            for phase in measure(args.phases, results, scale, work):
                results.setdefault("remeasured", {})[phase] = {**stamp, "wall_s": time.monotonic() - started}
        else:
            measure_all(results, scale, work, version, started)
    finally:
        save(results, scale)
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    publish(results, scale, args)
    log(f"done in {(time.monotonic() - started) / 60:.1f} min; results in {RESULTS / (scale.name + '.json')}")
    return 0


def measure_all(results: dict[str, Any], scale: Scale, work: Path, version: dict[str, Any], started: float) -> None:
    """Every phase, in order, into fresh `results`; the run's length and the machine's load over it."""
    results["product"] = version
    log(f"scale {scale.name}: {scale.counts}; work dir {work}")
    meter = common.CpuMeter()
    try:
        measure(list(PHASES), results, scale, work)
        results["load"]["all"] = common.other_load((0.0, 0.0, 0.0), meter.mark())
    finally:
        results["bench_wall_s"] = time.monotonic() - started
        results["product"]["changed_during_run"] = common.code_fingerprint(REPO) != version["fingerprint"]


def measure(phases: list[str], results: dict[str, Any], scale: Scale, work: Path) -> list[str]:
    """Measures `phases` into `results`, in their order, the shared ones against one emulator of the scale's
    tables; beside each, the other processes' load meanwhile and the machine's pauses. Returns those measured."""
    meter, done = common.CpuMeter(), []

    def run(phase: str, emu: EmulatorProcess | None, home: DagsterHome | None) -> None:
        before, paused = meter.mark(), len(common.PAUSES)
        results[phase] = PHASES[phase].measure(emu, home, work, scale)
        results.setdefault("runners", {})[phase] = common.RUNNER
        results.setdefault("load", {})[phase] = common.other_load(before, meter.mark())
        results.setdefault("pauses", {})[phase] = common.PAUSES[paused:]
        done.append(phase)

    shared = [p for p in phases if PHASES[p].shared]
    if shared:
        with EmulatorProcess(tenant_specs(scale.counts)) as emu:
            results.setdefault("emulator_build_s", emu.build_s)
            log(f"emulator up in {emu.start_s:.1f}s at {emu.base_url}")
            home = DagsterHome(work / "product", emu.base_url, work / "product" / "warehouse.duckdb")
            for phase in shared:
                run(phase, emu, home)
    for phase in (p for p in phases if not PHASES[p].shared):
        run(phase, None, None)
    return done


def run_stamp(scale: Scale, args: argparse.Namespace) -> dict[str, Any]:
    """When a run started and the command that started it."""
    if args.phases:
        command = f'make bench ARGS="--phases {",".join(args.phases)}{" --quick" if args.quick else ""}"'
    else:
        command = "make bench" + (" ARGS=--quick" if args.quick else "")
    return {
        "date": date.today().isoformat(),
        "started_at": datetime.now().isoformat(timespec="seconds"),
        "command": command,
    }


def new_results(scale: Scale, args: argparse.Namespace) -> dict[str, Any]:
    return {**run_stamp(scale, args), "scale": dataclasses.asdict(scale), "machine": machine(), "load": {}}


def last_results(scale: Scale) -> dict[str, Any]:
    """The scale's last results, which the phases measured again join; a header of its own if there are none."""
    path = RESULTS / f"{scale.name}.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    stamp = {"date": date.today().isoformat(), "started_at": datetime.now().isoformat(timespec="seconds")}
    return {
        **stamp,
        "command": "(sections below only)",
        "scale": dataclasses.asdict(scale),
        "machine": machine(),
        "product": product_version(),
        "bench_wall_s": 0.0,
    }


def prepare(work: Path) -> dict[str, Any]:
    """The product's version, and a copy of its code in `work` that every measured process imports, whatever is
    edited meanwhile."""
    work.mkdir(parents=True, exist_ok=True)
    version = product_version()
    common.snapshot_code(work / "code")
    check = subprocess.run(
        [PYTHON, "-c", "import sync_pipelines, bench; print(sync_pipelines.__file__)"],
        cwd=common.CODE_DIR,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not check.startswith(str(common.CODE_DIR)):
        raise RuntimeError(f"subprocesses would import the live product ({check}), not the snapshot")
    return version


def save(results: dict[str, Any], scale: Scale) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{scale.name}.json").write_text(json.dumps(results, indent=1, default=str))


def publish(results: dict[str, Any], scale: Scale, args: argparse.Namespace) -> None:
    """The tables, in bench/results and (at 1x) in BENCHMARKS.md's generated block."""
    tables = report.render(results)
    (RESULTS / f"{scale.name}.md").write_text(tables)
    if scale.name == "1x" and not args.no_markdown:
        report.update_benchmarks_md(REPO / "BENCHMARKS.md", tables)
        log("BENCHMARKS.md updated")
    print(tables)


# -- the header: what was measured, on what --------------------------------------------------------------------------


def product_version() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    product = ("sync_pipelines", "synchroteam_emulator", "pyproject.toml", "dagster.yaml")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_product_files": len(git("status", "--porcelain", "--", *product).splitlines()),
        "fingerprint": common.code_fingerprint(REPO),
    }


def proc_field(path: str, key: str) -> str | None:
    """The value of the first `key: value` line of a /proc file, if any."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    mem_kib = proc_field("/proc/meminfo", "MemTotal")
    script = (
        "import dagster, dlt, duckdb, httpx; "
        "print(dagster.__version__, dlt.__version__, duckdb.__version__, httpx.__version__)"
    )
    versions = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True).stdout.split()
    versions += ["?"] * (4 - len(versions))
    return {
        "cpus": os.cpu_count(),
        "cpu": proc_field("/proc/cpuinfo", "model name") or "?",
        "mem_gib": round(int(mem_kib.split()[0]) / 1024 / 1024, 1) if mem_kib else None,
        "python": platform.python_version(),
        "kernel": platform.release(),
        **dict(zip(("dagster", "dlt", "duckdb", "httpx"), versions)),
    }


if __name__ == "__main__":
    raise SystemExit(main())
