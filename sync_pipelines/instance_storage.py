"""Dagster's SQLite run history, each database file held open by the process that writes it.

Dagster's SQLite storage opens a connection for everything it reads or writes, and closes it after (SQLAlchemy's
`NullPool`). On a database in WAL mode, as Dagster's are, closing the last connection to a file checkpoints its
write-ahead log into the file and deletes it: more fsyncs, and a file deleted and created again, each time. A
1%-changed `sync_all` of the tests' tenants opens about 750 of those connections (its ~260 events, its steps' pool
claims, its checks' latest results), nearly all to two files: the run's own and the asset index (BENCHMARKS.md,
*Where a no-change run's time goes*).

`SqliteStorage` is Dagster's `DagsterSqliteStorage`, the same files in the same places, whose event log keeps one
idle connection open to each of the few database files it used last (`HELD_OPEN`). Every other connection then
closes without checkpointing: SQLite checkpoints the log as it grows (every 1,000 pages), and when the last
connection closes, at the process's end or when the instance is disposed of. Nothing else changes: each event is
still committed (and synced) before the run goes on, other processes (the webserver, the daemon) read and write
the same files at any time, and a DAGSTER_HOME written by either class is read by the other. The instance's
`dagster.yaml` names it (`sync_pipelines/instance.py`).
"""

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory

HELD_OPEN = 4  # files held open: the run being written, the asset index, and a few recent runs (the webserver)


class HeldOpenSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage`, holding an idle connection open to each of the last `HELD_OPEN` files it used."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        super().__init__(base_dir, inst_data)
        self._held: OrderedDict[str, sqlite3.Connection] = OrderedDict()
        self._held_lock = threading.Lock()

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Any]:
        with super()._connect(shard) as conn:  # creates the file and its tables the first time
            self._hold(shard)
            yield conn

    def _hold(self, shard: str) -> None:
        with self._held_lock:
            if shard in self._held:
                self._held.move_to_end(shard)
                return
            held = sqlite3.connect(self.path_for_shard(shard), check_same_thread=False)
            # one read opens the write-ahead log: SQLite counts a connection as open on it from then on. The
            # connection then stays idle (in no transaction): it blocks no reader, writer or checkpoint
            held.execute("SELECT count(*) FROM sqlite_master").fetchall()
            self._held[shard] = held
            while len(self._held) > HELD_OPEN:
                self._held.popitem(last=False)[1].close()

    def _release(self) -> None:
        with self._held_lock:
            while self._held:
                self._held.popitem()[1].close()

    def wipe(self) -> None:
        self._release()  # before Dagster deletes the files: none stays open on a deleted file
        super().wipe()

    def dispose(self) -> None:
        self._release()
        super().dispose()


class SqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage under `base_dir` (the DAGSTER_HOME), with `HeldOpenSqliteEventLogStorage`
    as its event log."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        super().__init__(base_dir, inst_data)
        self._event_log_storage = HeldOpenSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> "SqliteStorage":
        return cls.from_local(inst_data=inst_data, **config_value)
