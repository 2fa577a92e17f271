"""Proactive pacing: spend a tenant's request budget evenly instead of waiting for 429s.

`RateWindow` follows the window the API announces on every answer (`X-RateLimit-*`); `RequestPacer` spaces
requests under an optional ceiling (`<PREFIX>REQUESTS_PER_MINUTE`), or, on an API that announces nothing, at the
rate it accepted before its first 429.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

WINDOW_SECONDS = 60.0
MARGIN = 0.02  # pace 2% under a known limit: the server counts arrivals, which jitter around our sends
SLOW_DOWN = 0.8  # a 429 while already paced: the limit is lower than thought
EVIDENCE = 10  # requests sent since the last change of pace before a 429 says anything about the limit


class RequestPacer:
    """Spaces requests `60 / per_minute` seconds apart, 2% under the limit (thread-safe). `None`: unpaced until
    the server answers 429, then paced at what it accepted in the last minute (`slow_down`)."""

    def __init__(
        self,
        per_minute: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._next_slot = 0.0
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()  # send times within the last minute
        self._since_change = 0  # requests sent since the pace last changed
        self.per_minute: float | None = None
        self.interval = 0.0
        if per_minute:
            self._pace(per_minute)

    def _pace(self, per_minute: float) -> None:
        self.per_minute = per_minute
        self.interval = WINDOW_SECONDS / (per_minute * (1 - MARGIN))

    def acquire(self) -> float:
        """Wait for the next slot; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
            self._sent.append(slot)
            self._since_change += 1
            while self._sent and self._sent[0] <= slot - WINDOW_SECONDS:
                self._sent.popleft()
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return wait

    def defer(self, seconds: float) -> None:
        """Push the next slot back (the server asked us to wait)."""
        with self._lock:
            self._next_slot = max(self._next_slot, self._clock() + seconds)

    def slow_down(self) -> float | None:
        """The server answered 429: pace at the rate it accepted over the last minute (the limit, as far as we
        can tell), or 20% slower if already paced. Fewer than EVIDENCE requests since the pace last changed (a
        429 at the start, or the retries of one request) say nothing: the pace stays. Returns the pace."""
        with self._lock:
            if self._since_change < EVIDENCE:
                return self.per_minute
            accepted = float(len(self._sent) - 1)  # the request just refused does not count
            if self.per_minute is None or accepted < self.per_minute:
                self._pace(max(float(EVIDENCE), accepted))
            else:
                self._pace(max(float(EVIDENCE), self.per_minute * SLOW_DOWN))
            self._since_change = 0
            return self.per_minute


RESET_SLACK = 1.0  # `X-RateLimit-Reset` is whole seconds: come back a second after it, not a moment before
EPOCH_SECONDS = 1_000_000_000  # a Reset below this is a number of seconds to wait, not an instant


@dataclass(frozen=True)
class Limits:
    """What one answer says of the tenant's limits (None: the header was absent or unreadable)."""

    limit: int | None = None  # X-RateLimit-Limit: requests per window
    remaining: int | None = None  # X-RateLimit-Remaining: requests the window still admits
    reset: float | None = None  # X-RateLimit-Reset, as an instant (epoch seconds)
    quota_limit: int | None = None  # X-Quota-Limit: the daily quota
    quota_remaining: int | None = None  # X-Quota-Remaining: what is left of it today

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], now: float) -> Limits:
        reset = _number(headers.get("X-RateLimit-Reset"))
        if reset is not None and reset < EPOCH_SECONDS:
            reset = now + reset  # some APIs send the seconds left: trust the value's own scale
        return cls(
            limit=_whole(headers.get("X-RateLimit-Limit")),
            remaining=_whole(headers.get("X-RateLimit-Remaining")),
            reset=reset,
            quota_limit=_whole(headers.get("X-Quota-Limit")),
            quota_remaining=_whole(headers.get("X-Quota-Remaining")),
        )

    @property
    def announces_window(self) -> bool:
        return self.remaining is not None and self.reset is not None


