"""心情: how a seeker felt before and after a paid sitting.

Stars say whether the seeker liked the listener; this asks whether talking
*helped*: one tap at the start of an order (在聊之前) and one on its receipt
once it is over (聊完后), five words from 很低落 to 挺好的.  Both are optional
and can be changed.  What it gives back:

* to the seeker, on 我的倾诉习惯, how their mood moved over the month's
  sittings, and a word when several sittings in a row did not help
  (``habits.nudges``: paying on without it helping is the pattern the brief's
  5,000-of-9,000 client was in);
* to everyone, on a listener's profile, the share of sittings after which
  the seeker felt better than before (90 days, once there are
  :data:`OUTCOME_MIN` of them): a measure of the service itself, beside the
  measured reply speed.

A listener never sees a single answer; the order summary that reaches both
sides carries none.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, and_, case, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from miaohui.accounts.models import User
from miaohui.clock import utc
from miaohui.core.db import begin_write, upsert
from miaohui.core.errors import AppError
from miaohui.wellbeing.models import MoodCheck

SCORES = {1: "很低落", 2: "有点低落", 3: "一般", 4: "还可以", 5: "挺好的"}
PHASES = ("before", "after")
ASK_BEFORE_MINUTES = 10  # past this into a sitting, "how were you before?" is no longer worth a tap
OUTCOME_DAYS = 90
OUTCOME_MIN = 5  # sittings with both answers before a listener's share is shown


async def record(db: AsyncSession, seeker: User, order_id: str, phase: str, score: int, now: datetime) -> dict:
    """Answer (or change) one phase for one of the seeker's own orders."""
    if phase not in PHASES:
        raise AppError("bad_phase", "只能记录聊之前或聊完后的心情", "phase must be before or after", 400)
    if score not in SCORES:
        raise AppError("bad_score", "心情请选 1 到 5", "score must be 1 to 5", 400)
    # orders.service calls wellbeing on every purchase: imported here to keep that one-way at import time.
    from miaohui.orders import service as orders

    await begin_write(db)  # read the order, then write: on SQLite as a writer from the start
    order = await orders.get_for(db, seeker, order_id)  # a seeker reads only their own orders
    if order.seeker_id != seeker.id:
        raise orders.order_not_found()
    if phase == "before" and order.status not in ("scheduled", "active"):
        raise AppError("mood_too_late", "这次服务已经结束了，可以告诉我们聊完后的心情", "the order is over", 409)
    if phase == "after" and (order.status in ("scheduled", "active") or order.listener_arrived_at is None):
        raise AppError("mood_too_early", "服务结束后才能记录聊完后的心情", "the order is not over", 409)
    stmt = upsert(db, MoodCheck.__table__).values(
        order_id=order.id, phase=phase, seeker_id=seeker.id, listener_id=order.listener_id, score=score,
        answered_at=now)
    await db.execute(stmt.on_conflict_do_update(index_elements=["order_id", "phase"],
                                                set_={"score": score, "answered_at": now}))
    return await for_order(db, seeker.id, order.id)


async def ask_before(db: AsyncSession, seeker_id: str, orders: list, now: datetime) -> str | None:
    """Of the conversation's running orders (``orders.service``'s), the one to
    ask "how are you before we start?" about: the seeker's own, begun within
    :data:`ASK_BEFORE_MINUTES`, not an extension (the sitting began earlier),
    the seeker not yet talking in it (no turn, no message waiting), not
    answered yet."""
    fresh = [o for o in orders if o.seeker_id == seeker_id and o.status == "active" and o.extends_order_id is None
             and o.activated_at is not None and o.turns == 0 and o.pending_since is None
             and now - utc(o.activated_at) <= timedelta(minutes=ASK_BEFORE_MINUTES)]
    for o in fresh:
        if (await for_order(db, seeker_id, o.id))["before"] is None:
            return o.id
    return None


async def for_order(db: AsyncSession, seeker_id: str, order_id: str) -> dict:
    rows = (await db.execute(select(MoodCheck.phase, MoodCheck.score).where(
        MoodCheck.order_id == order_id, MoodCheck.seeker_id == seeker_id))).all()
    got = {phase: score for phase, score in rows}
    return {p: got.get(p) for p in PHASES} | {"labels": SCORES}


def _pairs(where) -> Select:
    """(order, before, after, answered_at of after) for sittings with both answers."""
    before, after = aliased(MoodCheck), aliased(MoodCheck)
    return (select(after.order_id, before.score.label("before"), after.score.label("after"),
                   after.answered_at, after.listener_id)
            .join(before, and_(before.order_id == after.order_id, before.phase == "before"))
            .where(after.phase == "after", where(after)))


async def recent_pairs(db: AsyncSession, seeker_id: str, since: datetime) -> list[tuple[int, int]]:
    """The seeker's (before, after) pairs answered since ``since``, oldest first."""
    q = _pairs(lambda a: and_(a.seeker_id == seeker_id, a.answered_at >= since))
    rows = (await db.execute(q.order_by(q.selected_columns.answered_at))).all()
    return [(b, a) for _, b, a, _, _ in rows]


async def outcomes(db: AsyncSession, listener_ids: list[str], now: datetime) -> dict[str, dict]:
    """Per listener, over :data:`OUTCOME_DAYS`: sittings with both answers and
    those after which the seeker felt better.  ``shown`` only from
    :data:`OUTCOME_MIN` pairs: fewer would say more about one seeker than
    about the listener."""
    if not listener_ids:
        return {}
    since = now - timedelta(days=OUTCOME_DAYS)
    q = _pairs(lambda a: and_(a.listener_id.in_(listener_ids), a.answered_at >= since)).subquery()
    rows = (await db.execute(
        select(q.c.listener_id, func.count(), func.sum(case((q.c.after > q.c.before, 1), else_=0)))
        .group_by(q.c.listener_id))).all()
    out = {}
    for lid, n, better in rows:
        better = int(better or 0)
        out[lid] = {"pairs": n, "better": better, "better_pct": round(100 * better / n),
                    "shown": n >= OUTCOME_MIN}
    return out


async def export_for(db: AsyncSession, seeker_id: str) -> list[dict]:
    rows = (await db.execute(select(MoodCheck).where(MoodCheck.seeker_id == seeker_id)
                             .order_by(MoodCheck.answered_at))).scalars()
    return [{"order_id": m.order_id, "phase": m.phase, "score": m.score, "label": SCORES[m.score],
             "answered_at": m.answered_at.isoformat()} for m in rows]


async def forget(db: AsyncSession, user_id: str) -> None:
    """A closed account's answers go; so do the answers about a closed
    listener's sittings (the share they fed is shown for no one now)."""
    await db.execute(delete(MoodCheck).where(or_(MoodCheck.seeker_id == user_id, MoodCheck.listener_id == user_id)))
