"""收藏: a seeker's own short list of listeners they want to find again.

Private to the seeker: no listener, and no other seeker, can see who keeps
them or how many do (a follower count would turn listening into a
popularity contest).  Only listed listeners can be added; one who leaves
the directory drops out of the list shown, and comes back if relisted.

There is deliberately no "tell me when TA comes online" alert.  Waiting up
for one particular listener at 2 a.m. is the attachment the wellbeing rules
watch for; instead the list shows who is on duty now and each listener's
measured usual hours (:mod:`miaohui.listeners.duty`), so a seeker can plan
without being pinged, and anyone online can help in the meantime.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.core.db import begin_write, upsert
from miaohui.core.errors import AppError
from miaohui.listeners import service as listeners
from miaohui.matching.models import Favorite

MAX_FAVORITES = 100


def _not_found() -> AppError:
    return AppError("not_found", "倾听师不存在", "listener not found", 404)


async def add(db: AsyncSession, seeker_id: str, listener_id: str, now: datetime) -> int:
    """Keep ``listener_id``; idempotent.  Returns how many the seeker keeps."""
    await begin_write(db)  # SQLite: the count and the insert as one writer
    if await listeners.get_listed(db, listener_id) is None:
        raise _not_found()
    count = await _count(db, seeker_id)
    kept = await db.scalar(select(Favorite.listener_id).where(
        Favorite.seeker_id == seeker_id, Favorite.listener_id == listener_id))
    if kept is not None:
        return count
    if count >= MAX_FAVORITES:
        raise AppError("favorites_full", f"最多收藏 {MAX_FAVORITES} 位倾听师，先取消一些再收藏",
                       f"at most {MAX_FAVORITES} favourites", 409)
    result = await db.execute(
        upsert(db, Favorite.__table__)
        .values(seeker_id=seeker_id, listener_id=listener_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["seeker_id", "listener_id"])
    )
    return count + (result.rowcount or 0)


async def remove(db: AsyncSession, seeker_id: str, listener_id: str) -> int:
    """Stop keeping ``listener_id``; idempotent.  Returns how many are left."""
    await db.execute(delete(Favorite).where(Favorite.seeker_id == seeker_id, Favorite.listener_id == listener_id))
    return await _count(db, seeker_id)


async def _count(db: AsyncSession, seeker_id: str) -> int:
    return await db.scalar(select(func.count()).select_from(Favorite).where(Favorite.seeker_id == seeker_id)) or 0


async def ids(db: AsyncSession, seeker_id: str) -> list[str]:
    """The seeker's favourites, most recently added first."""
    return list(await db.scalars(
        select(Favorite.listener_id).where(Favorite.seeker_id == seeker_id)
        .order_by(Favorite.created_at.desc(), Favorite.listener_id)
    ))


async def export_for(db: AsyncSession, user_id: str) -> list[dict]:
    rows = await db.execute(
        select(Favorite.listener_id, Favorite.created_at).where(Favorite.seeker_id == user_id)
        .order_by(Favorite.created_at)
    )
    return [{"listener_id": lid, "added_at": at} for lid, at in rows]


async def forget(db: AsyncSession, user_id: str) -> None:
    """A closing account: its own list, and its place in others' lists."""
    await db.execute(delete(Favorite).where((Favorite.seeker_id == user_id) | (Favorite.listener_id == user_id)))
