from __future__ import annotations

import asyncio
import math

import orjson
from fastapi import APIRouter, Query, Response

from miaohui.accounts.deps import DB, Ctx, CurrentUser
from miaohui.chat import service
from miaohui.chat.schemas import (
    ConversationOut,
    MessagePage,
    ReadIn,
    SendIn,
    SendOut,
    StartConversationIn,
)
from miaohui.chat.writer import PendingMessage, Receipt
from miaohui.core.crypto import message_aad
from miaohui.core.errors import AppError

router = APIRouter(prefix="/api/conversations", tags=["chat"])


@router.post("", response_model=ConversationOut, status_code=201)
async def start(body: StartConversationIn, response: Response, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    """Open (or reopen) a conversation with an approved listener."""
    conv, created = await service.start_with_listener(db, ctx.clock, user, body.listener_id)
    await db.commit()
    if created:
        ctx.broker.publish_nowait(
            f"user:{body.listener_id}",
            orjson.dumps({"type": "conversation", "conversation_id": conv.id}).decode(),
        )
    else:
        response.status_code = 200
    return await _one(ctx, db, user.id, conv.id)


async def _one(ctx, db, user_id: str, conversation_id: str) -> dict:
    found = await service.list_with_presence(db, ctx.keyring, ctx.presence, user_id, only=conversation_id)
    if not found:
        raise service.conversation_forbidden()
    return found[0]


@router.get("", response_model=list[ConversationOut])
async def mine(ctx: Ctx, db: DB, user: CurrentUser) -> list[dict]:
    """Your conversations, newest activity first, with unread counts."""
    return await service.list_with_presence(db, ctx.keyring, ctx.presence, user.id)


@router.get("/{conversation_id}", response_model=ConversationOut)
async def one(conversation_id: str, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    return await _one(ctx, db, user.id, conversation_id)


@router.get("/{conversation_id}/messages", response_model=MessagePage)
async def messages(
    conversation_id: str,
    ctx: Ctx,
    db: DB,
    user: CurrentUser,
    before_seq: int | None = Query(default=None, ge=1),
    after_seq: int | None = Query(default=None, ge=0),
    limit: int = Query(default=50, ge=1, le=200),
) -> dict:
    """A page of history: ``before_seq`` scrolls back, ``after_seq`` catches up."""
    if before_seq is not None and after_seq is not None:
        raise AppError("bad_paging", "before_seq 与 after_seq 只能二选一", "use before_seq or after_seq, not both")
    view = await service.get_view(db, user.id, conversation_id)
    msgs, more = await service.history(db, ctx.keyring, view, before_seq=before_seq, after_seq=after_seq, limit=limit)
    return {"messages": msgs, "has_more": more}


def _too_fast(wait_s: float) -> AppError:
    """429 for a send refused by the sender's rate limit (core.ratelimit.SendLimiter):
    nothing stored; resend, same client id, after ``retry_after_ms`` (and ``Retry-After``)."""
    err = AppError("too_fast", "发送太快了，请稍等一下再发", "sending too fast; retry after retry_after_ms", 429)
    err.extra["retry_after_ms"] = math.ceil(wait_s * 1000)
    err.headers = {"Retry-After": str(math.ceil(wait_s))}
    return err


@router.post("/{conversation_id}/messages", response_model=SendOut)
async def send(conversation_id: str, body: SendIn, response: Response, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    """Send over HTTP (fallback for clients without a socket).  Idempotent by
    ``client_id``: a retry returns the original ``seq`` with ``duplicate``."""
    view = await service.get_view(db, user.id, conversation_id)
    await db.close()
    if view.send_refusal is not None:
        raise view.send_refusal
    if not body.body.strip():
        raise AppError("empty_body", "不能发送空消息", "message is empty")
    if len(body.body) > ctx.settings.max_message_chars:
        raise AppError("body_too_long", "消息过长", "message too long")
    wait = ctx.send_limiter.take(user.id)
    if wait:
        raise _too_fast(wait)
    text = body.body
    verdict = await ctx.safety.acheck(view.conversation.id, user.id, view.me.role, view.peer.user_id, text)
    if verdict is not None:
        text = verdict.body  # contact details masked before storing
    key_id, ct = ctx.keyring.encrypt(text, message_aad(view.conversation.id, user.id, body.client_id))
    recipients = tuple(u for u in (view.roles or {view.peer.user_id: ""}) if u != user.id)
    fut = ctx.writer.submit(
        PendingMessage(view.conversation.id, user.id, view.me.role, body.client_id, key_id, ct, text, recipients)
    )
    if verdict is not None:  # safety events after COMMIT, even if this request is cancelled meanwhile
        fut.add_done_callback(ctx.safety.after(verdict))
    if view.conversation.kind == "companion" and view.me.role == "seeker":  # the AI companion answers
        fut.add_done_callback(ctx.companion.after_send(view.conversation.id, user.id, text, verdict))
    try:
        st = await asyncio.shield(fut)
    except Exception:
        raise AppError("store_failed", "消息暂未保存，请重试", "message not stored; retry", 503) from None
    response.status_code = 200 if st.duplicate else 201
    return {
        "conversation_id": view.conversation.id,
        "client_id": body.client_id,
        "seq": st.seq,
        "created_at": st.created_at,
        "duplicate": st.duplicate,
    }


@router.post("/{conversation_id}/read", status_code=202)
async def read(conversation_id: str, body: ReadIn, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    view = await service.get_view(db, user.id, conversation_id)
    ctx.writer.submit_receipt(Receipt(view.conversation.id, user.id, read_seq=body.seq))
    return {"accepted": True}
