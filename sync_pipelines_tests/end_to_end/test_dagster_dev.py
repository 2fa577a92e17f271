"""End to end: `dagster dev` on loopback with a temporary DAGSTER_HOME, driven through its GraphQL API.

One `dagster dev` (webserver, daemon, code server) serves the whole module against the emulator. Runs are
launched with the `launchRun` mutation, go through the run queue of the repository's dagster.yaml, and are read
back through GraphQL: status, tags and the materialization metadata of the event log. A run made to hang (the
emulator sleeps on every request) is ended by run monitoring once past its `dagster/max_runtime`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync_pipelines.catalogue import ENTITIES
from sync_pipelines.definitions import defs
from sync_pipelines.defs.launcher import WORKER_TAG
from sync_pipelines.defs.schedules import (
    MAX_RUNTIME_TAG,
    TENANT_TAG,
    max_runtime_seconds,
)
from sync_pipelines.instance import dagster_yaml
from sync_pipelines.warehouse.lock import warehouse_turn
from sync_pipelines_tests.conftest import HEC, MAIN
from sync_pipelines_tests.helpers import requests_by
from synchroteam_emulator import Emulator, Fault
from synchroteam_emulator.env import tenant_env

REPO = Path(__file__).resolve().parents[2]
# One `dagster dev` serves the module (a module fixture): under pytest-xdist its tests stay on one worker.
pytestmark = pytest.mark.xdist_group("dagster_dev")
DAGSTER = Path(sys.executable).with_name("dagster")
MODULE = "sync_pipelines.definitions"
REPOSITORY = "__repository__"
MONITORING_POLL_SECONDS = 1
STARTUP_TIMEOUT = 120.0
RUN_TIMEOUT = 180.0
HUNG_RUN_TIMEOUT = 120.0
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
SYNC_LABELS = (
    "fetched",
    "loaded",
    "inserted",
    "updated",
    "api_requests",
    "retries_429",
    "quota_remaining",
    "dagster/row_count",
    "window_start",
    "window_end",
    "cursor_before",
    "cursor_after",
)


WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { repositories { name } }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

LAUNCH_RUN = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message reason } }
    ... on Error { message }
  }
}
"""

