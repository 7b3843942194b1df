"""Supervision over HTTP and the supervisors' live socket (thin: rules live
in :mod:`miaohui.supervision.service`).

``/ws/supervision`` (supervisors and admins): ``hello``, then ``case`` events
(alarm at plan / imminent) for the live queue.  ``{"type": "watch",
"case_id"}`` follows that case's conversation live (audited like a
transcript read); ``unwatch`` stops.
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from miaohui.accounts.deps import DB, Ctx, CurrentUser, require_role
from miaohui.chat import service as chat
from miaohui.chat.gateway import (
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHENTICATED,
    Connection,
    SessionWatch,
    _authenticate,
    _dumps,
    _receive,
    _refuse,
    origin_allowed,
)
from miaohui.chat.protocol import FrameError, parse_frame
from miaohui.core.errors import AppError
from miaohui.supervision import service
from miaohui.supervision.monitor import SUPERVISION_TOPIC
from miaohui.supervision.schemas import DebriefIn, ResolveIn, WhisperIn, WorryIn

router = APIRouter(tags=["supervision"])
API = "/api/supervision"
FRAME_TYPES = frozenset({"ping", "watch", "unwatch"})
StaffUser = require_role(*service.STAFF)


@router.get(API + "/queue")
async def queue(ctx: Ctx, db: DB, user: StaffUser) -> list[dict]:
    """Open cases: highest risk first, then longest waiting."""
    return await service.summaries(db, await service.queue(db), ctx.clock.now())


@router.get(API + "/cases")
async def cases(ctx: Ctx, db: DB, user: CurrentUser) -> list[dict]:
    """Supervisors: resolved cases.  Listeners: their own cases.  Others: none."""
    if user.role not in (*service.STAFF, "listener"):
        raise AppError("forbidden_role", "当前身份无权进行此操作", "your role cannot do this", 403)
    return await service.summaries(db, await service.cases_for(db, user), ctx.clock.now())


@router.get(API + "/cases/{case_id}")
async def case(case_id: str, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    return await service.get_case_view(ctx, db, user, case_id)


@router.get(API + "/cases/{case_id}/transcript")
async def transcript(case_id: str, ctx: Ctx, db: DB, user: StaffUser) -> dict:
    """The case's conversation.  Every call writes an audit record first."""
    await db.close()
    out = await service.transcript(ctx, user, case_id, via="api")
    for m in out["messages"]:
        m["created_at"] = m["created_at"].isoformat()
    return out


@router.get(API + "/cases/{case_id}/access")
async def access_log(case_id: str, db: DB, user: StaffUser) -> list[dict]:
    """Who read this case's conversation, when."""
    c = await service.get_for(db, user, case_id)
    return [
        {"reader_id": a.reader_id, "reader_role": a.reader_role, "at": a.at.isoformat(), "via": a.via,
         "case_id": a.case_id, "upto_seq": a.upto_seq}
        for a in await service.accesses(db, c.conversation_id)
    ]


async def _done(ctx, db, user, c) -> dict:
    return (await service.summaries(db, [c], ctx.clock.now()))[0]


@router.post(API + "/cases/{case_id}/acknowledge")
async def acknowledge(case_id: str, ctx: Ctx, db: DB, user: StaffUser) -> dict:
    await db.close()
    return await _done(ctx, db, user, await service.acknowledge(ctx, user, case_id))


@router.post(API + "/cases/{case_id}/whisper", status_code=201)
async def whisper(case_id: str, body: WhisperIn, ctx: Ctx, db: DB, user: StaffUser) -> dict:
    await db.close()
    return await service.whisper(ctx, user, case_id, body.body)


@router.post(API + "/cases/{case_id}/join")
async def join(case_id: str, ctx: Ctx, db: DB, user: StaffUser) -> dict:
    await db.close()
    return await _done(ctx, db, user, await service.join(ctx, user, case_id))


@router.post(API + "/cases/{case_id}/takeover")
async def takeover(case_id: str, ctx: Ctx, db: DB, user: StaffUser) -> dict:
    await db.close()
    return await _done(ctx, db, user, await service.join(ctx, user, case_id, takeover=True))


