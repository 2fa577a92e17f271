"""Fault injection queue, per-tenant sliding-window rate limit and daily quota."""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

DEFAULT_QUOTA = 100_000


@dataclass
class Fault:
    """One scripted misbehaviour, consumed by the next `times` matching requests.

    status None = only `delay`, then answer normally. tenant/resource/action None = any.
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

    def matches(self, tenant: str | None, resource: str | None, action: str | None) -> bool:
        return ((self.tenant is None or self.tenant == tenant)
                and (self.resource is None or self.resource == resource)
                and (self.action is None or self.action == action))


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


class RateLimiter:
    """Sliding 60 s window per tenant. check() -> None if admitted, else seconds until a slot frees."""

    def __init__(self) -> None:
        self.per_minute: int | None = None
        self.retry_after = True
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def configure(self, per_minute: int | None, retry_after: bool = True) -> None:
        with self._lock:
            self.per_minute, self.retry_after = per_minute, retry_after
            self._hits.clear()

    def check(self, tenant: str) -> int | None:
        with self._lock:
            if self.per_minute is None:
                return None
            now = time.monotonic()
            hits = self._hits.setdefault(tenant, deque())
            while hits and hits[0] <= now - 60.0:
                hits.popleft()
            if len(hits) >= self.per_minute:
                wait = hits[0] + 60.0 - now if hits else 60.0
                return max(1, math.ceil(wait))
            hits.append(now)
            return None


class Quota:
    """Remaining daily requests per tenant."""

    def __init__(self) -> None:
        self._left: dict[str, int] = {}
        self._lock = threading.Lock()

    def set(self, tenant: str, quota: int) -> None:
        with self._lock:
            self._left[tenant] = quota

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
