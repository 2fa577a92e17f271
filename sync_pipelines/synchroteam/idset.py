"""The ids a list walk has seen, in bounded memory: a first load of a million records remembers every id.

A Python `set[str]` costs about 100 bytes an id: 100 MB for a million invoices, more than the rest of a sync
together. `IdSet` is a plain set up to `spill_after` ids, then moves them to SQLite's private temporary database
(an on-disk file SQLite deletes itself on close, cached in `CACHE_KIB` of memory): exact, and flat in memory.
"""

import sqlite3
from collections.abc import Iterable, Iterator

SPILL_AFTER = 100_000  # ids kept as a Python set (about 10 MB) before spilling
CACHE_KIB = 8_192  # SQLite's page cache once spilled
_FETCH = 10_000


class IdSet:
    """`add`, `in`, `len` and iteration of str ids, like a `set[str]`; call `close()` (or use `with`) when done."""

    def __init__(self, ids: Iterable[str] = (), spill_after: int | None = None) -> None:
        self._memory: set[str] | None = set()
        self._db: sqlite3.Connection | None = None
        self._size = 0
        self._spill_after = SPILL_AFTER if spill_after is None else spill_after
        for key in ids:
            self.add(key)

    def __len__(self) -> int:
        return len(self._memory) if self._memory is not None else self._size

    def __contains__(self, key: object) -> bool:
        if self._memory is not None:
            return key in self._memory
        assert self._db is not None
        return self._db.execute("SELECT 1 FROM ids WHERE id = ?", (key,)).fetchone() is not None

    def __iter__(self) -> Iterator[str]:
        if self._memory is not None:
            yield from self._memory
            return
        assert self._db is not None
        cursor = self._db.execute("SELECT id FROM ids")
        while rows := cursor.fetchmany(_FETCH):
            for (key,) in rows:
                yield key

    @property
    def spilled(self) -> bool:
        return self._db is not None

    def add(self, key: str) -> None:
        if self._memory is not None:
            self._memory.add(key)
            if len(self._memory) > self._spill_after:
                self._spill()
            return
        assert self._db is not None
        self._size += self._db.execute("INSERT OR IGNORE INTO ids VALUES (?)", (key,)).rowcount

    def close(self) -> None:
        """Free the ids (the temporary database's file goes with it)."""
        if self._db is not None:
            self._db.close()
            self._db = None
        self._memory = set()
        self._size = 0

    def __enter__(self) -> "IdSet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spill(self) -> None:
        assert self._memory is not None
        # "": a private temporary database, written to a file only beyond its cache, deleted when closed
        db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("CREATE TABLE ids (id TEXT PRIMARY KEY) WITHOUT ROWID")
        db.execute("BEGIN")  # never committed: one connection, nothing to make durable
        db.executemany("INSERT INTO ids VALUES (?)", ((key,) for key in self._memory))
        self._db, self._size, self._memory = db, len(self._memory), None
