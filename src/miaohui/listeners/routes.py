from __future__ import annotations

from fastapi import APIRouter, Query

from miaohui.accounts.deps import DB, AdminUser, Ctx, ListenerUser
from miaohui.accounts.service import get_user
from miaohui.core.errors import AppError
from miaohui.listeners import service
from miaohui.listeners.schemas import AvailabilityIn, ListenerCard, ListenerProfileOut, ProfileIn

router = APIRouter(prefix="/api", tags=["listeners"])


@router.get("/listeners", response_model=list[ListenerCard])
async def directory(
    ctx: Ctx,
    db: DB,
    topic: str | None = Query(default=None, max_length=20),
    online: bool = False,
) -> list[dict]:
    """Approved listeners; online ones first."""
    rows = await service.directory(db, topic)
    presence = await ctx.presence.statuses([u.id for _, u in rows])
    cards = [service.card(p, u, presence[u.id]) for p, u in rows]
    if online:
        cards = [c for c in cards if c["online_now"]]
    cards.sort(key=lambda c: not c["online_now"])
    return cards


@router.get("/listeners/{listener_id}", response_model=ListenerProfileOut)
async def profile(listener_id: str, ctx: Ctx, db: DB) -> dict:
    p = await service.get_listed(db, listener_id)
    if p is None:
        raise AppError("not_found", "倾听师不存在", "listener not found", 404)
    user = await get_user(db, listener_id)
    return service.card(p, user, await ctx.presence.status(listener_id))


@router.get("/listener/profile", response_model=ListenerProfileOut)
async def my_profile(ctx: Ctx, db: DB, user: ListenerUser) -> dict:
    p = await service.get_profile(db, user.id)
    return service.card(p, user, await ctx.presence.status(user.id))


@router.put("/listener/profile", response_model=ListenerProfileOut)
async def update_profile(body: ProfileIn, ctx: Ctx, db: DB, user: ListenerUser) -> dict:
    p = await service.update_profile(db, user, **body.model_dump())
    await db.commit()
    return service.card(p, user, await ctx.presence.status(user.id))


@router.put("/listener/availability", status_code=204)
async def availability(body: AvailabilityIn, db: DB, user: ListenerUser) -> None:
    """Listener toggles 接单中 / 休息中."""
    await service.set_accepting(db, user, body.accepting)
    await db.commit()


@router.get("/admin/listeners/pending", response_model=list[ListenerProfileOut])
async def pending(ctx: Ctx, db: DB, user: AdminUser) -> list[dict]:
    return [service.card(p, u, "offline") for p, u in await service.pending(db)]


@router.post("/admin/listeners/{listener_id}/approve", response_model=ListenerProfileOut)
async def approve(listener_id: str, ctx: Ctx, db: DB, user: AdminUser) -> dict:
    p = await service.approve(db, ctx.clock, user, listener_id)
    await db.commit()
    return service.card(p, await get_user(db, listener_id), "offline")
