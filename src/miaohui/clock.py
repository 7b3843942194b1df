"""One injectable clock for the whole platform.

Wall time (``now``) stamps records and drives business deadlines (session
ends, night pricing, SLA windows); ``monotonic`` measures latencies so a wall
clock adjustment can never make a reply look faster or slower than it was.
Tests swap in :class:`FakeClock` and move time by hand.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Server time.  ``now()`` is wall time advanced by the monotonic clock
    from an anchor, so two timestamps taken by one process differ by exactly
    the monotonic interval between them: a reply latency computed from stored
    server times is a monotonic measurement, immune to NTP steps.  If the wall
    clock and the anchored time drift apart by more than ``max_drift`` (a real
    clock correction), the anchor moves: deadlines follow real time."""

    max_drift = 2.0

    def __init__(self) -> None:
        self._anchor()

    def _anchor(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def now(self) -> datetime:
        mono = time.monotonic()
        t = self._wall0 + (mono - self._mono0)
        if abs(time.time() - t) > self.max_drift:
            self._anchor()
            t = self._wall0
        return datetime.fromtimestamp(t, UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock(Clock):
    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float = 0, **kw: float) -> None:
        delta = timedelta(seconds=seconds, **kw)
        self._now += delta
        self._mono += delta.total_seconds()

    def set(self, when: datetime) -> None:
        self._mono += max(0.0, (when - self._now).total_seconds())
        self._now = when


def utc(dt: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every value we store is UTC."""
    if dt is None or dt.tzinfo is not None:
        return dt
    return dt.replace(tzinfo=UTC)
