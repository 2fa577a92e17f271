"""Fault injection queue, per-tenant rate-limit window (sliding or fixed) and daily quota."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from .protocol import HTML, firewall_page

DEFAULT_QUOTA = 100_000
HOLD_LIMIT_SECONDS = 300.0
TOO_MANY = "Too many requests"


@dataclass
class Fault:
    """One scripted misbehaviour, consumed by the next `times` matching requests.

    status None = only `delay`, then answer normally. tenant/resource/action None = any. `hold`: the answer waits
    until the event is set (at most HOLD_LIMIT_SECONDS), so that a test can keep a client mid-request while it
    watches what others do.
    `headers` are added to the answer; api_headers=False leaves out X-Quota-*/X-RateLimit-* (an answer that
    does not come from the API, such as the firewall's).
    """

    status: int | None = None
    retry_after: float | None = None
    times: int = 1
    delay: float = 0.0
    body: str | None = None
    content_type: str | None = None
    tenant: str | None = None
    resource: str | None = None
    action: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    api_headers: bool = True
    hold: threading.Event | None = None

    @classmethod
    def firewall(
        cls,
        status: int = 403,
        times: int = 1,
        *,
        tenant: str | None = None,
        resource: str | None = None,
        action: str | None = None,
    ) -> Fault:
        """An Imperva Incapsula HTML block page (cookies, no JSON, no API headers) for the next `times` matches."""
        body, headers = firewall_page()
        return cls(
            status=status,
            times=times,
            body=body.decode("utf-8"),
            content_type=HTML,
            headers=headers,
            api_headers=False,
            tenant=tenant,
            resource=resource,
            action=action,
        )

    def matches(self, tenant: str | None, resource: str | None, action: str | None) -> bool:
        return (
            (self.tenant is None or self.tenant == tenant)
            and (self.resource is None or self.resource == resource)
            and (self.action is None or self.action == action)
        )


class FaultQueue:
    """Faults in the order added; the first matching one with times left is used."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if f.times > 0]

    def take(self, tenant: str | None, resource: str | None, action: str | None) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.times > 0 and f.matches(tenant, resource, action):
                    f.times -= 1
                    return f
            self._faults = [f for f in self._faults if f.times > 0]
        return None


@dataclass(frozen=True)
class Window:
    """The rate-limit window as one request leaves it: admitted or not, and its X-RateLimit-* values."""

    admitted: bool
    wait: float  # seconds until the window admits a request again (0 while it has room)
    limit: int
    remaining: int  # requests the window still admits after this one
    reset: int  # Unix epoch second (rounded up) at which the window ends


class RateLimiter:
    """`limit` requests per `window_seconds` per tenant, in a sliding or a fixed window.

    Both keep the admitted requests' monotonic times: a sliding window drops those older than the window, a
    fixed one starts at its first request and drops them all when it ends.
    """

    def __init__(self) -> None:
        self.limit: int | None = None
        self.retry_after = True
        self.window_seconds = 60.0
        self.fixed = False
        self.headers = False
        self.message = TOO_MANY
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def configure(
        self,
        limit: int | None,
        *,
        retry_after: bool = True,
        window_seconds: float = 60.0,
        fixed: bool = False,
        headers: bool = False,
        message: str = TOO_MANY,
    ) -> None:
        if window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds}")
        with self._lock:
            self.limit, self.retry_after, self.window_seconds = limit, retry_after, float(window_seconds)
            self.fixed, self.headers, self.message = fixed, headers, message
            self._hits.clear()

    def admit(self, tenant: str) -> Window | None:
        """Count one request if the window has room; None when there is no limit."""
        return self._look(tenant, take=True)

    def peek(self, tenant: str) -> Window | None:
        """The window as it stands, counting nothing (for answers given before the limit is applied)."""
        return self._look(tenant, take=False)

    def _look(self, tenant: str, take: bool) -> Window | None:
        with self._lock:
            if self.limit is None:
                return None
            now = time.monotonic()
            hits = self._current(tenant, now)
            admitted = len(hits) < self.limit
            if take and admitted:
                hits.append(now)
            ends = hits[0] + self.window_seconds if hits else now + self.window_seconds
            return Window(
                admitted,
                0.0 if admitted else ends - now,
                self.limit,
                max(0, self.limit - len(hits)),
                math.ceil(time.time() + ends - now),
            )

    def _current(self, tenant: str, now: float) -> deque[float]:
        """The tenant's admitted requests still in its window at `now`."""
        hits = self._hits.setdefault(tenant, deque())
        if self.fixed:
            if hits and now >= hits[0] + self.window_seconds:
                hits.clear()  # the window ended: the next request starts a new one
        else:
            while hits and hits[0] <= now - self.window_seconds:
                hits.popleft()
        return hits


class Quota:
    """Remaining daily requests per tenant."""

    def __init__(self) -> None:
        self._left: dict[str, int] = {}
        self._total: dict[str, int] = {}
        self._lock = threading.Lock()

    def set(self, tenant: str, quota: int) -> None:
        with self._lock:
            self._left[tenant] = self._total[tenant] = quota

    def total(self, tenant: str) -> int:
        """The daily total (X-Quota-Limit)."""
        with self._lock:
            return self._total.get(tenant, DEFAULT_QUOTA)

    def remaining(self, tenant: str) -> int:
        with self._lock:
            return self._left.get(tenant, DEFAULT_QUOTA)

    def spend(self, tenant: str) -> int | None:
        """Use one request; the remaining count after it, or None when the quota is spent."""
        with self._lock:
            left = self._left.get(tenant, DEFAULT_QUOTA)
            if left <= 0:
                return None
            self._left[tenant] = left - 1
            return left - 1
