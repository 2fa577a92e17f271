"""Tenant-local time: minute arithmetic, timestamp formatting, the tenant clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

EPOCH = datetime(2024, 1, 1)
ANCHOR = datetime(2026, 1, 1, 8, 0)
MINUTE = timedelta(minutes=1)
_EPOCH_DATE = EPOCH.date()
_DAYS: dict[int, str] = {}


def to_minute(dt: datetime) -> int:
    """Naive local datetime -> whole minutes since EPOCH."""
    return (dt.replace(second=0, microsecond=0) - EPOCH) // MINUTE


ANCHOR_MINUTE = to_minute(ANCHOR)


def day_str(day: int) -> str:
    """Day number since EPOCH -> 'YYYY-MM-DD' (cached)."""
    s = _DAYS.get(day)
    if s is None:
        s = _DAYS[day] = (_EPOCH_DATE + timedelta(days=day)).isoformat()
    return s


def fmt(minute: int, seconds: bool = False) -> str:
    """Minute number -> 'YYYY-MM-DD HH:mm' (or with ':00' seconds)."""
    d, r = divmod(minute, 1440)
    h, m = divmod(r, 60)
    s = f"{day_str(d)} {h:02d}:{m:02d}"
    return s + ":00" if seconds else s


def fmt_date(minute: int) -> str:
    return day_str(minute // 1440)


def parse_ts(text: str) -> datetime:
    """Parse 'YYYY-MM-DD HH:mm' or 'YYYY-MM-DD HH:mm:ss' (raises ValueError)."""
    fmt_ = "%Y-%m-%d %H:%M:%S" if len(text) == 19 else "%Y-%m-%d %H:%M"
    if len(text) not in (16, 19):
        raise ValueError(f"bad timestamp {text!r}")
    return datetime.strptime(text, fmt_)


def norm_ts(text: str) -> str:
    """Fixed-width 'YYYY-MM-DD HH:mm:ss' form so that string order = time order."""
    return text if len(text) == 19 else text[:16] + ":00"


@lru_cache(maxsize=32)
def gap_hours(tz_name: str) -> frozenset[int]:
    """Local hours (since EPOCH) that do not exist in the zone (spring-forward gaps)."""
    tz = ZoneInfo(tz_name)
    gaps: set[int] = set()
    start = datetime(2024, 1, 1, tzinfo=UTC)
    prev: timedelta | None = None
    for h in range(0, 24 * 366 * 8):  # 2024 .. 2031
        off = (start + timedelta(hours=h)).astimezone(tz).utcoffset()
        if off is not None and prev is not None and off > prev:  # clocks jump forward at this instant
            local = (start + timedelta(hours=h)).astimezone(tz).replace(tzinfo=None)
            jump = int((off - prev) / timedelta(hours=1)) or 1
            first = (local - EPOCH) // timedelta(hours=1) - jump
            gaps.update(range(first, first + jump))
        prev = off
    return frozenset(gaps)


class TenantClock:
    """Follows the real clock in the tenant zone, or stays frozen where set."""

    def __init__(self, tz_name: str) -> None:
        self._tz = ZoneInfo(tz_name)
        self._frozen: datetime | None = None
        self._lock = threading.Lock()

    def _real(self) -> datetime:
        return datetime.now(UTC).astimezone(self._tz).replace(tzinfo=None)

    def now(self) -> datetime:
        with self._lock:
            t = self._frozen if self._frozen is not None else self._real()
        return t.replace(second=0, microsecond=0)

    def utc_now(self) -> datetime:
        """The same clock in UTC, to the second (frozen: the frozen local time): what the `Date` header says."""
        with self._lock:
            if self._frozen is None:
                return datetime.now(UTC)
            local = self._frozen
        return local.replace(tzinfo=self._tz).astimezone(UTC)

    def set(self, local: datetime) -> None:
        with self._lock:
            self._frozen = local.replace(tzinfo=None)

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            base = self._frozen if self._frozen is not None else self._real().replace(second=0, microsecond=0)
            self._frozen = base + delta

    def follow_real_time(self) -> None:
        with self._lock:
            self._frozen = None
