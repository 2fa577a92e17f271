"""Walking a `{resource}/list` to its end, each id once, whatever the order and however the list changes meanwhile.

The walk asks for pages through the client's one request function (`SynchroteamClient.get_with_headers`: its
retries, pacing and error rules), and stops on an empty page, a page shorter than the size the server says it
used (it may clamp ours), or once the pages walked cover `recordsTotal`. Order is not assumed; records that shift
between pages while we walk are de-duplicated by id.

A list that changes while it is walked can hide a record: a deletion on a page already read moves every later
record back one place, and the first record of the next page lands on the page already read (an addition
elsewhere can even keep `recordsTotal` unchanged). So a walk of more than one page that shows a sign of change
(`WalkSigns.changed`) is walked again, yielding only ids not seen yet, until a walk shows none (at most
MAX_REWALKS more walks; without the means to check, until a walk brings nothing new). A single page is one
answer, read at once: it needs no second look.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sync_pipelines.errors import UnexpectedResponse
from sync_pipelines.synchroteam.idset import IdSet
from sync_pipelines.synchroteam.records import parse_timestamp
from sync_pipelines.synchroteam.threads import abandoning_on_raise

MAX_PAGE_SIZE = 100
MAX_REWALKS = 2

# GET a path with its query: (the JSON body, the response headers)
Fetch = Callable[[str, Mapping[str, str]], tuple[Any, Mapping[str, str]]]


class ListWalker:
    """Walks the lists of one tenant through `fetch`. `listed_at`: the server's clock (`Date`) when it answered the
    last list page, which tells a reader whether a listed record may have changed since."""

    def __init__(self, fetch: Fetch, tz: tzinfo, log: logging.Logger) -> None:
        self.listed_at: datetime | None = None
        self._fetch = fetch
        self._tz = tz
        self._log = log

    def pages(
        self,
        resource: str,
        *,
        page_size: int = MAX_PAGE_SIZE,
        params: Mapping[str, str] | None = None,
        seen: IdSet | None = None,
        prefetch: bool = False,
    ) -> Iterator[list[dict[str, Any]]]:
        """The records of `{resource}/list`, page by page, each id once (see the module's docstring).

        `seen`: the `IdSet` the walk remembers ids in (its own if not given, in bounded memory however long the
        list); a caller that needs every listed id afterwards, such as a full run's deletion sweep, passes one
        rather than keep a second copy, and closes it. Records without an id are yielded as they come (the source
        quarantines them). `prefetch`: for a caller that reads every page (see `_walk`)."""
        with contextlib.ExitStack() as cleanup:
            if seen is None:
                seen = cleanup.enter_context(IdSet())
            for again in range(MAX_REWALKS + 1):
                ids = None if again == 0 else cleanup.enter_context(IdSet())
                signs, before = WalkSigns(self._tz, ids=ids), len(seen)
                yield from self._walk(resource, page_size, params or {}, seen, signs, prefetch)
                reason = signs.changed()
                if signs.pages <= 1 or reason is None:
                    return
                if signs.unknowable and again > 0 and len(seen) == before:
                    return  # nothing to check the list by: a walk that brings nothing new is the best evidence
                if again < MAX_REWALKS:
                    self._log.info("%s/list changed while it was walked (%s): walking it again", resource, reason)
                else:
                    self._log.warning(
                        "%s/list still changing after %d walks (%s): the next run reads it again",
                        resource,
                        again + 1,
                        reason,
                    )

    def _walk(
        self,
        resource: str,
        page_size: int,
        params: Mapping[str, str],
        seen: IdSet,
        signs: WalkSigns,
        prefetch: bool,
    ) -> Iterator[list[dict[str, Any]]]:
        """One walk of the list, yielding ids not in `seen`, noting in `signs` what it saw.

        `prefetch`: the next page is requested (in a thread of its own) before this one is yielded, so that the
        caller's work on a page overlaps the wait for the next. Only the page the walk would request anyway is
        fetched, so a caller that reads to the end makes no extra request; one that may stop early must not ask
        for it."""

        def fetch(page: int) -> tuple[Any, Mapping[str, str]]:
            return self._fetch(f"{resource}/list", {**params, "page": str(page), "pageSize": str(page_size)})

        with contextlib.ExitStack() as cleanup:
            ahead = cleanup.enter_context(abandoning_on_raise(ThreadPoolExecutor(1, "page"))) if prefetch else None
            page, previous_ids = 1, None
            pending: Future[tuple[Any, Mapping[str, str]]] | None = ahead.submit(fetch, page) if ahead else None
            while True:
                body, headers = pending.result() if pending else fetch(page)
                pending = None
                data, effective_size, total = parse_envelope(body, page_size, resource)
                self.listed_at = _parse_http_date(headers.get("Date"))
                signs.page(self.listed_at, total)
                fresh = _unseen(data, seen, signs)
                last = len(data) < effective_size or (total is not None and page * effective_size >= total)
                ids = None if last else [_record_id(r) for r in data]
                repeated = ids is not None and ids == previous_ids
                if ahead and not last and not repeated:
                    pending = ahead.submit(fetch, page + 1)
                if fresh:
                    yield fresh
                if last:
                    return
                if repeated:
                    self._log.warning(
                        "%s/list page %d repeats page %d (is `page` ignored?); stopping", resource, page, page - 1
                    )
                    return
                previous_ids = ids
                page += 1


def _unseen(data: list[Any], seen: IdSet, signs: WalkSigns) -> list[Any]:
    """The records of a page whose ids are not in `seen` (added to it), and those without an id."""
    fresh = []
    for record in data:
        key = _record_id(record)
        if key is None:
            fresh.append(record)
            continue
        known = key in seen
        signs.record(key, record.get("dateModified"), known)
        if not known:
            seen.add(key)
            fresh.append(record)
    return fresh


def _record_id(record: Any) -> str | None:
    """A listed record's id as text; None for a record without one, which is never taken for another."""
    if not isinstance(record, dict) or record.get("id") in (None, ""):
        return None
    return str(record["id"])


class WalkSigns:
    """What one walk of a list saw, to tell whether the list changed while it was walked.

    Signs of change: `recordsTotal` differing between pages (a deletion or an addition), an id listed twice (a
    record moved across the pages), or a record modified since the walk began by the server's clock (its `Date`
    header, in the tenant's zone at `dateModified`'s minute precision; on a later walk, only a record no
    earlier walk listed), which may have taken the place of a deleted one and kept the total unchanged. Without
    `Date`, `recordsTotal` or a readable `dateModified` on every record, a walk cannot be checked, so it counts
    as changed.
    """

    __slots__ = ("tz", "ids", "pages", "totals", "repeated", "since", "since_at", "modified_during", "unknowable")

    def __init__(self, tz: tzinfo, ids: IdSet | None) -> None:
        self.tz = tz
        self.ids = ids  # this walk's ids; None on the first walk, whose ids are the caller's `seen`
        self.pages = 0
        self.totals: set[int] = set()
        self.repeated = False
        self.since_at: datetime | None = None  # a minute before the walk began, by the server's clock
        self.since: str | None = None  # the same as "YYYY-MM-DD HH:MM" in the tenant's zone
        self.modified_during = False
        self.unknowable = False

    def page(self, began: datetime | None, total: int | None) -> None:
        self.pages += 1
        if total is None:
            self.unknowable = True
        else:
            self.totals.add(total)
        if self.pages == 1:
            if began is None:
                self.unknowable = True
            else:
                self.since_at = began - timedelta(minutes=1)
                self.since = self.since_at.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")

    def record(self, key: str, date_modified: Any, known: bool) -> None:
        """Note a listed record; `known`: its id is in the caller's `seen` (listed earlier in this walk, or by
        an earlier one)."""
        if self.ids is None:
            self.repeated = self.repeated or known
        elif key in self.ids:
            self.repeated = True
        else:
            self.ids.add(key)
        if self.since is None or self.modified_during or self.unknowable or (self.ids is not None and known):
            return  # a record an earlier walk listed was in the list already: it cannot make up for a deletion
        if not isinstance(date_modified, str):
            self.unknowable = True  # a record that cannot say when it changed may be the one that did
        elif len(date_modified) in (16, 19) and date_modified[10:11] in (" ", "T"):
            # the tenant-local "YYYY-MM-DD HH:MM[:SS]": its first 16 characters compare as text (fast path)
            self.modified_during = f"{date_modified[:10]} {date_modified[11:16]}" >= self.since
        else:
            moment = parse_timestamp(date_modified, self.tz)
            self.unknowable = moment is None
            self.modified_during = moment is not None and self.since_at is not None and moment >= self.since_at

    def changed(self) -> str | None:
        """Why the list may have changed under this walk, or None if it held still."""
        if self.unknowable:
            return "no recordsTotal, Date header or dateModified to check it by"
        if len(self.totals) > 1:
            return f"recordsTotal went {min(self.totals)}..{max(self.totals)}"
        if self.repeated:
            return "a record was listed twice"
        if self.modified_during:
            return "records were modified during the walk"
        return None


def parse_envelope(body: Any, requested_size: int, resource: str) -> tuple[list[Any], int, int | None]:
    """(data, page size the server used, recordsTotal) from a list response; tolerates a bare array."""
    if isinstance(body, list):
        return body, min(requested_size, MAX_PAGE_SIZE), None
    if not isinstance(body, dict) or not isinstance(body.get("data", []), list):
        raise UnexpectedResponse(f"{resource}/list did not return the expected envelope.")
    data = body.get("data") or []
    effective = _as_int(body.get("pageSize")) or min(requested_size, MAX_PAGE_SIZE)
    return data, effective, _as_int(body.get("recordsTotal"))


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
