"""`python -m sync_pipelines.run_worker`: Dagster's command line in a run's process, which loads the code location
into the collector's permanent generation and ends without the interpreter's finalization."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import LaunchRunContext

from sync_pipelines.defs.launcher import WORKER_TAG, LeaseCheckingRunLauncher, worker_command
from sync_pipelines.instance import write_dagster_yaml
from sync_pipelines_tests import worker_jobs
from sync_pipelines_tests.processes import REPO

JOBS = "sync_pipelines_tests.worker_jobs"


def run(tmp_path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, *command],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "DAGSTER_HOME": str(home), "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def worker(tmp_path: Path, job: str, load: str = JOBS) -> subprocess.CompletedProcess[str]:
    return run(tmp_path, "-m", "sync_pipelines.run_worker", "--load", load, "job", "execute", "-m", JOBS, "-j", job)


def execute(tmp_path: Path, job: str) -> subprocess.CompletedProcess[str]:
    return run(tmp_path, "-m", "dagster", "job", "execute", "-m", JOBS, "-j", job)


def heap_line(done: subprocess.CompletedProcess[str]) -> tuple[bool, int]:
    found = re.search(r"collector enabled=(\w+) frozen=(\d+)", done.stderr)
    assert found, done.stderr[-3000:]
    return found[1] == "True", int(found[2])


def test_the_worker_runs_with_the_code_location_frozen_and_ends_without_finalization(tmp_path):
    plain, worked = execute(tmp_path, "heap_job"), worker(tmp_path, "heap_job")
    assert plain.returncode == 0 and worked.returncode == 0, worked.stderr[-3000:]
    # the run's collector runs, and no longer walks what was loaded with the code location
    assert heap_line(plain) == (True, 0)
    enabled, frozen = heap_line(worked)
    assert enabled and frozen > 100_000, (enabled, frozen)
    # every exit handler runs; the objects still alive are not freed one by one (the finalization would print),
    # and a frozen heap is not finalized either (DuckDB's bindings would report its objects as leaks)
    assert "exit handler ran" in plain.stderr and "finalized at exit" in plain.stderr
    assert "exit handler ran" in worked.stderr
    assert "finalized at exit" not in worked.stderr, worked.stderr[-3000:]
    assert "nanobind" not in worked.stderr, worked.stderr[-3000:]
    # Dagster's own output, flushed before the process ends
    assert "RUN_SUCCESS" in worked.stderr, worked.stderr[-3000:]


def test_a_failed_run_exits_as_dagster_would(tmp_path):
    plain, worked = execute(tmp_path, "failing_job"), worker(tmp_path, "failing_job")
    assert plain.returncode != 0
    assert worked.returncode == plain.returncode, worked.stderr[-3000:]
    assert "this op fails" in worked.stderr


def test_a_code_location_that_cannot_load_is_reported_by_dagster_not_by_the_worker(tmp_path):
    worked = worker(tmp_path, "heap_job", load="sync_pipelines_tests.no_such_module")
    assert worked.returncode == 0, worked.stderr[-3000:]  # the run itself loads JOBS
    broken = run(
        tmp_path, "-m", "sync_pipelines.run_worker", "--load", "sync_pipelines_tests.no_such_module",
        "job", "execute", "-m", "sync_pipelines_tests.no_such_module", "-j", "heap_job",
    )  # fmt: skip
    assert broken.returncode != 0
    assert "No module named 'sync_pipelines_tests.no_such_module'" in broken.stderr, broken.stderr[-3000:]
    assert "importlib.import_module(module)" not in broken.stderr, broken.stderr[-3000:]  # the worker's own load


@pytest.mark.parametrize("argv", [[], ["--load", JOBS]])
def test_without_dagster_arguments_the_worker_says_what_it_needs(argv, tmp_path):
    done = run(tmp_path, "-m", "sync_pipelines.run_worker", *argv)
    assert done.returncode == 2
    assert "no dagster arguments" in done.stderr, done.stderr


def _instance(tmp_path: Path, run_worker: bool) -> DagsterInstance:
    home = tmp_path / "launcher_home"
    yaml = write_dagster_yaml(REPO / "dagster.yaml", home)
    text = yaml.read_text()
    assert "run_worker: true" in text  # the project's default
    yaml.write_text(text.replace("run_worker: true", f"run_worker: {str(run_worker).lower()}"))
    return DagsterInstance.from_config(str(home))


def _run(instance: DagsterInstance) -> DagsterRun:
    recon = reconstructable_job(JOBS)
    return instance.create_run_for_job(
        job_def=worker_jobs.heap_job, job_code_origin=recon.get_python_origin(), remote_job_origin=None
    )


def reconstructable_job(module: str) -> ReconstructableJob:
    return ReconstructableJob.for_module(module, "heap_job")


def test_the_launcher_starts_the_run_in_the_run_worker_with_the_code_location_loaded(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    with _instance(tmp_path, run_worker=True) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, LeaseCheckingRunLauncher) and launcher.run_worker
        run = _run(instance)
        launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
        deadline = time.monotonic() + 120
        while not (instance.get_run_by_id(run.run_id) or run).is_finished:
            assert time.monotonic() < deadline, "the launched run did not finish"
            time.sleep(0.2)
        done = instance.get_run_by_id(run.run_id)
        assert done is not None and done.status == DagsterRunStatus.SUCCESS, done
        worker = json.loads(done.tags[WORKER_TAG])
        assert worker["pid"] != os.getpid()
        said = " ".join(entry.user_message for entry in instance.all_logs(run.run_id))
        frozen = re.search(r"collector enabled=True frozen=(\d+)", said)
        assert frozen and int(frozen[1]) > 100_000, said[-2000:]  # `--load` the run's module, then frozen


def test_without_run_worker_the_launcher_leaves_the_run_to_the_code_server(tmp_path):
    with _instance(tmp_path, run_worker=False) as instance:
        run = _run(instance)
        with pytest.raises(DagsterInvariantViolationError, match="requires a workspace"):  # Dagster's own path
            instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
        assert WORKER_TAG not in (instance.get_run_by_id(run.run_id) or run).tags


def test_the_run_worker_s_command_line_names_the_storage_s_variable_never_its_secret(tmp_path, monkeypatch):
    secret = "pw-never-in-argv"
    monkeypatch.setenv("SYNC_DAGSTER_POSTGRES_URL", f"postgresql+psycopg2://sync:{secret}@127.0.0.1:5/dagster")
    home = tmp_path / "pg_home"
    write_dagster_yaml(REPO / "dagster.yaml", home)
    command = worker_command(InstanceRef.from_dir(str(home)), "a-run-id", reconstructable_job(JOBS).get_python_origin())
    assert command[1:5] == ["-m", "sync_pipelines.run_worker", "--load", JOBS], command[:5]
    assert "SYNC_DAGSTER_POSTGRES_URL" in command[-1]
    assert not [part for part in command if secret in part]
