"""The event loop's GC maintenance (miaohui.core.gcpolicy.gc_maintenance): live objects
are frozen out of full collections, and cyclic garbage that was frozen while
alive is still freed when the frozen set is released."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

from miaohui.config import Settings
from miaohui.core.gcpolicy import gc_maintenance


class _Node:
    pass


def test_frozen_cycles_survive_ordinary_collections_and_are_freed_at_the_release():
    async def scenario() -> None:
        node = _Node()
        node.me = node  # a reference cycle: only the cycle collector frees it
        ref = weakref.ref(node)
        task = asyncio.create_task(gc_maintenance(freeze_every=0.05, full_every=1.0))
        try:
            started = time.monotonic()
            await asyncio.sleep(0.2)  # a few freezes
            assert gc.get_freeze_count() > 0
            del node
            gc.collect()  # a full collection does not look at frozen objects
            assert ref() is not None
            for _ in range(500):  # up to 10 s
                if ref() is None:
                    break
                await asyncio.sleep(0.02)
            assert ref() is None, "the frozen cycle was never released"
            assert time.monotonic() - started >= 0.9  # not before full_every
        finally:
            task.cancel()

    try:
        asyncio.run(scenario())
    finally:
        gc.unfreeze()


def test_the_release_interval_is_a_setting(monkeypatch):
    assert Settings().gc_full_every_seconds == 86_400
    monkeypatch.setenv("MIAOHUI_GC_FULL_EVERY_SECONDS", "3600")
    assert Settings().gc_full_every_seconds == 3600
