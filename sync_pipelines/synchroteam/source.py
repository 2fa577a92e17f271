"""The dlt source of one Synchroteam entity, built from its catalogue row and a run's `SyncPlan`.

The cursor (`plan.Cursor`) is kept in dlt's resource state, so it is written to DuckDB in the same load as the
data, and it only ever advances past records that were loaded:
- incremental runs ask for `changedSince = cursor - overlap`; what lies at or behind the cursor is re-read
  (late commits, a second edit in the cursor's own minute) and the merge on `id` keeps each record once;
- a capped run (`max_records`) loads the oldest changes beyond the cursor first, whatever order the API
  returns them in, and stops the cursor at the last one loaded, so consecutive capped runs converge;
- reconcile runs and the re-fetch walks never move the cursor.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import dlt
from dlt.common.schema import Schema
from dlt.extract.source import DltSource

from sync_pipelines.catalogue import Entity, Tenant
from sync_pipelines.synchroteam.client import SynchroteamClient
from sync_pipelines.synchroteam.errors import ConfigurationError, RecordNotFound
from sync_pipelines.synchroteam.plan import Cursor, SyncPlan
from sync_pipelines.synchroteam.records import normalise_record, parse_timestamp, to_api_timestamp

log = logging.getLogger(__name__)

Record = dict[str, Any]


@dataclass
class ExtractStats:
    """What the resource read during one run (filled while dlt extracts)."""

    records_fetched: int = 0
    records_loaded: int = 0
    refetched: int = 0
    details_fetched: int = 0
    details_missing: list[str] = field(default_factory=list)
    capped: bool = False
    window_start: datetime | None = None
    window_end: datetime | None = None
    cursor_before: datetime | None = None
    cursor_after: datetime | None = None


def pipeline_name(tenant: Tenant, entity: Entity) -> str:
    """One dlt pipeline (and one dlt schema) per tenant and entity, so their states never race."""
    return f"{tenant.name}__{entity.name}"


def entity_source(
    tenant: Tenant,
    entity: Entity,
    client: SynchroteamClient | None,
    plan: SyncPlan | None = None,
    stats: ExtractStats | None = None,
) -> DltSource:
    """The dlt source for `entity` of `tenant`. `client=None` builds it for definitions only (not runnable)."""
    plan = plan or SyncPlan()
    stats = stats if stats is not None else ExtractStats()

    def read_entity() -> Iterator[list[Record]]:
        if client is None:
            raise ConfigurationError(f"{pipeline_name(tenant, entity)} was built without an API client.")
        reader = _EntityReader(entity, client, plan, stats, dlt.current.resource_state())
        yield from reader.read()

    resource = dlt.resource(
        read_entity,
        name=entity.name,
        table_name=entity.name,
        primary_key=entity.primary_key,
        write_disposition="merge",
        columns={"id": {"data_type": "text", "nullable": False}},
    )
    return DltSource(Schema(pipeline_name(tenant, entity)), "synchroteam", [resource])


class _Newest:
    """Reverses ordering, so a heapq min-heap keeps the N *smallest* keys with the largest on top."""

    __slots__ = ("key",)

    def __init__(self, key: tuple[datetime, str]) -> None:
        self.key = key

    def __lt__(self, other: _Newest) -> bool:
        return self.key > other.key


class _EntityReader:
    def __init__(
        self, entity: Entity, client: SynchroteamClient, plan: SyncPlan, stats: ExtractStats, state: dict
    ) -> None:
        self.entity, self.client, self.plan, self.stats, self.state = entity, client, plan, stats, state
        self.tz = client.settings.timezone
        self.cursor = Cursor.from_state(state)
        self.pool = ThreadPoolExecutor(max_workers=max(1, plan.details_concurrency))
        self.refetch_walks = self._refetch_walk_specs()
        self.refetch_candidates: set[str] = set()  # ids loaded that a re-fetch walk would load again

    def read(self) -> Iterator[list[Record]]:
        with self.pool:
            yield from self._main_walk()
            yield from self._refetch_walks()

    # -- the change window ---------------------------------------------------------------------------------

    def _main_walk(self) -> Iterator[list[Record]]:
        plan, stats = self.plan, self.stats
        stats.cursor_before = self.cursor.at
        since, until = self._window()
        # an open window ends when it is read: changes after this instant belong to the next run
        stats.window_start, stats.window_end = since, until or datetime.now(timezone.utc)
        params = {"changedSince": to_api_timestamp(since, self.tz)} if since else {}
        # The cap bounds the changes beyond an existing cursor; an initial load or a full run reads everything.
        cap = plan.max_records if plan.mode == "reconcile" or (plan.mode == "incremental" and self.cursor.at) else 0
        held: list[tuple[_Newest, Record]] = []  # the `cap` oldest changes beyond the cursor
        newest: datetime | None = None
        for page in self.client.iter_pages(self.entity.resource, page_size=plan.page_size, params=params):
            stats.records_fetched += len(page)
            ready = []
            for record in page:
                modified = self._modified(record)
                if until is not None and modified is not None and modified >= until:
                    continue
                behind = (
                    plan.mode == "incremental"
                    and modified is not None
                    and self.cursor.covers(modified, str(record.get("id")))
                )
                if not cap or modified is None or behind:
                    ready.append(record)
                    if modified is not None and (newest is None or modified > newest):
                        newest = modified
                    continue
                item = (_Newest((modified, str(record.get("id")))), record)
                if len(held) < cap:
                    heapq.heappush(held, item)
                else:
                    stats.capped = True
                    if item[0].key < held[0][0].key:
                        heapq.heapreplace(held, item)
            if ready:
                yield self._complete(ready)
        kept = sorted(held, key=lambda pair: pair[0].key)
        for start in range(0, len(kept), plan.page_size):
            yield self._complete([record for _, record in kept[start : start + plan.page_size]])
        if plan.moves_cursor:
            self._advance(newest, kept[-1][0].key if kept else None)

    def _window(self) -> tuple[datetime | None, datetime | None]:
        plan = self.plan
        if plan.mode == "reconcile":
            return plan.window_start, plan.window_end
        if plan.mode == "incremental" and self.cursor.at is not None:
            return self.cursor.at - plan.overlap, None
        return None, None

    def _advance(self, newest_ready: datetime | None, last_held: tuple[datetime, str] | None) -> None:
        """Move the cursor to the newest change loaded; after a capped run, to the last held record exactly."""
        if self.stats.capped and last_held is not None:
            cursor = Cursor(at=last_held[0], id=last_held[1])
        else:
            candidates = [t for t in (self.cursor.at, newest_ready, last_held[0] if last_held else None) if t]
            cursor = Cursor(at=max(candidates) if candidates else None)
        cursor.save(self.state)
        self.stats.cursor_after = cursor.at

    # -- re-fetch walks (edits that do not bump dateModified) ---------------------------------------------------

    def _refetch_walk_specs(self) -> list[tuple[dict[str, str], Callable[[Record], bool]]]:
        """(list params, client-side re-check) per re-fetch walk: the API's filters are not trusted alone."""
        plan = self.plan
        walks: list[tuple[dict[str, str], Callable[[Record], bool]]] = []
        if plan.refetch_created_since is not None:
            since = plan.refetch_created_since
            walks.append(({"dateFrom": since.isoformat()}, lambda r: self._created_on_or_after(r, since)))
        for status in plan.refetch_statuses:
            walks.append(({"status": status}, lambda r, s=status: r.get("status") == s))
        return walks

    def _refetch_walks(self) -> Iterator[list[Record]]:
        plan = self.plan
        room = plan.max_records - self.stats.records_loaded if plan.max_records else None
        for params, matches in self.refetch_walks:
            for page in self.client.iter_pages(self.entity.resource, page_size=plan.page_size, params=params):
                self.stats.records_fetched += len(page)
                fresh = [r for r in page if matches(r) and str(r.get("id")) not in self.refetch_candidates]
                if room is not None:
                    fresh = fresh[: max(0, room)]
                    room -= len(fresh)
                if fresh:
                    self.stats.refetched += len(fresh)
                    yield self._complete(fresh)
                if room is not None and room <= 0:
                    return

    def _created_on_or_after(self, record: Record, since) -> bool:
        field_name = "scheduledStart" if self.entity.name == "jobs" else "dateCreated"
        value = record.get(field_name)
        parsed = parse_timestamp(value, self.tz) if isinstance(value, str) else None
        return parsed is None or parsed.date() >= since

    # -- completing and normalising ------------------------------------------------------------------------

    def _modified(self, record: Record) -> datetime | None:
        value = record.get("dateModified")
        return parse_timestamp(value, self.tz) if isinstance(value, str) else None

    def _complete(self, page: list[Record]) -> list[Record]:
        """Details for rows lacking a child list (jobs), then normalised; remembers ids a re-fetch would repeat."""
        complete = _with_details(self.client, self.entity, page, self.pool, self.stats)
        for record in complete:
            if any(matches(record) for _, matches in self.refetch_walks):
                self.refetch_candidates.add(str(record.get("id")))
        self.stats.records_loaded += len(complete)
        return [normalise_record(record, self.tz) for record in complete]


def _with_details(
    client: SynchroteamClient,
    entity: Entity,
    page: list[Record],
    pool: ThreadPoolExecutor,
    stats: ExtractStats,
) -> list[Record]:
    """Replace list rows that lack a child list with their `details` (jobs: parts and time entries)."""
    incomplete = [i for i, record in enumerate(page) if any(child not in record for child in entity.children)]
    if not incomplete:
        return page

    def fetch(index: int) -> Record | None:
        try:
            return client.details(entity.resource, str(page[index].get("id")))
        except RecordNotFound:
            return None

    completed: list[Record | None] = list(page)
    for index, details in zip(incomplete, pool.map(fetch, incomplete)):
        if details is None:
            # Deleted between the list call and the details call: the next run no longer lists it.
            record_id = str(page[index].get("id"))
            stats.details_missing.append(record_id)
            log.warning("%s %s vanished between list and details; left for the next run", entity.name, record_id)
            completed[index] = None
            continue
        stats.details_fetched += 1
        completed[index] = {**page[index], **details}
    return [record for record in completed if record is not None]