RUN_QUERY = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      runId
      jobName
      status
      startTime
      endTime
      tags { key value }
    }
    ... on Error { message }
  }
}
"""

ASSET_CHECKS = """
query AssetChecks($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      assetChecksOrError {
        ... on AssetChecks { checks { name executionForLatestMaterialization { status runId } } }
      }
    }
  }
}
"""

RUN_EVENTS = """
query RunEvents($runId: ID!, $afterCursor: String) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      eventConnection(afterCursor: $afterCursor, limit: 500) {
        cursor
        hasMore
        events {
          __typename
          ... on MessageEvent { message eventType stepKey }
          ... on MaterializationEvent {
            assetKey { path }
            metadataEntries {
              __typename
              label
              ... on IntMetadataEntry { intRepr }
              ... on FloatMetadataEntry { floatValue }
              ... on BoolMetadataEntry { boolValue }
              ... on TimestampMetadataEntry { timestamp }
              ... on TextMetadataEntry { text }
            }
          }
        }
      }
    }
    ... on Error { message }
  }
}
"""


class DagsterDev:
    """A `dagster dev` process group on 127.0.0.1 and a small GraphQL client for it."""

    def __init__(self, home: Path, log_path: Path, env: dict[str, str], cwd: Path) -> None:
        self.home = home
        self.log_path = log_path
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self.location = MODULE
        self.env = env
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [str(DAGSTER), "dev", "-m", MODULE, "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.http = httpx.Client(timeout=30.0, trust_env=False)

    # -- lifecycle --------------------------------------------------------------------------------------------
    def wait_until_loaded(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Until GraphQL answers and the code location is LOADED (fails at once on a load error)."""
        deadline = time.monotonic() + timeout
        last: Any = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"dagster dev exited with {self.proc.returncode} while starting.\n{self.log_tail()}")
            try:
                data = self.query(WORKSPACE_QUERY)
            except (httpx.HTTPError, GraphQLError) as exc:
                last = exc
                time.sleep(0.5)
                continue
            workspace = data["workspaceOrError"]
            last = workspace
            for entry in workspace.get("locationEntries", []):
                loaded = entry["locationOrLoadError"] or {}
                if loaded.get("__typename") == "PythonError":
                    pytest.fail(
                        f"Code location {entry['name']} failed to load: {loaded['message']}\n"
                        f"{''.join(loaded['stack'])}\n{self.log_tail()}"
                    )
                repositories = [r["name"] for r in loaded.get("repositories", [])]
                if entry["loadStatus"] == "LOADED" and REPOSITORY in repositories:
                    self.location = entry["name"]
                    return
            time.sleep(0.5)
        pytest.fail(f"dagster dev did not load {MODULE} within {timeout:.0f}s (last: {last}).\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the whole process group (webserver, daemon, code server, run workers), then SIGKILL."""
        self.http.close()
        try:
            if self.proc.poll() is None:
                _signal_group(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    _signal_group(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
        finally:
            _signal_group(self.proc.pid, signal.SIGKILL)  # whatever of the group outlived dagster dev
            self._log.close()

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no dagster dev log: {exc})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- dagster dev log ({self.log_path}), last {lines} lines ---\n{tail}\n--- end of log ---"

    # -- GraphQL ----------------------------------------------------------------------------------------------
    def query(self, query: str, variables: dict | None = None) -> dict:
        response = self.http.post(self.url, json={"query": query, "variables": variables or {}})
        if response.status_code != 200:
            raise GraphQLError(f"HTTP {response.status_code}: {response.text[:2000]}")
        body = response.json()
        if body.get("errors"):
            raise GraphQLError(str(body["errors"]))
        return body["data"]

    def launch(self, job_name: str, run_config: dict, tags: dict[str, str] | None = None) -> str:
        params: dict[str, Any] = {
            "selector": {"repositoryLocationName": self.location, "repositoryName": REPOSITORY, "jobName": job_name},
            "runConfigData": run_config,
        }
        if tags:
            params["executionMetadata"] = {"tags": [{"key": k, "value": v} for k, v in tags.items()]}
        result = self.query(LAUNCH_RUN, {"executionParams": params})["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", f"launchRun {job_name}: {result}\n{self.log_tail()}"
        return result["run"]["runId"]

    def run(self, run_id: str) -> dict:
        run = self.query(RUN_QUERY, {"runId": run_id})["runOrError"]
        assert run["__typename"] == "Run", f"runOrError({run_id}): {run}"
        return run

    def wait_for_run(self, run_id: str, timeout: float, until: set[str] = TERMINAL) -> dict:
        deadline = time.monotonic() + timeout
        run = self.run(run_id)
        while run["status"] not in until:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"Run {run_id} ({run['jobName']}) still {run['status']} after {timeout:.0f}s "
                    f"(waiting for {sorted(until)}).\n{self.describe(run_id)}\n{self.log_tail()}"
                )
            if self.proc.poll() is not None:
                pytest.fail(f"dagster dev exited with {self.proc.returncode}.\n{self.log_tail()}")
            time.sleep(0.5)
            run = self.run(run_id)
        return run

    def events(self, run_id: str) -> list[dict]:
        events: list[dict] = []
        cursor = None
        while True:
            run = self.query(RUN_EVENTS, {"runId": run_id, "afterCursor": cursor})["runOrError"]
            assert run["__typename"] == "Run", f"runOrError({run_id}): {run}"
            connection = run["eventConnection"]
            events += connection["events"]
            if not connection["hasMore"] or connection["cursor"] == cursor:
                return events
            cursor = connection["cursor"]

    def materializations(self, run_id: str) -> dict[tuple[str, ...], dict[str, Any]]:
        """{asset key: {label: value}} of the run's materializations (ints as int, timestamps as float)."""
        found: dict[tuple[str, ...], dict[str, Any]] = {}
        for event in self.events(run_id):
            if event["__typename"] == "MaterializationEvent":
                found[tuple(event["assetKey"]["path"])] = {e["label"]: _value(e) for e in event["metadataEntries"]}
        return found

    def describe(self, run_id: str) -> str:
        """The run's event messages, for assertion messages."""
        try:
            lines = [f"  {e.get('eventType')}: {(e.get('message') or '')[:300]}" for e in self.events(run_id)]
        except Exception as exc:  # a diagnostic must not hide the real failure
            return f"(could not read the events of {run_id}: {exc})"
        return f"Events of run {run_id}:\n" + "\n".join(lines[-40:])


class GraphQLError(Exception):
    pass


def _value(entry: dict) -> Any:
    kind = entry["__typename"]
    if kind == "IntMetadataEntry":
        return int(entry["intRepr"])
    if kind == "TimestampMetadataEntry":
        return ("timestamp", entry["timestamp"])
    for field in ("floatValue", "boolValue", "text"):
        if field in entry:
            return entry[field]
    return kind


def _numbers(metadata: dict[str, Any]) -> str:
    """The sync's own metadata (not dlt's table schemas), for assertion messages pytest would truncate."""
    return str({label: value for label, value in metadata.items() if label in SYNC_LABELS})


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # start_new_session: the group id is dagster dev's pid
    except (ProcessLookupError, PermissionError):
        pass


def _instance_yaml(home: Path) -> str:
    """The instance's dagster.yaml as `make` writes it (SQLite), run monitoring polling every second, not 30."""
    text = dagster_yaml(REPO / "dagster.yaml", home, environ={})
    faster, count = re.subn(r"(?m)^(\s*poll_interval_seconds:\s*)\d+", rf"\g<1>{MONITORING_POLL_SECONDS}", text)
    assert count == 1, "dagster.yaml has no run_monitoring poll_interval_seconds to shorten"
    return faster


@pytest.fixture(scope="module")
def e2e_emulator() -> Iterator[Emulator]:
    with Emulator([MAIN, HEC]) as emu:
        yield emu


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory, e2e_emulator: Emulator) -> Iterator[DagsterDev]:
    root = tmp_path_factory.mktemp("e2e_dagster")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(_instance_yaml(home))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SYNCHROTEAM_", "SYNC_", "DAGSTER_"))}
    env.update(tenant_env(e2e_emulator.base_url, {"synchroteam": MAIN, "synchroteam_hec": HEC}))
    env.update(
        DAGSTER_HOME=str(home),
        SYNC_DUCKDB_PATH=str(root / "warehouse.duckdb"),
        PYTHONUNBUFFERED="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    server = DagsterDev(home, root / "dagster_dev.log", env, cwd=root)
    try:
        server.wait_until_loaded()
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def dagster_dev_log(dagster_dev: DagsterDev) -> Iterator[None]:
    """Prints what dagster dev logged during the test; pytest shows it only when the test fails."""
    start = dagster_dev.log_path.stat().st_size
    yield
    with open(dagster_dev.log_path, "rb") as log:
        log.seek(start)
        lines = log.read().decode(errors="replace").splitlines()
    print(f"--- dagster dev log during this test ({dagster_dev.log_path}; {len(lines)} lines, at most 200 shown) ---")
    print("\n".join(lines[-200:]))


LAUNCHPAD_DEFAULTS = """
query Defaults($selector: PipelineSelector!) {
  runConfigSchemaOrError(selector: $selector) { __typename ... on RunConfigSchema { rootDefaultYaml } }
}
"""


def test_a_run_launched_through_graphql_reports_status_tags_and_metadata(dagster_dev, e2e_emulator):
    assert dagster_dev.query("{ shouldShowNux }") == {"shouldShowNux": False}  # no onboarding prompt
    for name in ("sync_all", "sync_synchroteam__invoices"):  # what the launchpad pre-fills: no path of this machine
        selector = {"repositoryLocationName": dagster_dev.location, "repositoryName": REPOSITORY, "pipelineName": name}
        schema = dagster_dev.query(LAUNCHPAD_DEFAULTS, {"selector": selector})["runConfigSchemaOrError"]
        assert schema["__typename"] == "RunConfigSchema", schema
        assert "mode: incremental" in schema["rootDefaultYaml"] or name == "sync_all", schema
        assert not re.search(r"(^|[\s'\"])/[\w.-]+/", schema["rootDefaultYaml"]), schema["rootDefaultYaml"]
    job, op, key = "sync_synchroteam__invoices", "synchroteam", ("synchroteam", "invoices")
    run_config = {"ops": {op: {"config": {"invoices": {"max_records": 0, "page_size": 50}}}}}
    e2e_emulator.clear_requests()

    first_id = dagster_dev.launch(job, run_config)
    first = dagster_dev.wait_for_run(first_id, RUN_TIMEOUT)

    assert first["status"] == "SUCCESS", f"{dagster_dev.describe(first_id)}\n{dagster_dev.log_tail()}"
    tags = {tag["key"]: tag["value"] for tag in first["tags"]}
    assert tags.get("sync/mode") == "incremental", tags
    assert tags.get("sync/max_records") == "0", tags
    assert tags.get(TENANT_TAG) == "synchroteam", tags
    assert tags.get(MAX_RUNTIME_TAG) == str(max_runtime_seconds(ENTITIES["invoices"])), tags
    assert "sync/window_start" not in tags, tags  # a first run has no cursor, hence no window
    materialized = dagster_dev.materializations(first_id)
    # the job builds the entity's analytics models, and ends with the read copy
    assert set(materialized) == {
        key,
        ("analytics", "invoices"),
        ("analytics", "invoice_lines"),
        ("warehouse", "read_copy"),
    }, materialized
    metadata = materialized[key]
    requests = sum(requests_by(e2e_emulator, MAIN.domain, "invoice"))
    invoices = MAIN.counts["invoice"]
    assert metadata["fetched"] == invoices, _numbers(metadata)
    assert metadata["loaded"] == invoices, _numbers(metadata)
    assert metadata["inserted"] == invoices, _numbers(metadata)
    assert metadata["updated"] == 0, _numbers(metadata)
    assert metadata["dagster/row_count"] == invoices, _numbers(metadata)
    assert metadata["api_requests"] == requests, (_numbers(metadata), requests)
    assert metadata["retries_429"] == 0, _numbers(metadata)
    assert isinstance(metadata.get("quota_remaining"), int), _numbers(metadata)
    assert "window_start" not in metadata, _numbers(metadata)  # first run: everything, no lower bound
    assert metadata["window_end"][0] == "timestamp", _numbers(metadata)  # read up to when it ran
    assert metadata["cursor_after"][0] == "timestamp", _numbers(metadata)

    second_id = dagster_dev.launch(job, run_config)
    second = dagster_dev.wait_for_run(second_id, RUN_TIMEOUT)

    assert second["status"] == "SUCCESS", f"{dagster_dev.describe(second_id)}\n{dagster_dev.log_tail()}"
    second_tags = {tag["key"]: tag["value"] for tag in second["tags"]}
    assert second_tags.get("sync/mode") == "incremental", second_tags
    again = dagster_dev.materializations(second_id)[key]
    assert again["inserted"] == 0, _numbers(again)
    assert again["dagster/row_count"] == invoices, _numbers(again)
    assert again["retries_429"] == 0, _numbers(again)
    # An incremental window starts behind the stored cursor and ends when the run read it.
    assert again["window_start"][0] == "timestamp", _numbers(again)
    assert again["window_end"][1] >= again["cursor_before"][1], _numbers(again)
    assert again["cursor_before"] == metadata["cursor_after"], (_numbers(again), _numbers(metadata))
    assert again["window_start"][1] <= again["cursor_before"][1], _numbers(again)
    assert "sync/window_start" in second_tags, second_tags  # a single-entity run is tagged with its window
    tagged_start = datetime.fromisoformat(second_tags["sync/window_start"]).timestamp()
    assert 0 <= again["window_start"][1] - tagged_start < 60, (second_tags, _numbers(again))  # tag: to the minute
    second_requests = sum(requests_by(e2e_emulator, MAIN.domain, "invoice")) - requests
    assert again["api_requests"] == second_requests, (_numbers(again), second_requests)
    assert 0 < again["api_requests"] < 10, _numbers(again)
    # a run that changed no table tests nothing: the UI shows each dbt check's last result, not "skipped"
    said = [event.get("message") or "" for event in dagster_dev.events(second_id)]
    assert [m for m in said if "dbt not started" in m], said
    assert not [m for m in said if "did not yield" in m or "Skipping step" in m], said
    node = dagster_dev.query(ASSET_CHECKS, {"assetKey": {"path": ["analytics", "invoices"]}})["assetNodeOrError"]
    checks = node["assetChecksOrError"]["checks"]
    assert len(checks) >= 3, node  # not null, unique, accepted values
    latest = {check["name"]: check["executionForLatestMaterialization"] or {} for check in checks}
    assert {(e.get("status"), e.get("runId")) for e in latest.values()} == {("SUCCEEDED", first_id)}, latest


@pytest.mark.parametrize("job", ["sync_synchroteam__credit_notes", "sync_all"])
def test_a_hung_run_is_marked_failed_by_run_monitoring(job, dagster_dev, e2e_emulator):
    op = "synchroteam"
    assert MAX_RUNTIME_TAG in defs.resolve_job_def(job).tags  # bounded by default; the test shortens the bound
    # Every credit-note request of the main tenant sleeps for longer than the test: the run hangs in its step.
    e2e_emulator.faults.add(Fault(delay=300.0, times=100, tenant=MAIN.domain, resource="creditnote"))
    try:
        run_id = dagster_dev.launch(job, {"ops": {op: {"config": {}}}}, tags={MAX_RUNTIME_TAG: "5"})
        run = dagster_dev.wait_for_run(run_id, HUNG_RUN_TIMEOUT)

        assert run["status"] == "FAILURE", f"{dagster_dev.describe(run_id)}\n{dagster_dev.log_tail()}"
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        assert tags.get(MAX_RUNTIME_TAG) == "5", tags
        messages = [event.get("message") or "" for event in dagster_dev.events(run_id)]
        assert any("maximum runtime of 5 seconds" in message for message in messages), (
            f"the run failed, but not by run monitoring:\n{dagster_dev.describe(run_id)}"
        )
        assert run["endTime"] - run["startTime"] < 30, run  # ended by monitoring, not by the client's timeout
        assert ("synchroteam", "credit_notes") not in dagster_dev.materializations(run_id)
    finally:
        e2e_emulator.faults.clear()


JOB_RUNS = """
query JobRuns($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) { __typename ... on Pipeline { runs { runId status } } }
}
"""


def test_a_run_launched_from_the_command_line_is_on_its_jobs_page(dagster_dev, e2e_emulator):
    """The README's command line (`dagster job launch`, through the instance's queue) lands where the UI's job
    page looks: the job's runs as its GraphQL asks for them. A `dagster job execute` run would not."""
    import uuid

    job = "sync_synchroteam_hec__credit_notes"
    run_id = str(uuid.uuid4())
    subprocess.run(
        [str(DAGSTER), "job", "launch", "-m", MODULE, "-j", job, "--run-id", run_id],
        env=dagster_dev.env,
        cwd=dagster_dev.home.parent,
        check=True,
        capture_output=True,
        timeout=120,
    )
    run = dagster_dev.wait_for_run(run_id, RUN_TIMEOUT)  # `dagster dev`'s daemon takes it from the queue
    assert run["status"] == "SUCCESS", dagster_dev.describe(run_id)
    selector = {"repositoryLocationName": dagster_dev.location, "repositoryName": REPOSITORY, "pipelineName": job}
    page = dagster_dev.query(JOB_RUNS, {"selector": selector})["pipelineOrError"]
    assert run_id in [listed["runId"] for listed in page["runs"]], page


TERMINATE_RUN = """
mutation Terminate($runId: String!) {
  terminateRun(runId: $runId) {
    __typename
    ... on TerminateRunFailure { message }
    ... on PythonError { message }
  }
}
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_ui_s_terminate_ends_the_run_in_the_process_the_launcher_started(dagster_dev):
    """The launcher starts each run's process itself (dagster.yaml `run_worker: true`) and says which in a tag; the
    UI's Terminate, from the webserver's process, interrupts it as the code server would, and the run ends
    canceled: the interrupted step does not run again. The run waits for the warehouse, which this test holds:
    only the interrupt can end it."""
    with warehouse_turn(Path(dagster_dev.env["SYNC_DUCKDB_PATH"]), "the test", lambda _: None):
        run_id = dagster_dev.launch("sync_synchroteam__credit_notes", {"ops": {"synchroteam": {"config": {}}}})
        waiting = wait_for_event(dagster_dev, run_id, lambda e: "Waiting for the warehouse" in (e.get("message") or ""))
        tags = {tag["key"]: tag["value"] for tag in dagster_dev.run(run_id)["tags"]}
        worker = json.loads(tags[WORKER_TAG])
        try:
            assert worker["host"] == socket.gethostname() and _alive(worker["pid"]), worker
            with open(f"/proc/{worker['pid']}/cmdline", "rb") as cmdline:
                assert b"sync_pipelines.run_worker" in cmdline.read().split(b"\0"), worker

            result = dagster_dev.query(TERMINATE_RUN, {"runId": run_id})["terminateRun"]
            assert result["__typename"] == "TerminateRunSuccess", result
            assert dagster_dev.run(run_id)["status"] in ("CANCELING", "CANCELED")
            # the run ends, canceled, while the warehouse is still held; its step was not run again
            wait_for_event(dagster_dev, run_id, lambda e: e.get("eventType") == "RUN_CANCELED", after=waiting)
            assert dagster_dev.run(run_id)["status"] == "CANCELED"
            events = [event.get("eventType") for event in dagster_dev.events(run_id)]
            assert "STEP_UP_FOR_RETRY" not in events and "STEP_RESTARTED" not in events, events
            deadline = time.monotonic() + 30
            while _alive(worker["pid"]):  # and its process is gone
                assert time.monotonic() < deadline, f"the run's process {worker['pid']} is still running"
                time.sleep(0.2)
        finally:
            with suppress(ProcessLookupError):
                os.kill(worker["pid"], signal.SIGKILL)


@pytest.mark.parametrize(
    ("job", "resource", "action", "asked_beside"),
    [
        # a tenant's entities are read at once, in threads: the sites are asked for beside the held customers
        ("sync_all", "customer", "list", "site"),
        # a list's next page is asked for in a thread of its own while the step waits for it (here the first)
        ("sync_synchroteam__customers", "customer", "list", None),
        # a page's details are asked for in threads while the step waits for them
        ("sync_synchroteam__jobs", "job", "details", None),
    ],
)
def test_terminate_ends_a_run_that_waits_for_an_answer_without_waiting_for_it(
    dagster_dev, e2e_emulator, job, resource, action, asked_beside
):
    """Terminate ends a run while a request in one of the reading's threads still waits for the API's answer (here
    held), instead of waiting for it."""
    release = threading.Event()
    e2e_emulator.tenant(MAIN.domain).add("job")  # a job to read, and its details to ask for
    every = 1_000  # every such request is held, however many the reading has in flight
    held = e2e_emulator.faults.add(
        Fault(hold=release, times=every, tenant=MAIN.domain, resource=resource, action=action)
    )
    try:
        e2e_emulator.clear_requests()
        run_id = dagster_dev.launch(job, {})
        deadline = time.monotonic() + RUN_TIMEOUT
        while held.times == every or (  # not asked for yet
            asked_beside and e2e_emulator.request_count(tenant=MAIN.domain, resource=asked_beside) == 0
        ):
            assert time.monotonic() < deadline, dagster_dev.describe(run_id)
            time.sleep(0.2)

        result = dagster_dev.query(TERMINATE_RUN, {"runId": run_id})["terminateRun"]
        assert result["__typename"] == "TerminateRunSuccess", result
        deadline = time.monotonic() + 60
        while dagster_dev.run(run_id)["status"] != "CANCELED":
            assert time.monotonic() < deadline, dagster_dev.describe(run_id)
            time.sleep(0.5)
        assert not release.is_set() and held.times < every  # ended while the answer was still held
    finally:
        held.times = 0  # the requests to come are not held
        release.set()


def wait_for_event(dagster_dev: DagsterDev, run_id: str, found: Any, after: int = 0) -> int:
    """The position of the first of the run's events past `after` that `found` accepts, waiting for it."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        events = dagster_dev.events(run_id)
        hits = [i for i, event in enumerate(events) if i > after and found(event)]
        if hits:
            return hits[0]
        assert time.monotonic() < deadline, dagster_dev.describe(run_id)
        time.sleep(0.5)
