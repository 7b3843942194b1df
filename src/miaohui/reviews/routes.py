"""Reviews API: thin — the rules live in reviews.service."""

from __future__ import annotations

from fastapi import APIRouter

from miaohui.accounts.deps import DB, Ctx, CurrentUser, ListenerUser, SeekerUser
from miaohui.core.errors import not_found
from miaohui.listeners import service as listeners
from miaohui.reviews import service
from miaohui.reviews.schemas import ReplyIn, ReviewIn
from miaohui.verification import service as trust
from miaohui.verification.schemas import ReasonIn

router = APIRouter(prefix="/api", tags=["reviews"])


def _out(r) -> dict:
    return {"id": r.id, "order_id": r.order_id, "listener_id": r.listener_id, "stars": r.stars, "tags": r.tags,
            "text": r.text, "created_at": r.created_at, "reply": r.reply, "replied_at": r.replied_at}


@router.get("/reviews/tags")
async def tags() -> dict:
    return {"positive": list(service.POSITIVE_TAGS), "negative": list(service.NEGATIVE_TAGS)}


@router.post("/orders/{order_id}/review", status_code=201)
async def create(order_id: str, body: ReviewIn, ctx: Ctx, user: SeekerUser) -> dict:
    return _out(await service.create(ctx, user, order_id, stars=body.stars, tags=body.tags, text=body.text))


@router.get("/listeners/{listener_id}/reviews")
async def for_listener(listener_id: str, ctx: Ctx, db: DB) -> dict:
    if await listeners.get_listed(db, listener_id) is None:
        raise not_found("倾听师", "listener")
    summary = (await service.ratings(db, [listener_id]))[listener_id]
    return {**summary, "tags": dict(await service.tag_counts(db, listener_id)),
            "reviews": await service.for_listener(db, listener_id)}


@router.put("/reviews/{review_id}/reply")
async def reply(review_id: str, body: ReplyIn, ctx: Ctx, user: ListenerUser) -> dict:
    return _out(await service.reply(ctx, user, review_id, body.text))


@router.post("/reviews/{review_id}/report", status_code=201)
async def report(review_id: str, body: ReasonIn, ctx: Ctx, user: CurrentUser) -> dict:
    r = await trust.report(ctx, user, "review", review_id, body.reason)
    return {"id": r.id, "status": r.status}
