"""Matching API: 帮我找人, and a seeker's 收藏."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam

from miaohui.accounts.deps import DB, Ctx, MaybeUser, SeekerUser
from miaohui.listeners.schemas import FavoriteCard, FavoriteOut
from miaohui.matching import favorites, profiles, service
from miaohui.matching.schemas import MatchRequestIn

router = APIRouter(prefix="/api", tags=["matching"])
ListenerId = Annotated[str, PathParam(max_length=32)]


@router.post("/match")
async def match(body: MatchRequestIn, ctx: Ctx, user: MaybeUser) -> dict:
    """Rank listed listeners for a described situation; each result explains
    itself in one line.  Nothing about the request is stored."""
    return await service.recommend(ctx, user, service.MatchIn(
        text=body.text, tags=tuple(body.tags), budget_fen=body.budget_fen, window_s=body.window_s, limit=body.limit))


@router.get("/favorites", response_model=list[FavoriteCard])
async def my_favorites(ctx: Ctx, db: DB, user: SeekerUser) -> list[dict]:
    """The listeners I keep (收藏), most recently added first, each with who is
    on duty now and their measured usual hours.  Only I can see this list."""
    return await profiles.favorite_cards(ctx, db, user)


@router.put("/favorites/{listener_id}", response_model=FavoriteOut)
async def keep(listener_id: ListenerId, ctx: Ctx, db: DB, user: SeekerUser) -> dict:
    """收藏 a listed listener (again: no change)."""
    count = await favorites.add(db, user.id, listener_id, ctx.clock.now())
    await db.commit()
    return {"favorite": True, "count": count}


@router.delete("/favorites/{listener_id}", response_model=FavoriteOut)
async def unkeep(listener_id: ListenerId, db: DB, user: SeekerUser) -> dict:
    """取消收藏 (already gone: no change)."""
    count = await favorites.remove(db, user.id, listener_id)
    await db.commit()
    return {"favorite": False, "count": count}
