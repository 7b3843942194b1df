"""The WebSocket protocol over real sockets: persist → ack → deliver, idempotent
resend, resume by sequence number, bad frames, authorization, typing, receipts,
presence, and a server restart in the middle of a conversation."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime

import httpx
import pytest
import websockets
from sqlalchemy import func, select

from miaohui.chat.models import Message

pytestmark = pytest.mark.asyncio


def cid() -> str:
    return uuid.uuid4().hex


async def recv_until(ws, type_: str, timeout: float = 5.0, **match) -> dict:
    """Next frame of ``type_`` (and matching fields); frames of other types are skipped."""

    async def go():
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == type_ and all(frame.get(k) == v for k, v in match.items()):
                return frame

    return await asyncio.wait_for(go(), timeout)


async def connect(api, conversation, after_seq=0):
    ws = await api.ws(f"/ws/chat/{conversation}?after_seq={after_seq}")
    hello = json.loads(await ws.recv())
    assert hello["type"] == "hello"
    return ws, hello


async def drain_sync(ws) -> list[dict]:
    msgs = []
    while True:
        f = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if f["type"] == "synced":
            return msgs
        if f["type"] == "message":
            msgs.append(f)


def stored_count(server, conversation) -> int:
    return server.db(
        lambda db: db.scalar(select(func.count()).select_from(Message).where(Message.conversation_id == conversation))
    )


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_send_ack_deliver_and_history(server, seeker, listener, conversation):
    s_ws, hello = await connect(seeker, conversation)
    assert hello["peer"]["display_name"] == "林晴" and hello["me"]["role"] == "seeker"
    await drain_sync(s_ws)
    l_ws, _ = await connect(listener, conversation)
    await drain_sync(l_ws)

    await s_ws.send(json.dumps({"type": "send", "client_id": (c1 := cid()), "body": "今晚又失眠了"}))
    ack = await recv_until(s_ws, "ack")
    assert ack["client_id"] == c1 and ack["seq"] == 1 and ack["duplicate"] is False
    msg = await recv_until(l_ws, "message")
    assert msg["seq"] == 1 and msg["body"] == "今晚又失眠了" and msg["sender_role"] == "seeker"
    assert msg["client_id"] == c1
    assert ack["created_at"] == msg["created_at"]  # one server time for the message, in ack and delivery alike

    await l_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "我在，慢慢说。"}))
    assert (await recv_until(l_ws, "ack"))["seq"] == 2
    assert (await recv_until(s_ws, "message"))["body"] == "我在，慢慢说。"

    async with seeker.client() as c:
        page = (await c.get(f"/api/conversations/{conversation}/messages")).json()
    assert [m["seq"] for m in page["messages"]] == [1, 2] and page["has_more"] is False
    assert _instant(page["messages"][0]["created_at"]) == _instant(ack["created_at"])  # REST writes Z for +00:00
    await s_ws.close()
    await l_ws.close()


async def test_idempotent_resend_and_concurrent_duplicates(server, seeker, conversation):
    ws, _ = await connect(seeker, conversation)
    await drain_sync(ws)
    c1 = cid()
    frame = json.dumps({"type": "send", "client_id": c1, "body": "同一条消息"})
    # Three copies at once (one batch) and one later retry: one stored message.
    for _ in range(3):
        await ws.send(frame)
    acks = [await recv_until(ws, "ack") for _ in range(3)]
    assert {a["seq"] for a in acks} == {1}
    assert sorted(a["duplicate"] for a in acks) == [False, True, True]
    assert len({a["created_at"] for a in acks}) == 1
    await ws.close()
    ws, _ = await connect(seeker, conversation, after_seq=1)
    await drain_sync(ws)
    await ws.send(frame)
    ack = await recv_until(ws, "ack")
    assert ack["seq"] == 1 and ack["duplicate"] is True and ack["created_at"] == acks[0]["created_at"]
    # Over REST too.
    async with seeker.client() as c:
        r = await c.post(f"/api/conversations/{conversation}/messages", json={"client_id": c1, "body": "同一条消息"})
        assert r.status_code == 200 and r.json()["seq"] == 1 and r.json()["duplicate"] is True
    assert stored_count(server, conversation) == 1
    await ws.close()


async def test_reconnect_resumes_from_last_seq_without_loss_or_duplicates(server, seeker, listener, conversation):
    l_ws, _ = await connect(listener, conversation)
    await drain_sync(l_ws)
    s_ws, _ = await connect(seeker, conversation)
    await drain_sync(s_ws)
    for i in range(3):
        await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": f"第{i + 1}条"}))
        await recv_until(s_ws, "ack")
    got = [await recv_until(l_ws, "message") for _ in range(3)]
    assert [m["seq"] for m in got] == [1, 2, 3]
    # The listener drops off ("closes the lid") after seq 3 ...
    await l_ws.close()
    for i in range(3, 8):
        await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": f"第{i + 1}条"}))
        await recv_until(s_ws, "ack")
    # ... and comes back with after_seq=3: gets exactly 4..8, once each.
    l_ws, hello = await connect(listener, conversation, after_seq=3)
    assert hello["last_seq"] == 8
    backlog = await drain_sync(l_ws)
    assert [m["seq"] for m in backlog] == [4, 5, 6, 7, 8]
    assert backlog[0]["body"] == "第4条"
    # Live delivery continues after the backlog.
    await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "还在吗"}))
    assert (await recv_until(l_ws, "message"))["seq"] == 9
    # Explicit sync (gap repair) also works on an open socket.
    await l_ws.send(json.dumps({"type": "sync", "after_seq": 7}))
    assert [(await recv_until(l_ws, "message"))["seq"] for _ in range(2)] == [8, 9]
    await s_ws.close()
    await l_ws.close()


async def test_without_after_seq_sends_latest_page(server, seeker, conversation):
    ws, _ = await connect(seeker, conversation)
    await drain_sync(ws)
    for i in range(55):
        await ws.send(json.dumps({"type": "send", "client_id": cid(), "body": f"m{i}"}))
    for _ in range(55):
        await recv_until(ws, "ack")
    await ws.close()
    ws = await seeker.ws(f"/ws/chat/{conversation}")
    await recv_until(ws, "hello")
    msgs = []
    while True:
        f = json.loads(await ws.recv())
        if f["type"] == "synced":
            break
        msgs.append(f)
    assert [m["seq"] for m in msgs] == list(range(6, 56)) and f["has_more_before"] is True
    async with seeker.client() as c:
        page = (await c.get(f"/api/conversations/{conversation}/messages", params={"before_seq": 6})).json()
    assert [m["seq"] for m in page["messages"]] == list(range(1, 6)) and page["has_more"] is False
    await ws.close()


@pytest.mark.parametrize(
    "frame,code",
    [
        ("{not json", "malformed_json"),
        ("[1,2,3]", "malformed_frame"),
        (json.dumps({"type": "explode"}), "unknown_type"),
        (json.dumps({"body": "x"}), "unknown_type"),
        (json.dumps({"type": "send", "client_id": "c-123456789", "body": ""}), "empty_body"),
        (json.dumps({"type": "send", "client_id": "c-123456789", "body": "   \n "}), "empty_body"),
        (json.dumps({"type": "send", "client_id": "c-123456789", "body": "长" * 4001}), "body_too_long"),
        (json.dumps({"type": "send", "client_id": "short", "body": "hi"}), "bad_client_id"),
        (json.dumps({"type": "send", "body": "hi"}), "bad_client_id"),
        (json.dumps({"type": "send", "client_id": "c-123456789", "body": 42}), "bad_body"),
        (json.dumps({"type": "read", "seq": -1}), "bad_seq"),
        (json.dumps({"type": "read", "seq": "9"}), "bad_seq"),
        ("x" * 70_000, "frame_too_large"),
    ],
)
async def test_bad_frames_get_error_and_connection_stays_open(server, seeker, conversation, frame, code):
    ws, _ = await connect(seeker, conversation)
    await drain_sync(ws)
    await ws.send(frame)
    err = await recv_until(ws, "error")
    assert err["code"] == code and err["message"] and err["message_en"]
    # Still open and working; nothing was stored by the bad frame.
    await ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "正常消息"}))
    assert (await recv_until(ws, "ack"))["seq"] == 1
    assert stored_count(server, conversation) == 1
    await ws.close()


async def test_exactly_4000_characters_is_accepted(server, seeker, conversation):
    ws, _ = await connect(seeker, conversation)
    await drain_sync(ws)
    await ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "字" * 4000}))
    assert (await recv_until(ws, "ack"))["seq"] == 1
    await ws.close()


async def test_foreign_conversation_is_4403_and_leaks_nothing(server, seeker2, conversation):
    for path in (f"/ws/chat/{conversation}", "/ws/chat/" + "0" * 32, "/ws/chat/nonexistent"):
        ws = await seeker2.ws(path + "?after_seq=0")
        frames = []
        with pytest.raises(websockets.ConnectionClosed) as info:
            while True:
                frames.append(json.loads(await ws.recv()))
        assert info.value.rcvd.code == 4403
        assert len(frames) == 1 and frames[0]["type"] == "error"
        assert conversation not in json.dumps(frames)
    async with seeker2.client() as c:
        for url in (f"/api/conversations/{conversation}", f"/api/conversations/{conversation}/messages"):
            r = await c.get(url)
            assert r.status_code == 403 and conversation not in r.text
        r = await c.post(f"/api/conversations/{conversation}/messages", json={"client_id": cid(), "body": "hi"})
        assert r.status_code == 403
        # Same answer for a conversation that does not exist.
        assert (await c.get("/api/conversations/" + "0" * 32)).json() == r.json()


async def test_unauthenticated_socket_is_4401(server, conversation):
    ws = await websockets.connect(f"{server.ws_url}/ws/chat/{conversation}")
    with pytest.raises(websockets.ConnectionClosed) as info:
        while True:
            await ws.recv()
    assert info.value.rcvd.code == 4401


async def test_cross_site_origin_is_refused(server, seeker, conversation):
    ws = await seeker.ws(f"/ws/chat/{conversation}", origin="https://evil.example")
    with pytest.raises(websockets.ConnectionClosed) as info:
        while True:
            await ws.recv()
    assert info.value.rcvd.code == 4403


async def test_typing_receipts_and_presence(server, seeker, listener, conversation):
    s_ws, hello = await connect(seeker, conversation)
    assert hello["peer"]["presence"] == "offline"
    await drain_sync(s_ws)
    l_ws, hello = await connect(listener, conversation)
    assert hello["peer"]["presence"] == "online"
    await drain_sync(l_ws)
    assert (await recv_until(s_ws, "presence", user_id=listener.id))["status"] == "online"

    await l_ws.send(json.dumps({"type": "typing", "state": "start"}))
    t = await recv_until(s_ws, "typing")
    assert t["user_id"] == listener.id and t["state"] == "start"

    await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "在吗"}))
    await recv_until(s_ws, "ack")
    await recv_until(l_ws, "message")
    await l_ws.send(json.dumps({"type": "delivered", "seq": 1}))
    r = await recv_until(s_ws, "receipt", user_id=listener.id)
    assert r["delivered_seq"] == 1 and r["read_seq"] == 0
    # A read watermark beyond what exists is clamped to the last message.
    await l_ws.send(json.dumps({"type": "read", "seq": 999}))
    r = await recv_until(s_ws, "receipt", user_id=listener.id, read_seq=1)
    assert r["delivered_seq"] == 1

    async with listener.client() as c:
        convs = (await c.get("/api/conversations")).json()
    assert convs[0]["unread"] == 0 and convs[0]["peer_read_seq"] == 1

    await l_ws.send(json.dumps({"type": "presence", "status": "away"}))
    assert (await recv_until(s_ws, "presence", user_id=listener.id))["status"] == "away"
    async with seeker.client() as c:
        directory = (await c.get("/api/listeners")).json()
    me = next(d for d in directory if d["user_id"] == listener.id)
    assert me["presence"] == "away"
    await l_ws.close()
    assert (await recv_until(s_ws, "presence", user_id=listener.id))["status"] == "offline"
    await s_ws.send(json.dumps({"type": "ping", "t": 7}))
    assert (await recv_until(s_ws, "pong"))["t"] == 7
    await s_ws.close()


async def test_inbox_sees_new_conversation_and_activity(server, seeker, listener):
    inbox = await listener.ws("/ws/inbox")
    assert json.loads(await inbox.recv())["type"] == "hello"
    async with seeker.client() as c:
        r = await c.post("/api/conversations", json={"listener_id": listener.id})
        conv = r.json()["id"]
        ev = await recv_until(inbox, "conversation")
        assert ev["conversation_id"] == conv
        r = await c.post(f"/api/conversations/{conv}/messages", json={"client_id": cid(), "body": "你好"})
        assert r.status_code == 201 and r.json()["seq"] == 1
    ev = await recv_until(inbox, "activity")
    assert ev["conversation_id"] == conv and ev["seq"] == 1 and ev["sender_id"] == seeker.id
    async with listener.client() as c:
        convs = (await c.get("/api/conversations")).json()
    assert convs[0]["id"] == conv and convs[0]["unread"] == 1 and convs[0]["preview"] == "你好"
    # The listener is online in the directory while the console is open.
    cards = httpx.get(server.url + "/api/listeners", params={"online": "true"}).json()
    assert [c["user_id"] for c in cards] == [listener.id]
    await inbox.close()


async def test_many_concurrent_senders_get_unique_contiguous_seqs(server, seeker, listener, conversation):
    socks = [await connect(api, conversation) for api in (seeker, listener, seeker, listener)]
    for ws, _ in socks:
        await drain_sync(ws)

    async def blast(ws, n):
        for _ in range(n):
            await ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "并发"}))
        return [(await recv_until(ws, "ack"))["seq"] for _ in range(n)]

    seqs = await asyncio.gather(*(blast(ws, 50) for ws, _ in socks))
    flat = sorted(s for part in seqs for s in part)
    assert flat == list(range(1, 201))
    for ws, _ in socks:
        await ws.close()


async def test_server_restart_mid_conversation_resumes(server, seeker, listener, conversation):
    s_ws, _ = await connect(seeker, conversation)
    await drain_sync(s_ws)
    for i in range(5):
        await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": f"重启前{i}"}))
    acked = [await recv_until(s_ws, "ack") for _ in range(5)]
    # The outbox of the client holds one unacknowledged message across the restart.
    pending = {"type": "send", "client_id": cid(), "body": "重启时在途的消息"}
    await asyncio.to_thread(server.restart)
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(s_ws.recv(), 5)
    # Clients reconnect and resume; the resend of the in-flight message is stored once.
    s_ws, hello = await connect(seeker, conversation, after_seq=max(a["seq"] for a in acked))
    assert hello["last_seq"] == 5
    assert await drain_sync(s_ws) == []
    for _ in range(2):
        await s_ws.send(json.dumps(pending))
    a1, a2 = await recv_until(s_ws, "ack"), await recv_until(s_ws, "ack")
    assert a1["seq"] == a2["seq"] == 6
    l_ws, _ = await connect(listener, conversation, after_seq=0)
    got = await drain_sync(l_ws)
    assert [m["seq"] for m in got] == [1, 2, 3, 4, 5, 6]
    assert got[-1]["body"] == "重启时在途的消息"
    await s_ws.close()
    await l_ws.close()


# ---------------------------------------------------------------- the direct lane (miaohui.chat.wsdirect)


def chat_protocols(server, conversation) -> set:
    return {p for p in server._server.server_state.connections
            if getattr(p, "scope", {}).get("path") == f"/ws/chat/{conversation}"}


async def on_server_loop(proto, fn) -> None:
    """Run ``fn()`` on the server's event loop (another thread) and wait for it."""
    done = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()
    proto.loop.call_soon_threadsafe(lambda: (fn(), loop.call_soon_threadsafe(done.set_result, None)))
    await asyncio.wait_for(done, 5)


