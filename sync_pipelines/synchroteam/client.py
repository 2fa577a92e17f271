"""The Synchroteam HTTP client: every HTTP policy of the project lives here.

Basic auth, paging to the end whatever the order, timeouts, pacing from the API's own `X-RateLimit-*` headers
(waiting for the window's reset instead of earning a 429), retries (`Retry-After`, the window's reset, or
exponential backoff with jitter), a quota floor, and every answer classified by one table (`STATUS_RULES`:
`Content-Type` first, then status) into data, a retry, or an `errors.SyncError` subclass.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import logging
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import Enum
from typing import Any

import httpx
import orjson

from sync_pipelines.errors import (
    ApiUnavailable,
    AuthRejected,
    BadRequest,
    NotJsonResponse,
    QuotaSpent,
    RateLimited,
    RecordNotFound,
    ResourceNotFound,
    SyncError,
    UnexpectedResponse,
)
from sync_pipelines.synchroteam.idset import IdSet
from sync_pipelines.synchroteam.records import parse_timestamp
from sync_pipelines.synchroteam.settings import DEFAULT_RATE_LIMIT_BACKOFF_SECONDS, TenantSettings
from sync_pipelines.synchroteam.throttle import (
    RESET_SLACK,
    Limits,
    RateWindow,
    RequestPacer,
    shared_window,
)

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
MAX_REWALKS = 2
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


@dataclass
class RetryPolicy:
    """How hard to try. Backoff waits are `min(max_wait, base * 2**attempt)` scaled by a random factor in
    [0.5, 1]: from `backoff_base` after an error, from `rate_limit_base` after a 429 that says neither
    `X-RateLimit-Reset` nor `Retry-After` (the tenant's `RATE_LIMIT_BACKOFF_SECONDS`; long enough, over the
    attempts, for a per-minute window to pass: 67-135 s with the defaults). Waits the API announces are bounded by the tenant's `max_rate_wait` instead."""

    max_attempts: int = 6
    backoff_base: float = 0.5
    rate_limit_base: float = DEFAULT_RATE_LIMIT_BACKOFF_SECONDS
    max_wait: float = 60.0


