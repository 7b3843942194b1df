"""What the once-a-minute on-duty tick (``listeners.duty``) costs chat, with
a thousand listeners on duty, against the tick as it was written before, in
the same run.

Run from the repository root::

    .venv/bin/python bench/duty_tick.py                  # 1,000 listeners, 28 days of history
    .venv/bin/python bench/duty_tick.py --listeners 3000 --rounds 9

Prints ONE JSON object.  Not a test.  A SQLite database in a temporary
directory gets the server's schema (its migrations), ``--listeners``
approved listeners, all 接单中 with a socket open, and ``--history-days`` of
on-duty rows (eight hours a day each), so the table is as large as a month
of such a platform makes it.  Then, in turns, each ``--rounds`` times:

* ``tick``: :func:`miaohui.listeners.duty.sample` as the server runs it;
* ``tick_one_statement``, the baseline: the same tick as it was until
  session 32, every row in one multi-row ``VALUES`` upsert in one
  transaction;
* ``prune``: the hourly ``DELETE`` of rows older than the window (with
  ``hour_start``'s index), and ``prune_unindexed``, the baseline: the same
  on a copy of the database without that index.

Each is measured the way a chat message would feel it:

* ``loop_stall_ms``: the longest the event loop went without running a
  1 ms heartbeat while the tick ran (no socket is read meanwhile);
* ``lock_wait_ms``: the longest a probe process, taking SQLite's write lock
  every millisecond as chat's message batches do (``BEGIN IMMEDIATE``,
  ``COMMIT``, polling when it is held), waited for it;
* ``wall_ms``: the tick's own duration.

The report gives each figure's median over rounds, and the baseline's over
this run's (``ratios``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def seed(path: str, listeners: int, history_days: int, now: datetime) -> None:
    from sqlalchemy import create_engine

    from miaohui.accounts.models import User
    from miaohui.core.db import new_id
    from miaohui.listeners.models import DutyHour, ListenerProfile
    from miaohui.migrate import upgrade

    upgrade(f"sqlite+aiosqlite:///{path}")
    users, profiles, hours = [], [], []
    full = (1 << 60) - 1
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=history_days)
    for i in range(listeners):
        uid = new_id()
        users.append({"id": uid, "username": f"listener{i:05d}", "password_hash": "-", "display_name": f"倾听师{i}",
                      "role": "listener", "disabled": False, "created_at": now})
        profiles.append({"user_id": uid, "headline": "陪你聊聊", "bio": "", "topics": ["情感"], "languages": ["普通话"],
                         "qualifications": [], "price_per_hour_fen": 5000, "status": "approved", "accepting": True,
                         "created_at": now, "approved_at": now, "approved_by": None})
        start = i % 24  # eight hours a day, each listener from a different hour
        for d in range(history_days):
            for h in range(8):
                hours.append({"listener_id": uid, "hour_start": first + timedelta(days=d, hours=start + h),
                              "minutes": full})
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.execute(User.__table__.insert(), users)
            conn.execute(ListenerProfile.__table__.insert(), profiles)
            if hours:
                conn.execute(DutyHour.__table__.insert(), hours)
    finally:
        engine.dispose()


def _probe(path: str, worst, stop) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=0")
    while not stop.is_set():
        t0 = time.perf_counter()
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError:
                time.sleep(0.0002)
        conn.execute("COMMIT")
        waited = time.perf_counter() - t0
        if waited > worst.value:
            worst.value = waited
        time.sleep(0.001)
    conn.close()


class LockProbe:
    """A process of its own (no GIL shared with the tick) that takes SQLite's
    write lock every millisecond, as chat's writer does, and keeps the
    longest wait for it since :meth:`reset`."""

    def __init__(self, path: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.worst = ctx.Value("d", 0.0, lock=False)
        self.stop = ctx.Event()
        self.proc = ctx.Process(target=_probe, args=(path, self.worst, self.stop), daemon=True)

    def start(self) -> None:
        self.proc.start()

    def join(self) -> None:
        self.proc.join(5)

    def reset(self) -> float:
        worst, self.worst.value = self.worst.value, 0.0
        return worst


async def measured(coro_fn, probe: LockProbe) -> dict:
    """Run ``coro_fn()`` beside a 1 ms heartbeat; the longest beat gap is what
    a socket waiting to be read would have waited."""
    gaps = []
    done = asyncio.Event()

    async def beat() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    hb = asyncio.create_task(beat())
    await asyncio.sleep(0.02)
    probe.reset()
    gaps.clear()
    t0 = time.perf_counter()
    await coro_fn()
    wall = time.perf_counter() - t0
    await asyncio.sleep(0.01)
    done.set()
    await hb
    return {"loop_stall_ms": round(max(gaps) * 1000, 2), "lock_wait_ms": round(probe.reset() * 1000, 2),
            "wall_ms": round(wall * 1000, 2)}


async def one_statement_tick(ctx) -> None:
    """The tick as it was before session 32: one multi-row VALUES upsert of
    every listener on duty, in one transaction."""
    from miaohui.core.db import begin_write, upsert
    from miaohui.listeners import duty
    from miaohui.listeners.models import DutyHour

    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        on = await duty.on_duty_now(db, ctx.presence)
        await db.commit()
        await begin_write(db)
        stmt = upsert(db, DutyHour.__table__).values(
            [{"listener_id": i, "hour_start": duty.hour_of(now), "minutes": 1 << now.minute} for i in sorted(on)])
        stmt = stmt.on_conflict_do_update(
            index_elements=["listener_id", "hour_start"],
            set_={"minutes": DutyHour.__table__.c.minutes.op("|")(stmt.excluded.minutes)})
        await db.execute(stmt)
        await db.commit()


class Ctx:
    def __init__(self, url: str, now: datetime) -> None:
        from miaohui.chat.presence import LocalPresence
        from miaohui.clock import FakeClock
        from miaohui.core.db import make_engine, make_sessionmaker

        self.clock = FakeClock(now)
        self.engine = make_engine(url)
        self.sessionmaker = make_sessionmaker(self.engine, self.clock)
        self.presence = LocalPresence()


NOW = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)


async def run(args, path: str, unindexed: str, seeded_s: float) -> dict:
    from sqlalchemy import select

    from miaohui.core.db import begin_write
    from miaohui.listeners import duty
    from miaohui.listeners.models import ListenerProfile

    now = NOW
    rows = {"tick": [], "tick_one_statement": [], "prune": [], "prune_unindexed": []}
    ctxs = {}
    for name, p in (("a", path), ("b", unindexed)):
        ctx = ctxs[name] = Ctx(f"sqlite+aiosqlite:///{p}", now)
        async with ctx.sessionmaker() as db:
            ids = list(await db.scalars(select(ListenerProfile.user_id)))
        for i in ids:
            await ctx.presence.set(i, "c", "online")
    probes = {name: LockProbe(p) for name, p in (("a", path), ("b", unindexed))}
    for p in probes.values():
        p.start()
    a, b = ctxs["a"], ctxs["b"]
    for r in range(args.rounds):
        for c in (a, b):
            c.clock.advance(minutes=1)  # a new minute: every row's mask changes
        pair = [("tick", lambda: duty.sample(a)), ("tick_one_statement", lambda: one_statement_tick(a))]
        for name, fn in (pair if r % 2 == 0 else pair[::-1]):
            rows[name].append(await measured(fn, probes["a"]))
            a.clock.advance(minutes=1)
        # The prune: rows older than the window, an hour at a time (the
        # first round takes the history's oldest hour).
        cut = duty.hour_of(now) - timedelta(days=args.history_days) + timedelta(hours=r + 1)
        for name, c, probe in (("prune", a, probes["a"]), ("prune_unindexed", b, probes["b"])):
            async def prune(c=c, cut=cut):
                async with c.sessionmaker() as db:
                    await begin_write(db)
                    await duty.prune(db, cut + timedelta(days=duty.WINDOW_DAYS + 1))
                    await db.commit()
            rows[name].append(await measured(prune, probe))
    for p in probes.values():
        p.stop.set()
        p.join()
    for c in ctxs.values():
        await c.engine.dispose()
    with sqlite3.connect(path) as c:
        (duty_rows,) = c.execute("SELECT count(*) FROM listener_duty").fetchone()

    def med(name: str, key: str) -> float:
        return round(statistics.median(x[key] for x in rows[name]), 2)

    keys = ("loop_stall_ms", "lock_wait_ms", "wall_ms")
    summary = {name: {k: med(name, k) for k in keys} for name in rows}
    ratios = {f"{new}_over_{old}": {k: round(med(new, k) / med(old, k), 3) if med(old, k) else None for k in keys}
              for new, old in (("tick", "tick_one_statement"), ("prune", "prune_unindexed"))}
    return {"config": {"listeners": args.listeners, "history_days": args.history_days, "rounds": args.rounds,
                       "seeded_s": round(seeded_s, 1), "duty_rows_at_end": duty_rows},
            "median": summary, "ratios": ratios, "rounds": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listeners", type=int, default=1000)
    ap.add_argument("--history-days", type=int, default=28)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dir", default=None, help="where the temporary database goes (default: the system's temp)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="duty-tick-", dir=args.dir)
    try:
        path = str(Path(tmp) / "a.db")
        t0 = time.perf_counter()
        seed(path, args.listeners, args.history_days, NOW)
        seeded_s = time.perf_counter() - t0
        unindexed = str(Path(tmp) / "b.db")
        shutil.copy(path, unindexed)
        with sqlite3.connect(unindexed) as c:
            c.execute("DROP INDEX ix_listener_duty_hour_start")
        out = asyncio.run(run(args, path, unindexed, seeded_s))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