async def test_chat_sockets_take_the_direct_lane(server, seeker, listener, conversation):
    from miaohui.chat.wsdirect import DirectProtocol

    l_ws, _ = await connect(listener, conversation)
    await drain_sync(l_ws)
    await l_ws.send(json.dumps({"type": "ping", "t": 1}))  # answered only once the read loop runs
    await recv_until(l_ws, "pong")
    (proto,) = chat_protocols(server, conversation)
    assert isinstance(proto, DirectProtocol) and proto.on_text is not None and not proto.read_paused
    s_ws, _ = await connect(seeker, conversation)
    await drain_sync(s_ws)
    for i in range(20):
        await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": f"直达{i}"}))
    bodies = [(await recv_until(l_ws, "message"))["body"] for _ in range(20)]
    assert bodies == [f"直达{i}" for i in range(20)]
    # A malformed frame on the direct lane: an error frame, and the socket stays open.
    await s_ws.send("{not json")
    assert (await recv_until(s_ws, "error"))["code"] == "malformed_json"
    await s_ws.send(json.dumps({"type": "ping", "t": 7}))
    assert (await recv_until(s_ws, "pong"))["t"] == 7
    await s_ws.close()
    await l_ws.close()
    for _ in range(100):
        if not chat_protocols(server, conversation):
            break
        await asyncio.sleep(0.05)
    assert not chat_protocols(server, conversation)


