"""The server's garbage-collection policy: thousands of long-lived sockets
must not make the event loop stop for collections (docs/performance.md).

Its own module so that the benchmark's baseline relay can run under the
same policy without importing the application (bench/chat_latency.py).
"""

from __future__ import annotations

import asyncio
import gc


async def gc_maintenance(full_every: float, freeze_every: float = 30.0) -> None:
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
    """
    loop = asyncio.get_running_loop()
    last_full = loop.time()
    while True:
        await asyncio.sleep(min(freeze_every, full_every))
        if loop.time() - last_full >= full_every:
            gc.unfreeze()
            gc.collect()
            last_full = loop.time()
        gc.freeze()


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
