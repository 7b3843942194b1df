"""Companion pages: the entry (opens the AI conversation and shows it in the
ordinary chat page), the memory page and the handoff page (review the
summary, then matching or a listener).  Rendering only; rules live in
``companion.service``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from miaohui.accounts.deps import DB, Ctx
from miaohui.companion import memory
from miaohui.listeners import service as listeners
from miaohui.web.routes import MaybeUser, gate, render

router = APIRouter(include_in_schema=False)
SEEKERS_ONLY = "AI 陪伴仅对倾诉者开放。"


def matching_available(request: Request) -> bool:
    """帮我找人 (matching) if this build serves it; else handoff goes to the directory."""

    def walk(routes) -> bool:
        for r in routes:
            if getattr(r, "path", None) == "/match" and "POST" in (getattr(r, "methods", None) or ()):
                return True
            inner = getattr(r, "routes", None) or getattr(getattr(r, "original_router", None), "routes", None)
            if inner and walk(inner):  # included routers
                return True
        return False

    return walk(request.app.routes)


@router.get("/companion")
async def companion_entry(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (refused := gate(request, ctx, user, "seeker", SEEKERS_ONLY)) is not None:
        return refused
    conv_id, _ = await ctx.companion.open(db, user)
    return RedirectResponse(f"/chat/{conv_id}", status_code=303)


@router.get("/companion/memory")
async def memory_page(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (refused := gate(request, ctx, user, "seeker", SEEKERS_ONLY)) is not None:
        return refused
    items = await ctx.companion.memories(db, user)
    settings = await ctx.companion.settings_of(db, user)
    boot = {"items": [{**m, "created_at": m["created_at"].isoformat(), "updated_at": m["updated_at"].isoformat()}
                      for m in items], "kinds": memory.KINDS, "memory_enabled": settings["memory_enabled"]}
    return render(request, ctx, "companion_memory.html", user, private=True, boot=boot, items=boot["items"],
                  kinds=memory.KINDS, settings=settings)


@router.get("/companion/handoff")
async def handoff_page(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (refused := gate(request, ctx, user, "seeker", SEEKERS_ONLY)) is not None:
        return refused
    draft = await ctx.companion.draft_summary(db, user)
    rows = await listeners.directory(db)
    statuses = await ctx.presence.statuses([u.id for _, u in rows])
    people = sorted(({"user_id": u.id, "display_name": u.display_name, "headline": getattr(p, "headline", "") or "",
                      "topics": list(p.topics or [])[:3], "presence": statuses.get(u.id, "offline")} for p, u in rows),
                    key=lambda c: (c["presence"] != "online", c["display_name"]))[:6]
    return render(request, ctx, "companion_handoff.html", user, private=True, draft=draft, people=people,
                  matching=matching_available(request))