def raw_frame(b0: int, payload: bytes, masked: bool = True, length: int | None = None) -> bytes:
    """One client frame built by hand (RFC 6455 5.2): ``b0`` is FIN/RSV/opcode."""
    ln = len(payload) if length is None else length
    if ln < 126:
        head = bytes((b0, ln | (0x80 if masked else 0)))
    elif ln < 65536:
        head = bytes((b0, 126 | (0x80 if masked else 0))) + ln.to_bytes(2, "big")
    else:
        head = bytes((b0, 127 | (0x80 if masked else 0))) + ln.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = bytes((0x3C, 0xA1, 0x07, 0x5E))
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def send_frame(body: str, client_id: str | None = None) -> bytes:
    data = json.dumps({"type": "send", "client_id": client_id or cid(), "body": body}, ensure_ascii=False)
    return raw_frame(0x81, data.encode())


async def lean_socket(server, api, conversation):
    """A synced chat socket whose frames the server reads itself (wsdirect's lean lane)."""
    ws, _ = await connect(api, conversation)
    await drain_sync(ws)
    await ws.send(json.dumps({"type": "ping", "t": 0}))
    await recv_until(ws, "pong")  # the read loop runs: the socket is direct
    port = ws.local_address[1]
    (proto,) = [p for p in chat_protocols(server, conversation) if p.scope["client"][1] == port]
    assert proto.lean
    return ws, proto


