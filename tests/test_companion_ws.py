"""The AI companion over the real gateway (live server, SQLite and PostgreSQL):
open it from the API, a greeting that says it is AI, streamed replies whose
chunks add up to the persisted message, resume after a reconnect, a tool run
to completion, the crisis path overriding the engine, the supervisor called
in, the daily soft limit (never during a crisis), session wrap-up and the
two-hour pause, memory (encrypted, editable), the handoff to a listener, and
human conversations untouched."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from sqlalchemy import select

from miaohui.companion.models import CompanionMemory, CompanionProfile
from miaohui.companion.service import AI_USER_ID
from miaohui.supervision.models import RiskCase
from tests.conftest import Api
from tests.test_chat_ws import connect, drain_sync, recv_until

pytestmark = pytest.mark.asyncio


def cid() -> str:
    return uuid.uuid4().hex


async def open_companion(api) -> str:
    async with api.client() as c:
        r = await c.post("/api/companion/open")
    assert r.status_code == 200, r.text
    return r.json()["conversation_id"]


async def say(ws, body: str, timeout: float = 10.0) -> tuple[dict, str, list[dict]]:
    """Send ``body``; return (the AI's stored message, the streamed text, frames seen)."""
    c = cid()
    await ws.send(json.dumps({"type": "send", "client_id": c, "body": body}))
    frames: list[dict] = []
    streamed: dict[str, str] = {}

    async def go():
        ack = msg = None
        while True:
            f = json.loads(await ws.recv())
            frames.append(f)
            if f["type"] == "ack" and f["client_id"] == c:
                ack = f
            elif f["type"] == "companion_delta":
                streamed[f["client_id"]] = streamed.get(f["client_id"], "") + f["text"]
            elif f["type"] == "companion_retract":
                streamed[f["client_id"]] = ""
            elif f["type"] == "message" and f["sender_id"] == AI_USER_ID and ack and f["client_id"] == f"ai-{ack['seq']}":
                msg = f
            elif f["type"] == "companion_end" and msg is not None and f["client_id"] == msg["client_id"]:
                return msg

    msg = await asyncio.wait_for(go(), timeout)
    return msg, streamed.get(msg["client_id"], ""), frames


async def test_companion_conversation_streams_and_resumes(server, seeker):
    conv = await open_companion(seeker)
    async with seeker.client() as c:  # opening twice is the same conversation
        assert (await c.post("/api/companion/open")).json() == {"conversation_id": conv, "created": False}
    ws, hello = await connect(seeker, conv)
    assert hello["peer"]["role"] == "companion" and hello["peer"]["user_id"] == AI_USER_ID
    backlog = await drain_sync(ws)
    assert backlog and backlog[0]["sender_role"] == "companion" and "AI" in backlog[0]["body"]  # says it is AI

    msg, streamed, frames = await say(ws, "最近工作压力好大，每天都好累")
    assert msg["sender_role"] == "companion" and msg["body"] == streamed.strip() and len(msg["body"]) > 10
    deltas = [f for f in frames if f["type"] == "companion_delta"]
    assert len(deltas) >= 2  # streamed in pieces, not at once
    assert any(f["type"] == "companion_start" for f in frames)
    assert any(f["type"] == "typing" and f["user_id"] == AI_USER_ID for f in frames)
    last_seq = msg["seq"]
    await ws.close()

    # A reply written while the seeker is away is in the history: resume finds it.
    async with seeker.client() as c:
        r = await c.post(f"/api/conversations/{conv}/messages", json={"client_id": cid(), "body": "老板肯定觉得我很没用"})
        assert r.status_code == 201
    await asyncio.sleep(0.1)
    ws, _ = await connect(seeker, conv, after_seq=last_seq)
    got = await drain_sync(ws)
    deadline = asyncio.get_running_loop().time() + 10
    while not any(m["sender_id"] == AI_USER_ID for m in got):
        got.append(await recv_until(ws, "message", timeout=max(0.1, deadline - asyncio.get_running_loop().time())))
    ai = next(m for m in got if m["sender_id"] == AI_USER_ID)
    assert "读心术" in ai["body"] or "？" in ai["body"]
    await ws.close()


async def test_tool_runs_to_completion_and_offers(server, seeker):
    conv = await open_companion(seeker)
    ws, _ = await connect(seeker, conv)
    await drain_sync(ws)
    msg, _, _ = await say(ws, "我想试试「稳住自己」")
    assert "5 样" in msg["body"]
    for answer in ("桌子、台灯、杯子、手机、窗帘", "衣服、椅子、手机、杯子", "空调、车声、键盘", "咖啡、洗衣液", "薄荷糖"):
        msg, _, _ = await say(ws, answer)
    assert "呼吸" in msg["body"]
    msg, _, _ = await say(ws, "现在大概4分")
    assert "4 分" in msg["body"] and "着陆" not in msg["body"] or "注意力" in msg["body"]
    # An offer comes as a card on the seeker's private stream.
    msg, _, frames = await say(ws, "最近晚上总是睡不着，脑子停不下来")
    offers = [f for f in frames if f["type"] == "companion_card" and f["kind"] == "offer"]
    assert offers and offers[0]["tools"][0]["name"] == "睡不着"
    await ws.close()


async def test_crisis_overrides_engine_and_calls_a_human(server, seeker):
    conv = await open_companion(seeker)
    ws, _ = await connect(seeker, conv)
    await drain_sync(ws)
    msg, _, frames = await say(ws, "我真的不想活了")
    assert "真人督导" in msg["body"] and "AI" in msg["body"]
    assert any(f["type"] == "hotline" for f in frames)  # the hotline card at ideation
    card = next(f for f in frames if f["type"] == "companion_card")
    assert card["kind"] == "crisis" and card["human"]["title"]
    # The case is open (guardian mode); the seeker asks for a human now: an alarm for supervisors.
    for _ in range(50):
        cases = server.db(lambda db: db.scalars(select(RiskCase).where(RiskCase.conversation_id == conv)))
        cases = list(cases)
        if cases:
            break
        await asyncio.sleep(0.05)
    assert cases and cases[0].rank >= 2 and cases[0].listener_id == AI_USER_ID
    async with seeker.client() as c:
        r = await c.post("/api/companion/human", json={"conversation_id": conv})
        assert r.status_code == 200, r.text
        s = (await c.get("/api/companion/settings")).json()
    assert s["crisis"] is True and s["hotline"]["lines"]
    case = server.db(lambda db: db.scalar(select(RiskCase).where(RiskCase.conversation_id == conv)))
    assert case.worried and "seeker_request" in case.signals
    # Follow-up turns in guardian mode stay vetted and never repeat.
    msg2, _, _ = await say(ws, "我不知道")
    msg3, _, _ = await say(ws, "活着好累")
    assert len({msg["body"], msg2["body"], msg3["body"]}) == 3
    await ws.close()


async def test_crisis_reply_is_never_cancelled_by_the_next_message(server, seeker):
    conv = await open_companion(seeker)
    ws, _ = await connect(seeker, conv)
    await drain_sync(ws)
    await ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "我不想活了"}))
    msg, _, _ = await say(ws, "算了，当我没说")  # sent right away, while the crisis reply is being written
    bodies = []
    async with seeker.client() as c:
        for _ in range(100):
            page = (await c.get(f"/api/conversations/{conv}/messages")).json()["messages"]
            bodies = [m["body"] for m in page if m["sender_id"] == AI_USER_ID]
            if len(bodies) >= 3:
                break
            await asyncio.sleep(0.05)
    assert len(bodies) == 3  # greeting, the crisis reply, the reply to the second message
    assert "督导" in bodies[1]
    await ws.close()


