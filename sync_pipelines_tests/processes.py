"""Other processes a reliability test needs: an analyst holding DuckDB open, and `dagster job execute` runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterInstance

from sync_pipelines.instance import write_dagster_yaml

REPO = Path(__file__).resolve().parents[1]

ANALYST = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.execute("SELECT count(*) FROM synchroteam.invoices").fetchone()[0], flush=True)
for line in sys.stdin:  # each line asks for the count again, on the same connection
    print(con.execute("SELECT count(*) FROM synchroteam.invoices").fetchone()[0], flush=True)
"""


class Analyst:
    """A separate process with a read-only DuckDB connection open until closed."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", ANALYST, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.first_count = int(self._line())

    def _line(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the analyst process failed: {self.process.stderr.read()}")
        return line

    def count(self) -> int:
        self.process.stdin.write("again\n")
        self.process.stdin.flush()
        return int(self._line())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@contextmanager
def analyst(path: Path) -> Iterator[Analyst]:
    reader = Analyst(path)
    try:
        yield reader
    finally:
        if reader.process.poll() is None:
            reader.process.kill()
            reader.process.wait(timeout=30)


def dagster_home(tmp_path: Path, name: str = "dagster_home") -> Path:
    """A DAGSTER_HOME as `make` writes it: the project's dagster.yaml, on PostgreSQL when the environment has
    SYNC_DAGSTER_POSTGRES_URL."""
    home = tmp_path / name
    write_dagster_yaml(REPO / "dagster.yaml", home)
    # create the instance's storage once, as a deployed DAGSTER_HOME has it: two processes creating a fresh
    # SQLite store at the same moment race on its schema
    with DagsterInstance.from_config(str(home)):
        pass
    return home


def start_job(job: str, home: Path, log: Path, config: Path | None = None) -> subprocess.Popen:
    """`dagster job execute -m sync_pipelines.definitions -j <job> [-c config]` with the test's environment, in a
    process group of its own (`os.killpg` ends it and its dbt)."""
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster")),
            "job",
            "execute",
            "-m",
            "sync_pipelines.definitions",
            "-j",
            job,
            *(["-c", str(config)] if config is not None else []),
        ],
        env=env,
        cwd=str(home.parent),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def run_messages(home: Path) -> list[str]:
    """Every message of every run of the instance at `home`, from its event log (the console shows INFO and up;
    Dagster's engine events, such as a step blocked by a pool, are DEBUG)."""
    with DagsterInstance.from_config(str(home)) as instance:
        return [record.user_message or "" for run in instance.get_runs() for record in instance.all_logs(run.run_id)]


def until(condition: Callable[[], object], what: str, timeout: float = 120) -> object:
    """Poll `condition` every 0.2 s until it returns something true, and return that; fail naming `what` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout:.0f} s")


def wait(process: subprocess.Popen, timeout: float = 180) -> int:
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"process {process.args} did not finish in {timeout}s")
        time.sleep(0.2)
    return process.returncode


HOLDER = """
import sys
from pathlib import Path
from sync_pipelines.warehouse.lock import warehouse_turn
with warehouse_turn(Path(sys.argv[1]), "the test's holder", print):
    print("holding", flush=True)
    sys.stdin.readline()  # until the test says so
"""


@contextmanager
def holding_the_warehouse(path: Path) -> Iterator[subprocess.Popen]:
    """Another process holding the warehouse's lock until the block ends (or the test closes its stdin)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(REPO),
    )
    try:
        assert process.stdout.readline() == "holding\n"
        yield process
    finally:
        if process.poll() is None:
            process.stdin.close()
            process.wait(timeout=30)