async def test_lean_lane_reads_frames_however_tcp_cuts_them(server, seeker, listener, conversation):
    l_ws, _ = await connect(listener, conversation)
    await drain_sync(l_ws)
    s_ws, proto = await lean_socket(server, seeker, conversation)
    # Three frames in one write; then one of 16-bit length, one byte per write.
    s_ws.transport.write(b"".join(send_frame(f"一起{i}") for i in range(3)))
    long_body = "很长的一段话，" * 40  # > 125 bytes: a 16-bit length
    for b in send_frame(long_body):
        s_ws.transport.write(bytes((b,)))
        await asyncio.sleep(0)
    acks = [await recv_until(s_ws, "ack") for _ in range(4)]
    assert [a["seq"] for a in acks] == [1, 2, 3, 4]
    bodies = [(await recv_until(l_ws, "message"))["body"] for _ in range(4)]
    assert bodies == ["一起0", "一起1", "一起2", long_body]
    assert proto.lean
    await s_ws.close()
    await l_ws.close()


async def test_a_stream_of_sync_frames_is_bounded(server, seeker, conversation):
    """Frames that need I/O wait in a per-socket lane of at most LANE_MAX: past
    that a frame is refused with ``busy`` (never queued without bound), and
    the socket goes on."""
    from miaohui.chat.gateway import LANE_MAX

    s_ws, _proto = await lean_socket(server, seeker, conversation)
    frame = raw_frame(0x81, json.dumps({"type": "sync", "after_seq": 0}).encode())
    s_ws.transport.write(frame * 100)  # one write: the server reads them in one go
    synced = busy = 0
    while synced + busy < 100:
        f = json.loads(await asyncio.wait_for(s_ws.recv(), 5))
        if f["type"] == "synced":
            synced += 1
        elif f["type"] == "error":
            assert f["code"] == "busy" and f["message"] == "操作太频繁，请稍后再试"
            busy += 1
    assert busy >= 1 and LANE_MAX <= synced < 100
    await s_ws.send(json.dumps({"type": "send", "client_id": (c := cid()), "body": "还在"}))
    assert (await recv_until(s_ws, "ack"))["client_id"] == c
    await s_ws.close()


