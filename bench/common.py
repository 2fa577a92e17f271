"""Shared by the bench phases: what is measured (the catalogue's tenants and entities, the scales), the emulator
process, measured subprocesses, the product's environment."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync_pipelines.catalogue import ENTITIES as CATALOGUE
from sync_pipelines.catalogue import TENANTS, Tenant, tenant_entities
from synchroteam_emulator.data import FLOOR as EMULATOR_FLOOR

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
# Where every measured subprocess runs, and what it imports: the repository, or a frozen copy of the product
# (see `snapshot_code`) so that a benchmark run measures one version even while the code is being edited.
CODE_DIR = REPO
SNAPSHOT_ITEMS = ("sync_pipelines", "synchroteam_emulator", "bench", "analytics", "dagster.yaml", "pyproject.toml")
# what a copy leaves out: caches, results, dbt's logs and per-run targets (its parsed manifest is kept)
SNAPSHOT_IGNORED = ("__pycache__", "results", "logs", "analytics-*", "docs")
PYTHON = sys.executable
# How the product's runs are started (`DagsterHome.job`), recorded for each phase measured (`runners`); a phase
# measured before it was recorded ran plain `dagster job execute`
RUNNER = "run_worker"
TIMEZONE = "Europe/Paris"

# -- what is measured: the catalogue's tenants and entities --------------------------------------------------------

# (tenant, entity, API resource) of every entity the product syncs, in sync_all's order
ENTITIES = [
    (tenant.name, entity.name, entity.resource) for tenant in TENANTS.values() for entity in tenant_entities(tenant)
]
MAIN = next(iter(TENANTS.values()))  # the first tenant, the largest: the one the single-table phases use
# The API lists these resources without their child lists (the emulator as the API): a `details` call per record.
LISTED_WITHOUT_CHILDREN = frozenset({"job"})
# The emulator makes these from the jobs' time entries (synchroteam_emulator/dimensions.py): never without the jobs.
MADE_FROM_JOBS = frozenset({"activity"})
# Section 5b leaves out the tables smaller than this at 1x (users, job types): one more record's cost would be lost
# in the runs' noise. The targets compare their whole processes instead.
PER_RECORD_LEAST = 5_000
MEMORY_TABLE = "invoices"  # the main tenant's largest table with a child list (lines): section 4 grows it tenfold
RATE_TABLE = "customers"  # a list table of 200 pages at 1x, synced under the rate limits of sections 3 and 3b


def domain(tenant: str) -> str:
    """The domain of the emulated tenant that stands in for a catalogue tenant."""
    return f"bench-{TENANTS[tenant].label.lower()}"


def api_key(tenant: str) -> str:
    """The API key of the emulated tenant that stands in for a catalogue tenant."""
    return f"b3nch-0000-4000-8000-{TENANTS[tenant].label.lower():0>12}"


def needs_details(entity: str) -> bool:
    return CATALOGUE[entity].resource in LISTED_WITHOUT_CHILDREN


def tenant_env(tenant: Tenant, base_url: str) -> dict[str, str]:
    """The variables that point a catalogue tenant at the bench's emulator."""
    name = tenant.name
    return {
        tenant.env("BASE_URL"): base_url,
        tenant.env("DOMAIN"): domain(name),
        tenant.env("API_KEY"): api_key(name),
        tenant.env("TIMEZONE"): TIMEZONE,
    }


# -- the scales ----------------------------------------------------------------------------------------------------

# Records per table at the realistic scale (1x), by entity: the main tenant's. Every other tenant is smaller: a fifth
# of the main tenant's table, 5,000 records at least but no more than the main tenant's (a team or a lookup list is
# about as large in any tenant). An entity without a size here is measured at DEFAULT_RECORDS.
RECORDS_1X = {
    "jobs": 100_000,
    "invoices": 100_000,
    "quotations": 20_000,
    "customers": 20_000,
    "sites": 30_000,
    "credit_notes": 10_000,
    "users": 500,  # the technicians and office staff of 100,000 jobs a year
    "activities": 200_000,  # the jobs' work and travel (the emulator makes ~1.7 a job), and breaks
    "equipment": 30_000,  # about one a site
    "job_types": 50,  # a lookup list, read whole every run
    "parts": 5_000,  # the catalogue of parts and services
}
DEFAULT_RECORDS = 20_000
OTHER_TENANT_SHARE, OTHER_TENANT_LEAST = 0.2, 5_000


