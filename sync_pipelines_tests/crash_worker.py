"""Subprocess entry point for the crash-recovery tests: one entity's Dagster job, run in process, to be SIGKILLed.

    python -m sync_pipelines_tests.crash_worker <tenant> <entity> [<mode> | <run-config-json>]
    python -m sync_pipelines_tests.crash_worker --standby

`--standby` imports everything first (the slow part: Dagster, dlt, the definitions), prints
`CRASH-WORKER STANDBY ready`, then reads one JSON line on stdin: {"tenant", "entity", "config", "env"}; `env` is
merged into the environment before the run (e.g. CRASH_PAUSE_AT, SYNC_DUCKDB_PATH). A test can so start the
next worker while it is busy with the previous one.

Settings come from the environment, as in production (`SYNCHROTEAM_*`, `SYNC_DUCKDB_PATH`). The worker changes
nothing in how the sync runs; it only reports where it is, one line on stdout per step, flushed at once:

    CRASH-WORKER PHASE <phase> <t>    start, run, read, extract, extracted, normalize, load, copy, merge,
                                      complete, post_load, analytics, done (<t>: the worker's monotonic clock)
    CRASH-WORKER PAUSED <phase> <t>   with CRASH_PAUSE_AT=<phase>: stopped there, waiting to be killed

`read` is the step's reading of the API up to its first batch, before any dlt pipeline exists
(`reader.ReadAhead`); `extract` dlt's extract, which reads the rest. `copy` is each COPY of a load file into DuckDB (staging or final table), `merge` each SQL follow-up job (the
merge of the staging tables into the final ones), `complete` the moment every job of the package is done and
only the `_dlt_loads` row (which makes the state stored with the data visible) is left to write, `post_load`
the warehouse work `sync_entities` does once dlt's load has committed (`after_load`: counts, live views).

With CRASH_PAUSE_AT the worker sleeps at the first arrival at that step (CRASH_PAUSE_SKIP=<n> skips the first n
arrivals), so the test kills it at a known point rather than at a lucky moment.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

PREFIX = "CRASH-WORKER"
_lock = threading.Lock()
_arrivals: dict[str, int] = {}


def report(kind: str, phase: str) -> None:
    with _lock:
        sys.stdout.write(f"{PREFIX} {kind} {phase} {time.monotonic():.4f}\n")
        sys.stdout.flush()


def reached(phase: str) -> None:
    """Report `phase`; if it is the pause point (and its turn), stop here until killed."""
    report("PHASE", phase)
    if os.environ.get("CRASH_PAUSE_AT") != phase:
        return
    with _lock:
        _arrivals[phase] = _arrivals.get(phase, 0) + 1
        turn = _arrivals[phase] == int(os.environ.get("CRASH_PAUSE_SKIP", "0") or 0) + 1
    if turn:
        report("PAUSED", phase)
        while True:  # the test SIGKILLs the process group; never go on
            time.sleep(3600)


def _before(owner: Any, name: str, phase: str, after: str | None = None) -> None:
    original: Callable | None = getattr(owner, name, None)
    if original is None:  # renamed upstream: that step is not reported (a test pausing there will say so)
        report("MISSING", f"{getattr(owner, '__name__', owner)}.{name}")
        return

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        reached(phase)
        result = original(*args, **kwargs)
        if after:
            reached(after)
        return result

    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(owner, name, wrapper)


def instrument() -> None:
    """Markers at dlt's and sync_entities' steps (reporting only; behaviour is unchanged)."""
    from dlt.destinations.impl.duckdb.duck import DuckDbCopyJob
    from dlt.destinations.job_client_impl import SqlLoadJob
    from dlt.load.load import Load
    from dlt.pipeline.pipeline import Pipeline

    import sync_pipelines.defs.analytics as analytics
    import sync_pipelines.defs.sync_step as sync_step
    from sync_pipelines.synchroteam.reader import ReadAhead

    _before(ReadAhead, "__enter__", "read")
    _before(Pipeline, "extract", "extract", after="extracted")
    _before(Pipeline, "normalize", "normalize")
    _before(Pipeline, "load", "load")
    _before(DuckDbCopyJob, "run", "copy")
    _before(SqlLoadJob, "run", "merge")
    _before(Load, "complete_package", "complete")
    _before(sync_step, "after_load", "post_load")
    _before(analytics, "dbt_environment", "analytics")  # the job's analytics step, after the load committed


def main(argv: list[str]) -> int:
    report("PHASE", "start")
    if argv == ["--standby"]:
        instrument()
        from sync_pipelines_tests import helpers  # noqa: F401  (the definitions, loaded before the go)

        report("STANDBY", "ready")
        line = sys.stdin.readline()
        if not line.strip():
            return 3
        order = json.loads(line)
        os.environ.update({str(k): str(v) for k, v in (order.get("env") or {}).items()})
        tenant_name, entity_name, config = order["tenant"], order["entity"], order.get("config") or {}
    elif len(argv) in (2, 3):
        instrument()
        tenant_name, entity_name = argv[0], argv[1]
        extra = argv[2] if len(argv) == 3 else ""
        config = json.loads(extra) if extra.startswith("{") else ({"mode": extra} if extra else {})
    else:
        print(__doc__, file=sys.stderr)
        return 2
    from sync_pipelines.catalogue import ENTITIES, TENANTS
    from sync_pipelines_tests.helpers import run_entity_job

    report("PHASE", "run")
    result = run_entity_job(TENANTS[tenant_name], ENTITIES[entity_name], config, raise_on_error=False)
    reached("done")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