async def test_lean_lane_hands_other_frames_to_websockets(server, seeker, listener, conversation):
    l_ws, _ = await connect(listener, conversation)
    await drain_sync(l_ws)
    s_ws, proto = await lean_socket(server, seeker, conversation)
    # A ping is answered (by websockets), in the middle of frames read here.
    pong = await s_ws.ping(b"hi")
    await asyncio.wait_for(pong, 5)
    # A fragmented message, with a ping between its fragments, in one write.
    data = json.dumps({"type": "send", "client_id": (c := cid()), "body": "分成两段的话"}, ensure_ascii=False).encode()
    s_ws.transport.write(raw_frame(0x01, data[:10]) + raw_frame(0x89, b"mid") + raw_frame(0x80, data[10:]))
    ack = await recv_until(s_ws, "ack")
    assert ack["client_id"] == c and ack["seq"] == 1
    assert (await recv_until(l_ws, "message"))["body"] == "分成两段的话"
    # Still lean: the next whole frame is read here again.
    s_ws.transport.write(send_frame("又一条"))
    assert (await recv_until(s_ws, "ack"))["seq"] == 2
    assert proto.lean
    # Replies are ordinary frames to an ordinary client.
    await s_ws.send(json.dumps({"type": "ping", "t": 9}))
    assert (await recv_until(s_ws, "pong"))["t"] == 9
    await s_ws.close()
    assert s_ws.close_code == 1000
    await l_ws.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (raw_frame(0x81, b'{"type":"ping","t":1}', masked=False), 1002),  # clients must mask
        (raw_frame(0x81, b"", length=10 * 1024 * 1024), 1009),  # over ws_max_size, refused on its header
        (raw_frame(0x81, b'{"type":"ping","t":"\xff"}'), 1007),  # not UTF-8
        (raw_frame(0xC1, b"{}"), 1002),  # RSV1 without an extension
        (raw_frame(0x80, b"{}"), 1002),  # a continuation of nothing
    ],
    ids=["unmasked", "too-big", "bad-utf8", "rsv1", "stray-continuation"],
)
async def test_lean_lane_closes_on_bad_frames_as_websockets_would(server, seeker, conversation, frame, code):
    s_ws, _ = await lean_socket(server, seeker, conversation)
    s_ws.transport.write(frame)
    with pytest.raises(websockets.ConnectionClosed) as info:
        await recv_until(s_ws, "never")
    assert info.value.rcvd is not None and info.value.rcvd.code == code
    assert stored_count(server, conversation) == 0


