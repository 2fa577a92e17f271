"""`make demo` as a new user runs it: a progress log, then the summary, and the run on its job's page."""

import os
import re
import subprocess
import sys
from pathlib import Path

from dagster import DagsterInstance, RunsFilter
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

REPO = Path(__file__).resolve().parents[1]
# What the UI's job page asks for: the job's runs launched from this code location (dagster-graphql's
# `Pipeline.runs` filters on the job's name and this tag)
CODE_LOCATION_LABEL = "__repository__@sync_pipelines.definitions"
ENTITY_LINE = re.compile(r"^  synchroteam(_hec)?/\w+ +[\d,]+ records +[\d,]+ requests +[\d.]+ s$")


def test_make_demo_prints_a_progress_line_per_entity_no_warning_and_its_run_is_on_the_job_page(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCHROTEAM_", "SYNC_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), SYNC_DUCKDB_PATH=str(tmp_path / "warehouse.duckdb"), PYTHONWARNINGS="")
    subprocess.run([sys.executable, "-m", "sync_pipelines.instance", "dagster.yaml", str(home)], cwd=REPO, env=env)
    done = subprocess.run(
        [sys.executable, "-m", "synchroteam_emulator.demo", "run", "--scale", "0.2"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    lines = output.splitlines()
    assert sum(bool(ENTITY_LINE.match(line)) for line in lines) == 8, output
    assert not [line for line in lines if "warning" in line.lower()], output
    assert lines.index(next(line for line in lines if line.startswith("What landed in"))) > max(
        i for i, line in enumerate(lines) if ENTITY_LINE.match(line)
    )

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(job_name="sync_all", tags={REPOSITORY_LABEL_TAG: CODE_LOCATION_LABEL}))
    assert [run.status.value for run in runs] == ["SUCCESS"]
