"""Dagster's SQLite run history, each database file held open by the process that writes it.

Dagster's SQLite event log creates a SQLAlchemy engine and opens a connection for everything it reads or writes,
then closes both (`NullPool`); before each check evaluation it stores, it also asks the asset index, on an engine
and a connection of their own, whether the index has the checks' table. That costs three ways:
- On a database in WAL mode, as Dagster's are, closing the last connection to a file checkpoints its write-ahead
  log into the file and deletes it: more fsyncs, and a file deleted and created again, each time.
- A new engine compiles every SQL statement again: SQLAlchemy caches compiled statements per engine.
- Each check evaluation also pays for the engine and connection of that question: the row writes are the least of
  an event's cost.
A run stores an event for each planned materialization, materialization and check evaluation, nearly all in two
files: the run's own and the asset index (BENCHMARKS.md, *Where a no-change run's time goes*, has the figures).

`SqliteStorage` is Dagster's `DagsterSqliteStorage`, the same files in the same places, whose event log keeps an
engine, with one connection open, for each of the few database files it used last (`HELD_OPEN`), and remembers
the index's tables once it has seen them (no storage drops a table). A connection goes back to its engine idle,
in no transaction: it blocks no reader, writer or checkpoint; SQLite checkpoints the log as it grows (every 1,000
pages), and when the last connection closes, as its file leaves the few held open, at the process's end, or when
the instance is disposed of. Nothing else changes: the event log still takes one connection at a time (Dagster's
lock), each event is still committed before the run goes on, other processes (the webserver, the daemon) read and
write the same files at any time, and a DAGSTER_HOME written by either class is read by the other. The instance's
`dagster.yaml` names it (`sync_pipelines/instance.py`).
"""

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

HELD_OPEN = 4  # files held open: the run being written, the asset index, and a few recent runs (the webserver)


class HeldOpenSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage`, holding a connection open to each of the last `HELD_OPEN` files it used."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        super().__init__(base_dir, inst_data)
        self._engines: OrderedDict[str, Engine] = OrderedDict()  # by shard, the least recently used first
        self._engines_lock = threading.Lock()
        self._tables: set[str] = set()

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        """Dagster's `SqliteEventLogStorage._connect` (one connection at a time, in a transaction committed at the
        end), on the shard's held connection instead of a new engine and connection each time."""
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:  # creates the file and its tables the first time
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def _engine(self, shard: str) -> Engine:
        """The shard's engine: a pool of one connection, kept open between uses (it goes back to the pool after
        its transaction, idle), closed when `HELD_OPEN` more recent files pushed it out."""
        with self._engines_lock:
            engine = self._engines.get(shard)
            if engine is not None:
                self._engines.move_to_end(shard)
                return engine
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=-1,  # a second connection at once (none is expected: `_db_lock`) is opened, not awaited
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            self._engines[shard] = engine
            while len(self._engines) > HELD_OPEN:
                self._engines.popitem(last=False)[1].dispose()
            return engine

    def has_table(self, table_name: str) -> bool:
        """Whether the asset index has the table, asked of the file once the table exists: Dagster asks before
        each check evaluation, asset event's tags and pool claim it stores, and no storage drops a table."""
        if table_name in self._tables:
            return True
        found = super().has_table(table_name)
        if found:
            self._tables.add(table_name)
        return found

    def _release(self) -> None:
        with self._engines_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._tables.clear()
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
