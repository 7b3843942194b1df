"""The realtime gateway: one WebSocket per open conversation, one per inbox.

Life of a connection (``/ws/chat/{id}?after_seq=N``):

1. authenticate (session cookie or bearer header) and authorize through the
   same readable query as REST — not a participant: close code 4403;
2. subscribe to the conversation's topic *before* reading the backlog, and
   buffer live events meanwhile, so nothing published in between is missed;
3. send ``hello``, every stored message after ``N`` (resume), ``synced``,
   then the buffered and live events;
4. read frames until the socket closes.  A bad frame gets an ``error`` frame
   and the connection stays open.

Every socket also listens on its session's topic
(:func:`miaohui.accounts.service.session_topic`, see :class:`SessionWatch`)
from before the session is checked: when the session ends (logout, in any
process), the socket stops handling frames at once and is closed with 4401.
Nothing is looked up per message.

On uvicorn with :class:`~miaohui.chat.wsdirect.DirectProtocol` (the
default) step 4 happens inside the protocol's ``data_received`` (see
:func:`_run_frames`).  An outbound frame is written at once while the
transport takes it and nothing is queued before it; otherwise it waits in a
bounded per-connection queue drained by its own task, so one slow phone never
stalls the writer or other sockets; if the queue overflows, the socket is
closed (1013) and the client resumes by sequence number — nothing is lost,
because everything is in the database.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from miaohui.accounts import service as accounts
from miaohui.accounts.deps import request_token
from miaohui.chat import service
from miaohui.chat.protocol import FrameError, parse_frame, seq_of, too_fast, validate_send
from miaohui.chat.writer import PendingMessage, Receipt, Stored
from miaohui.chat.wsdirect import DirectProtocol
from miaohui.core.crypto import message_aad
from miaohui.core.errors import AppError
from miaohui.supervision.monitor import private_topic

log = logging.getLogger("miaohui.chat.gateway")
router = APIRouter()

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
BACKLOG_PAGE = 500


def _dumps(d: dict) -> str:
    return orjson.dumps(d).decode()


def origin_allowed(ws: WebSocket, allowed: list[str]) -> bool:
    """Block cross-site WebSocket hijacking: browsers always send Origin."""
    origin = ws.headers.get("origin")
    if not origin:
        return True  # not a browser
    if origin in allowed:
        return True
    return urlsplit(origin).netloc == ws.headers.get("host", "")


class Connection:
    def __init__(self, ws: WebSocket, user_id: str, queue_max: int) -> None:
        self.ws = ws
        self.user_id = user_id
        self.id = secrets.token_hex(8)
        self.own_prefix = '{"origin":"' + self.id + '"'
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_max)
        self.buffer: list[str] | None = []  # live events held back while the backlog is sent
        self.closed = False
        self.sender_task: asyncio.Task | None = None
        self.direct: DirectProtocol | None = None  # set while frames may be written at once
        self.inflight = False  # the sender task is writing a frame it took off the queue
        self.revoked = False  # its session ended or its person left: no frame of its is handled any more
        self._revoked_with: tuple[int, dict] = (CLOSE_UNAUTHENTICATED, {})
        self.recipients: tuple[str, ...] = ()  # who gets an inbox activity for what this socket sends
        self.send_refusal: AppError | None = None  # why its sends are refused (ConversationView.send_refusal)
        self._ending: asyncio.Task | None = None

    def deliver(self, data: str) -> None:
        """Broker callback: queue an event for this socket (never blocks)."""
        if self.closed or data.startswith(self.own_prefix):
            return
        if self.buffer is not None:
            self.buffer.append(data)
            return
        # Straight to the socket when nothing is queued before it (order) and
        # the transport takes it; else the sender task writes it, waiting for
        # back-pressure to clear.
        direct = self.direct
        if direct is not None and not self.inflight and self.queue.empty() and direct.write_text(data):
            return
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            log.warning("outbound queue full; closing connection %s", self.id)
            self.closed = True
            asyncio.get_running_loop().create_task(self._close(1013))

    def send(self, data: str) -> None:
        self.deliver(data)

    async def _close(self, code: int) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code)

    def end_session(self) -> None:
        """The session that opened this socket ended: :meth:`revoke` with 4401."""
        self.revoke(CLOSE_UNAUTHENTICATED, SESSION_ENDED_FRAME)

    def on_membership(self, data: str) -> None:
        """Broker callback (:func:`service.members_topic`).  ``left:<id>``:
        someone left the conversation; this socket's own person is
        :meth:`revoke`-d with 4403, anyone else is no longer a recipient of
        what this socket sends.  ``mute:<id>:<code>``: that person may no longer
        send here (suspended, blocked); their socket stays open to read."""
        kind, _, rest = data.partition(":")
        user_id, _, code = rest.partition(":")
        if kind == "left":
            if user_id == self.user_id:
                self.revoke(CLOSE_FORBIDDEN, NOT_A_MEMBER_FRAME)
            else:
                self.recipients = tuple(r for r in self.recipients if r != user_id)
        elif kind == "mute" and user_id == self.user_id:
            refusal = service.REFUSALS.get(code)
            self.send_refusal = refusal() if refusal is not None else None

    def revoke(self, code: int, frame: dict) -> None:
        """This socket may no longer be used (its session ended, its person left
        the conversation): handle none of its frames from now on, deliver
        nothing more, and close it with ``code`` after ``frame`` — at once when
        live, else as soon as its sync is written."""
        if self.revoked:
            return
        self.revoked = True
        self.closed = True
        self._revoked_with = (code, frame)
        if self.buffer is None:
            self._ending = asyncio.get_running_loop().create_task(self._close_revoked())

    async def _close_revoked(self) -> None:
        code, frame = self._revoked_with
        task, self.sender_task = self.sender_task, None
        if task is not None:  # no frame of its may follow the notice
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.ws.send_text(_dumps(frame))
            await self.ws.close(code)

    def start_sending(self) -> None:
        if self.revoked:
            self.buffer = None
            self._ending = asyncio.get_running_loop().create_task(self._close_revoked())
            return
        for data in self.buffer or ():
            self.queue.put_nowait(data)
        self.buffer = None
        self.sender_task = asyncio.create_task(self._sender())

    async def _sender(self) -> None:
        ws = self.ws
        q = self.queue
        try:
            while True:
                data = await q.get()
                self.inflight = True
                await ws.send_text(data)
                self.inflight = False
        except Exception:  # disconnects surface as several types; all end this socket
            self.closed = True

    async def finish(self) -> None:
        self.closed = True
        if self.sender_task:
            self.sender_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.sender_task
            self.sender_task = None  # break the connection <-> task cycle for refcounting


SESSION_ENDED_FRAME = {
    "type": "error",
    "code": str(CLOSE_UNAUTHENTICATED),
    "message": "登录已失效，请重新登录",
    "message_en": "your session has ended; please sign in again",
}
NOT_A_MEMBER_FRAME = {
    "type": "error",
    "code": str(CLOSE_FORBIDDEN),
    "message": "你已不在这个会话中",
    "message_en": "you are no longer part of this conversation",
}


class SessionWatch:
    """Ends a socket when the session that opened it ends.

    Subscribed to the session's topic *before* the session is checked, so an
    end announced at any moment after the check is seen (:attr:`ended`);
    once a :class:`Connection` is attached, the end closes it
    (:meth:`Connection.end_session`).  One subscription per socket, at
    connect: the message path never looks at the session again."""

    def __init__(self, ws: WebSocket) -> None:
        self.broker = ws.app.state.ctx.broker
        token, _ = request_token(ws)
        self.topic = accounts.session_topic(accounts.token_hash(token)) if token and len(token) <= 128 else None
        self.ended = False
        self.conn: Connection | None = None

    def _on_end(self, _data: str) -> None:
        self.ended = True
        if self.conn is not None:
            self.conn.end_session()

    def attach(self, conn: Connection) -> None:
        self.conn = conn
        if self.ended:
            conn.end_session()

    async def __aenter__(self) -> SessionWatch:
        if self.topic is not None:
            await self.broker.subscribe(self.topic, self._on_end)
        return self

    async def __aexit__(self, *_exc) -> None:
        if self.topic is not None:
            await self.broker.unsubscribe(self.topic, self._on_end)
        self.conn = None


async def _authenticate(ws: WebSocket):
    ctx = ws.app.state.ctx
    token, _ = request_token(ws)
    async with ctx.sessionmaker() as db:
        return await accounts.user_for_token(db, ctx.clock, token) if token else None


async def _refuse(ws: WebSocket, code: int, message: str, message_en: str) -> None:
    await ws.accept()
    with contextlib.suppress(Exception):
        await ws.send_text(_dumps({"type": "error", "code": str(code), "message": message, "message_en": message_en}))
        await ws.close(code)


async def _receive(ws: WebSocket) -> str | bytes | None:
    msg = await ws.receive()
    if msg["type"] == "websocket.disconnect":
        return None
    return msg.get("text") if msg.get("text") is not None else msg.get("bytes", b"")


@router.websocket("/ws/chat/{conversation_id}")
async def chat_socket(ws: WebSocket, conversation_id: str) -> None:
    async with SessionWatch(ws) as watch:
        await _chat_socket(ws, conversation_id, watch)


async def _chat_socket(ws: WebSocket, conversation_id: str, watch: SessionWatch) -> None:
    ctx = ws.app.state.ctx
    settings = ctx.settings
    if not origin_allowed(ws, settings.allowed_origins):
        return await _refuse(ws, CLOSE_FORBIDDEN, "来源不被允许", "origin not allowed")
    user = await _authenticate(ws)
    if user is None or watch.ended:
        return await _refuse(ws, CLOSE_UNAUTHENTICATED, "请先登录", "please sign in")
    after_raw = ws.query_params.get("after_seq")
    try:
        after_seq = int(after_raw) if after_raw not in (None, "") else None
        if after_seq is not None and after_seq < 0:
            raise ValueError
    except ValueError:
        return await _refuse(ws, 4400, "after_seq 无效", "invalid after_seq")
    if len(conversation_id) > 32:
        return await _refuse(ws, CLOSE_FORBIDDEN, "无权访问该会话", "you are not part of this conversation")
    # Subscribe (buffering) *before* the view and backlog are read, so nothing
    # published in between is missed; nothing is sent until authorized.
    topic = f"conv:{conversation_id}"
    private = private_topic(conversation_id, user.id)  # safety events meant for this person only
    members = service.members_topic(conversation_id)  # who left (a supervisor, when the case is resolved)
    conn = Connection(ws, user.id, settings.outbound_queue_max)
    watch.attach(conn)
    await ctx.broker.subscribe(topic, conn.deliver)
    await ctx.broker.subscribe(private, conn.deliver)
    await ctx.broker.subscribe(members, conn.on_membership)
    view = None
    try:
        async with ctx.sessionmaker() as db:
            try:
                view = await service.get_view(db, user.id, conversation_id)
            except AppError:
                return await _refuse(ws, CLOSE_FORBIDDEN, "无权访问该会话", "you are not part of this conversation")
            if watch.ended:  # logged out since the check
                return await _refuse(ws, CLOSE_UNAUTHENTICATED, "请先登录", "please sign in")
            await ws.accept()
            await ctx.presence.set(user.id, conn.id, "online")
            _publish_presence(ctx, view, await ctx.presence.status(user.id))
            await _sync(ws, ctx, db, view, after_seq)
        conn.start_sending()
        await _read_loop(ws, ctx, conn, view)
    except (WebSocketDisconnect, OSError):
        pass  # the client went away (possibly mid-backlog); it resumes by seq
    finally:
        await ctx.broker.unsubscribe(topic, conn.deliver)
        await ctx.broker.unsubscribe(private, conn.deliver)
        await ctx.broker.unsubscribe(members, conn.on_membership)
        await conn.finish()
        if view is not None:
            with contextlib.suppress(Exception):
                await ctx.presence.clear(user.id, conn.id)
                _publish_presence(ctx, view, await ctx.presence.status(user.id))


async def _sync(ws: WebSocket, ctx, db, view: service.ConversationView, after_seq: int | None) -> None:
    """hello → backlog → synced, written directly (the sender task is not
    running yet).  The view was read after subscribing, so anything newer
    arrives as a live event; the client dedupes by seq."""
    peer_status = await ctx.presence.status(view.peer.user_id)
    await ws.send_text(
        _dumps(
            {
                "type": "hello",
                "conversation_id": view.conversation.id,
                "me": {"user_id": view.me.user_id, "role": view.me.role},
                "peer": {
                    "user_id": view.peer.user_id,
                    "display_name": view.peer_user.display_name if view.peer_user else "",
                    "role": view.peer.role,
                    "presence": peer_status,
                },
                "last_seq": view.conversation.last_seq,
                "receipts": {p.user_id: service.receipt_state(view, p) for p in (view.me, view.peer)},
                "limits": {
                    "max_body_chars": ctx.settings.max_message_chars,
                    "send_rate_per_s": ctx.settings.chat_send_rate_per_s,
                    "send_burst": ctx.settings.chat_send_burst,
                },
            }
        )
    )
    has_more_before = False
    last_seq = view.conversation.last_seq
    if after_seq is None:
        msgs, has_more_before = await service.history(db, ctx.keyring, view, limit=50)
        for m in msgs:
            await ws.send_text(_message_frame(m))
    else:
        cursor = after_seq
        while True:
            msgs, more = await service.history(db, ctx.keyring, view, after_seq=cursor, limit=BACKLOG_PAGE)
            for m in msgs:
                await ws.send_text(_message_frame(m))
            if not more or not msgs:
                break
            cursor = msgs[-1]["seq"]
    if msgs:
        last_seq = max(last_seq, msgs[-1]["seq"])
    await ws.send_text(_dumps({"type": "synced", "last_seq": last_seq, "has_more_before": has_more_before}))


def _publish_presence(ctx, view: service.ConversationView, status: str) -> None:
    """To the conversation, and to the peer's inbox (the listener console's dots)."""
    data = _dumps({"type": "presence", "user_id": view.me.user_id, "status": status})
    ctx.broker.publish_nowait(f"conv:{view.conversation.id}", data)
    if view.peer.user_id != view.me.user_id:
        ctx.broker.publish_nowait(f"user:{view.peer.user_id}", data)


def _message_frame(m: dict) -> str:
    return _dumps({"type": "message", **m, "created_at": m["created_at"].isoformat()})


async def _read_loop(ws: WebSocket, ctx, conn: Connection, view: service.ConversationView) -> None:
    settings = ctx.settings
    conv_id = view.conversation.id
    topic = f"conv:{conv_id}"
    user_id = view.me.user_id
    role = view.me.role
    conn.recipients = tuple(p for p in (view.roles or {view.peer.user_id: ""}) if p != user_id)
    conn.send_refusal = conn.send_refusal or view.send_refusal
    peer_id = view.peer.user_id
    keyring = ctx.keyring
    writer = ctx.writer
    clock = ctx.clock
    safety = ctx.safety
    take_send = ctx.send_limiter.take
    last_typing = 0.0
    typing_gap = settings.typing_min_interval_ms / 1000
    # The AI companion answers a seeker in a companion conversation; human
    # conversations never reach it (one check per connection, not per message).
    companion = ctx.companion if view.conversation.kind == "companion" and role == "seeker" else None

    def on_stored(client_id: str, sc=None, original: str = "", body: str = ""):
        def done(fut: asyncio.Future) -> None:
            if fut.cancelled():
                return
            exc = fut.exception()
            if exc is not None:
                conn.send(
                    FrameError("store_failed", "消息暂未保存，请重试", "message not stored; retry", client_id).frame()
                )
                return
            st: Stored = fut.result()
            conn.send(
                _dumps(
                    {
                        "type": "ack",
                        "conversation_id": conv_id,
                        "client_id": client_id,
                        "seq": st.seq,
                        "created_at": st.iso(),
                        "duplicate": st.duplicate,
                    }
                )
            )
            then = None
            if companion is not None:
                def then(tier: str, seq=st.seq, dup=st.duplicate) -> None:
                    companion.on_seeker_message(conv_id, user_id, body, seq, dup, tier)
            if sc is not None:  # the risk model runs now, batched, off the ack's path
                safety.after_commit(conv_id, user_id, role, peer_id, original, sc, st.seq, st.duplicate, then)
            elif then is not None:
                then("none")

        return done

    async def set_presence(status: str) -> None:
        await ctx.presence.set(user_id, conn.id, status)
        _publish_presence(ctx, view, await ctx.presence.status(user_id))

    async def resync(after: int) -> None:
        async with ctx.sessionmaker() as db:
            msgs, more = await service.history(db, keyring, view, after_seq=after, limit=BACKLOG_PAGE)
        for m in msgs:
            conn.send(_message_frame(m))
        conn.send(_dumps({"type": "synced", "last_seq": msgs[-1]["seq"] if msgs else after, "more": more}))

    def handle(raw: str | bytes):
        """One inbound frame, handled now; frames that need I/O (presence,
        sync) come back as a coroutine for the caller to run in order."""
        nonlocal last_typing
        if conn.revoked:  # the session ended: the socket is closing, nothing it sends counts
            return None
        try:
            frame = parse_frame(raw, settings.max_frame_bytes)
            ftype = frame["type"]
            if ftype == "send":
                client_id, body = validate_send(frame, settings.max_message_chars)
                if conn.send_refusal is not None:
                    e = conn.send_refusal
                    raise FrameError(e.code, e.message, e.message_en, client_id)
                wait = take_send(user_id)
                if wait:
                    raise too_fast(wait, client_id)
                # Boundary scan before storing (it masks contact details); the risk model after COMMIT.
                sc = safety.prescan(role, body)
                stored = sc.text if sc is not None else body
                key_id, ct = keyring.encrypt(stored, message_aad(conv_id, user_id, client_id))
                fut = writer.submit(
                    PendingMessage(conv_id, user_id, role, client_id, key_id, ct, stored, conn.recipients, conn.id)
                )
                fut.add_done_callback(on_stored(client_id, sc, body, stored if companion is not None else ""))
            elif ftype == "typing":
                state = "stop" if frame.get("state") == "stop" else "start"
                now = clock.monotonic()
                if state == "stop" or now - last_typing >= typing_gap:
                    last_typing = now
                    ctx.broker.publish_nowait(
                        topic,
                        _dumps({"origin": conn.id, "type": "typing", "user_id": user_id, "state": state}),
                    )
            elif ftype == "read":
                writer.submit_receipt(Receipt(conv_id, user_id, read_seq=seq_of(frame)))
            elif ftype == "delivered":
                writer.submit_receipt(Receipt(conv_id, user_id, delivered_seq=seq_of(frame)))
            elif ftype == "presence":
                return set_presence("away" if frame.get("status") == "away" else "online")
            elif ftype == "ping":
                conn.send(_dumps({"type": "pong", "t": frame.get("t")}))
            elif ftype == "sync":
                return resync(seq_of(frame))
        except FrameError as e:
            conn.send(e.frame())
        return None

    await _run_frames(ws, conn, handle)


async def _run_frames(ws: WebSocket, conn: Connection, handle) -> None:
    """Feed the socket's frames to ``handle`` until it closes.

    On uvicorn with :class:`~miaohui.chat.wsdirect.DirectProtocol` (the
    server's default) frames are handled inside the protocol's
    ``data_received`` and replies written at once — no task wake-up, no
    suspended ``receive()`` per frame (see that module); this coroutine only
    waits for the disconnect.  Elsewhere (other servers, the test client) it
    is the plain ASGI loop.  The same ``handle`` serves both."""
    proto = _direct_protocol(ws)
    if proto is None:
        while True:
            raw = await _receive(ws)
            if raw is None:
                return
            slow = handle(raw)
            if slow is not None:
                await slow
    lane = _Lane()

    def on_text(raw: str | bytes) -> None:
        try:
            slow = handle(raw)
        except Exception:  # one frame must never take the socket down
            log.exception("frame handler failed")
            conn.send(FrameError("internal", "服务器处理出错，请重试", "server error; retry").frame())
            return
        if slow is not None and not lane.push(slow):
            conn.send(FrameError("busy", "操作太频繁，请稍后再试", "too many requests waiting; try again later").frame())

    try:
        for raw in proto.queued_frames():
            on_text(raw)
        proto.go_direct(on_text)
        conn.direct = proto
        while await _receive(ws) is not None:
            pass  # only a disconnect arrives here now
    finally:
        conn.direct = None
        proto.leave_direct()
        await lane.close()


def _direct_protocol(ws: WebSocket) -> DirectProtocol | None:
    """The uvicorn protocol behind ``ws`` when it offers the direct lane."""
    proto = getattr(getattr(ws, "_receive", None), "__self__", None)
    return proto if isinstance(proto, DirectProtocol) else None


LANE_MAX = 16  # frames that need I/O, waiting on one socket at most (see _Lane.push)


class _Lane:
    """Frames that need I/O (presence, sync) on a direct socket run one after
    another, in arrival order, in a task of their own — never inside
    ``data_received``."""

    def __init__(self) -> None:
        self._q: collections.deque = collections.deque()
        self._task: asyncio.Task | None = None

    def push(self, coro) -> bool:
        """Queue ``coro``; ``False`` (and ``coro`` closed, never run) when
        :data:`LANE_MAX` already wait.  A client that streams ``sync`` or
        ``presence`` frames faster than they are answered would otherwise
        grow this queue without bound; no client needs more than a few."""
        if len(self._q) >= LANE_MAX:
            coro.close()
            return False
        self._q.append(coro)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return True

    async def _run(self) -> None:
        try:
            while self._q:
                try:
                    await self._q.popleft()
                except (WebSocketDisconnect, OSError):
                    return
                except Exception:
                    log.exception("frame handler failed")
        finally:
            self._task = None

    async def close(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        while self._q:
            self._q.popleft().close()  # never started: no "never awaited" warning


@router.websocket("/ws/inbox")
async def inbox_socket(ws: WebSocket) -> None:
    """Per-person stream for the conversation list (listener console):
    ``activity`` when a conversation gets a message, ``conversation`` when one
    is opened with you, ``presence`` when a conversation peer comes or goes.  Being connected here also counts as online."""
    async with SessionWatch(ws) as watch:
        await _inbox_socket(ws, watch)


async def _inbox_socket(ws: WebSocket, watch: SessionWatch) -> None:
    ctx = ws.app.state.ctx
    if not origin_allowed(ws, ctx.settings.allowed_origins):
        return await _refuse(ws, CLOSE_FORBIDDEN, "来源不被允许", "origin not allowed")
    user = await _authenticate(ws)
    if user is None or watch.ended:
        return await _refuse(ws, CLOSE_UNAUTHENTICATED, "请先登录", "please sign in")
    conn = Connection(ws, user.id, ctx.settings.outbound_queue_max)
    watch.attach(conn)
    topic = f"user:{user.id}"
    await ws.accept()
    await ctx.broker.subscribe(topic, conn.deliver)
    try:
        await ctx.presence.set(user.id, conn.id, "online")
        await ws.send_text(_dumps({"type": "hello", "me": {"user_id": user.id, "role": user.role}}))
        conn.start_sending()
        conn.direct = _direct_protocol(ws)  # outbound only: inbound inbox frames are rare
        while True:
            raw = await _receive(ws)
            if raw is None:
                return
            if conn.revoked:  # the session ended: closing
                continue
            try:
                frame = parse_frame(raw, ctx.settings.max_frame_bytes)
                if frame["type"] == "ping":
                    conn.send(_dumps({"type": "pong", "t": frame.get("t")}))
                elif frame["type"] == "presence":
                    status = "away" if frame.get("status") == "away" else "online"
                    await ctx.presence.set(user.id, conn.id, status)
                else:
                    raise FrameError("unsupported_here", "收件箱连接不支持该事件", "event not supported on inbox")
            except FrameError as e:
                conn.send(e.frame())
    except (WebSocketDisconnect, OSError):
        pass
    finally:
        await ctx.broker.unsubscribe(topic, conn.deliver)
        await conn.finish()
        with contextlib.suppress(Exception):
            await ctx.presence.clear(user.id, conn.id)
