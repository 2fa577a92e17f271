"""Shared by the bench phases: the emulator process, measured subprocesses, the product's environment."""

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

REPO = Path(__file__).resolve().parents[1]
# Where every measured subprocess runs, and what it imports: the repository, or a frozen copy of the product
# (see `snapshot_code`) so that a benchmark run measures one version even while the code is being edited.
CODE_DIR = REPO
SNAPSHOT_ITEMS = ("sync_pipelines", "synchroteam_emulator", "bench", "analytics", "dagster.yaml", "pyproject.toml")
# what a copy leaves out: caches, results, dbt's logs and per-run targets (its parsed manifest is kept)
SNAPSHOT_IGNORED = ("__pycache__", "results", "logs", "analytics-*", "docs")
PYTHON = sys.executable
DAGSTER = str(Path(sys.executable).with_name("dagster"))
TIMEZONE = "Europe/Paris"
MAIN_DOMAIN, MAIN_KEY = "bench-main", "b3nch-0000-4000-8000-00000000main"
HEC_DOMAIN, HEC_KEY = "bench-hec", "b3nch-0000-4000-8000-000000000hec"
DOMAINS = {"synchroteam": MAIN_DOMAIN, "synchroteam_hec": HEC_DOMAIN}
KEYS = {MAIN_DOMAIN: MAIN_KEY, HEC_DOMAIN: HEC_KEY}
# (tenant, entity, API resource) in sync_all's order
ENTITIES = [
    ("synchroteam", "jobs", "job"),
    ("synchroteam", "invoices", "invoice"),
    ("synchroteam", "quotations", "quotation"),
    ("synchroteam", "customers", "customer"),
    ("synchroteam", "sites", "site"),
    ("synchroteam", "credit_notes", "creditnote"),
    ("synchroteam_hec", "invoices", "invoice"),
    ("synchroteam_hec", "credit_notes", "creditnote"),
]


def alternating(items: list[str], round_: int) -> list[str]:
    """`items` in the order round `round_` runs them: reversed every other round, so that none always goes first."""
    return list(items) if round_ % 2 == 0 else list(items)[::-1]


def tenant_specs(main_counts: dict[str, int], hec_counts: dict[str, int] | None) -> list[dict[str, Any]]:
    specs = [dict(domain=MAIN_DOMAIN, api_key=MAIN_KEY, timezone=TIMEZONE, counts=main_counts, seed=101)]
    if hec_counts:
        specs.append(dict(domain=HEC_DOMAIN, api_key=HEC_KEY, timezone=TIMEZONE, counts=hec_counts, seed=102))
    return specs


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


def export_revision(revision: str, target: Path) -> Path:
    """The product and the bench as git revision `revision` has them, in `target` (for `DagsterHome(code=...)`):
    the code a change is measured against, side by side. Returns `target`."""
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", revision, *SNAPSHOT_ITEMS],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
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
        line = self.proc.stdout.readline()
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
            self.proc.stdin.write(json.dumps({"cmd": cmd, **kwargs}) + "\n")
            self.proc.stdin.flush()
            reply = json.loads(self.proc.stdout.readline())
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

    def __init__(
        self,
        root: Path,
        base_url: str,
        warehouse: Path,
        extra_env: dict[str, str] | None = None,
        code: Path | None = None,
    ) -> None:
        """`code`: run the jobs from this copy of the product (`export_revision`) instead of the snapshot."""
        self.code = code
        self.path = root / "dagster_home"
        self.path.mkdir(parents=True, exist_ok=True)
        shutil.copy((code or CODE_DIR) / "dagster.yaml", self.path / "dagster.yaml")
        self.warehouse = warehouse
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCHROTEAM_", "SYNC_", "DAGSTER_"))}
        self.env.update(
            {
                "DAGSTER_HOME": str(self.path),
                "SYNC_DUCKDB_PATH": str(warehouse),
                "SYNC_RETRY_DELAY_SECONDS": "30",
                "PYTHONUNBUFFERED": "1",
            }
        )
        for prefix, domain in (("SYNCHROTEAM_", MAIN_DOMAIN), ("SYNCHROTEAM_HEC_", HEC_DOMAIN)):
            self.env.update(
                {
                    f"{prefix}BASE_URL": base_url,
                    f"{prefix}DOMAIN": domain,
                    f"{prefix}API_KEY": KEYS[domain],
                    f"{prefix}TIMEZONE": TIMEZONE,
                }
            )
        self.env.update(extra_env or {})
        if code is not None:
            self.env["PYTHONPATH"] = str(code)
        self.config_dir = root / "run_configs"
        self.config_dir.mkdir(exist_ok=True)

    def job(
        self,
        job: str,
        ops_config: dict[str, dict[str, Any]] | None = None,
        timeout: float = 3600,
        env: dict[str, str] | None = None,
        module: str = "sync_pipelines.definitions",
    ) -> Measured:
        """`dagster job execute -m <module> -j <job>`, the way users run the product's jobs."""
        run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        if ops_config:
            run_config["ops"] = {op: {"config": cfg} for op, cfg in ops_config.items()}
        path = self.config_dir / f"{job}-{time.monotonic_ns()}.yaml"
        path.write_text(json.dumps(run_config))  # JSON is YAML
        cmd = [DAGSTER, "job", "execute", "-m", module, "-j", job, "-c", str(path)]
        return run_measured(cmd, {**self.env, **(env or {})}, timeout=timeout, cwd=self.code)

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


def inspect_runs(home: Path, limit: int) -> list[dict[str, Any]]:
    """Status, step seconds (STEP_START to SUCCESS/FAILURE, the last attempt), retries and materialization
    metadata of the latest runs, oldest first. In a subprocess, to keep dagster out of this process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env["DAGSTER_HOME"] = str(home)
    result = subprocess.run([PYTHON, "-c", _INSPECT, str(limit)], env=env, capture_output=True, text=True, cwd=CODE_DIR)
    if result.returncode != 0:
        raise RuntimeError(f"reading the Dagster instance failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def fmt_int(n: float | int | None) -> str:
    return "–" if n is None else f"{int(round(n)):,}"


def fmt_f(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"
