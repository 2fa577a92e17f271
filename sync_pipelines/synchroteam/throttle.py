"""Proactive pacing: spend a tenant's request budget evenly instead of waiting for 429s."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RequestPacer:
    """Spaces requests at least `60 / per_minute` seconds apart (thread-safe). `None` means unpaced."""

    def __init__(
        self,
        per_minute: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next_slot = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for the next slot; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return wait

    def defer(self, seconds: float) -> None:
        """Push the next slot back (the server asked us to wait)."""
        with self._lock:
            self._next_slot = max(self._next_slot, self._clock() + seconds)