def records_1x(tenant: Tenant, entity: str) -> int:
    size = RECORDS_1X.get(entity, DEFAULT_RECORDS)
    return size if tenant is MAIN else min(size, max(OTHER_TENANT_LEAST, int(size * OTHER_TENANT_SHARE)))


def scaled(records: int, fraction: float, entity: str) -> int:
    """`fraction` of a table's records, at least what the emulator serves of it (the users, job types and parts
    other records name), so that the counts are the tables' sizes."""
    return max(EMULATOR_FLOOR.get(CATALOGUE[entity].resource, 0), round(records * fraction))


@dataclass
class Scale:
    name: str
    fraction: float  # of the realistic scale's table sizes
    rate_limit: int  # requests per minute in the rate-limit phase
    no_retry_after: bool  # also run the variant whose 429s carry no Retry-After
    window: tuple[int, float]  # the announced fixed window of the rate-window phase: (requests, seconds)
    pair_rounds: int = 3  # rounds of the per-record phase's side-by-side pairs
    timeout_s: float = 3600
    # records by tenant and entity (every entity of the catalogue), and the memory phase's tenfold table
    counts: dict[str, dict[str, int]] = field(init=False)
    tenx: dict[str, dict[str, int]] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = {
            tenant.name: {
                e.name: scaled(records_1x(tenant, e.name), self.fraction, e.name) for e in tenant_entities(tenant)
            }
            for tenant in TENANTS.values()
        }
        self.tenx = {MAIN.name: {MEMORY_TABLE: 10 * self.counts[MAIN.name][MEMORY_TABLE]}}


SCALES = {
    "1x": Scale("1x", 1.0, rate_limit=120, no_retry_after=True, window=(40, 240.0)),
    "quick": Scale("quick", 1 / 20, rate_limit=8, no_retry_after=False, window=(4, 6.0), pair_rounds=2, timeout_s=900),
}


