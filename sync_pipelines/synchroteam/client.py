"""The Synchroteam HTTP client: every HTTP policy of the project lives here.

Basic auth, paging to the end whatever the order, timeouts, retries (`Retry-After` or exponential backoff with
jitter), proactive pacing, a quota floor, and errors classified into `errors.SyncError` subclasses.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

import httpx

from sync_pipelines.settings import TenantSettings
from sync_pipelines.synchroteam.errors import (
    ApiUnavailable,
    AuthRejected,
    BadRequest,
    NotJsonResponse,
    QuotaSpent,
    RateLimited,
    RecordNotFound,
    UnexpectedResponse,
)
from sync_pipelines.synchroteam.idset import IdSet
from sync_pipelines.synchroteam.records import parse_timestamp
from sync_pipelines.synchroteam.throttle import RequestPacer

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
MAX_REWALKS = 2
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


@dataclass
class RetryPolicy:
    """How hard to try. Waits are `min(max_wait, base * 2**attempt)` scaled by a random factor in [0.5, 1]: from
    `backoff_base` after an error, from `rate_limit_base` after a 429 without `Retry-After` (long enough, over
    the attempts, for a per-minute window to pass: 67-135 s with the defaults)."""

    max_attempts: int = 6
    backoff_base: float = 0.5
    rate_limit_base: float = 5.0
    max_wait: float = 60.0


@dataclass
class ClientStats:
    """What a client did, for run metadata."""

    requests: int = 0
    retries_429: int = 0
    retries_other: int = 0
    quota_remaining: int | None = None
    paced_per_minute: float | None = None  # the pace this client ended at (configured, or learned from 429s)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, attr: str) -> None:
        with self._lock:
            setattr(self, attr, getattr(self, attr) + 1)


class SynchroteamClient:
    """A client for one tenant. Thread-safe; use as a context manager."""

    def __init__(
        self,
        settings: TenantSettings,
        *,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.retry = retry or RetryPolicy()
        self.stats = ClientStats()
        self.listed_at: datetime | None = None  # the server's clock (`Date`) when it answered the last list page
        self._rng = rng or random.Random()
        self._pacer = RequestPacer(settings.requests_per_minute, clock=clock, sleep=sleep)
        self._http = httpx.Client(
            base_url=settings.base_url + "/",
            auth=httpx.BasicAuth(settings.domain, settings.api_key),
            headers={"Accept": "application/json", "User-Agent": "sync_pipelines"},
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )

    def __enter__(self) -> SynchroteamClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- reading -------------------------------------------------------------------------------------------

    def iter_pages(
        self,
        resource: str,
        *,
        page_size: int = MAX_PAGE_SIZE,
        params: Mapping[str, str] | None = None,
        seen: IdSet | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the records of `{resource}/list`, page by page, each id once.

        `seen`: the `IdSet` the walk remembers ids in (its own if not given, in bounded memory however long
        the list); a caller that needs every listed id afterwards, such as a full run's deletion sweep, passes
        one rather than keep a second copy, and closes it. Records without an id are yielded as they come (the
        source quarantines them).

        Ends on an empty page, a page shorter than the size the server says it used (it may clamp ours), or
        once the pages walked cover `recordsTotal`. Order is not assumed; records that shift between pages
        while we walk are de-duplicated by id.

        A list that changes while it is walked can hide a record: a deletion on a page already read moves every
        later record back one place, and the first record of the next page lands on the page already read (an
        addition elsewhere can even keep `recordsTotal` unchanged). So a walk of more than one page that shows
        a sign of change (`_Walk.changed`) is walked again, yielding only ids not seen yet, until a walk shows
        none (at most MAX_REWALKS more walks; without the means to check, until a walk brings nothing new). A
        single page is one answer, read at once: it needs no second look.
        """
        with contextlib.ExitStack() as cleanup:
            if seen is None:
                seen = cleanup.enter_context(IdSet())
            for again in range(MAX_REWALKS + 1):
                ids = None if again == 0 else cleanup.enter_context(IdSet())
                walk, before = _Walk(self.settings.timezone, ids=ids), len(seen)
                yield from self._walk(resource, page_size, params or {}, seen, walk)
                reason = walk.changed()
                if walk.pages <= 1 or reason is None:
                    return
                if walk.unknowable and again > 0 and len(seen) == before:
                    return  # nothing to check the list by: a walk that brings nothing new is the best evidence
                if again < MAX_REWALKS:
                    log.info("%s/list changed while it was walked (%s): walking it again", resource, reason)
                else:
                    log.warning("%s/list still changing after %d walks (%s): the next run reads it again",
                                resource, again + 1, reason)

    def _walk(
        self, resource: str, page_size: int, params: Mapping[str, str], seen: IdSet, walk: _Walk
    ) -> Iterator[list[dict[str, Any]]]:
        """One walk of the list, yielding ids not in `seen`, noting in `walk` what it saw."""
        page, previous_ids = 1, None
        while True:
            query = {**params, "page": str(page), "pageSize": str(page_size)}
            body, headers = self.get_with_headers(f"{resource}/list", query)
            data, effective_size, total = _parse_envelope(body, page_size, resource)
            self.listed_at = _parse_http_date(headers.get("Date"))
            walk.page(self.listed_at, total)
            fresh = []
            for record in data:
                key = _record_id(record)
                if key is None:
                    fresh.append(record)
                    continue
                known = key in seen
                walk.record(key, record.get("dateModified"), known)
                if not known:
                    seen.add(key)
                    fresh.append(record)
            if fresh:
                yield fresh
            if len(data) < effective_size or (total is not None and page * effective_size >= total):
                return
            ids = [_record_id(r) for r in data]
            if ids == previous_ids:
                log.warning("%s/list page %d repeats page %d (is `page` ignored?); stopping", resource, page, page - 1)
                return
            previous_ids = ids
            page += 1

    def records_total(self, resource: str) -> int:
        """How many records `{resource}/list` holds, from one request of page size 1."""
        body = self.get(f"{resource}/list", {"page": "1", "pageSize": "1"})
        data, _, total = _parse_envelope(body, 1, resource)
        if total is None:
            raise UnexpectedResponse(f"{resource}/list gave no recordsTotal.")
        return total

    def details(self, resource: str, record_id: str) -> dict[str, Any]:
        """`{resource}/details?id=`: the full record. Raises RecordNotFound on 404."""
        body = self.get(f"{resource}/details", {"id": str(record_id)})
        if not isinstance(body, dict):
            raise UnexpectedResponse(f"{resource}/details?id={record_id} did not return an object.")
        return body

    # -- one request, with the retry policy ------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET `path` and return its JSON, retrying what can be retried."""
        return self.get_with_headers(path, params)[0]

    def get_with_headers(self, path: str, params: Mapping[str, str] | None = None) -> tuple[Any, httpx.Headers]:
        """GET `path`: (its JSON, the response headers), retrying what can be retried."""
        failures: list[str] = []  # one short reason per failed attempt
        last_bad_response: UnexpectedResponse | None = None
        for attempt in range(self.retry.max_attempts):
            self._check_quota_floor()
            self._pacer.acquire()
            self.stats.count("requests")
            try:
                response = self._http.get(path, params=params)
            except httpx.TransportError as exc:
                failures.append(f"{type(exc).__name__}")
                self.stats.count("retries_other")
                self._backoff(attempt)
                continue
            self._note_quota(response)
            status = response.status_code
            if status == 429:
                retry_after = _retry_after(response)
                if self._quota_is_spent(response):
                    raise QuotaSpent(
                        f"Tenant '{self.settings.tenant.label}' has spent its daily API quota "
                        f"(X-Quota-Remaining={self.stats.quota_remaining}); it resets at the start of the "
                        f"tenant's day.",
                    )
                failures.append("429")
                self.stats.count("retries_429")
                self._slow_down()
                self._wait(attempt, retry_after, self.retry.rate_limit_base)
                continue
            if status in (401, 403):
                raise self._auth_error(status)
            if status >= 500:
                failures.append(str(status))
                self.stats.count("retries_other")
                self._wait(attempt, _retry_after(response))
                continue
            if status == 404:
                raise RecordNotFound(
                    f"{path} {dict(params or {})} answered 404: {_message(response)}",
                    action="The record was deleted in Synchroteam, or the base URL points at the wrong API.",
                )
            if status >= 400:
                raise BadRequest(f"{path} answered {status}: {_message(response)}")
            try:
                return _json(response, path), response.headers
            except UnexpectedResponse as exc:
                last_bad_response = exc
                failures.append("bad response")
                self.stats.count("retries_other")
                self._backoff(attempt)
        where = f"{self.settings.base_url}/{path}"
        if failures and all(f == "429" for f in failures):
            raise RateLimited(
                f"Tenant '{self.settings.tenant.label}': {where} kept answering 429 Too Many Requests; gave up "
                f"after {len(failures)} attempts at {time.strftime('%H:%M:%S')}."
            )
        if last_bad_response is not None and failures[-1] == "bad response":
            raise UnexpectedResponse(
                f"Tenant '{self.settings.tenant.label}': {last_bad_response.args[0]} Gave up after "
                f"{len(failures)} attempts."
            )
        raise ApiUnavailable(
            f"Tenant '{self.settings.tenant.label}': {where} failed {len(failures)} times "
            f"({', '.join(failures)}); gave up."
        )

    def _wait(self, attempt: int, retry_after: float | None, base: float | None = None) -> None:
        """Before the next attempt: the server's `Retry-After` when it gave one, else exponential backoff."""
        if attempt + 1 >= self.retry.max_attempts:
            return
        if retry_after is None:
            self._backoff(attempt, base)
            return
        if retry_after > self.retry.max_wait:
            raise RateLimited(
                f"Tenant '{self.settings.tenant.label}': the API asked to wait {retry_after:.0f}s "
                f"(Retry-After), longer than the {self.retry.max_wait:.0f}s this run waits."
            )
        self._pacer.defer(retry_after)

    def _backoff(self, attempt: int, base: float | None = None) -> None:
        if attempt + 1 >= self.retry.max_attempts:
            return
        base = self.retry.backoff_base if base is None else base
        wait = min(self.retry.max_wait, base * 2**attempt) * self._rng.uniform(0.5, 1.0)
        self._pacer.defer(wait)

    def _slow_down(self) -> None:
        before = self._pacer.per_minute
        after = self._pacer.slow_down()
        with self.stats._lock:
            self.stats.paced_per_minute = after
        if before != after:
            log.warning(
                "Tenant '%s' answered 429: pacing at %.0f requests/minute from now on (set %s to the tenant's "
                "limit to avoid the 429s).", self.settings.tenant.label, after,
                self.settings.tenant.env("REQUESTS_PER_MINUTE"),
            )

    def _note_quota(self, response: httpx.Response) -> None:
        raw = response.headers.get("X-Quota-Remaining")
        if raw is not None:
            try:
                self.stats.quota_remaining = int(float(raw))
            except ValueError:
                pass

    def _quota_is_spent(self, response: httpx.Response) -> bool:
        if self.stats.quota_remaining is not None and self.stats.quota_remaining <= 0:
            return True
        return "quota" in _message(response).lower() and _retry_after(response) is None

    def _check_quota_floor(self) -> None:
        remaining = self.stats.quota_remaining
        floor = self.settings.quota_floor
        if remaining is not None and floor and remaining < floor:
            raise QuotaSpent(
                f"Tenant '{self.settings.tenant.label}' has {remaining} API requests left today "
                f"(X-Quota-Remaining={remaining}), under the floor of {floor} "
                f"({self.settings.tenant.env('QUOTA_FLOOR')}); stopped before using them.",
                action=(
                    "Wait for the daily quota to reset (at the start of the tenant's day; the next run resumes), "
                    "or lower the floor if this sync may use the rest."
                ),
            )

    def _auth_error(self, status: int) -> AuthRejected:
        tenant = self.settings.tenant
        return AuthRejected(
            f"Synchroteam rejected the credentials of tenant '{tenant.label}' ({tenant.name}) with HTTP {status} "
            f"at {self.settings.base_url}.",
            action=(
                f"Check {tenant.env('DOMAIN')} (the tenant domain, now {self.settings.domain!r}) and "
                f"{tenant.env('API_KEY')} (Synchroteam: Configuration > Authentication Key). Not retried."
            ),
        )


def _record_id(record: Any) -> str | None:
    """A listed record's id as text; None for a record without one, which is never taken for another."""
    if not isinstance(record, dict) or record.get("id") in (None, ""):
        return None
    return str(record["id"])


class _Walk:
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
            self.modified_during = moment is not None and moment >= self.since_at

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


def _parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _parse_envelope(body: Any, requested_size: int, resource: str) -> tuple[list[Any], int, int | None]:
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


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def _json(response: httpx.Response, path: str) -> Any:
    content_type = response.headers.get("Content-Type", "")
    if "json" not in content_type.lower():
        raise NotJsonResponse(
            f"Expected JSON from {path}, got {content_type or 'no Content-Type'} (HTTP {response.status_code}): "
            f"{response.text[:120]!r}"
        )
    try:
        return response.json()
    except ValueError:
        raise UnexpectedResponse(f"Response from {path} is not valid JSON (truncated?).") from None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body)[:500]
    return str(body)[:200]
