"""The AI companion over HTTP (thin: rules live in ``companion.service``).

Seekers only.  The conversation itself is an ordinary one (``/ws/chat/{id}``,
``/api/conversations/{id}/messages``); these routes open it, change the
seeker's settings, show/edit/delete memory, call a human supervisor and hand
off to a listener.
"""

from __future__ import annotations

from fastapi import APIRouter

from miaohui.accounts.deps import DB, Ctx, CurrentUser
from miaohui.companion.schemas import HandoffIn, HumanIn, MemoryEditIn, MemoryIn, SettingsIn

router = APIRouter(prefix="/api/companion", tags=["companion"])


@router.post("/open")
async def open_conversation(ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    """Open (or reopen) the seeker's AI companion conversation — free, any time."""
    conv_id, created = await ctx.companion.open(db, user)
    return {"conversation_id": conv_id, "created": created}


@router.get("/settings")
async def get_settings(ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    return await ctx.companion.settings_of(db, user)


@router.put("/settings")
async def put_settings(body: SettingsIn, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    """Session length (the companion wraps up gently when it is reached) and memory on/off."""
    return await ctx.companion.update_settings(db, user, session_minutes=body.session_minutes,
                                               memory_enabled=body.memory_enabled, set_session=body.set_session)


@router.get("/memory")
async def list_memory(ctx: Ctx, db: DB, user: CurrentUser) -> list[dict]:
    return await ctx.companion.memories(db, user)


@router.post("/memory", status_code=201)
async def add_memory(body: MemoryIn, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    return await ctx.companion.add_memory(db, user, body.kind, body.text.strip())


@router.patch("/memory/{memory_id}")
async def edit_memory(memory_id: str, body: MemoryEditIn, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    return await ctx.companion.edit_memory(db, user, memory_id, body.text.strip())


@router.delete("/memory/{memory_id}")
async def delete_memory(memory_id: str, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    return {"deleted": await ctx.companion.delete_memory(db, user, memory_id)}


@router.delete("/memory")
async def delete_all_memory(ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    return {"deleted": await ctx.companion.delete_memory(db, user, None)}


@router.post("/human")
async def human_now(body: HumanIn, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    """"现在请真人督导来": a supervisor is called into the conversation (alarm)."""
    await db.close()
    return await ctx.companion.request_human(user, body.conversation_id)


@router.get("/summary")
async def summary(ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    """A draft handoff summary, for the seeker to review and edit before anything is sent."""
    return {"summary": await ctx.companion.draft_summary(db, user)}


@router.post("/handoff")
async def handoff(body: HandoffIn, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    """Open a conversation with a listener; send the reviewed summary as the seeker's first message if given."""
    return {"conversation_id": await ctx.companion.handoff(db, user, body.listener_id, body.summary)}
