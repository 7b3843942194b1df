"""Reviews: stars, tags and text for a served order; one per order, by its
seeker; one reply by the listener.  No HTTP here.

*Served* means the service took place and is over: the order has ended and
the listener had arrived (a no-show or a cancelled order is refunded, not
reviewed; a listener who disappeared halfway can be reviewed).  "Once" is
the UNIQUE ``order_id``, not a read-then-write check, so a double submit
cannot post two reviews.  Reports of abusive reviews go to the admin queue
(:func:`miaohui.verification.service.report`); an upheld report hides the
review and takes it out of the rating.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.accounts.models import User
from miaohui.core.db import begin_write
from miaohui.core.errors import AppError, not_found
from miaohui.orders import service as orders
from miaohui.reviews.models import Review
from miaohui.safety.boundaries import scan

POSITIVE_TAGS = ("耐心", "回复快", "有边界感", "温暖", "不评判", "专业", "有帮助", "准时")
NEGATIVE_TAGS = ("回复慢", "敷衍", "说教", "不守时")
TAGS = POSITIVE_TAGS + NEGATIVE_TAGS


def review_not_found() -> AppError:
    return not_found("评价", "review")


def _clean_text(text: str, limit: int) -> str:
    text = (text or "").strip()
    if len(text) > limit:
        raise AppError("text_too_long", f"评价最多 {limit} 字", f"at most {limit} characters", 400)
    # Reviews are public: contact details are masked like in chat (no off-platform deals through reviews).
    return scan(text).text


def reviewable(order, seeker: User) -> bool:
    return order.seeker_id == seeker.id and order.ended_at is not None and order.listener_arrived_at is not None


async def create(ctx, seeker: User, order_id: str, *, stars: int, tags: list[str], text: str) -> Review:
    if seeker.role != "seeker":
        raise AppError("seekers_only", "只有倾诉者可以评价", "only seekers review", 403)
    if not 1 <= stars <= 5:
        raise AppError("bad_stars", "请选择 1 到 5 颗星", "stars must be 1–5", 400)
    bad = [t for t in tags if t not in TAGS]
    if bad or len(tags) > 6:
        raise AppError("bad_tags", "标签不在可选范围内", "unknown tags", 400)
    text = _clean_text(text, ctx.settings.review_max_chars)
    async with ctx.sessionmaker() as db:
        await begin_write(db)  # read the order, then insert: one writer at a time on SQLite
        order = await orders.get_for(db, seeker, order_id)  # 404 for anyone else's order
        if not reviewable(order, seeker):
            raise AppError("not_reviewable", "服务结束后才能评价", "only a served, finished order can be reviewed", 409)
        review = Review(order_id=order.id, seeker_id=seeker.id, listener_id=order.listener_id, stars=stars,
                        tags=list(dict.fromkeys(tags)), text=text, created_at=ctx.clock.now(), hidden=False)
        db.add(review)
        try:
            await db.commit()
        except IntegrityError:
            raise AppError("already_reviewed", "这笔订单已经评价过了", "this order already has a review", 409) from None
    return review


async def reply(ctx, listener: User, review_id: str, text: str) -> Review:
    text = _clean_text(text, ctx.settings.review_max_chars)
    if not text:
        raise AppError("text_required", "回复不能为空", "reply text is required", 400)
    async with ctx.sessionmaker() as db:
        await begin_write(db)
        review = await db.get(Review, review_id)
        if review is None or review.hidden or review.listener_id != listener.id:
            raise review_not_found()
        result = await db.execute(update(Review).where(Review.id == review_id, Review.reply.is_(None))
                                  .values(reply=text, replied_at=ctx.clock.now()))
        if result.rowcount == 0:
            raise AppError("already_replied", "你已经回复过这条评价", "already replied", 409)
        await db.commit()
        await db.refresh(review)
    return review


async def get(db: AsyncSession, review_id: str) -> Review | None:
    if not review_id or len(review_id) > 32:
        return None
    return await db.get(Review, review_id)


async def get_many(db: AsyncSession, ids: list[str]) -> dict[str, Review]:
    if not ids:
        return {}
    return {r.id: r for r in await db.scalars(select(Review).where(Review.id.in_(ids)))}


async def for_order(db: AsyncSession, order_id: str) -> Review | None:
    return await db.scalar(select(Review).where(Review.order_id == order_id))


async def hide(db: AsyncSession, review_id: str) -> None:
    """An admin upheld a report (caller's transaction)."""
    await db.execute(update(Review).where(Review.id == review_id).values(hidden=True))


async def for_listener(db: AsyncSession, listener_id: str, limit: int = 20) -> list[dict]:
    rows = list(await db.execute(
        select(Review, User.display_name).join(User, User.id == Review.seeker_id)
        .where(Review.listener_id == listener_id, ~Review.hidden)
        .order_by(Review.created_at.desc()).limit(limit)
    ))
    return [public(r, name) for r, name in rows]


def public(r: Review, seeker_name: str) -> dict:
    """Seekers stay pseudonymous in public: the first character of the nickname only."""
    return {"id": r.id, "stars": r.stars, "tags": r.tags, "text": r.text, "created_at": r.created_at,
            "author": (seeker_name[:1] + "**") if seeker_name else "匿名", "reply": r.reply,
            "replied_at": r.replied_at}


async def ratings(db: AsyncSession, listener_ids: list[str]) -> dict[str, dict]:
    """Average stars and count of visible reviews, one grouped query."""
    out = {lid: {"rating": None, "review_count": 0} for lid in listener_ids}
    if not listener_ids:
        return out
    for lid, n, total in await db.execute(
        select(Review.listener_id, func.count(), func.sum(Review.stars))
        .where(Review.listener_id.in_(listener_ids), ~Review.hidden).group_by(Review.listener_id)
    ):
        out[lid] = {"rating": round(total / n, 2) if n else None, "review_count": n}
    return out


async def tag_counts(db: AsyncSession, listener_id: str) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for tags in await db.scalars(select(Review.tags).where(Review.listener_id == listener_id, ~Review.hidden)):
        for t in tags or []:
            counts[t] = counts.get(t, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], TAGS.index(kv[0]) if kv[0] in TAGS else 99))
