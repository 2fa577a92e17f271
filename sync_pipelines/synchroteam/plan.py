"""What one run reads (a validated, Dagster-free description), and the cursor it keeps between runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

MODES = ("incremental", "reconcile", "full", "retry_rejected")
DEFAULT_OVERLAP = timedelta(minutes=30)


@dataclass(frozen=True)
class SyncPlan:
    """How one run reads an entity.

    mode: incremental (from the cursor, minus `overlap`), reconcile (records changed in
        [window_start, window_end), cursor untouched), full (everything; the id sweep marks deletions) or
        retry_rejected (only re-read the quarantined records by id, unresolved ones included).
    max_records: cap on the changes read beyond an existing cursor (0 = none), oldest first; a full run is never
        capped, reconcile caps its window, and an initial load (no cursor yet) only when `cap_first_load`.
    cap_first_load: `max_records` is a promise given in the run config, held from the first run on (an
        entity's default cap exempts the initial load, which must read everything once).
    refetch_created_since / refetch_statuses: extra walks re-reading records whose `dateModified` may not have
        moved; they never move the cursor.
    """

    mode: str = "incremental"
    page_size: int = 100
    max_records: int = 0
    cap_first_load: bool = False
    overlap: timedelta = DEFAULT_OVERLAP
    window_start: datetime | None = None
    window_end: datetime | None = None
    refetch_created_since: date | None = None
    refetch_statuses: tuple[str, ...] = ()
    details_concurrency: int = 4
    max_deleted_share: float = 0.5

    @property
    def moves_cursor(self) -> bool:
        return self.mode in ("incremental", "full")


@dataclass(frozen=True)
class Cursor:
    """The newest change loaded: `at` (an instant); after a capped run also `id`, the last record loaded at `at`.

    Stored in dlt's resource state, which is loaded into DuckDB in the same load as the data.
    """

    at: datetime | None = None
    id: str | None = None

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Cursor:
        at = state.get("cursor")
        if isinstance(at, str):
            at = datetime.fromisoformat(at)
        return cls(at=at, id=state.get("cursor_id"))

    def save(self, state: dict[str, Any]) -> None:
        state["cursor"] = self.at.isoformat() if self.at else None
        state["cursor_id"] = self.id

    def covers(self, modified: datetime, record_id: str) -> bool:
        """True if a record with this key was at or behind the cursor when it was last loaded."""
        if self.at is None:
            return False
        if self.id is None:
            return modified <= self.at
        return (modified, record_id) <= (self.at, self.id)