@dataclass(frozen=True)
class Turn:
    """A request's turn: how long to wait before sending it, and (for one request only) why the window makes
    every request wait."""

    wait: float
    announce: str | None = None


class RateWindow:
    """The tenant's rate window as the API announces it (`X-RateLimit-*`), shared by every request of a tenant in
    this process, whatever thread or client sends it (thread-safe).

    The window admits the lowest `X-RateLimit-Remaining` answered in it, less the requests still in flight (the
    server may have counted them, or not): never more than it really admits. When that is nothing, a request
    waits for the answers in flight, which tell exactly; when none is in flight, every request waits for the
    window's `X-RateLimit-Reset` instead of earning a 429. The next window is taken to be as large as the last
    until an answer says otherwise. Without the headers it never waits: `RequestPacer` alone paces.

    Instants are epoch seconds (the API's Reset is one), read from `now`.
    """

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._cond = threading.Condition()
        self.limit: int | None = None
        self._remaining: int | None = None  # the lowest X-RateLimit-Remaining of the current window
        self._reset: float | None = None  # when the current window ends
        self._passed = 0.0  # the latest Reset waited for: answers announcing it or an earlier one are old news
        self._not_before = 0.0  # no request leaves before this instant
        self._in_flight = 0

    def take(self) -> Turn:
        """A turn for the next request; `answered` must follow, whatever becomes of the request."""
        with self._cond:
            announce = None
            while self._remaining is not None and self._reset is not None:
                if self._remaining - self._in_flight > 0:
                    break
                if self._in_flight:
                    self._cond.wait(timeout=1.0)  # their answers will say what is left
                    continue
                if self._reset > self._now():
                    announce = f"the window's {self.limit} requests are used (X-RateLimit-Remaining)"
                self._roll(self._reset + RESET_SLACK)
            self._in_flight += 1
            return Turn(max(0.0, self._not_before - self._now()), announce)

    def answered(self, limits: Limits) -> None:
        """A request taken is over; `limits`: what its answer said (empty if there was none)."""
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()
            reset, remaining = limits.reset, limits.remaining
            if reset is None or remaining is None or reset <= self._passed:
                return  # nothing said, or said of a window already waited out
            if self._reset is None or reset > self._reset:  # a newer window (or a sliding one moved on)
                self._reset, self._remaining = reset, remaining
            elif reset == self._reset:
                self._remaining = remaining if self._remaining is None else min(self._remaining, remaining)
            if limits.limit is not None:
                self.limit = limits.limit

    def hold(self, retry_after: float | None) -> float | None:
        """After a 429: the seconds every request now waits (until the window's Reset, or `Retry-After` when it
        is later); 0 when another request's 429 already made them wait that long; None when the API said
        neither."""
        with self._cond:
            now = self._now()
            reset_wait = self._reset + RESET_SLACK - now if self._reset is not None and self._reset > now else None
            waits = [w for w in (reset_wait, retry_after) if w is not None]
            if not waits:
                return 0.0 if self._not_before > now else None
            if now + max(waits) <= self._not_before:
                return 0.0
            wait = max(waits)
            self._roll(now + wait)
            return wait

    def _roll(self, until: float) -> None:
        """Every request waits until `until`; the next window admits as many as the last, as far as we know."""
        self._not_before = max(self._not_before, until)
        self._passed = max(self._passed, self._reset or 0.0)
        self._remaining = self.limit
        self._reset = None


def _number(raw: str | None) -> float | None:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _whole(raw: str | None) -> int | None:
    number = _number(raw)
    return None if number is None else int(number)


_SHARED: dict[tuple[str, str], RateWindow] = {}
_SHARED_LOCK = threading.Lock()


def shared_window(base_url: str, domain: str) -> RateWindow:
    """The one `RateWindow` of a tenant in this process: the steps of a run (and their `details` threads) draw
    on the same allowance, so a step that starts after another used up the window waits instead of earning a
    429."""
    with _SHARED_LOCK:
        return _SHARED.setdefault((base_url, domain), RateWindow())