async def test_soft_limit_never_during_crisis(database_url, tmp_path, clock):
    from tests.conftest import Api, LiveServer, make_settings

    s = LiveServer(make_settings(database_url, tmp_path, companion_daily_turns=2), clock).start()
    try:
        seeker = Api(s, "xiaoyu")
        conv = await open_companion(seeker)
        ws, _ = await connect(seeker, conv)
        await drain_sync(ws)
        await say(ws, "今天有点烦")
        await say(ws, "工作的事")
        msg, _, frames = await say(ws, "还是想说说")
        assert "上限" in msg["body"]
        assert any(f["type"] == "companion_card" and f["kind"] == "limit" for f in frames)
        msg, _, _ = await say(ws, "我不想活了")  # the limit never applies during a crisis
        assert "上限" not in msg["body"] and "督导" in msg["body"]
        msg, _, _ = await say(ws, "嗯")
        assert "上限" not in msg["body"]
        await ws.close()
    finally:
        s.stop()


async def test_wrap_up_and_pause(server, seeker, clock):
    conv = await open_companion(seeker)
    async with seeker.client() as c:
        r = await c.put("/api/companion/settings", json={"session_minutes": 15, "set_session": True})
        assert r.status_code == 200 and r.json()["session_minutes"] == 15
    ws, _ = await connect(seeker, conv)
    await drain_sync(ws)
    msg, _, _ = await say(ws, "我们聊聊吧")
    assert "分钟" not in msg["body"]
    clock.advance(minutes=16)
    msg, _, _ = await say(ws, "还在吗")
    assert "15 分钟" in msg["body"]  # gentle wrap-up once
    msg, _, _ = await say(ws, "我还想再说一会儿")
    assert "15 分钟" not in msg["body"]
    for _ in range(6):  # keep talking, every 20 minutes, past two hours
        clock.advance(minutes=20)
        msg, _, _ = await say(ws, "继续说说工作的事")
        if "两个多小时" in msg["body"]:
            break
    assert "两个多小时" in msg["body"]
    clock.advance(minutes=5)
    msg, _, _ = await say(ws, "好的")
    assert "两个多小时" not in msg["body"]  # suggested once per stretch
    await ws.close()


