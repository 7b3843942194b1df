from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query

from miaohui.accounts.deps import DB, AdminUser, Ctx, ListenerUser, MaybeUser
from miaohui.accounts.service import get_user
from miaohui.core.errors import AppError
from miaohui.listeners import service
from miaohui.listeners.schemas import AvailabilityIn, ListenerCard, ListenerProfileOut, ProfileIn
from miaohui.matching import profiles
from miaohui.matching.directory import Filters, apply

router = APIRouter(prefix="/api", tags=["listeners"])


@router.get("/listeners", response_model=list[ListenerCard])
async def directory(
    ctx: Ctx,
    db: DB,
    topic: str | None = Query(default=None, max_length=20),
    online: bool = False,
    price_min: int | None = Query(default=None, ge=0, description="Per hour, fen"),
    price_max: int | None = Query(default=None, ge=0, description="Per hour, fen"),
    period: Literal["day", "night"] = "day",
    window: int | None = Query(default=None, ge=1, le=3600, description="Committed reply window at most, seconds"),
    qualification: str | None = Query(default=None, max_length=24, description="'any' or a qualification kind"),
    gender: Literal["female", "male", "other"] | None = None,
    language: str | None = Query(default=None, max_length=20),
    sort: Literal["recommended", "rating", "price", "speed"] = "recommended",
    favorites: bool = Query(default=False, description="Only the signed-in seeker's 收藏"),
    user: MaybeUser = None,
) -> list[dict]:
    """Approved listeners with computed stats, badges and ratings, filtered and sorted."""
    f = Filters(topic=topic, price_min_fen=price_min, price_max_fen=price_max, night=period == "night",
                online=online, window_s=window, qualification=qualification, gender=gender, language=language,
                sort=sort, favorites=favorites)
    return apply(await profiles.listed_cards(ctx, db, user), f)


@router.get("/listeners/{listener_id}", response_model=ListenerProfileOut)
async def profile(listener_id: str, ctx: Ctx, db: DB, user: MaybeUser) -> dict:
    """A listed listener's public profile, with measured stats and usual hours."""
    card = await profiles.public_profile(ctx, db, listener_id, user)
    if card is None:
        raise AppError("not_found", "倾听师不存在", "listener not found", 404)
    return card


@router.get("/listener/profile", response_model=ListenerProfileOut)
async def my_profile(ctx: Ctx, db: DB, user: ListenerUser) -> dict:
    p = await service.get_profile(db, user.id)
    return service.card(p, user, await ctx.presence.status(user.id))


@router.put("/listener/profile", response_model=ListenerProfileOut)
async def update_profile(body: ProfileIn, ctx: Ctx, db: DB, user: ListenerUser) -> dict:
    fields = body.model_dump()
    if "gender" not in body.model_fields_set:
        fields.pop("gender")  # a client that does not know the field leaves it alone
    p = await service.update_profile(db, user, **fields)
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
