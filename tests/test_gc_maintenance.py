"""The event loop's GC maintenance (miaohui.core.gcpolicy.gc_maintenance): live objects
are frozen out of full collections, and cyclic garbage that was frozen while
alive is still freed when the frozen set is released."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

from miaohui.config import Settings
from miaohui.core.gcpolicy import gc_maintenance, quiet_level, release


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


STEP = 1 / 64  # an interval, real and fake (exact in binary, so the fake clock adds up exactly)


class _Steps:
    """A fake clock and activity counter for ``gc_maintenance``.  Each of its
    intervals reads the clock once (one ``STEP`` later than the last reading)
    and the counter once (grown by that interval's entry in ``busy``: entry 0
    is the reading at the start, entry k the k-th interval), so the interval
    the release lands in does not depend on the machine's speed."""

    def __init__(self, busy: list[int]) -> None:
        self.busy = busy
        self.readings = 0  # of the clock
        self.count = 0
        self.interval = -1  # the counter's latest reading: the interval it closed
        self.released_at: list[int] = []
        self.passed = lambda: None  # called at every clock reading

    def monotonic(self) -> float:
        self.readings += 1
        self.passed()
        return (self.readings - 1) * STEP

    def activity(self) -> int:
        self.interval += 1
        if self.interval < len(self.busy):
            self.count += self.busy[self.interval]
        return self.count


def _run_steps(monkeypatch, steps: _Steps, intervals: int, *, activity: bool = True) -> None:
    """Ten intervals a period; run until ``intervals`` have passed (clock readings without ``activity``)."""
    import miaohui.core.gcpolicy as gcpolicy

    def fake_release() -> int:
        steps.released_at.append(steps.interval if activity else steps.readings - 1)
        return 0

    monkeypatch.setattr(gcpolicy, "release", fake_release)

    async def scenario() -> None:
        enough = asyncio.Event()

        def passed() -> None:
            if (steps.interval if activity else steps.readings) >= intervals:
                enough.set()

        steps.passed = passed
        task = asyncio.create_task(
            gc_maintenance(full_every=10 * STEP, freeze_every=STEP, activity=steps.activity if activity else None,
                           monotonic=steps.monotonic)
        )
        await asyncio.wait_for(enough.wait(), 30)
        await asyncio.sleep(STEP * 2)  # the interval that reached it finishes
        task.cancel()

    try:
        asyncio.run(scenario())
    finally:
        gc.unfreeze()


# A day of ten intervals, busiest mid-day, quietest in its second interval.
DAY = [5, 0, 40, 80, 100, 100, 90, 60, 30, 10]


def test_the_release_waits_for_the_quiet_hour_of_the_day(monkeypatch):
    # Due at interval 10, the day's last (10 messages); the quietest interval of
    # the last day had none, and so does interval 12: the release waits for it.
    steps = _Steps([0] + DAY * 3)
    _run_steps(monkeypatch, steps, intervals=25)
    assert steps.released_at == [12, 22]


def test_the_release_waits_at_most_one_more_period(monkeypatch):
    # Ever busier, never quiet: the release comes anyway after twice the period.
    steps = _Steps(list(range(40)))
    _run_steps(monkeypatch, steps, intervals=25)
    assert steps.released_at == [20]


def test_without_activity_the_release_comes_when_due(monkeypatch):
    # The clock is read at the start (0), once an interval, and once after each
    # release: due at reading 10, then ten intervals after reading 11.
    steps = _Steps([])
    _run_steps(monkeypatch, steps, intervals=25, activity=False)
    assert steps.released_at == [10, 21]


def test_quiet_level_is_the_busiest_of_the_quietest_share():
    assert quiet_level([], 0.1) == 0
    assert quiet_level([5, 1, 9, 3, 7, 2, 8, 4, 6, 0], 0.1) == 0
    assert quiet_level([5, 1, 9, 3, 7, 2, 8, 4, 6, 0], 0.2) == 1
    assert quiet_level([5, 1, 9, 3, 7, 2, 8, 4, 6, 0], 0.5) == 4
    assert quiet_level([3], 0.1) == 3


def test_the_release_frees_frozen_cycles_and_says_how_long_it_took(caplog):
    node = _Node()
    node.me = node
    ref = weakref.ref(node)
    gc.freeze()
    try:
        del node
        gc.collect()
        assert ref() is not None
        with caplog.at_level("INFO", logger="miaohui.gc"):
            found = release()
        assert ref() is None
        assert found >= 1
        assert "gc release:" in caplog.text and "ms" in caplog.text
    finally:
        gc.unfreeze()