async def tell_companion(api, body: str) -> str:
    """Open the AI conversation, say one thing, wait for the reply, leave; its id."""
    conv = await open_companion(api)
    ws, _ = await connect(api, conv)
    await drain_sync(ws)
    await say(ws, body)
    await ws.close()
    return conv


async def test_memory_is_encrypted_visible_and_editable(server, seeker):
    await tell_companion(seeker, "叫我小雨就好，我是大三学生")
    async with seeker.client() as c:
        items = (await c.get("/api/companion/memory")).json()
        texts = {m["text"] for m in items}
        assert {"小雨", "是大三学生"} <= texts
        name = next(m for m in items if m["kind"] == "name")
        r = await c.patch(f"/api/companion/memory/{name['id']}", json={"text": "雨"})
        assert r.status_code == 200 and r.json()["text"] == "雨"
        r = await c.post("/api/companion/memory", json={"kind": "preference", "text": "少给建议"})
        assert r.status_code == 201
        other = next(m for m in items if m["kind"] == "fact")
        assert (await c.delete(f"/api/companion/memory/{other['id']}")).status_code == 200
        left = {m["text"] for m in (await c.get("/api/companion/memory")).json()}
        assert left == {"雨", "少给建议"}
    rows = server.db(lambda db: db.scalars(select(CompanionMemory)))
    rows = list(rows)
    assert rows and all("雨".encode() not in r.body_ct and "建议".encode() not in r.body_ct for r in rows)
    prof = server.db(lambda db: db.scalar(select(CompanionProfile)))
    assert prof.state_ct and b"turn" not in prof.state_ct  # engine state encrypted too
    async with seeker.client() as c:
        assert (await c.delete("/api/companion/memory")).json()["deleted"] == 2


async def test_handoff_sends_reviewed_summary_to_listener(server, seeker, listener):
    conv = await open_companion(seeker)
    ws, _ = await connect(seeker, conv)
    await drain_sync(ws)
    await say(ws, "和男朋友分手了，每天都很难过")
    await ws.close()
    async with seeker.client() as c:
        draft = (await c.get("/api/companion/summary")).json()["summary"]
        assert "失恋" in draft and "难过" in draft
        edited = draft.replace("我希望你能：（写下你最希望倾听师知道或做的事）", "我希望你先听我说。")
        r = await c.post("/api/companion/handoff", json={"listener_id": listener.id, "summary": edited})
        assert r.status_code == 200, r.text
        human_conv = r.json()["conversation_id"]
    async with listener.client() as c:
        page = (await c.get(f"/api/conversations/{human_conv}/messages")).json()
    assert page["messages"][-1]["body"].endswith("我希望你先听我说。")
    assert page["messages"][-1]["sender_id"] == seeker.id


async def test_not_for_listeners_and_human_chats_untouched(server, seeker, listener, conversation):
    async with listener.client() as c:
        assert (await c.post("/api/companion/open")).status_code == 403
        assert (await c.get("/api/companion/memory")).status_code == 403
    ws, _ = await connect(seeker, conversation)
    await drain_sync(ws)
    await ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "你好"}))
    await recv_until(ws, "ack")
    with pytest.raises(asyncio.TimeoutError):  # no AI in a human conversation
        await recv_until(ws, "message", timeout=0.5)
    assert server.ctx.companion.stats["crisis"] == 0
    await ws.close()
    r = httpx.get(f"{server.url}/companion", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_supervisor_joins_and_the_ai_steps_back(server, seeker):
    conv = await open_companion(seeker)
    ws, _ = await connect(seeker, conv)
    await drain_sync(ws)
    await say(ws, "我真的不想活了")
    async with seeker.client() as c:
        case_id = (await c.post("/api/companion/human", json={"conversation_id": conv})).json()["case_id"]
    sup = Api(server, "supervisor")
    async with sup.client() as c:
        queue = (await c.get("/api/supervision/queue")).json()
        assert queue[0]["id"] == case_id and queue[0]["worried"] is True  # first in the queue, with an alarm
        assert (await c.post(f"/api/supervision/cases/{case_id}/join")).status_code == 200
    notice = await recv_until(ws, "message", sender_role="system")
    assert "督导（真人）" in notice["body"] and "AI 陪伴先不说话" in notice["body"]
    await ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "你好"}))
    await recv_until(ws, "ack")
    with pytest.raises(asyncio.TimeoutError):  # the human talks now; the AI stays quiet
        await recv_until(ws, "message", timeout=1.0, sender_id=AI_USER_ID)
    async with sup.client() as c:
        r = await c.post(f"/api/conversations/{conv}/messages", json={"client_id": cid(), "body": "我是督导，我在。"})
        assert r.status_code == 201
    assert (await recv_until(ws, "message", sender_role="supervisor"))["body"] == "我是督导，我在。"
    await ws.close()
