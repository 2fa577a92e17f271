"""The instance's SQLite storage (`instance_storage.SqliteStorage`): Dagster's files, held open while written."""

import os
import sqlite3
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from dagster import AssetCheckEvaluation, AssetCheckKey, AssetKey, DagsterEventType, DagsterInstance
from dagster._core.events import DagsterEvent
from dagster._core.events.log import EventLogEntry

from sync_pipelines.instance import write_dagster_yaml
from sync_pipelines.instance_storage import HELD_OPEN

REPO = Path(__file__).resolve().parents[2]


def _log(instance: DagsterInstance, run_id: str, message: str) -> None:
    entry = EventLogEntry(error_info=None, level="INFO", user_message=message, run_id=run_id, timestamp=time.time())
    instance.event_log_storage.store_event(entry)


def _open_files() -> set[str]:
    """What this process's file descriptors point at (Linux), deleted files ending in " (deleted)"."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with suppress(FileNotFoundError):  # the listing's own descriptor, closed by now
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
    return found


def _wal(home: Path, run_id: str) -> Path:
    return home / "history" / "runs" / f"{run_id}.db-wal"


def test_a_run_s_database_keeps_its_write_ahead_log_between_events_until_the_instance_closes(tmp_path):
    home = tmp_path / "home"
    write_dagster_yaml(REPO / "dagster.yaml", home, environ={})
    with DagsterInstance.from_config(str(home)) as instance:
        _log(instance, "run_a", "first")
        log = _wal(home, "run_a")
        first = log.stat().st_ino  # Dagster's own storage checkpoints and deletes it as each event's connection closes
        for n in range(5):
            _log(instance, "run_a", f"event {n}")
        assert log.stat().st_ino == first
        assert [r.user_message for r in instance.all_logs("run_a")] == ["first", *(f"event {n}" for n in range(5))]
    assert not log.exists()  # checkpointed into the database when the instance was disposed


def test_only_the_last_files_written_stay_open_and_dagster_s_own_storage_reads_them(tmp_path):
    home = tmp_path / "home"
    write_dagster_yaml(REPO / "dagster.yaml", home, environ={})
    runs = [f"run_{n}" for n in range(HELD_OPEN + 3)]
    with DagsterInstance.from_config(str(home)) as instance:
        for run_id in runs:
            _log(instance, run_id, f"hello from {run_id}")
        held = [run_id for run_id in runs if _wal(home, run_id).exists()]
        assert held == runs[-HELD_OPEN:]
        # meanwhile, another process's storage (Dagster's default, on the same files) reads and writes them
        (tmp_path / "plain").mkdir()
        (tmp_path / "plain" / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {home}\n")
        with DagsterInstance.from_config(str(tmp_path / "plain")) as plain:
            _log(plain, runs[-1], "from Dagster's own storage")
            assert [r.user_message for r in plain.all_logs(runs[0])] == [f"hello from {runs[0]}"]
        assert [r.user_message for r in instance.all_logs(runs[-1])] == [
            f"hello from {runs[-1]}",
            "from Dagster's own storage",
        ]
    assert not any(_wal(home, run_id).exists() for run_id in runs)
    assert os.path.exists(home / "history" / "runs" / f"{runs[0]}.db")


def test_wiping_the_history_holds_no_deleted_file_open(tmp_path):
    home = tmp_path / "home"
    write_dagster_yaml(REPO / "dagster.yaml", home, environ={})
    with DagsterInstance.from_config(str(home)) as instance:
        _log(instance, "run_a", "before the wipe")
        instance.wipe()
        assert not _wal(home, "run_a").exists()
        assert not any(path.endswith(" (deleted)") and "run_a.db" in path for path in _open_files())
        _log(instance, "run_a", "after it")
        assert [r.user_message for r in instance.all_logs("run_a")] == ["after it"]
        assert _wal(home, "run_a").exists()  # held open again


def _check_evaluation(run_id: str, n: int) -> EventLogEntry:
    evaluation = AssetCheckEvaluation(
        asset_key=AssetKey(["synchroteam", "invoices"]), check_name="no_duplicate_ids", passed=True, metadata={"n": n}
    )
    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value,
        job_name="sync_all",
        event_specific_data=evaluation,
    )
    return EventLogEntry(
        error_info=None, level="DEBUG", user_message="", run_id=run_id, timestamp=time.time(), dagster_event=event
    )


def test_events_after_the_first_reuse_each_file_s_connection(tmp_path, monkeypatch):
    """A check evaluation is written to the run's file and to the asset index, which Dagster's storage opens anew
    (with a new SQLAlchemy engine, compiling every statement again) for each, and asks whether the index has its
    table before each: once a file is open, no event opens another connection."""
    home = tmp_path / "home"
    write_dagster_yaml(REPO / "dagster.yaml", home, environ={})
    opened: list[str] = []
    connect = sqlite3.dbapi2.connect

    def counting(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(str(database))
        return connect(database, *args, **kwargs)

    with DagsterInstance.from_config(str(home)) as instance:
        instance.event_log_storage.store_event(_check_evaluation("run_a", 0))
        monkeypatch.setattr(sqlite3, "connect", counting)
        monkeypatch.setattr(sqlite3.dbapi2, "connect", counting)  # SQLAlchemy's
        for n in range(1, 20):
            instance.event_log_storage.store_event(_check_evaluation("run_a", n))
        assert opened == []
        executions = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(AssetKey(["synchroteam", "invoices"]), "no_duplicate_ids"), limit=50
        )
        assert len(instance.all_logs("run_a")) == 20
        # the run's execution of the check, updated by each evaluation
        [execution] = executions
        assert execution.event is not None and execution.event.dagster_event is not None
        assert execution.event.dagster_event.event_specific_data.metadata["n"].value == 19