@dataclass
class ClientStats:
    """What a client did, for run metadata."""

    requests: int = 0
    retries_429: int = 0
    retries_other: int = 0
    quota_remaining: int | None = None  # X-Quota-Remaining, as last answered
    quota_limit: int | None = None  # X-Quota-Limit
    rate_limit: int | None = None  # X-RateLimit-Limit: requests per window
    rate_waits: int = 0  # waits for the window to reset (after its allowance was used, or a 429)
    rate_wait_seconds: float = 0.0  # how long those waits were, in all
    paced_per_minute: float | None = None  # the pace this client ended at (configured, or learned from 429s)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, attr: str) -> None:
        with self._lock:
            setattr(self, attr, getattr(self, attr) + 1)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context, httpx's default one (certifi's certificates, or `SSL_CERT_FILE` /
    `SSL_CERT_DIR`): httpx builds a new one for every client otherwise, about 15 ms, once per step of a run."""
    return httpx.create_ssl_context()


class SynchroteamClient:
    """A client for one tenant. Thread-safe; use as a context manager.

    `window`: the tenant's rate window, shared by every client of the tenant in the process (`in_process`);
    a client of its own by default. `wall_clock` reads the instants the API's `X-RateLimit-Reset` is given in.
    `logger` receives the waits and warnings (a Dagster step passes `context.log`).
    """

    def __init__(
        self,
        settings: TenantSettings,
        *,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        window: RateWindow | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.settings = settings
        self.retry = retry or RetryPolicy(rate_limit_base=settings.rate_limit_backoff)
        self.stats = ClientStats()
        self.listed_at: datetime | None = None  # the server's clock (`Date`) when it answered the last list page
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._wall = wall_clock
        self._log = logger or log
        self._window = window or RateWindow(wall_clock)
        self._pacer = RequestPacer(settings.requests_per_minute, clock=clock, sleep=sleep)
        self._http = httpx.Client(
            base_url=settings.base_url + "/",
            auth=httpx.BasicAuth(settings.domain, settings.api_key),
            # the docs ask for both, and a server may pick its answer's format from either
            headers={"Accept": "application/json", "Content-Type": "application/json", "User-Agent": "sync_pipelines"},
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
            verify=tls_context(),
        )

    @classmethod
    def in_process(cls, settings: TenantSettings, logger: logging.Logger | None = None) -> SynchroteamClient:
        """A client drawing on the tenant's one rate window in this process, with every other client of the
        tenant (the steps of a run, their `details` threads): a step that starts after another used up the
        window waits instead of earning a 429."""
        return cls(settings, window=shared_window(settings.base_url, settings.domain), logger=logger)

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
        prefetch: bool = False,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the records of `{resource}/list`, page by page, each id once.

        `seen`: the `IdSet` the walk remembers ids in (its own if not given, in bounded memory however long
        the list); a caller that needs every listed id afterwards, such as a full run's deletion sweep, passes
        one rather than keep a second copy, and closes it. Records without an id are yielded as they come (the
        source quarantines them). `prefetch`: for a caller that reads every page (see `_walk`).

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
                yield from self._walk(resource, page_size, params or {}, seen, walk, prefetch)
                reason = walk.changed()
                if walk.pages <= 1 or reason is None:
                    return
                if walk.unknowable and again > 0 and len(seen) == before:
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
        self, resource: str, page_size: int, params: Mapping[str, str], seen: IdSet, walk: _Walk, prefetch: bool
    ) -> Iterator[list[dict[str, Any]]]:
        """One walk of the list, yielding ids not in `seen`, noting in `walk` what it saw.

        `prefetch`: the next page is requested (in a thread of its own) before this one is yielded, so that the
        caller's work on a page overlaps the wait for the next. Only the page the walk would request anyway is
        fetched, so a caller that reads to the end makes no extra request; one that may stop early must not ask
        for it."""

        def fetch(page: int) -> tuple[Any, Mapping[str, str]]:
            return self.get_with_headers(f"{resource}/list", {**params, "page": str(page), "pageSize": str(page_size)})

        with contextlib.ExitStack() as cleanup:
            ahead = cleanup.enter_context(ThreadPoolExecutor(1, thread_name_prefix="page")) if prefetch else None
            page, previous_ids = 1, None
            pending = ahead.submit(fetch, page) if ahead else None
            while True:
                body, headers = pending.result() if pending else fetch(page)
                pending = None
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
        """GET `path`: (its JSON, the response headers), retrying what can be retried (`STATUS_RULES`)."""
        failures: list[str] = []  # one short reason per failed attempt
        last_bad_response: UnexpectedResponse | None = None
        for attempt in range(self.retry.max_attempts):
            self._check_quota_floor()
            self._take_turn()
            self.stats.count("requests")
            response = None
            try:
                response = self._http.get(path, params=params)
            except httpx.TransportError as exc:
                failures.append(f"{type(exc).__name__}")
                self.stats.count("retries_other")
                self._backoff(attempt)
                continue
            finally:
                limits = self._observe(response)
            rule = _rule(response, path)
            if rule.act is Act.RETURN:
                try:
                    return _json(response, path), response.headers
                except UnexpectedResponse as exc:
                    last_bad_response = exc
                    failures.append("bad response")
                    self.stats.count("retries_other")
                    self._backoff(attempt)
                    continue
            if rule.act is Act.FAIL:
                raise self._error(rule, response, path, params)
            if rule.act is Act.WAIT_FOR_WINDOW:
                failures.append("429")
                self._after_429(response, limits, attempt)
                continue
            failures.append(str(response.status_code))
            self.stats.count("retries_other")
            self._wait(attempt, _retry_after(response))
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

    # -- the tenant's limits -----------------------------------------------------------------------------------

    def _take_turn(self) -> None:
        """Wait for the request's turn: the API's window first (its reset, when its allowance is used), then the
        optional per-minute ceiling."""
        turn = self._window.take()
        if turn.announce is not None:
            try:
                self._announce_wait(turn.wait, turn.announce)
            except RateLimited:
                self._window.answered(Limits())  # the request is not sent
                raise
        if turn.wait > 0:
            self._sleep(turn.wait)
        self._pacer.acquire()

    def _observe(self, response: httpx.Response | None) -> Limits:
        """Note what an answer (None: there was none) says of the tenant's limits, for every request to come."""
        limits = Limits() if response is None else Limits.from_headers(response.headers, self._wall())
        with self.stats._lock:
            if limits.quota_remaining is not None:
                self.stats.quota_remaining = limits.quota_remaining
            if limits.quota_limit is not None:
                self.stats.quota_limit = limits.quota_limit
            if limits.limit is not None:
                self.stats.rate_limit = limits.limit
        self._window.answered(limits)
        return limits

    def _after_429(self, response: httpx.Response, limits: Limits, attempt: int) -> None:
        """A 429 is the daily quota only if `X-Quota-Remaining` says it is spent, whatever its message says; else
        the window: every request waits for its `X-RateLimit-Reset` (or `Retry-After`, whichever is later).
        An API that says neither gets the exponential backoff, and the rest of the run is paced."""
        quota = limits.quota_remaining if limits.quota_remaining is not None else self.stats.quota_remaining
        if quota is not None and quota <= 0:
            raise QuotaSpent(
                f"Tenant '{self.settings.tenant.label}' has spent its daily API quota (X-Quota-Remaining={quota}"
                f"{f' of {self.stats.quota_limit:,}' if self.stats.quota_limit else ''}); it resets at midnight UTC."
            )
        self.stats.count("retries_429")
        wait = self._window.hold(_retry_after(response))
        if wait is None:
            self._slow_down()
            self._backoff(attempt, self.retry.rate_limit_base)
            return
        if wait == 0:
            return  # a concurrent request's 429 already holds every request until the window resets
        quota_note = f", X-Quota-Remaining {quota:,}: not the daily quota" if quota is not None else ""
        self._announce_wait(wait, f"the API answered 429 Too Many Requests{quota_note}")

    def _announce_wait(self, wait: float, why: str) -> None:
        """One log line per wait for the window, and the wait in the stats; a wait past the bound stops the run."""
        bound = self.settings.max_rate_wait
        resume = datetime.fromtimestamp(self._wall() + wait, UTC).strftime("%H:%M:%S UTC")
        variable = self.settings.tenant.env("MAX_RATE_WAIT_SECONDS")
        if wait > bound + RESET_SLACK:
            raise RateLimited(
                f"Tenant '{self.settings.tenant.label}': {why}; the API's rate window asks to wait {_duration(wait)} "
                f"(until {resume}), longer than the {_duration(bound)} a run waits ({variable}). Stopped before "
                f"asking again: nothing of this run was loaded and the cursor did not move.",
                action=f"The next run after {resume} continues where this one stopped; raise {variable} to wait "
                "longer within a run.",
                retryable=False,
            )
        with self.stats._lock:
            self.stats.rate_waits += 1
            self.stats.rate_wait_seconds += wait
        self._log.info(
            "Tenant '%s': waiting %s, until %s, for the API's rate window to reset (X-RateLimit-Reset): %s.",
            self.settings.tenant.label,
            _duration(wait),
            resume,
            why,
        )

    def _wait(self, attempt: int, retry_after: float | None, base: float | None = None) -> None:
        """Before the next attempt: the server's `Retry-After` when it gave one, else exponential backoff."""
        if attempt + 1 >= self.retry.max_attempts:
            return
        if retry_after is None:
            self._backoff(attempt, base)
            return
        if retry_after > self.settings.max_rate_wait:
            raise RateLimited(
                f"Tenant '{self.settings.tenant.label}': the API asked to wait {retry_after:.0f}s "
                f"(Retry-After), longer than the {self.settings.max_rate_wait:.0f}s a run waits "
                f"({self.settings.tenant.env('MAX_RATE_WAIT_SECONDS')})."
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
            self._log.warning(
                "Tenant '%s' answered 429 without saying when to come back (no X-RateLimit-Reset, no Retry-After): "
                "pacing at %.0f requests/minute from now on (set %s to the tenant's limit to avoid the 429s).",
                self.settings.tenant.label,
                after,
                self.settings.tenant.env("REQUESTS_PER_MINUTE"),
            )

    def _check_quota_floor(self) -> None:
        remaining = self.stats.quota_remaining
        floor = self.settings.quota_floor
        if remaining is not None and floor and remaining < floor:
            raise QuotaSpent(
                f"Tenant '{self.settings.tenant.label}' has {remaining} API requests left today "
                f"(X-Quota-Remaining={remaining}), under the floor of {floor} "
                f"({self.settings.tenant.env('QUOTA_FLOOR')}); stopped before using them.",
                action=(
                    "Wait for the daily quota to reset at midnight UTC (the next run resumes), or lower the floor "
                    "if this sync may use the rest."
                ),
            )

    def _error(self, rule: Rule, response: httpx.Response, path: str, params: Mapping[str, str] | None) -> SyncError:
        """The error a FAIL rule names, its message and action filled in (never with the API key)."""
        tenant = self.settings.tenant
        fields = {
            "tenant": f"'{tenant.label}' ({tenant.name})",
            "where": f"{self.settings.base_url}/{path}",
            "query": dict(params or {}),
            "status": response.status_code,
            "said": _message(response),
            "page": _first_words(response.text),
            "content_type": response.headers.get("Content-Type", "no Content-Type"),
            "base_url": self.settings.base_url,
            "resource": path.split("/")[0],
            "domain": self.settings.domain,
            "domain_var": tenant.env("DOMAIN"),
            "key_var": tenant.env("API_KEY"),
            "base_url_var": tenant.env("BASE_URL"),
        }
        error = rule.error or BadRequest
        action = rule.action.format(**fields) if rule.action else None
        return error(rule.message.format(**fields), action=action)


class Act(Enum):
    """What the client does with an answer."""

    RETURN = "return"  # the answer is the data
    RETRY = "retry"  # transient: ask again after `Retry-After` or a backoff
    WAIT_FOR_WINDOW = "wait_for_window"  # 429: wait for the rate window (or the backoff), then ask again
    FAIL = "fail"  # raise the rule's error at once: asking again cannot help


@dataclass(frozen=True)
class Rule:
    """An answer's action, and for FAIL its error class, message and action (`str.format` fields: see
    `SynchroteamClient._error`)."""

    act: Act
    error: type[SyncError] | None = None
    message: str = ""
    action: str | None = None


CREDENTIALS = (
    "Check {domain_var} (the tenant domain, now {domain!r}) and {key_var} (Synchroteam: Configuration > "
    "Authentication Key). Not retried."
)
# (status, "list" | "details" | None for any path): the one table of what every answer means.
STATUS_RULES: dict[tuple[int, str | None], Rule] = {
    (400, None): Rule(Act.FAIL, BadRequest, "{where} {query} answered 400 Bad Request: {said}"),
    (401, None): Rule(
        Act.FAIL,
        AuthRejected,
        "Synchroteam rejected the credentials of tenant {tenant} with HTTP 401 at {base_url}: {said}",
        CREDENTIALS,
    ),
    (403, None): Rule(
        Act.FAIL,
        AuthRejected,
        "Synchroteam refused tenant {tenant} with HTTP 403 (JSON) at {base_url}: {said}",
        CREDENTIALS,
    ),
    (404, "list"): Rule(
        Act.FAIL,
        ResourceNotFound,
        "{where} answered 404: this API has no {resource}/list at {base_url} ({said}).",
        "Check {base_url_var} (now {base_url}) or the resource name '{resource}'; no record was deleted. Not retried.",
    ),
    (404, "details"): Rule(
        Act.FAIL,
        RecordNotFound,
        "{where} {query} answered 404: {said}",
        "The record was deleted in Synchroteam after it was listed.",
    ),
    (404, None): Rule(Act.FAIL, ResourceNotFound, "{where} answered 404: {said}", "Check {base_url_var}."),
    (405, None): Rule(Act.FAIL, BadRequest, "{where} answered 405 Method Not Allowed: {said}"),
    (406, None): Rule(Act.FAIL, BadRequest, "{where} answered 406 Not Acceptable (it wants JSON asked for): {said}"),
    (429, None): Rule(Act.WAIT_FOR_WINDOW),
}
# A web page, whatever its status: the firewall in front of the API (Imperva), never a verdict on the key.
WEB_PAGE = Rule(
    Act.FAIL,
    NotJsonResponse,
    "Tenant {tenant}: {where} answered HTTP {status} with a web page ({content_type}) "
    "instead of the API's JSON, so this is the web firewall in front of Synchroteam (or a proxy), not a rejected "
    'API key. The page says: "{page}"',
)


def _rule(response: httpx.Response, path: str) -> Rule:
    """The rule for an answer: its `Content-Type` first (a web page is the firewall), then its status."""
    if _is_web_page(response):
        return WEB_PAGE
    status = response.status_code
    if 200 <= status < 300:
        return Rule(Act.RETURN)
    kind = path.rsplit("/", 1)[-1] if "/" in path else None
    rule = STATUS_RULES.get((status, kind)) or STATUS_RULES.get((status, None))
    if rule is not None:
        return rule
    if status >= 500:
        return Rule(Act.RETRY)
    return Rule(Act.FAIL, BadRequest, "{where} answered {status}: {said}")


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


def _parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


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


def _is_web_page(response: httpx.Response) -> bool:
    content_type = response.headers.get("Content-Type", "").lower()
    return "html" in content_type or (not content_type and response.content.lstrip()[:1] == b"<")


_SCRIPTS = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]*>")


def _first_words(text: str, limit: int = 120) -> str:
    """The first words a web page shows (its title first), for an error message."""
    words = " ".join(_TAGS.sub(" ", _SCRIPTS.sub(" ", text[:20_000])).split())
    return words if len(words) <= limit else words[:limit].rsplit(" ", 1)[0] + " …"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _json(response: httpx.Response, path: str) -> Any:
    content_type = response.headers.get("Content-Type", "")
    if "json" not in content_type.lower():
        raise NotJsonResponse(
            f"Expected JSON from {path}, got {content_type or 'no Content-Type'} (HTTP {response.status_code}): "
            f"{response.text[:120]!r}"
        )
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        pass  # not UTF-8, or what only Python's parser reads (NaN, integers beyond 64 bits): it decides
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
