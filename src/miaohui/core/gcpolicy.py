"""The server's garbage-collection policy: thousands of long-lived sockets
must not make the event loop stop for collections (docs/performance.md).

Its own module so that the benchmark's baseline relay can run under the
same policy without importing the application (bench/chat_latency.py).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("miaohui.gc")


async def gc_maintenance(
    full_every: float,
    freeze_every: float = 30.0,
    activity: Callable[[], int] | None = None,
    quiet_share: float = 0.1,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Keep long-lived objects (thousands of sockets) out of full collections.

    Every ``freeze_every`` seconds, everything alive is moved to the permanent
    generation, so a full collection only walks objects made since.  Frozen
    objects are still freed by reference counting when they die (a closed
    socket's objects go that way); only cyclic garbage among them waits for
    the release below.  Measured under chat load, that is next to nothing
    (0 of ~650,000 frozen objects in eight of nine 15 s censuses, 10 in the
    ninth, ``bench/server_variants.py gcgarbage``), while releasing and
    collecting the frozen set stops the loop for 0.2-0.8 s.  So the release
    is rare: once every ``full_every`` seconds (``Settings.gc_full_every_seconds``,
    a day by default), a bound on what a leak could hold.

    And it waits for a quiet moment.  A stop of the loop delays every message
    that arrives meanwhile, and this platform is busiest in the small hours,
    so no fixed hour is safe.  With ``activity`` (a running count of the work
    done: the messages stored), the count of each interval of the last
    ``full_every`` seconds is remembered; once the release is due it happens
    in the first interval no busier than the quietest ``quiet_share`` of
    those (the quiet hour of the last day), and at the latest ``full_every``
    later, so a leak stays bounded even if quiet never comes.  Without ``activity`` it happens as
    soon as it is due.  ``monotonic`` is the clock the intervals are
    measured on (the platform's, in tests a fake).
    """
    step = min(freeze_every, full_every)
    last_full = monotonic()
    history: deque[int] = deque(maxlen=max(1, round(full_every / step)))
    seen = activity() if activity is not None else 0
    while True:
        await asyncio.sleep(step)
        now = monotonic()
        due = now - last_full >= full_every
        if activity is not None:
            count = activity()
            busy, seen = count - seen, count
            due = due and (now - last_full >= 2 * full_every or busy <= quiet_level(history, quiet_share))
            history.append(busy)
        if due:
            release()
            last_full = monotonic()
        gc.freeze()


def quiet_level(history: deque[int] | list[int], share: float) -> int:
    """The busiest of the quietest ``share`` of the intervals in ``history``
    (at least one of them; 0 when there is none yet)."""
    if not history:
        return 0
    ordered = sorted(history)
    return ordered[max(0, math.ceil(len(ordered) * share) - 1)]


def release() -> int:
    """Unfreeze and fully collect: cyclic garbage that was frozen while alive
    is freed.  Returns the number of unreachable objects found.  Logs how long
    the loop stood still (counts and times only)."""
    started = time.perf_counter()
    gc.unfreeze()
    found = gc.collect()
    log.info("gc release: %d unreachable objects, loop stopped %.0f ms", found,
             (time.perf_counter() - started) * 1000)
    return found


def tune_gc() -> None:
    """Thousands of sockets keep ~half a million long-lived objects; CPython's
    default thresholds then run full collections that stop the event loop for
    300–450 ms every few seconds (docs/performance.md).  Freeze what exists at
    start-up and make full collections ~100x rarer.  Young collections run
    every 10,000 net allocations instead of 700: under chat load a young
    collection stopped the loop for ~4 ms (up to 19 ms) several times a
    second; at 10,000 it is one pause of ~20 ms every few seconds, a fifth of
    the total (p99 delivery at 2,000 msg/s 48 → 22 ms; docs/performance.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 1000)
