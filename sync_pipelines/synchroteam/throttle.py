"""Proactive pacing: spend a tenant's request budget evenly instead of waiting for 429s."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

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
