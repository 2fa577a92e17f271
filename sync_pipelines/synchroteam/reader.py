"""The reading of one Synchroteam entity for a run's `SyncPlan`: what the API changed, complete and checked, and the
resource state it leaves (the cursor, the memos). It builds no dlt pipeline: a run that finds nothing to load never
needs one (`ReadAhead`); `source.py` hands the reading to dlt when there is something to load.

The cursor (`plan.Cursor`) is kept in dlt's resource state, so it is written to DuckDB in the same load as the
data, and it only ever advances past records that were loaded:
- incremental runs ask for `changedSince = cursor - overlap`; what lies at or behind the cursor is re-read
  (late commits, a second edit in the cursor's own minute) and the merge on `id` keeps each record once;
- the API's filters are not trusted (an ASP.NET API ignores a parameter it does not know): every record a
  filter should have excluded is dropped on our side before it costs a `details` call, a load or a cursor move,
  and a resource seen ignoring a filter is reported once per run (`ExtractStats.filters_ignored`);
- a capped run (`max_records`) loads the oldest changes beyond the cursor first, whatever order the API
  returns them in, and stops the cursor at the last one loaded, so consecutive capped runs converge;
- reconcile runs and the re-fetch walks never move the cursor.

Entities whose list rows lack child lists (jobs: parts, time entries) need a `details` call per record. The
look-back lists records already loaded again; they are loaded again (and their `details` fetched again) only if
their list row changed. The state keeps, for the records loaded in the look-back window behind the cursor, a
fingerprint of the list row they were loaded from (`details_memo`), committed with the load like the cursor.
The re-fetch walks do the same for the records they list whose list row is the whole record (`refetch_memo`):
a draft quotation or a recent invoice listed again as it was loaded is not loaded again, so a run where nothing
changed loads nothing.

A lookup list without `dateModified` (job types: `Entity.dated` False) has no cursor nor change window: every run
lists it whole, loads only the records whose list row differs from the one they were loaded from (`lookup_memo`,
a fingerprint per id, committed with the load), and hands its ids to the deletion sweep, so that a record it no
longer lists is marked deleted. A run where nothing changed leaves the state as it found it and loads nothing.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import heapq
import json
import logging
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import orjson

from sync_pipelines.catalogue import Entity
from sync_pipelines.errors import RecordNotFound
from sync_pipelines.synchroteam.client import SynchroteamClient
from sync_pipelines.synchroteam.idset import IdSet
from sync_pipelines.synchroteam.plan import DEFAULT_OVERLAP, Cursor, SyncPlan
from sync_pipelines.synchroteam.quarantine import (
    NOT_FOUND,
    Quarantine,
    Rejection,
    check_record,
)
from sync_pipelines.synchroteam.records import (
    normalise_record,
    parse_timestamp,
    to_api_timestamp,
)
from sync_pipelines.synchroteam.threads import abandoning_on_raise

Record = dict[str, Any]


@dataclass
class ExtractStats:
    """What the reading read during one run (filled as it goes)."""

    records_fetched: int = 0
    records_loaded: int = 0
    refetched: int = 0
    details_fetched: int = 0
    unchanged: int = 0  # records listed again by the look-back, unchanged since loaded: not re-read nor re-loaded
    retried: int = 0
    filtered_out: int = 0  # records the API listed although its filter excludes them: dropped on our side
    filters_ignored: list[str] = field(default_factory=list)  # "job/list changedSince": filters the API ignored
    capped: bool = False
    seen_ids: IdSet | None = None  # every id the API listed, for the deletion sweep of a full run (closed after)
    window_start: datetime | None = None
    window_end: datetime | None = None
    cursor_before: datetime | None = None
    cursor_after: datetime | None = None


_DONE = object()


class ReadAhead:
    """An entity's reading (`EntityReader`), started before any dlt pipeline exists, on the run's own copy of its
    resource state (the warehouse's newest, `state.read_tenant_state`), up to its first batch.

    When the reading yields nothing and leaves the state as it found it (the common scheduled run: the API listed
    no change), no dlt pipeline need be built, nor its state restored: nothing would be extracted, normalised or
    loaded (`nothing_to_load`). Otherwise `source_from(tenant, {entity: ahead})` hands dlt the batches, the first included, then
    the state the reading left, which dlt commits with the load as before. A context manager: leaving it ends the
    reading (its thread pool, its spilled id sets) wherever it stands.
    """

    def __init__(self, reader: EntityReader) -> None:
        self.state = reader.state  # updated in place as the reading goes
        self.before = copy.deepcopy(reader.state)  # as the reading found it: the warehouse's
        self._batches = reader.read()
        self._first: Any = _DONE

    def __enter__(self) -> ReadAhead:
        self._first = next(self._batches, _DONE)  # the requests up to the first batch, or all of them
        return self

    def __exit__(self, *exc: object) -> None:
        self._batches.close()

    @property
    def nothing_to_load(self) -> bool:
        return self._first is _DONE and self.state == self.before

    def batches(self) -> Iterator[Any]:
        first, self._first = self._first, _DONE
        if first is not _DONE:
            yield first
            yield from self._batches


class _Newest:
    """Reverses ordering, so a heapq min-heap keeps the N *smallest* keys with the largest on top."""

    __slots__ = ("key",)

    def __init__(self, key: tuple[datetime, str]) -> None:
        self.key = key

    def __lt__(self, other: _Newest) -> bool:
        return self.key > other.key


class EntityReader:
    """One run's reading of an entity: the quarantined ids re-read, the main walk from the cursor, the re-fetch
    walks; batches of complete records, then the run's quarantine rows. It reads and updates `state` (the cursor,
    the memos) as it goes; `read` is a generator, so nothing is requested before its first batch is asked for."""

    def __init__(
        self,
        entity: Entity,
        client: SynchroteamClient,
        plan: SyncPlan,
        stats: ExtractStats,
        quarantine: Quarantine,
        state: dict,
        logger: logging.Logger,
    ) -> None:
        self.entity, self.client, self.plan, self.stats, self.state = entity, client, plan, stats, state
        self.quarantine, self.log = quarantine, logger
        self.tz = client.settings.timezone
        self.cursor = Cursor.from_state(state)
        self.pool = ThreadPoolExecutor(max_workers=max(1, plan.details_concurrency))
        self.refetch_walks = self._refetch_walk_specs()
        self.refetch_candidates: set[str] = set()  # ids loaded that a re-fetch walk would load again
        # id -> fingerprint of the complete list row a record matching a re-fetch walk was loaded from
        self.refetch_memo: dict[str, str] = state.setdefault(REFETCH_MEMO, {})
        self.refetch_listed: set[str] | None = set() if self.refetch_walks else None  # None: a walk stopped early
        # Every id this run loaded, so that none is loaded twice (a quarantined record re-read by id and listed as
        # changed, a quotation whose status moved from one re-fetched status to another between two walks): each
        # load package holds one row per id, which lets dlt's merge skip de-duplicating (`deduplicated`).
        self.emitted = IdSet()
        # False while the main walk lists every record: it yields each id once (`iter_pages`) and no re-fetch walk
        # follows, so its ids are only checked against the retried ones, not kept a second time (a first load's
        # million ids would be held twice, `seen` and here).
        self.remember_emitted = True
        # id -> [dateModified, fingerprint of the list row] of records loaded near the cursor
        self.memo: dict[str, list[str]] = state.setdefault(MEMO, {})
        self.memo_retention = max(plan.overlap, DEFAULT_OVERLAP)
        self.newest_loaded: datetime | None = None
        self.memo_limit = len(self.memo) + MEMO_SLACK  # prune while remembering beyond it: a first load lists all
        # a lookup list's id -> fingerprint of the list row it was loaded from (None: a dated entity)
        self.lookup_memo: dict[str, str] | None = None if entity.dated else state.setdefault(LOOKUP_MEMO, {})

    def read(self) -> Generator[Any, None, None]:
        with abandoning_on_raise(self.pool), self.emitted:
            yield from self._retry_quarantined()
            if self.plan.mode != "retry_rejected":
                yield from self._main_walk()
                yield from self._refetch_walks()
                self._prune_refetch_memo()
        self._prune_memo()
        rows = self.quarantine.items()
        if rows is not None:
            yield rows

    def _retry_quarantined(self) -> Iterator[list[Record]]:
        """Re-read quarantined records by id: those that now load leave the quarantine."""
        pending = self.quarantine.pending(include_unresolved=self.plan.mode == "retry_rejected")
        ids = [row["record_id"] for row in pending]
        if ids and not self.entity.has_details:
            yield from self._retry_listed(set(ids))
            return
        for start in range(0, len(ids), self.plan.page_size):
            chunk = [{"id": record_id} for record_id in ids[start : start + self.plan.page_size]]
            self.stats.retried += len(chunk)
            good = self._complete(chunk, force_details=True)
            if good:
                yield good

    def _retry_listed(self, ids: set[str]) -> Iterator[list[Record]]:
        """A resource without `details`: its quarantined records are re-read from one walk of its list (a record
        it no longer lists stays where it is, for a full run's sweep)."""
        self.stats.retried += len(ids)
        for page in self.client.iter_pages(self.entity.resource, page_size=self.plan.page_size):
            self.stats.records_fetched += len(page)
            wanted = [r for r in page if str(r.get("id")) in ids]
            good = self._complete(wanted) if wanted else []
            if good:
                yield good

    # -- the change window ---------------------------------------------------------------------------------

    def _main_walk(self) -> Iterator[list[Record]]:
        plan, stats = self.plan, self.stats
        stats.cursor_before = self.cursor.at
        since, until = self._window()
        # an open window ends when it is read: changes after this instant belong to the next run
        stats.window_start, stats.window_end = since, until or datetime.now(UTC)
        params = {"changedSince": to_api_timestamp(since, self.tz)} if since else {}
        cap = self._cap()
        listing_all = since is None and until is None and not cap  # every record, uncapped: no walk follows
        self.remember_emitted = not listing_all
        held: list[tuple[_Newest, Record]] = []  # the `cap` oldest changes beyond the cursor
        newest: datetime | None = None
        if plan.mode == "full" or not self.entity.dated:  # a lookup list is walked whole: its deletions are seen
            stats.seen_ids = IdSet()
        pages = self.client.iter_pages(  # a full run's ids: the client's own, not a copy
            self.entity.resource, page_size=plan.page_size, params=params, seen=stats.seen_ids, prefetch=True
        )  # read to its end: the next page is requested while this one is worked on
        for page in pages:
            stats.records_fetched += len(page)
            ready, page_newest = self._take(page, since, until, cap, held)
            if page_newest is not None and (newest is None or page_newest > newest):
                newest = page_newest
            ready = self._changed(ready) if self.lookup_memo is None else self._lookup_changed(ready)
            if ready:
                yield self._complete(ready)
        kept = sorted(held, key=lambda pair: pair[0].key)
        for start in range(0, len(kept), plan.page_size):
            chunk = self._changed([record for _, record in kept[start : start + plan.page_size]])
            if chunk:
                yield self._complete(chunk)
        if self.lookup_memo is not None:
            self._forget_unlisted(self.lookup_memo, stats.seen_ids)
        elif plan.moves_cursor:
            self._advance(newest, kept[-1][0].key if kept else None)
        self.remember_emitted = True
        if listing_all and self.refetch_walks:
            # Every record was just listed and loaded from its list row or its details: a walk would list them
            # again for nothing. What they remember of the records they match is kept (`_complete`).
            self.refetch_walks, self.refetch_listed = [], None
            self.log.debug("%s: every record was listed, so the re-fetch walks were not needed.", self.entity.name)

    def _cap(self) -> int:
        """How many changes the run may load (0: no cap). The cap bounds the changes beyond an existing cursor,
        and an initial load too when the run config gave it (`cap_first_load`); a full run reads everything."""
        plan = self.plan
        capped_mode = plan.mode == "reconcile" or (
            plan.mode == "incremental" and (self.cursor.at or plan.cap_first_load)
        )
        return plan.max_records if capped_mode else 0

    def _take(
        self,
        page: list[Record],
        since: datetime | None,
        until: datetime | None,
        cap: int,
        held: list[tuple[_Newest, Record]],
    ) -> tuple[list[Record], datetime | None]:
        """A page's records to load now, and the newest change among them. Records outside the window are left
        out (those before `since` counted as filtered out); under a cap, the changes beyond the cursor go to the
        heap `held` instead, which keeps the `cap` oldest."""
        plan = self.plan
        since_local = None if since is None else _local(since, self.tz)
        ready: list[Record] = []
        newest: datetime | None = None
        for record in page:
            modified = self._modified(record)
            if until is not None and modified is not None and modified >= until:
                continue
            if since_local is not None and modified is not None and _local(modified, self.tz) < since_local:
                self._filtered_out("changedSince")  # compared as the API defines it: tenant-local times
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
                self.stats.capped = True
                if item[0].key < held[0][0].key:
                    heapq.heapreplace(held, item)
        return ready, newest

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
        self.cursor = cursor
        self.stats.cursor_after = cursor.at

    # -- records listed again, unchanged (their details are not fetched again) ---------------------------------

    def _lookup_changed(self, records: list[Record]) -> list[Record]:
        """A lookup list's records whose row differs from the one they were loaded from (incremental runs)."""
        memo = self.lookup_memo or {}
        return self._drop_unchanged(records, lambda record_id, _: memo.get(record_id))

    @staticmethod
    def _forget_unlisted(memo: dict[str, str], listed: IdSet | None) -> None:
        """After a complete walk of a lookup list: what it no longer lists is forgotten (the sweep marks it
        deleted), so that a record listed again later is loaded again."""
        if listed is not None:
            for record_id in [k for k in memo if k not in listed]:
                del memo[record_id]

    def _changed(self, records: list[Record]) -> list[Record]:
        """Drops, in incremental runs, the records whose list row is the one they were last loaded from."""
        return self._drop_unchanged(
            records, lambda record_id, _: known[1] if (known := self.memo.get(record_id)) else None
        )

    def _drop_unchanged(self, records: list[Record], loaded_print: Callable[[str, Record], str | None]) -> list[Record]:
        """The records whose list row's fingerprint is not `loaded_print` (that of the row the record was loaded
        from, None: unknown), in incremental runs; the others are counted unchanged."""
        if self.plan.mode != "incremental":
            return records
        changed = []
        for record in records:
            known = loaded_print(str(record.get("id")), record)
            if known is not None and known == _fingerprint(record):
                self.stats.unchanged += 1
            else:
                changed.append(record)
        return changed

    def _remember(self, raw: Record, modified: datetime, fingerprint: str | None) -> None:
        """Remembers a loaded record's list row (`fingerprint`; None: not worth remembering), only once the
        record's minute had ended by the server's clock when it was listed: a later edit in that same minute
        would keep its `dateModified` (and maybe its list row) and must not be skipped."""
        listed_at, record_id = self.client.listed_at, str(raw.get("id"))
        self.newest_loaded = modified if self.newest_loaded is None else max(self.newest_loaded, modified)
        if fingerprint is None or listed_at is None or modified + timedelta(minutes=1) > listed_at:
            self.memo.pop(record_id, None)
            return
        self.memo[record_id] = [modified.isoformat(), fingerprint]
        if len(self.memo) > self.memo_limit:
            bound = self._memo_bound()
            if bound is not None:
                self._prune_memo_before(bound)
            self.memo_limit = 2 * len(self.memo) + MEMO_SLACK

    def _memo_bound(self) -> datetime | None:
        """The cursor ends at or past the newest record loaded: records older than it by the retention will be
        pruned from the memo at the end of the run (None: nothing loaded yet, no cursor)."""
        newest = max((t for t in (self.cursor.at, self.newest_loaded) if t is not None), default=None)
        return None if newest is None else newest - self.memo_retention

    def _prune_memo(self) -> None:
        """Keeps what the next run's look-back lists again: records modified at or after the cursor minus this
        run's look-back, or the default one if longer (a run without look-back is followed by one with)."""
        if self.cursor.at is None:
            self.memo.clear()
        else:
            self._prune_memo_before(self.cursor.at - self.memo_retention)

    def _prune_memo_before(self, keep_from: datetime) -> None:
        stale = [k for k, (modified, _) in self.memo.items() if datetime.fromisoformat(modified) < keep_from]
        for record_id in stale:
            del self.memo[record_id]

    # -- re-fetch walks (edits that do not bump dateModified) ---------------------------------------------------

    def _refetch_walk_specs(self) -> list[tuple[dict[str, str], Callable[[Record], bool]]]:
        """(list params, client-side re-check) per re-fetch walk: the API's filters are not trusted alone."""
        plan = self.plan
        walks: list[tuple[dict[str, str], Callable[[Record], bool]]] = []
        if plan.refetch_created_since is not None:
            since = plan.refetch_created_since
            walks.append(({"dateFrom": since.isoformat()}, functools.partial(self._created_on_or_after, since=since)))
        for status in plan.refetch_statuses:
            walks.append(({"status": status}, functools.partial(_in_status, status=status)))
        return walks

    def _refetch_walks(self) -> Iterator[list[Record]]:
        plan = self.plan
        room = plan.max_records - self.stats.records_loaded if plan.max_records else None
        for params, matches in self.refetch_walks:
            for page in self.client.iter_pages(self.entity.resource, page_size=plan.page_size, params=params):
                self.stats.records_fetched += len(page)
                wanted = [r for r in page if matches(r)]
                if len(wanted) < len(page):
                    self._filtered_out(" ".join(params), len(page) - len(wanted))
                if self.refetch_listed is not None:
                    self.refetch_listed.update(str(r.get("id")) for r in wanted)
                fresh = self._refetch_changed([r for r in wanted if str(r.get("id")) not in self.refetch_candidates])
                if room is not None:
                    fresh = fresh[: max(0, room)]
                    room -= len(fresh)
                if fresh:
                    self.stats.refetched += len(fresh)
                    yield self._complete(fresh)
                if room is not None and room <= 0:
                    self.refetch_listed = None  # the walks did not list all they match: keep the whole memo
                    return

    def _refetch_changed(self, records: list[Record]) -> list[Record]:
        """Drops, in incremental runs, the records a re-fetch walk lists as they were last loaded (the same
        complete list row): re-loading them would write the same rows."""
        return self._drop_unchanged(
            records, lambda record_id, row: self.refetch_memo.get(record_id) if self._complete_row(row) else None
        )

    def _complete_row(self, record: Record) -> bool:
        """The list row is the whole record: it carries every child list (no `details` call completes it)."""
        return all(child in record for child in self.entity.children)

    def _prune_refetch_memo(self) -> None:
        """Keeps the records the re-fetch walks listed this run (once every walk listed all it matches)."""
        if self.refetch_listed is None:
            return
        listed = self.refetch_listed
        for record_id in [k for k in self.refetch_memo if k not in listed]:
            del self.refetch_memo[record_id]

    def _filtered_out(self, name: str, count: int = 1) -> None:
        """`count` listed records the filter `name` excludes: they cost their list rows only. The first of a run
        say that the API ignored the filter."""
        self.stats.filtered_out += count
        ignored = f"{self.entity.resource}/list {name}"
        if ignored not in self.stats.filters_ignored:
            self.stats.filters_ignored.append(ignored)
            self.log.warning(
                "%s ignored the filter %s: it listed records the filter excludes. They are dropped here (no details "
                "call, no load, no cursor move); the run stays exact but pays for the extra list pages.",
                f"{self.entity.resource}/list",
                name,
            )

    def _created_on_or_after(self, record: Record, since: date) -> bool:
        value = record.get(self.entity.recent_field)
        parsed = parse_timestamp(value, self.tz) if isinstance(value, str) else None
        return parsed is None or parsed.date() >= since

    # -- completing and normalising ------------------------------------------------------------------------

    def _modified(self, record: Record) -> datetime | None:
        value = record.get("dateModified")
        return parse_timestamp(value, self.tz) if isinstance(value, str) else None

    def _complete(self, page: list[Record], force_details: bool = False) -> list[Record]:
        """Details where needed, normalised and checked: what cannot be loaded goes to the quarantine.

        Remembers the ids a re-fetch walk would repeat. A record this run loaded already is not loaded again.
        """
        if len(self.emitted):
            page = [r for r in page if r.get("id") is None or str(r.get("id")) not in self.emitted]
        bound = self._memo_bound()  # rows older than it would not stay in the memo: no fingerprint needed
        # complete list rows (the record itself) by id: whether a re-fetch walk lists them (none: no walk this run)
        walks: dict[str, bool] = {}
        if self.refetch_walks and not force_details:
            for r in page:
                if self._complete_row(r):
                    walks[str(r.get("id"))] = any(matches(r) for _, matches in self.refetch_walks)
        # list rows by id: those the details memo keeps (inside the look-back window) and those a walk lists
        in_window: set[str] = set()
        listed: dict[str, str] = {}
        if not force_details:
            for r in page:
                record_id = str(r.get("id"))
                if bound is None or (self._modified(r) or bound) >= bound:
                    in_window.add(record_id)
                elif not walks.get(record_id):
                    continue
                listed[record_id] = _fingerprint(r)
        complete, missing = _with_details(self.client, self.entity, page, self.pool, self.stats, force_details)
        for record in missing:
            self.quarantine.reject(
                Rejection(str(record.get("id")), NOT_FOUND, f"{self.entity.resource}/details answered 404.", record)
            )
        good = []
        for raw in complete:
            unconverted: list[tuple[str, Any]] = []
            record = normalise_record(raw, self.tz, unconverted)
            rejection = check_record(raw, record, unconverted, dated=self.entity.dated)
            if rejection is not None:
                self.quarantine.reject(rejection)
                continue
            self.quarantine.loaded(record["id"])
            if self.remember_emitted:
                self.emitted.add(record["id"])
            if self.lookup_memo is not None:
                self.lookup_memo[record["id"]] = listed.get(record["id"]) or _fingerprint(raw)
            else:
                # a row only a walk lists lies behind the window: the details memo would prune it at the end of the run
                fingerprint = listed.get(record["id"]) if record["id"] in in_window else None
                self._remember(raw, record["dateModified"], fingerprint)
            walked = walks.get(record["id"])
            if walked is None:  # no walk, or a row completed by `details`: matched on the whole record, not remembered
                walked = any(matches(raw) for _, matches in self.refetch_walks)
                self.refetch_memo.pop(record["id"], None)
            elif walked:
                self.refetch_memo[record["id"]] = listed[record["id"]]
            else:  # loaded from a row no walk lists: if one lists it again, its row will have changed
                self.refetch_memo.pop(record["id"], None)
            if walked:
                self.refetch_candidates.add(record["id"])
            good.append(record)
        self.stats.records_loaded += len(good)
        return good


def _in_status(record: Record, status: str) -> bool:
    return record.get("status") == status


def _local(moment: datetime, tz: tzinfo) -> datetime:
    """The tenant's wall-clock time of an instant, as the API writes and compares it (naive)."""
    return moment.astimezone(tz).replace(tzinfo=None)


MEMO = "details_memo"
REFETCH_MEMO = "refetch_memo"
LOOKUP_MEMO = "lookup_memo"
MEMO_SLACK = 10_000  # memo entries remembered beyond the last prune before pruning again


def _fingerprint(row: Record) -> str:
    """A short digest of a list row as the API sent it (key order aside).

    orjson writes the same bytes as `json.dumps` sorted and compact (checked on every emulator row), much faster,
    but for small floats (`0.00001`, where Python writes `1e-05`): a row holding one, remembered before, is loaded
    once more. What orjson refuses (an integer beyond 64 bits) goes through `json.dumps` as before."""
    try:
        data = orjson.dumps(row, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        data = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":")).encode()
    return hashlib.blake2b(data, digest_size=10).hexdigest()


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
    incomplete = [i for i, record in enumerate(page) if force or any(child not in record for child in entity.children)]
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
