"""Matching API: 帮我找人."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from miaohui.accounts.deps import Ctx, optional_user
from miaohui.accounts.models import User
from miaohui.matching import service
from miaohui.matching.schemas import MatchRequestIn

router = APIRouter(prefix="/api", tags=["matching"])
MaybeUser = Annotated[User | None, Depends(optional_user)]  # anyone may ask; a seeker's risk history counts


@router.post("/match")
async def match(body: MatchRequestIn, ctx: Ctx, user: MaybeUser) -> dict:
    """Rank listed listeners for a described situation; each result explains
    itself in one line.  Nothing about the request is stored."""
    return await service.recommend(ctx, user, service.MatchIn(
        text=body.text, tags=tuple(body.tags), budget_fen=body.budget_fen, window_s=body.window_s, limit=body.limit))