async def test_back_pressure_queues_frames_and_delivers_them_in_order(server, seeker, listener, conversation):
    l_ws, _ = await connect(listener, conversation)
    await drain_sync(l_ws)
    (proto,) = chat_protocols(server, conversation)
    s_ws, _ = await connect(seeker, conversation)
    await drain_sync(s_ws)
    await on_server_loop(proto, proto.pause_writing)  # as a full socket buffer would
    for i in range(5):
        await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": f"排队{i}"}))
    assert [(await recv_until(s_ws, "ack"))["seq"] for _ in range(5)] == [1, 2, 3, 4, 5]
    with pytest.raises(TimeoutError):
        await recv_until(l_ws, "message", timeout=0.3)  # held back, not dropped
    await on_server_loop(proto, proto.resume_writing)
    seqs = [(await recv_until(l_ws, "message"))["seq"] for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    # Then straight through again, still in order.
    await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "又通了"}))
    assert (await recv_until(l_ws, "message"))["seq"] == 6
    await s_ws.close()
    await l_ws.close()


async def test_frames_sent_during_the_backlog_are_handled_in_order(server, seeker, listener, conversation):
    s_ws, _ = await connect(seeker, conversation)
    await drain_sync(s_ws)
    for i in range(700):  # more than one backlog page (500)
        await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": f"积压{i}"}))
    for _ in range(700):
        await recv_until(s_ws, "ack")
    # The listener sends at once, before the 700-message backlog has arrived.
    l_ws = await listener.ws(f"/ws/chat/{conversation}?after_seq=0")
    ids = [cid() for _ in range(3)]
    for i, c in enumerate(ids):
        await l_ws.send(json.dumps({"type": "send", "client_id": c, "body": f"同步中{i}"}))
    acks = [await recv_until(l_ws, "ack", timeout=10) for _ in range(3)]
    assert [a["client_id"] for a in acks] == ids and [a["seq"] for a in acks] == [701, 702, 703]
    assert [(await recv_until(s_ws, "message"))["body"] for _ in range(3)] == ["同步中0", "同步中1", "同步中2"]
    await s_ws.close()
    await l_ws.close()


