"""`make demo` as a new user runs it: a progress log, then the summary, the run on its job's page, and `make sql`
where the summary says analysts start."""

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
from dagster import DagsterInstance, RunsFilter
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

from sync_pipelines.catalogue import TENANTS
from sync_pipelines.warehouse.settings import read_copy_path
from synchroteam_emulator import TenantSpec

REPO = Path(__file__).resolve().parents[2]
# What the UI's job page asks for: the job's runs launched from this code location (dagster-graphql's
# `Pipeline.runs` filters on the job's name and this tag)
CODE_LOCATION_LABEL = "__repository__@sync_pipelines.definitions"
# counts agree with their nouns: "1 record", "2 records"
ENTITY_STEPS = sum(len(tenant.entities) for tenant in TENANTS.values())  # the demo's tenants serve them all
ENTITY_LINE = re.compile(
    r"^  synchroteam(_hec)?/\w+ +(1 record |(?!1 )[\d,]+ records) +(1 request |(?!1 )[\d,]+ requests) +[\d.]+ s$"
)


def run_demo(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`make demo`'s command, from a shell with the usual umask."""
    return subprocess.run(
        [sys.executable, "-m", "synchroteam_emulator.demo", "run", "--scale", "0.2"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        umask=0o022,
    )


def test_make_demo_prints_a_progress_line_per_entity_no_warning_and_its_run_is_on_the_job_page(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCHROTEAM_", "SYNC_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), SYNC_DUCKDB_PATH=str(tmp_path / "warehouse.duckdb"), PYTHONWARNINGS="")
    # as `make demo` runs them, from a shell with the usual umask
    subprocess.run(
        [sys.executable, "-m", "sync_pipelines.instance", "dagster.yaml", str(home)], cwd=REPO, env=env, umask=0o022
    )
    done = run_demo(env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    # private: nothing the demo wrote (warehouse, read copy, dlt's folders, the instance) is readable by others,
    # and no file holds an API key
    written = [path for path in tmp_path.rglob("*") if not path.is_symlink()]
    assert [str(p) for p in written if p.stat().st_mode & 0o077] == []
    keys = [spec.api_key.encode() for spec in (TenantSpec.demo_main(0.2), TenantSpec.demo_hec(0.2))]
    assert [str(p) for p in written if p.is_file() and any(key in p.read_bytes() for key in keys)] == []
    lines = output.splitlines()
    assert sum(bool(ENTITY_LINE.match(line)) for line in lines) == ENTITY_STEPS, output
    assert not [line for line in lines if "warning" in line.lower()], output
    assert lines.index(next(line for line in lines if line.startswith("What the warehouse holds"))) > max(
        i for i, line in enumerate(lines) if ENTITY_LINE.match(line)
    )
    # what this run did, first: the records it loaded are those of the entity lines
    loaded = sum(
        int(ENTITY_LINE.match(line).group(2).split()[0].replace(",", "")) for line in lines if ENTITY_LINE.match(line)
    )  # type: ignore[union-attr]
    assert f"{loaded:,} records loaded." in next(line for line in lines if line.startswith("This run:")), output

    # the closing line says where analysts start, and that command answers SQL on its standard input
    assert "make sql" in lines[-1], output
    asked = subprocess.run(
        ["make", "-s", "sql"],
        input="select count(*) as invoices from analytics.invoices;\n",
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert asked.returncode == 0, asked.stdout + asked.stderr
    with duckdb.connect(str(read_copy_path(tmp_path / "warehouse.duckdb")), read_only=True) as con:
        (invoices,) = con.execute("select count(*) from analytics.invoices").fetchone() or (None,)
    assert invoices and re.search(rf"│\s+{invoices}\s+│", asked.stdout), asked.stdout

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(job_name="sync_all", tags={REPOSITORY_LABEL_TAG: CODE_LOCATION_LABEL}))
    assert [run.status.value for run in runs] == ["SUCCESS"]

    # run again: one line per entity, each saying it loaded nothing, and a summary that says nothing changed
    again = run_demo(env)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    lines = again.stdout.splitlines()
    entity_lines = [line for line in lines if line.startswith("  synchroteam") and "/" in line.split()[0]]
    assert len(entity_lines) == ENTITY_STEPS and all(ENTITY_LINE.match(line) for line in entity_lines), again.stdout
    assert all(" 0 records " in line for line in entity_lines), again.stdout
    assert not [line for line in lines if "nothing changed since the last run" in line], again.stdout  # said once
    assert next(line for line in lines if line.startswith("This run:")).startswith("This run: nothing changed: ")
    # and no framework noise: no check reported as not yielded, no step skipped
    noise = [
        line for line in (again.stdout + again.stderr).splitlines() if "did not yield" in line or "Skipping" in line
    ]
    assert noise == [], noise


def test_make_ui_serves_on_the_port_asked_prints_and_writes_the_emulators_variables_and_warns_of_nothing(tmp_path):
    import signal
    import socket
    import time

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = tmp_path / "dagster_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCHROTEAM_", "SYNC_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), SYNC_DUCKDB_PATH=str(tmp_path / "warehouse.duckdb"))
    subprocess.run([sys.executable, "-m", "sync_pipelines.instance", "dagster.yaml", str(home)], cwd=REPO, env=env)
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        ui = subprocess.Popen(
            [sys.executable, "-m", "synchroteam_emulator.demo", "ui", "--scale", "0.05", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline, served = time.monotonic() + 180, False
        while not served:
            assert time.monotonic() < deadline and ui.poll() is None, log.read_text()[-3000:]
            try:
                served = httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2, trust_env=False).is_success
            except httpx.HTTPError:
                time.sleep(0.5)
    finally:
        os.killpg(ui.pid, signal.SIGINT)
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait(timeout=30)
    output = log.read_text()
    variables = dict(line.split("=", 1) for line in (home / "emulator.env").read_text().splitlines())
    assert (home / "emulator.env").stat().st_mode & 0o777 == 0o600  # it holds the API keys
    assert variables["SYNCHROTEAM_BASE_URL"].startswith("http://127.0.0.1:") and "SYNCHROTEAM_HEC_API_KEY" in variables
    assert f"Dagster UI at http://127.0.0.1:{port}" in output and variables["SYNCHROTEAM_BASE_URL"] in output
    assert not [line for line in output.splitlines() if "warning" in line.lower()], output[-3000:]


def test_a_runs_console_is_at_info_while_its_event_log_keeps_every_event(emulator, warehouse, tmp_path):
    from sync_pipelines_tests.processes import dagster_home, run_messages, start_job, wait

    home = dagster_home(tmp_path)
    log = tmp_path / "run.log"
    assert wait(start_job("sync_synchroteam_hec__credit_notes", home, log)) == 0, log.read_text()[-3000:]
    console = log.read_text()
    assert " - INFO - " in console and " - DEBUG - " not in console
    assert any(message.startswith('Started execution of step "synchroteam_hec"') for message in run_messages(home))