def tenant_specs(counts: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """The emulator's tenants (`TenantSpec` fields) serving `counts` (records by tenant and entity)."""
    return [
        dict(
            domain=domain(name),
            api_key=api_key(name),
            timezone=TIMEZONE,
            counts={CATALOGUE[entity].resource: n for entity, n in by_entity.items()},
            seed=101 + list(TENANTS).index(name),
        )
        for name, by_entity in counts.items()
    ]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def alternating(items: list[str], round_: int) -> list[str]:
    """`items` in the order round `round_` runs them: reversed every other round, so that none always goes first."""
    return list(items) if round_ % 2 == 0 else list(items)[::-1]


def requests_of(stats: RequestStats, tenant: str, resource: str) -> dict[str, int]:
    """One table's requests as the emulator counted them: list pages, details, in all, 429s, count checks."""
    name = domain(tenant)
    return {
        "list": stats.count(name, resource, action="list"),
        "details": stats.count(name, resource, action="details"),
        "total": stats.count(name, resource),
        "429": stats.count(name, resource, status=429),
        "count_checks": stats.page_size_1(name, resource),
    }


def clean_env() -> dict[str, str]:
    """This process's environment without the product's and Dagster's variables."""
    prefixes = (*(tenant.env("") for tenant in TENANTS.values()), "SYNC_", "DAGSTER_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


LIVE_PIDS: set[int] = set()
# the measured processes during which the machine was paused (see `clock_gap`), in order: what, when, how long
PAUSES: list[dict[str, Any]] = []
PAUSE_NOTED_S = 0.5


class CpuMeter:
    """How busy the machine was, and how much of it was us: other processes' load distorts wall times.

    `mark()` returns (wall s, machine busy CPU s, our CPU s) since the meter started; ours = this process plus
    every child it has waited for (the measured runs, the emulators, the helpers), so a phase's difference
    of the two is what other processes on the machine used meanwhile.
    """

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.busy0 = self._busy()
        self.own0 = self._own()

    @staticmethod
    def _busy() -> float:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except OSError:
            return 0.0
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        live = 0.0
        for pid in list(LIVE_PIDS):  # children still running (the emulator): not in RUSAGE_CHILDREN yet
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                live += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                pass
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime + live

    def mark(self) -> tuple[float, float, float]:
        return time.monotonic() - self.t0, self._busy() - self.busy0, self._own() - self.own0


def other_load(before: tuple[float, float, float], after: tuple[float, float, float]) -> dict[str, float]:
    """Cores used by other processes on average between two `CpuMeter.mark()`s (and by us, for scale)."""
    wall = max(1e-9, after[0] - before[0])
    busy, own = after[1] - before[1], after[2] - before[2]
    return {"wall_s": wall, "other_cores": max(0.0, busy - own) / wall, "own_cores": own / wall}


def code_fingerprint(root: Path) -> str:
    """sha256 over the product's source files (sync_pipelines/**/*.py, dagster.yaml, pyproject.toml)."""
    digest = hashlib.sha256()
    files = sorted(p for p in (root / "sync_pipelines").rglob("*.py") if "__pycache__" not in p.parts)
    for path in [*files, root / "dagster.yaml", root / "pyproject.toml"]:
        if path.exists():
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def snapshot_code(target: Path) -> Path:
    """Copy the product and the bench into `target` and run every later subprocess from there.

    Subprocesses start in `target` with PYTHONPATH=target, which Python searches before the editable install's
    finder, so they import the copy. Returns `target`.
    """
    global CODE_DIR
    target.mkdir(parents=True, exist_ok=True)
    for item in SNAPSHOT_ITEMS:
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, target / item, ignore=shutil.ignore_patterns(*SNAPSHOT_IGNORED), dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, target / item)
    CODE_DIR = target
    os.environ["PYTHONPATH"] = str(target)
    return target


class EmulatorProcess:
    """`python -m bench.emulator_server` with a JSON line protocol on its stdin/stdout."""

    def __init__(self, specs: list[dict[str, Any]]) -> None:
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "bench.emulator_server", "--specs", json.dumps(specs)],
            cwd=CODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self.proc.stdin and self.proc.stdout  # both piped
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        line = self.stdout.readline()
        if not line:
            raise RuntimeError("the bench emulator did not start")
        ready = json.loads(line)
        self.base_url: str = ready["base_url"]
        self.build_s: float = ready["build_s"]
        self.start_s = time.monotonic() - started
        self._lock = threading.Lock()
        LIVE_PIDS.add(self.proc.pid)

    def call(self, cmd: str, **kwargs: Any) -> Any:
        with self._lock:
            self.stdin.write(json.dumps({"cmd": cmd, **kwargs}) + "\n")
            self.stdin.flush()
            reply = json.loads(self.stdout.readline())
        if not reply["ok"]:
            raise RuntimeError(f"emulator command {cmd}: {reply['error']}")
        return reply["result"]

    def stats(self, reset: bool = True, times: bool = False) -> RequestStats:
        return RequestStats(self.call("stats", reset=reset, times=times))

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("quit")
            except Exception:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                self.proc.wait(timeout=10)
        LIVE_PIDS.discard(self.proc.pid)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RequestStats:
    """What the emulator saw: counts by (tenant, resource, action, status)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.rows = [tuple(row) for row in raw["by"]]

    def count(
        self,
        tenant: str | None = None,
        resource: str | None = None,
        action: str | None = None,
        status: int | None = None,
    ) -> int:
        return sum(
            row[4]
            for row in self.rows
            if (tenant is None or row[0] == tenant)
            and (resource is None or row[1] == resource)
            and (action is None or row[2] == action)
            and (status is None or row[3] == status)
        )

    def page_size_1(self, tenant: str | None = None, resource: str | None = None) -> int:
        """List calls asking for one record (the asset check reading `recordsTotal`)."""
        return sum(
            row[2]
            for row in self.raw.get("page_size_1", [])
            if (tenant is None or row[0] == tenant) and (resource is None or row[1] == resource)
        )

    @property
    def ok_span_s(self) -> float:
        first, last = self.raw["ok_first"], self.raw["ok_last"]
        return (last - first) if first is not None and last is not None else 0.0


@dataclass
class Measured:
    """One subprocess: exit code, wall seconds, peak RSS (MB) of its largest process, output tails."""

    cmd: list[str]
    rc: int
    wall_s: float
    peak_rss_mb: float
    stdout: str = ""
    stderr: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # seconds the calendar clock moved beyond the monotonic one meanwhile (see `clock_gap`): the machine was
    # paused (a virtual machine's snapshot) or its clock was set; 0 in a clean measurement
    paused_s: float = 0.0

    def check(self, what: str) -> Measured:
        if self.rc != 0:
            raise RuntimeError(f"{what} failed (exit {self.rc}):\n{self.stderr[-4000:]}\n{self.stdout[-2000:]}")
        return self


def run_measured(cmd: list[str], env: dict[str, str], timeout: float = 3600, cwd: Path | None = None) -> Measured:
    """Run `cmd` and report its wall time and peak RSS.

    The peak comes from `wait4`: the child's own high-water mark, or that of the largest of its waited-for
    descendants if larger (Linux `ru_maxrss` of a process includes its reaped children). Output goes to
    temporary files so that a chatty child never blocks on a pipe.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        gap = clock_gap()
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd or CODE_DIR, stdout=out, stderr=err)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        paused = round(clock_gap() - gap, 3)
        if paused >= PAUSE_NOTED_S:
            PAUSES.append({"what": _what(cmd), "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "paused_s": paused})
        return Measured(
            cmd,
            proc.returncode,
            wall,
            usage.ru_maxrss / 1024,
            out.read()[-200_000:],
            err.read()[-200_000:],
            paused_s=paused,
        )


def _what(cmd: list[str]) -> str:
    """A measured command, as a report names it: the Dagster job, or the Python module."""
    for flag in ("-j", "-m"):
        if flag in cmd[:-1]:
            return cmd[cmd.index(flag) + 1]
    return Path(cmd[0]).name


def clock_gap() -> float:
    """The calendar clock less the monotonic one. It grows when the machine is paused and its calendar clock set
    right on resuming (a virtual machine's snapshot: the kernel logs "virtual machine fork"), or when the clock is
    set: a run's wall time (monotonic) then leaves the pause out, while its event timestamps (calendar) count it,
    and a step can seem longer than its run."""
    return time.clock_gettime(time.CLOCK_REALTIME) - time.clock_gettime(time.CLOCK_MONOTONIC)


class DagsterHome:
    """A temporary DAGSTER_HOME with the repository's dagster.yaml, and the product's environment."""

    def __init__(self, root: Path, base_url: str, warehouse: Path, extra_env: dict[str, str] | None = None) -> None:
        self.path = root / "dagster_home"
        self.path.mkdir(parents=True, exist_ok=True)
        self.warehouse = warehouse
        self.env = clean_env()
        _write_instance_yaml(self.path, self.env)
        self.env.update(
            {
                "DAGSTER_HOME": str(self.path),
                "SYNC_DUCKDB_PATH": str(warehouse),
                "SYNC_RETRY_DELAY_SECONDS": "30",
                "PYTHONUNBUFFERED": "1",
            }
        )
        for tenant in TENANTS.values():
            self.env.update(tenant_env(tenant, base_url))
        self.env.update(extra_env or {})
        self.config_dir = root / "run_configs"
        self.config_dir.mkdir(exist_ok=True)

    def job(
        self,
        job: str,
        ops_config: dict[str, dict[str, Any]] | None = None,
        timeout: float = 3600,
        module: str = "sync_pipelines.definitions",
    ) -> Measured:
        """`dagster job execute -m <module> -j <job>` in the process the instance's run launcher starts for a run
        (`python -m sync_pipelines.run_worker --load <module> ...`, the project's dagster.yaml), without the
        daemon's queue: the way the product's scheduled runs are run."""
        run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        if ops_config:
            run_config["ops"] = {op: {"config": cfg} for op, cfg in ops_config.items()}
        path = self.config_dir / f"{job}-{time.monotonic_ns()}.yaml"
        path.write_text(json.dumps(run_config))  # JSON is YAML
        cmd = [PYTHON, "-m", "sync_pipelines.run_worker", "--load", module, "job", "execute", "-m", module, "-j", job]
        cmd += ["-c", str(path)]
        return run_measured(cmd, self.env, timeout=timeout)

    def runs(self, limit: int) -> list[dict[str, Any]]:
        """The latest `limit` runs of this instance, oldest first (see `inspect_runs`)."""
        return inspect_runs(self.path, limit)


_INSPECT = r"""
import json, sys
from dagster import DagsterInstance, DagsterEventType
NUMERIC = ('IntMetadataValue', 'FloatMetadataValue', 'BoolMetadataValue', 'TimestampMetadataValue')
out = []
with DagsterInstance.get() as instance:
    for run in instance.get_runs(limit=int(sys.argv[1])):
        starts, steps, retries, mats = {}, {}, 0, {}
        for rec in instance.all_logs(run.run_id):
            ev = rec.dagster_event
            if ev is None:
                continue
            if ev.event_type == DagsterEventType.STEP_START:
                starts.setdefault(ev.step_key, rec.timestamp)
            elif ev.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                steps[ev.step_key] = rec.timestamp - starts.get(ev.step_key, rec.timestamp)
            elif ev.event_type == DagsterEventType.STEP_UP_FOR_RETRY:
                retries += 1
            elif ev.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                mat = rec.asset_materialization
                mats['/'.join(mat.asset_key.path)] = {
                    k: v.value for k, v in mat.metadata.items() if type(v).__name__ in NUMERIC}
        out.append({'run_id': run.run_id, 'job': run.job_name, 'status': run.status.value, 'steps': steps,
                    'retries': retries, 'materializations': mats})
print(json.dumps(out[::-1], default=str))
"""


def _write_instance_yaml(home: Path, env: dict[str, str]) -> None:
    """`home/dagster.yaml` as the code under test's `make` writes it (`python -m sync_pipelines.instance`)."""
    cmd = [PYTHON, "-m", "sync_pipelines.instance", str(CODE_DIR / "dagster.yaml"), str(home)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=CODE_DIR)
    if result.returncode != 0:
        raise RuntimeError(f"writing the instance's dagster.yaml failed:\n{result.stderr[-3000:]}")


def inspect_runs(home: Path, limit: int) -> list[dict[str, Any]]:
    """Status, step seconds (STEP_START to SUCCESS/FAILURE, the last attempt), retries and materialization
    metadata of the latest runs, oldest first. In a subprocess, to keep dagster out of this process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env["DAGSTER_HOME"] = str(home)
    result = subprocess.run([PYTHON, "-c", _INSPECT, str(limit)], env=env, capture_output=True, text=True, cwd=CODE_DIR)
    if result.returncode != 0:
        raise RuntimeError(f"reading the Dagster instance failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def job_name(tenant: str, entity: str) -> str:
    """An entity's job, as `sync_pipelines.defs.schedules.entity_job_name` names it (that module imports Dagster,
    which stays out of this process)."""
    return f"sync_{tenant}__{entity}"
