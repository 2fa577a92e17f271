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
from sync_pipelines.synchroteam.quarantine import NOT_FOUND, Quarantine, Rejection, check_record
from sync_pipelines.synchroteam.records import normalise_record, parse_timestamp, to_api_timestamp

Record = dict[str, Any]


@dataclass
class ExtractStats:
    """What the resource read during one run (filled while dlt extracts)."""

    records_fetched: int = 0
    records_loaded: int = 0
    refetched: int = 0
    details_fetched: int = 0
    retried: int = 0
    capped: bool = False
    seen_ids: set[str] | None = None  # every id the API listed, for the deletion sweep of a full run
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
    quarantine: Quarantine | None = None,
) -> DltSource:
    """The dlt source for `entity` of `tenant`. `client=None` builds it for definitions only (not runnable).

    `quarantine` holds the entity's stored quarantine rows (re-read by id first) and collects this run's.
    """
    plan = plan or SyncPlan()
    stats = stats if stats is not None else ExtractStats()
    quarantine = quarantine or Quarantine(entity.name, "local", datetime.now(timezone.utc), {})

    def read_entity() -> Iterator[Any]:
        if client is None:
            raise ConfigurationError(f"{pipeline_name(tenant, entity)} was built without an API client.")
        reader = _EntityReader(entity, client, plan, stats, quarantine, dlt.current.resource_state())
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
        self,
        entity: Entity,
        client: SynchroteamClient,
        plan: SyncPlan,
        stats: ExtractStats,
        quarantine: Quarantine,
        state: dict,
    ) -> None:
        self.entity, self.client, self.plan, self.stats, self.state = entity, client, plan, stats, state
        self.quarantine = quarantine
        self.tz = client.settings.timezone
        self.cursor = Cursor.from_state(state)
        self.pool = ThreadPoolExecutor(max_workers=max(1, plan.details_concurrency))
        self.refetch_walks = self._refetch_walk_specs()
        self.refetch_candidates: set[str] = set()  # ids loaded that a re-fetch walk would load again

    def read(self) -> Iterator[Any]:
        with self.pool:
            yield from self._retry_quarantined()
            if self.plan.mode != "retry_rejected":
                yield from self._main_walk()
                yield from self._refetch_walks()
        rows = self.quarantine.items()
        if rows is not None:
            yield rows

    def _retry_quarantined(self) -> Iterator[list[Record]]:
        """Re-read quarantined records by id: those that now load leave the quarantine."""
        pending = self.quarantine.pending(include_unresolved=self.plan.mode == "retry_rejected")
        ids = [row["record_id"] for row in pending]
        for start in range(0, len(ids), self.plan.page_size):
            chunk = [{"id": record_id} for record_id in ids[start : start + self.plan.page_size]]
            self.stats.retried += len(chunk)
            good = self._complete(chunk, force_details=True)
            if good:
                yield good

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
        if plan.mode == "full":
            stats.seen_ids = set()
        for page in self.client.iter_pages(self.entity.resource, page_size=plan.page_size, params=params):
            stats.records_fetched += len(page)
            if stats.seen_ids is not None:
                stats.seen_ids.update(str(r.get("id")) for r in page if r.get("id") not in (None, ""))
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

    def _complete(self, page: list[Record], force_details: bool = False) -> list[Record]:
        """Details where needed, normalised and checked: what cannot be loaded goes to the quarantine.

        Remembers the ids a re-fetch walk would repeat.
        """
        complete, missing = _with_details(self.client, self.entity, page, self.pool, self.stats, force_details)
        for record in missing:
            self.quarantine.reject(Rejection(
                str(record.get("id")), NOT_FOUND, f"{self.entity.resource}/details answered 404.", record))
        good = []
        for raw in complete:
            record = normalise_record(raw, self.tz)
            rejection = check_record(raw, record)
            if rejection is not None:
                self.quarantine.reject(rejection)
                continue
            self.quarantine.loaded(record["id"])
            if any(matches(raw) for _, matches in self.refetch_walks):
                self.refetch_candidates.add(record["id"])
            good.append(record)
        self.stats.records_loaded += len(good)
        return good


def _with_details(
    client: SynchroteamClient,
    entity: Entity,
    page: list[Record],
    pool: ThreadPoolExecutor,
    stats: ExtractStats,
    force: bool = False,
) -> tuple[list[Record], list[Record]]:
    """(records, rows whose details answered 404): list rows lacking a child list (jobs: parts and time entries),
    or every row when `force`, are replaced by their `details`."""
    incomplete = [
        i for i, record in enumerate(page) if force or any(child not in record for child in entity.children)
    ]
    if not incomplete:
        return page, []

    def fetch(index: int) -> Record | None:
        try:
            return client.details(entity.resource, str(page[index].get("id")))
        except RecordNotFound:
            return None

    completed: list[Record | None] = list(page)
    missing = []
    for index, details in zip(incomplete, pool.map(fetch, incomplete)):
        if details is None:
            missing.append(page[index])
            completed[index] = None
            continue
        stats.details_fetched += 1
        completed[index] = {**page[index], **details}
    return [record for record in completed if record is not None], missing