@router.post(API + "/cases/{case_id}/resolve")
async def resolve(case_id: str, body: ResolveIn, ctx: Ctx, db: DB, user: StaffUser) -> dict:
    await db.close()
    return await _done(ctx, db, user, await service.resolve(ctx, user, case_id, body.note))


@router.post(API + "/cases/{case_id}/debrief")
async def debrief(case_id: str, body: DebriefIn, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    """The listener answers the debrief offer after a high-risk case."""
    await db.close()
    return await _done(ctx, db, user, await service.answer_debrief(ctx, user, case_id, body.accept))


@router.post(API + "/worry", status_code=201)
async def worry(body: WorryIn, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    """"我担心对方": a listener calls a supervisor into the conversation at once."""
    await db.close()
    return await _done(ctx, db, user, await service.worry(ctx, user, body.conversation_id, body.note))


@router.get(API + "/conversations/{conversation_id}/state")
async def chat_state(conversation_id: str, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    """What this participant's chat page shows (after a reconnect)."""
    view = await chat.get_view(db, user.id, conversation_id)
    return await service.chat_state(ctx, db, user, view.conversation.id, view.me.role)


# ------------------------------------------------------------------ socket


@router.websocket("/ws/supervision")
async def supervision_socket(ws: WebSocket) -> None:
    async with SessionWatch(ws) as watch:  # logging out closes it (4401), like the chat sockets
        await _supervision_socket(ws, watch)


async def _supervision_socket(ws: WebSocket, watch: SessionWatch) -> None:
    ctx = ws.app.state.ctx
    if not origin_allowed(ws, ctx.settings.allowed_origins):
        return await _refuse(ws, CLOSE_FORBIDDEN, "来源不被允许", "origin not allowed")
    user = await _authenticate(ws)
    if user is None or watch.ended:
        return await _refuse(ws, CLOSE_UNAUTHENTICATED, "请先登录", "please sign in")
    if user.role not in service.STAFF:
        return await _refuse(ws, CLOSE_FORBIDDEN, "仅督导可用", "supervisors only")
    conn = Connection(ws, user.id, ctx.settings.outbound_queue_max)
    watch.attach(conn)
    watching: str | None = None
    await ws.accept()
    await ctx.broker.subscribe(SUPERVISION_TOPIC, conn.deliver)
    try:
        await ws.send_text(_dumps({"type": "hello", "me": {"user_id": user.id, "role": user.role}}))
        conn.start_sending()
        while True:
            raw = await _receive(ws)
            if raw is None:
                return
            if conn.revoked:  # the session ended: closing
                continue
            try:
                frame = parse_frame(raw, ctx.settings.max_frame_bytes, FRAME_TYPES)
                if frame["type"] == "ping":
                    conn.send(_dumps({"type": "pong", "t": frame.get("t")}))
                elif frame["type"] == "watch":
                    case_id = frame.get("case_id")
                    try:
                        c = await service.watch(ctx, user, case_id if isinstance(case_id, str) else "")
                    except AppError as e:
                        raise FrameError(e.code, e.message, e.message_en) from None
                    if watching:
                        await ctx.broker.unsubscribe(f"conv:{watching}", conn.deliver)
                    watching = c.conversation_id
                    await ctx.broker.subscribe(f"conv:{watching}", conn.deliver)
                    conn.send(_dumps({"type": "watching", "case_id": c.id, "conversation_id": watching}))
                elif frame["type"] == "unwatch" and watching:
                    await ctx.broker.unsubscribe(f"conv:{watching}", conn.deliver)
                    watching = None
            except FrameError as e:
                conn.send(e.frame())
    except (WebSocketDisconnect, OSError):
        pass
    finally:
        await ctx.broker.unsubscribe(SUPERVISION_TOPIC, conn.deliver)
        if watching:
            with contextlib.suppress(Exception):
                await ctx.broker.unsubscribe(f"conv:{watching}", conn.deliver)
        await conn.finish()

