"""A run launched the way the UI launches it, followed from the command line: what `make demo` does.

`dagster job launch -m sync_pipelines.definitions -j <job>` queues the run through the instance with its code
location's origin, so the run is listed on its job's page in the UI (a `dagster job execute` run is not). A
`dagster-daemon` started here takes it from the queue; its own log goes to `$DAGSTER_HOME/demo-daemon.log`. An
instance another daemon already serves is refused: that daemon's run workers would run with its environment. The run's events are read from the instance as they arrive and printed as a
progress log: one line per entity as it lands, the steps' own notices (rate-limit waits, failures).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

MODULE = "sync_pipelines.definitions"
START_TIMEOUT_SECONDS = 180.0  # the daemon's start-up and the queue's first pass
POLL_SECONDS = 0.5
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"
HEARTBEAT_FRESH_SECONDS = 60.0  # a daemon beats every few seconds; Dagster itself warns past 60


def daemon_serving(instance: DagsterInstance) -> bool:
    """Whether a daemon already takes this instance's runs from the queue (`make ui`'s `dagster dev`, a
    deployment's `dagster-daemon`): a second one would fight it for the same heartbeats."""
    beat = instance.get_daemon_heartbeats().get(QUEUE_DAEMON)
    return beat is not None and time.time() - beat.timestamp < HEARTBEAT_FRESH_SECONDS


@contextmanager
def daemon(env: Mapping[str, str], home: Path) -> Iterator[Path]:
    """`dagster-daemon run` on the instance at `home` for the block (the run queue, run monitoring); its log."""
    log = home / "demo-daemon.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [_bin("dagster-daemon"), "run", "-m", MODULE, "--log-level", "warning"],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield log
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


def launch(job: str, env: Mapping[str, str], run_config: Path | None = None) -> str:
    """Queue a run of `job` through the instance; its run id."""
    run_id = str(uuid.uuid4())
    command = [_bin("dagster"), "job", "launch", "-m", MODULE, "-j", job, "--run-id", run_id]
    if run_config is not None:
        command += ["-c", str(run_config)]
    done = subprocess.run(command, env=dict(env), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"dagster job launch failed:\n{done.stderr[-3000:]}")
    return run_id


def follow(instance: DagsterInstance, run_id: str, print_line=print, daemon_log: Path | None = None) -> bool:
    """Print the run's progress until it ends; True if it succeeded."""
    cursor = None
    started: dict[str, float] = {}
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        run = instance.get_run_by_id(run_id)
        if run is None or run.status in (DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED):
            if time.monotonic() > deadline:
                tail = daemon_log.read_text()[-3000:] if daemon_log is not None and daemon_log.exists() else ""
                raise RuntimeError(f"run {run_id} was not started in {START_TIMEOUT_SECONDS:.0f} s:\n{tail}")
        connection = instance.get_records_for_run(run_id, cursor=cursor)
        cursor = connection.cursor
        for record in connection.records:
            line = _progress(record.event_log_entry, started)
            if line:
                print_line(line)
        if run is not None and run.status in FINISHED and not connection.has_more:
            return run.status == DagsterRunStatus.SUCCESS
        if not connection.has_more:
            time.sleep(POLL_SECONDS)


# dagster-dbt's own notices (its dbt command line, partial parsing): the analytics step's summary says enough
DAGSTER_DBT_NOTICES = ("A dbt subsetted execution", "Copying `", "Running dbt command", "Finished dbt command")
# a sync step's own "nothing changed" notice: its line of counts below says so already (0 records)
NOTHING_CHANGED = "nothing changed since the last run"


def _progress(entry, started: dict[str, float]) -> str | None:
    step = entry.step_key or ""
    event = entry.dagster_event
    if event is None:  # a step's own notice (context.log): waits, the read copy, what the analytics models did
        if entry.user_message.startswith(DAGSTER_DBT_NOTICES) or NOTHING_CHANGED in entry.user_message:
            return None
        return f"  {step}: {entry.user_message}" if entry.level >= 20 and step else None
    if event.event_type == DagsterEventType.STEP_START:
        started[step] = entry.timestamp
    elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
        materialization = event.step_materialization_data.materialization
        metadata = {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}
        if "loaded" not in metadata:  # not a sync (the read copy): its own notice said what it did
            return None
        seconds = entry.timestamp - started.get(step, entry.timestamp)
        records, requests = metadata.get("loaded", 0), metadata.get("api_requests", 0)
        return (
            f"  {materialization.asset_key.to_user_string():<30} {records:>7,} {_plural(records, 'record'):<7}  "
            f"{requests:>5,} {_plural(requests, 'request'):<8}  {seconds:5.1f} s"
        )
    elif event.event_type == DagsterEventType.STEP_FAILURE:
        data = event.step_failure_data
        text = data.user_failure_data.description if data.user_failure_data else data.error.message
        return f"  {step} FAILED: {(text or '').strip().splitlines()[0] if text else ''}"
    elif event.event_type == DagsterEventType.RUN_SUCCESS:
        return f"Run {entry.run_id[:8]} succeeded."
    elif event.event_type == DagsterEventType.RUN_FAILURE:
        return f"Run {entry.run_id[:8]} failed."
    return None


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else f"{noun}s"


@dataclass(frozen=True)
class Followed:
    """How a followed run ended, and the records its syncs loaded."""

    succeeded: bool
    records_loaded: int


def records_loaded(instance: DagsterInstance, run_id: str) -> int:
    """The records the run's sync steps loaded (their materializations' `loaded`)."""
    total = 0
    for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records:
        event = record.event_log_entry.dagster_event
        metadata = event.step_materialization_data.materialization.metadata if event is not None else {}
        total += int(getattr(metadata.get("loaded"), "value", 0) or 0)
    return total


def run_and_follow(job: str, env: Mapping[str, str], run_config: Path | None = None) -> Followed:
    """Start a daemon, launch `job`, print its progress until it ends, stop the daemon; how it ended."""
    home = Path(env["DAGSTER_HOME"])
    previous = os.environ.copy()
    os.environ.update(env)  # the instance's storage may read its URL from the environment
    try:
        # opened first: it creates the instance's storage, which the daemon and the launch would race to create
        with DagsterInstance.get() as instance, ExitStack() as stack:
            if daemon_serving(instance):
                # its run workers would run with its own environment: another emulator, or none
                raise RuntimeError(
                    f"A Dagster daemon already serves {home} (`make ui`, or a deployment's `dagster-daemon`); it would "
                    "run this demo against its own settings. Stop it, or give the demo another DAGSTER_HOME "
                    "(`make demo DAGSTER_HOME=/tmp/demo`)."
                )
            # its heartbeats are wiped when it stops: they would pass for a live daemon for another minute
            stack.callback(instance.wipe_daemon_heartbeats)
            log = stack.enter_context(daemon(env, home))
            run_id = launch(job, env, run_config)
            print(f"Launched {job} (run {run_id[:8]}); it is on the job's page in `make ui`.", flush=True)
            succeeded = follow(instance, run_id, lambda line: print(line, flush=True), log)
            return Followed(succeeded, records_loaded(instance, run_id))
    finally:
        os.environ.clear()
        os.environ.update(previous)
