"""The Synchroteam HTTP client: every HTTP policy of the project lives here.

Basic auth, timeouts, pacing from the API's own `X-RateLimit-*` headers
(waiting for the window's reset instead of earning a 429), retries (`Retry-After`, the window's reset, or
exponential backoff with jitter), a quota floor, and every answer classified by one table (`STATUS_RULES`:
`Content-Type` first, then status) into data, a retry, or an `errors.SyncError` subclass.
"""

from __future__ import annotations

import functools
import logging
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import httpx
import orjson

from sync_pipelines.catalogue import ENTITIES
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
from sync_pipelines.synchroteam.listing import MAX_PAGE_SIZE, ListWalker, parse_envelope
from sync_pipelines.synchroteam.settings import DEFAULT_RATE_LIMIT_BACKOFF_SECONDS, TenantSettings
from sync_pipelines.synchroteam.throttle import (
    RESET_SLACK,
    Limits,
    RateWindow,
    RequestPacer,
    shared_window,
)

log = logging.getLogger(__name__)

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
    `SSL_CERT_DIR`): httpx builds a new one for every client otherwise, once per step of a run."""
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
        self._lists = ListWalker(self.get_with_headers, settings.timezone, self._log)

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
        """Yield the records of `{resource}/list`, page by page, each id once, walked again while it changes
        (`listing.ListWalker.pages`: what `seen` and `prefetch` are for)."""
        return self._lists.pages(resource, page_size=page_size, params=params, seen=seen, prefetch=prefetch)

    @property
    def listed_at(self) -> datetime | None:
        """The server's clock (`Date`) when it answered the last list page."""
        return self._lists.listed_at

    def records_total(self, resource: str) -> int:
        """How many records `{resource}/list` holds, from one request of page size 1."""
        body = self.get(f"{resource}/list", {"page": "1", "pageSize": "1"})
        data, _, total = parse_envelope(body, 1, resource)
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
            "entity": _entity_of(path.split("/")[0]),
            "entities_var": tenant.env("ENTITIES"),
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
        "Check {base_url_var} (now {base_url}) or the resource name '{resource}'; no record was deleted. Not retried. "
        "If this tenant's API has no {resource}, switch {entity} off: leave it out of {entities_var} (comma-separated "
        "entity names; unset, it means all of them).",
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


def _entity_of(resource: str) -> str:
    """The catalogue's name of the entity read from `resource` (`jobtype` -> `job_types`), or the resource's."""
    return next((entity.name for entity in ENTITIES.values() if entity.resource == resource), resource)


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
