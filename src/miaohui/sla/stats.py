"""Public listener statistics, computed from measured turns and orders —
never self-declared."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.orders.models import Order, Turn


def _median(values: list[int]) -> int | None:
    if not values:
        return None
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) // 2


async def listener_stats(db: AsyncSession, listener_id: str, now: datetime, days: int = 30) -> dict:
    """秒回率 (share of turns answered within the order's window) and median
    reply time over the last ``days``; hours served and completed orders
    over all time."""
    since = now - timedelta(days=days)
    rows = list(await db.execute(
        select(Turn.latency_ms, Turn.breached).where(Turn.listener_id == listener_id, Turn.asked_at >= since)
    ))
    answered = [lat for lat, _ in rows]
    within = sum(1 for _, b in rows if not b)
    done = list(await db.execute(
        select(Order.activated_at, Order.ended_at, Order.end_reason, Order.seeker_id)
        .where(Order.listener_id == listener_id, Order.status.in_(("ended", "disputed", "settled")),
               Order.activated_at.is_not(None))
    ))
    seconds = sum(max(0.0, (e - a).total_seconds()) for a, e, _, _ in done if a and e)
    completed = sum(1 for *_, r, _ in done if r == "completed")
    seekers: dict[str, int] = {}
    for *_, sid in done:
        seekers[sid] = seekers.get(sid, 0) + 1
    repeat = sum(1 for n in seekers.values() if n > 1)
    return {
        "window_days": days,
        "turns": len(rows),
        "instant_rate": round(within / len(rows), 4) if rows else None,
        "median_reply_ms": _median(answered),
        "hours_served": round(seconds / 3600, 1),
        "completed_orders": completed,
        "repeat_client_rate": round(repeat / len(seekers), 4) if seekers else None,
    }


async def many(db: AsyncSession, listener_ids: list[str], now: datetime) -> dict[str, dict]:
    """Stats for a directory page (秒回率, median reply, completed orders):
    two queries, not one per card."""
    if not listener_ids:
        return {}
    since = now - timedelta(days=30)
    turns: dict[str, list[tuple[int, bool]]] = {lid: [] for lid in listener_ids}
    for lid, lat, breached in await db.execute(
        select(Turn.listener_id, Turn.latency_ms, Turn.breached)
        .where(Turn.listener_id.in_(listener_ids), Turn.asked_at >= since)
    ):
        turns[lid].append((lat, breached))
    out = {
        lid: {"turns": len(ts), "instant_rate": round(sum(not b for _, b in ts) / len(ts), 4) if ts else None,
              "median_reply_ms": _median([lat for lat, _ in ts]), "completed_orders": 0}
        for lid, ts in turns.items()
    }
    for lid, n in await db.execute(
        select(Order.listener_id, func.count()).where(
            Order.listener_id.in_(listener_ids), Order.end_reason == "completed",
            Order.status.in_(("ended", "disputed", "settled"))).group_by(Order.listener_id)
    ):
        out[lid]["completed_orders"] = n
    return out
