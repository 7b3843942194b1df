"""Measured on-duty hours: when a listener is really there.

A listing's hours are measured, like its reply speed, not declared.  Once a
minute each server process notes which approved listeners are on duty — a
socket open (online or away) and 接单中, the same test as the directory's
"在线" — by setting that minute's bit in the listener's row for the UTC hour.
Setting a bit is idempotent, so every process may sample at once (with Redis
they all see the same presence) and a minute still counts once; a missed
tick loses a minute, it never invents one.

What is public is the shape, never the trail: for each hour of the day
(platform time) the share of the last :data:`WINDOW_DAYS` days' minutes in
it that the listener was on duty, the ranges where that share is at least
:data:`USUAL_SHARE` (常在线 22:00–02:00), and the hours on duty in the last
seven days.  No day's presence is shown on its own, and rows older than the
window are deleted.  A seeker at 2 a.m. learns whom to expect awake; a
listener sees the same figures about themselves in the console.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, BigInteger, String, bindparam, cast, delete, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.accounts.models import User
from miaohui.core.db import UTCDateTime, begin_write, upsert, upsert_for
from miaohui.listeners.models import DutyHour, ListenerProfile

log = logging.getLogger(__name__)

WINDOW_DAYS = 28
USUAL_SHARE = 0.25  # on duty at least a quarter of this hour's minutes over the window: "usually here"
MIN_MINUTES = 120  # less than two hours on duty in the window, or
MIN_DAYS = 3  # fewer than three days listed: too little to speak of a habit
HOUR = timedelta(hours=1)


def hour_of(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


async def on_duty_now(db: AsyncSession, presence) -> list[str]:
    """Approved listeners who are 接单中 with a socket open right now."""
    ids = list(await db.scalars(
        select(ListenerProfile.user_id)
        .join(User, User.id == ListenerProfile.user_id)
        .where(ListenerProfile.status == "approved", ListenerProfile.accepting, ~User.disabled)
    ))
    if not ids:
        return []
    statuses = await presence.statuses(ids)
    return [i for i in ids if statuses[i] != "offline"]


async def record(db: AsyncSession, listener_ids: list[str], now: datetime) -> None:
    """Mark minute ``now`` as on duty for ``listener_ids`` (idempotent), in
    one statement whatever their number.

    The ids travel as one JSON array that the database unpacks itself
    (``json_each`` / ``json_array_elements_text``), so the statement's text
    is the same for ten listeners or ten thousand: compiled once, then
    nothing per row on the event loop, and one step of SQLite.  The tick
    used to be one multi-row ``VALUES`` upsert, which SQLAlchemy compiles
    afresh for every row count on the loop: with 1,000 listeners on duty
    that stopped chat for 100–170 ms once a minute (docs/performance.md,
    session 32)."""
    if not listener_ids:
        return
    await db.execute(_record_statement(db.get_bind().dialect.name),
                     {"ids": json.dumps(sorted(listener_ids)), "hour": hour_of(now), "bit": 1 << now.minute})


@functools.cache
def _record_statement(dialect: str):
    ids = bindparam("ids", type_=String)
    if dialect == "postgresql":
        unpacked = func.json_array_elements_text(cast(ids, JSON)).table_valued("value")
    else:
        unpacked = func.json_each(ids).table_valued("value")
    rows = select(unpacked.c.value, bindparam("hour", type_=UTCDateTime), bindparam("bit", type_=BigInteger))
    # SQLite needs a WHERE in an INSERT … SELECT … ON CONFLICT (else ON reads as a join's).
    return _or_minutes(upsert_for(dialect, DutyHour.__table__).from_select(
        ["listener_id", "hour_start", "minutes"], rows.where(true())))


def _or_minutes(stmt):
    """On a listener-hour already recorded, OR the new minutes into it."""
    return stmt.on_conflict_do_update(
        index_elements=["listener_id", "hour_start"],
        set_={"minutes": DutyHour.__table__.c.minutes.op("|")(stmt.excluded.minutes)},
    )


async def merge(db: AsyncSession, rows: list[tuple[str, datetime, int]]) -> None:
    """OR ``(listener_id, hour_start, minutes mask)`` into the record (the
    demo's history and tests: any hours and masks, one parameter set each)."""
    if not rows:
        return
    await db.execute(_or_minutes(upsert(db, DutyHour.__table__)),
                     [{"listener_id": i, "hour_start": h, "minutes": m} for i, h, m in rows])


async def prune(db: AsyncSession, now: datetime) -> int:
    result = await db.execute(
        delete(DutyHour).where(DutyHour.hour_start < hour_of(now) - timedelta(days=WINDOW_DAYS + 1))
    )
    return result.rowcount


async def sample(ctx) -> int:
    """One tick: record who is on duty this minute; return how many.

    The write is a plain (deferred) transaction, not ``begin_write``'s
    ``BEGIN IMMEDIATE``: its only statement is the write, so SQLite takes
    its one write lock at that statement and gives it back at the COMMIT
    right after — chat's message batches wait for that lock, and must not
    wait behind a transaction that is itself waiting for a busy event loop
    between its steps."""
    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        on = await on_duty_now(db, ctx.presence)
        if on:
            await db.commit()  # end the read: the write is a transaction of its own
            await record(db, on, now)
            await db.commit()
    return len(on)


class DutySampler:
    """The per-process task that calls :func:`sample` every
    ``duty_sample_seconds`` and prunes old rows once an hour."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="duty-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        pruned_at: datetime | None = None
        while True:
            await asyncio.sleep(self.ctx.settings.duty_sample_seconds)
            try:
                await sample(self.ctx)
                hour = hour_of(self.ctx.clock.now())
                if pruned_at != hour:
                    async with self.ctx.sessionmaker() as db:
                        await begin_write(db)
                        await prune(db, hour)
                        await db.commit()
                    pruned_at = hour
            except Exception:
                log.exception("duty sample failed")


# ------------------------------------------------------------------- reading


def _local_minutes(rows, tz: ZoneInfo) -> list[int]:
    """Minutes on duty per local hour of the day.  A zone whose offset is not
    whole hours splits each UTC hour's mask between two local hours."""
    by_hour = [0] * 24
    for hour_start, mask in rows:
        local = hour_start.astimezone(tz)
        shift = local.minute  # 0, or 30 / 45 in zones like Asia/Kolkata
        first = mask & ((1 << (60 - shift)) - 1)
        by_hour[local.hour] += first.bit_count()
        if shift:
            by_hour[(local.hour + 1) % 24] += (mask >> (60 - shift)).bit_count()
    return by_hour


def _ranges(shares: list[float]) -> list[str]:
    """Runs of hours at or above :data:`USUAL_SHARE`, going round midnight:
    ``["22:00–02:00", "12:00–13:00"]``, longest first, then earliest."""
    hot = [s >= USUAL_SHARE for s in shares]
    if all(hot):
        return ["全天"]
    if not any(hot):
        return []
    start = hot.index(False)  # begin scanning just after a quiet hour, so no run is cut at midnight
    runs: list[tuple[int, int]] = []
    run: int | None = None
    for k in range(1, 25):
        h = (start + k) % 24
        if hot[h] and run is None:
            run = h
        elif not hot[h] and run is not None:
            runs.append((run, h))
            run = None
    runs.sort(key=lambda r: (-((r[1] - r[0]) % 24), r[0]))
    return [f"{a:02d}:00–{b or 24:02d}:00" for a, b in runs]  # ending at midnight: 22:00–24:00


def summarize(rows, now: datetime, tz: ZoneInfo) -> dict:
    """The public figures from ``(hour_start, mask)`` rows of one listener.

    The window starts at the first hour on record when that is later than
    :data:`WINDOW_DAYS` ago, so a new listener's first week of nights is not
    diluted over four weeks (and says 刚开始 until :data:`MIN_DAYS`)."""
    start = hour_of(now) - timedelta(days=WINDOW_DAYS) + HOUR
    rows = [(h, m) for h, m in rows if start <= h <= now]
    if rows:
        start = max(start, min(h for h, _ in rows))
    days = max(1, math.ceil((hour_of(now) + HOUR - start) / timedelta(days=1)))
    minutes = _local_minutes(rows, tz)
    shares = [round(m / (60 * days), 3) for m in minutes]
    enough = sum(minutes) >= MIN_MINUTES and days >= MIN_DAYS
    week = hour_of(now) - timedelta(days=7) + HOUR
    return {
        "days": days,
        "by_hour": shares,
        "usual": _ranges(shares) if enough else [],
        "enough": enough,
        "hours_7d": round(sum(m.bit_count() for h, m in rows if h >= week) / 60, 1),
    }


async def usual_hours_many(db: AsyncSession, ids: list[str], now: datetime, tz: str) -> dict[str, dict]:
    """:func:`summarize` for each listener in ``ids``, in one query."""
    if not ids:
        return {}
    floor = hour_of(now) - timedelta(days=WINDOW_DAYS)
    rows = await db.execute(
        select(DutyHour.listener_id, DutyHour.hour_start, DutyHour.minutes)
        .where(DutyHour.listener_id.in_(ids), DutyHour.hour_start > floor, DutyHour.hour_start <= now)
    )
    per: dict[str, list] = {i: [] for i in ids}
    for lid, h, m in rows:
        per[lid].append((h, m))
    zone = ZoneInfo(tz)
    return {i: summarize(per[i], now, zone) for i in ids}


def _minutes_in(masks: dict[datetime, int], start: datetime) -> int:
    """Minutes on duty in ``[start, start + 1 h)`` (``start`` may fall mid-hour in UTC)."""
    h0 = hour_of(start)
    shift = start.minute
    n = (masks.get(h0, 0) >> shift).bit_count()
    if shift:
        n += (masks.get(h0 + HOUR, 0) & ((1 << shift) - 1)).bit_count()
    return n


async def usual_now_many(db: AsyncSession, ids: list[str], now: datetime, tz: str) -> dict[str, bool]:
    """Whether each listener is usually on duty at this hour of the day: at
    least :data:`USUAL_SHARE` of this local hour's minutes on the previous
    days of the window (from their first hour on record, at least
    :data:`MIN_DAYS` of them).  Cheap enough for every card: at most two
    rows per listener per day."""
    if not ids:
        return {}
    zone = ZoneInfo(tz)
    here = now.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    # The same wall-clock hour on each previous day (zoneinfo arithmetic keeps the wall time across DST).
    starts = [(here - timedelta(days=k)).astimezone(now.tzinfo) for k in range(1, WINDOW_DAYS + 1)]
    hours = {hour_of(t) for t in starts} | {hour_of(t) + HOUR for t in starts if t.minute}
    floor = hour_of(now) - timedelta(days=WINDOW_DAYS)
    firsts = dict((await db.execute(
        select(DutyHour.listener_id, func.min(DutyHour.hour_start))
        .where(DutyHour.listener_id.in_(ids), DutyHour.hour_start > floor)
        .group_by(DutyHour.listener_id)
    )).all())
    masks: dict[str, dict[datetime, int]] = {i: {} for i in ids}
    for lid, h, m in await db.execute(
        select(DutyHour.listener_id, DutyHour.hour_start, DutyHour.minutes)
        .where(DutyHour.listener_id.in_(ids), DutyHour.hour_start.in_(sorted(hours)))
    ):
        masks[lid][h] = m
    out = {}
    for i in ids:
        first = firsts.get(i)
        days = [t for t in starts if first is not None and hour_of(t) + HOUR > first]
        on = sum(_minutes_in(masks[i], t) for t in days)
        out[i] = len(days) >= MIN_DAYS and on >= USUAL_SHARE * 60 * len(days)
    return out


async def export_for(db: AsyncSession, user_id: str) -> list[dict]:
    rows = await db.execute(
        select(DutyHour.hour_start, DutyHour.minutes)
        .where(DutyHour.listener_id == user_id).order_by(DutyHour.hour_start)
    )
    return [{"hour_start": h, "minutes_on_duty": m.bit_count()} for h, m in rows]


async def forget(db: AsyncSession, user_id: str) -> None:
    await db.execute(delete(DutyHour).where(DutyHour.listener_id == user_id))