async def test_a_write_lock_held_elsewhere_never_blocks_the_event_loop(sqlite_url, tmp_path):
    """SQLite batches commit on the event loop only when the write lock is
    free; while another connection holds it, the batch waits on the writer
    thread and every socket keeps being served (chat.writer._commit)."""
    import sqlite3

    from miaohui.clock import Clock
    from tests.conftest import Api, LiveServer, make_settings

    server = LiveServer(make_settings(sqlite_url, tmp_path), Clock()).start()
    try:
        seeker, listener = Api(server, "xiaoyu"), Api(server, "linqing")
        r = httpx.post(f"{server.url}/api/conversations", json={"listener_id": listener.id}, headers=seeker.headers)
        conversation = r.json()["id"]
        s_ws, _ = await connect(seeker, conversation)
        await drain_sync(s_ws)
        await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "锁前"}))
        assert (await recv_until(s_ws, "ack"))["seq"] == 1

        other = sqlite3.connect(sqlite_url.split("///", 1)[1], isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # someone else's write transaction
        try:
            await s_ws.send(json.dumps({"type": "send", "client_id": (c2 := cid()), "body": "等锁"}))
            with pytest.raises(TimeoutError):
                await recv_until(s_ws, "ack", timeout=0.5)  # not acknowledged before it is stored
            for t in range(3):  # ...but the loop answers meanwhile
                await s_ws.send(json.dumps({"type": "ping", "t": t}))
                assert (await recv_until(s_ws, "pong", timeout=2))["t"] == t
        finally:
            other.execute("COMMIT")
            other.close()
        ack = await recv_until(s_ws, "ack", timeout=5)
        assert ack["client_id"] == c2 and ack["seq"] == 2
        await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "锁后"}))
        assert (await recv_until(s_ws, "ack"))["seq"] == 3
        await s_ws.close()
    finally:
        server.stop()


async def test_hello_counts_a_senders_own_messages_as_read(server, seeker, listener, conversation):
    """The hello frame's receipts come from ``Participant.watermarks``: what
    someone sent themselves counts as delivered to and read by them."""
    s_ws, _ = await connect(seeker, conversation)
    await drain_sync(s_ws)
    for n in range(2):
        await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": f"第{n}句"}))
        await recv_until(s_ws, "ack")
    l_ws, hello = await connect(listener, conversation)
    assert hello["receipts"][seeker.id] == {"delivered_seq": 2, "read_seq": 2}
    assert hello["receipts"][listener.id] == {"delivered_seq": 0, "read_seq": 0}
    await drain_sync(l_ws)
    await l_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "我在"}))
    await recv_until(l_ws, "ack")
    s2, hello = await connect(seeker, conversation)
    assert hello["receipts"][listener.id] == {"delivered_seq": 3, "read_seq": 3}
    assert hello["receipts"][seeker.id] == {"delivered_seq": 2, "read_seq": 2}
    for ws in (s_ws, l_ws, s2):
        await ws.close()
