"""Safety in the product, over the live server on SQLite and PostgreSQL, with
the real risk model (``miaohui.safety.assess``): risk events after COMMIT to
the listener only, the hotline card to the seeker only, cases in a queue
ordered by risk then waiting time, masking of off-platform contact, guardian
mode keeping a paid order open past its end (and the platform paying for
it), audited transcript reads, whispers, joining, authorization."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets
from sqlalchemy import select

from miaohui.chat import service as chat
from miaohui.chat.models import Message
from miaohui.safety import assess
from miaohui.supervision.models import CaseEvent, RiskCase, TranscriptAccess
from tests.conftest import Api
from tests.test_chat_ws import cid, connect, drain_sync, recv_until
from tests.test_orders import available, books_ok, buy, earnings, fund, get_order, history, say, wait_for

PLAN = "今晚我就跳下去，再见了"
IMMINENT = "我已经把安眠药都准备好了，今晚就吃"
IDEATION = "我不想活了，活着没意思"
DISTRESS = "我好难过，男朋友跟我分手了"
RANK = {"none": 0, "distress": 1, "ideation": 2, "plan": 3, "imminent": 4}


# The scheduler ticks every 50 ms, so a step of the fake clock is acted on at once.
pytestmark = pytest.mark.server_settings(sla_tick_seconds=0.05)


@pytest.fixture
def sup(server) -> Api:
    return Api(server, "supervisor")


def test_the_real_model_rates_the_test_messages():
    """The texts below are chosen by what the model says, not faked."""
    assert RANK[assess(PLAN).tier] >= 3 and RANK[assess(IMMINENT).tier] >= 3
    assert assess(IDEATION).tier == "ideation"
    assert assess(DISTRESS).tier == "distress"


def open_conversation(server, seeker: Api, listener: Api) -> str:
    r = httpx.post(f"{server.url}/api/conversations", json={"listener_id": listener.id}, headers=seeker.headers)
    assert r.status_code in (200, 201), r.text
    return r.json()["id"]


def get(server, who: Api, path: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers=who.headers)


def post(server, who: Api, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body or {}, headers=who.headers)


def wait_queue(server, sup: Api, pred, timeout=5.0) -> list[dict]:
    deadline = time.time() + timeout
    while True:
        q = get(server, sup, "/api/supervision/queue").json()
        if pred(q):
            return q
        if time.time() > deadline:
            raise AssertionError(f"queue never matched: {q}")
        time.sleep(0.05)


async def frames_for(ws, seconds: float) -> list[dict]:
    out = []
    try:
        while True:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), seconds)))
    except TimeoutError:
        return out


@pytest.mark.asyncio
async def test_plan_message_alerts_listener_and_supervisors_and_shows_the_seeker_hotlines(
    server, seeker, listener, conversation, sup
):
    s_ws, _ = await connect(seeker, conversation)
    await drain_sync(s_ws)
    l_ws, _ = await connect(listener, conversation)
    await drain_sync(l_ws)
    async with sup.ws("/ws/supervision") as q, listener.ws("/ws/inbox") as inbox:
        assert json.loads(await q.recv())["type"] == "hello"
        assert json.loads(await inbox.recv())["type"] == "hello"
        t0 = time.monotonic()
        await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": PLAN}))
        ack = await recv_until(s_ws, "ack")
        risk = await recv_until(l_ws, "risk")
        case = await recv_until(q, "case")
        card = await recv_until(s_ws, "hotline")
        assert time.monotonic() - t0 < 1.0
        on_console = await recv_until(inbox, "risk")

    expected = assess(PLAN)
    assert risk["seq"] == ack["seq"] and risk["tier"] == expected.tier and risk["level"] == expected.level
    steps = {s["key"]: s["text"] for s in risk["guidance"]["steps"]}
    assert {"ask", "stay", "plan", "ground", "emergency"} <= set(steps)
    assert "你现在身边能看到什么？摸到什么？" in steps["ground"] and "自杀" in steps["ask"]
    assert on_console["tier"] == expected.tier
    assert case["alarm"] is True and case["case"]["rank"] >= 3 and case["case"]["guardian"] is True
    assert case["case"]["seeker"]["display_name"] == "小雨" and case["case"]["conversation_id"] == conversation
    numbers = [line["number"] for line in card["lines"]]
    assert numbers == ["12356", "010-82951332", "400-161-9995", "110", "120"]

    # The seeker's stream carries the hotline card and nothing else about risk.
    rest = await frames_for(s_ws, 0.3)
    assert not [f for f in rest if f["type"] in ("risk", "case", "whisper", "boundary")]
    # The message itself is stored and delivered unchanged.
    assert [m["body"] for m in history(server, listener, conversation)] == [PLAN]

    queue = wait_queue(server, sup, lambda q: len(q) == 1)
    view = get(server, sup, f"/api/supervision/cases/{queue[0]['id']}").json()
    kinds = [e["kind"] for e in view["events"]]
    assert kinds[:2] == ["guardian_started", "opened"] or kinds[:2] == ["opened", "guardian_started"]
    opened = next(e for e in view["events"] if e["kind"] == "opened")
    assert opened["data"]["seq"] == ack["seq"] and opened["data"]["tier"] == expected.tier

    # A second, worse message escalates the same case (one open case per conversation).
    await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": IMMINENT}))
    wait_queue(server, sup, lambda q: len(q) == 1 and q[0]["tier"] == "imminent")

    # Nothing of the text is stored outside the (encrypted) messages.
    def stored(db):
        async def go():
            events = list(await db.scalars(select(CaseEvent)))
            cases = list(await db.scalars(select(RiskCase)))
            return events, cases
        return go()

    events, cases = server.db(stored)
    assert len(cases) == 1 and cases[0].open_key == conversation
    blob = json.dumps([e.data for e in events], ensure_ascii=False) + json.dumps(cases[0].signals, ensure_ascii=False)
    assert "跳下去" not in blob and "安眠药" not in blob
    await s_ws.close()
    await l_ws.close()


@pytest.mark.asyncio
async def test_distress_gives_the_listener_an_approach_hint_and_no_case(server, seeker, listener, conversation, sup):
    l_ws, _ = await connect(listener, conversation)
    await drain_sync(l_ws)
    r = post(server, seeker, f"/api/conversations/{conversation}/messages", {"client_id": cid(), "body": DISTRESS})
    assert r.status_code == 201
    risk = await recv_until(l_ws, "risk")
    assert risk["tier"] == "distress" and "guidance" not in risk
    assert risk["emotions"][0]["label"] == assess(DISTRESS).emotions[0][0]
    assert "失恋/情感" in risk["topics"]
    assert "反映" in "".join(risk["hint"]["steps"]) and risk["hint"]["approach"]
    assert get(server, sup, "/api/supervision/queue").json() == []
    await l_ws.close()


@pytest.mark.asyncio
async def test_off_platform_contact_is_masked_for_both_and_both_are_warned(server, seeker, listener, conversation, sup):
    s_ws, _ = await connect(seeker, conversation)
    await drain_sync(s_ws)
    l_ws, _ = await connect(listener, conversation)
    await drain_sync(l_ws)
    await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "加我微信 abc_12345，电话 138 1234 5678"}))
    masked = "加我微信 [账号已隐藏]，电话 [号码已隐藏]"
    ack = await recv_until(s_ws, "ack")
    delivered = await recv_until(l_ws, "message")
    assert delivered["body"] == masked and delivered["seq"] == ack["seq"]
    warn_s = await recv_until(s_ws, "boundary")
    warn_l = await recv_until(l_ws, "boundary")
    assert warn_s["kind"] == warn_l["kind"] == "off_platform"
    assert warn_s["body"] == masked and warn_s["seq"] == ack["seq"]  # the sender's bubble shows it masked too
    assert "平台外" in warn_s["text"] and "私下收款" in warn_l["text"]

    # Stored masked: every reader gets the masked body; the ciphertext never held the number.
    for who in (seeker, listener):
        bodies = [m["body"] for m in history(server, who, conversation)]
        assert bodies == [masked]

    # From the listener's side too (REST), with the payment-outside signal.
    r = post(server, listener, f"/api/conversations/{conversation}/messages",
             {"client_id": cid(), "body": "以后私下转账给我，备注自愿赠与，我QQ是 12345678"})
    assert r.status_code == 201
    w1 = await recv_until(s_ws, "boundary")
    w2 = await recv_until(l_ws, "boundary")
    assert w1["kind"] == w2["kind"] == "off_platform" and "[账号已隐藏]" in w2["body"]
    assert history(server, seeker, conversation)[-1]["body"] == "以后私下转账给我，备注自愿赠与，我QQ是 [账号已隐藏]"

    q = wait_queue(server, sup, lambda q: q and q[0]["flags"].get("off_platform", {}).get("count") == 2)
    flag = q[0]["flags"]["off_platform"]
    assert set(flag["from"]) == {"seeker", "listener"}
    assert {"contact_app", "pay_outside", "contact_id", "mobile"} <= set(flag["signals"])
    assert q[0]["rank"] == 0 and q[0]["guardian"] is False  # a flag for supervision, not a crisis

    async def stored(db):  # the database itself, decrypted with the server's key ring
        rows = await db.scalars(select(Message).where(Message.conversation_id == conversation))
        return [chat.decrypt(server.ctx.keyring, m) for m in rows]

    for body in server.db(stored):
        assert "12345678" not in body and "1381234" not in body.replace(" ", "") and "abc_12345" not in body
    await s_ws.close()
    await l_ws.close()


@pytest.mark.asyncio
async def test_attachment_gives_the_listener_a_boundary_note_and_flags_supervision(
    server, seeker, listener, conversation, sup
):
    s_ws, _ = await connect(seeker, conversation)
    await drain_sync(s_ws)
    l_ws, _ = await connect(listener, conversation)
    await drain_sync(l_ws)
    await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "你是唯一懂我的人，我好想见你"}))
    note = await recv_until(l_ws, "boundary")
    assert note["kind"] == "attachment" and note["from"] == "seeker" and "边界" in note["title"]
    assert set(note["signals"]) == {"唯一依赖", "想线下见面"}
    assert history(server, listener, conversation)[0]["body"] == "你是唯一懂我的人，我好想见你"  # not masked
    assert not [f for f in await frames_for(s_ws, 0.3) if f["type"] == "boundary"]
    q = wait_queue(server, sup, lambda q: len(q) == 1)
    assert q[0]["flags"]["attachment"]["labels"] == ["唯一依赖", "想线下见面"]
    await s_ws.close()
    await l_ws.close()


def test_queue_is_ordered_by_risk_then_waiting_time(server, clock, sup):
    xiaoyu, ahe = Api(server, "xiaoyu"), Api(server, "ahe")
    linqing, zhouyan = Api(server, "linqing"), Api(server, "zhouyan")
    a = open_conversation(server, xiaoyu, linqing)
    b = open_conversation(server, ahe, linqing)
    c = open_conversation(server, xiaoyu, zhouyan)
    d = open_conversation(server, ahe, zhouyan)
    say(server, ahe, d, "加个微信吧，我们私下聊")  # oldest, but only a flag
    wait_queue(server, sup, lambda q: len(q) == 1)
    clock.advance(60)
    say(server, xiaoyu, a, IDEATION)  # ideation, waiting longest of the risk cases
    wait_queue(server, sup, lambda q: len(q) == 2)
    clock.advance(60)
    say(server, ahe, b, PLAN)  # highest risk, newest
    wait_queue(server, sup, lambda q: len(q) == 3)
    clock.advance(60)
    say(server, xiaoyu, c, IDEATION)  # same risk as a, waited less
    q = wait_queue(server, sup, lambda q: len(q) == 4)
    assert [x["conversation_id"] for x in q] == [b, a, c, d]
    assert [x["waiting_s"] for x in q] == [60, 120, 0, 180]
    # A listener's call for help puts a quiet conversation above the flags at once.
    e = open_conversation(server, ahe, Api(server, "ajin"))
    r = post(server, Api(server, "ajin"), "/api/supervision/worry", {"conversation_id": e, "note": "对方一直不说话"})
    assert r.status_code == 201 and r.json()["worried"] is True and r.json()["guardian"] is True
    q = get(server, sup, "/api/supervision/queue").json()
    assert [x["conversation_id"] for x in q] == [b, a, c, e, d]


def test_authorization(server, sup):
    xiaoyu, linqing, zhouyan = Api(server, "xiaoyu"), Api(server, "linqing"), Api(server, "zhouyan")
    admin = Api(server, "admin")
    mine = open_conversation(server, xiaoyu, linqing)
    theirs = open_conversation(server, xiaoyu, zhouyan)
    say(server, xiaoyu, mine, PLAN)
    say(server, xiaoyu, theirs, IDEATION)
    q = wait_queue(server, sup, lambda q: len(q) == 2)
    case_mine = next(x["id"] for x in q if x["conversation_id"] == mine)
    case_theirs = next(x["id"] for x in q if x["conversation_id"] == theirs)

    for who in (xiaoyu, linqing):  # only supervisors and admins see the queue
        assert get(server, who, "/api/supervision/queue").status_code == 403
    assert get(server, admin, "/api/supervision/queue").status_code == 200
    # A listener sees their own cases only; a seeker none.
    own = get(server, linqing, "/api/supervision/cases").json()
    assert [x["id"] for x in own] == [case_mine]
    assert get(server, linqing, f"/api/supervision/cases/{case_mine}").status_code == 200
    assert get(server, linqing, f"/api/supervision/cases/{case_theirs}").status_code == 404
    assert get(server, xiaoyu, f"/api/supervision/cases/{case_mine}").status_code == 404
    assert get(server, xiaoyu, "/api/supervision/cases").status_code == 403
    # Reading transcripts and acting on cases is for supervisors.
    for who in (xiaoyu, linqing):
        assert get(server, who, f"/api/supervision/cases/{case_mine}/transcript").status_code == 403
        assert post(server, who, f"/api/supervision/cases/{case_mine}/whisper", {"body": "x"}).status_code == 403
        assert post(server, who, f"/api/supervision/cases/{case_mine}/resolve", {"note": "x"}).status_code == 403
    assert post(server, xiaoyu, "/api/supervision/worry", {"conversation_id": mine}).status_code == 403
    assert post(server, linqing, "/api/supervision/worry", {"conversation_id": theirs}).status_code == 403
    # Pages: the console for staff only.
    assert get(server, sup, "/supervision").status_code == 200
    assert get(server, linqing, "/supervision").status_code == 403
    assert get(server, linqing, f"/supervision/cases/{case_mine}").status_code == 403

    async def socket_refused(who):
        async with who.ws("/ws/supervision") as ws:
            err = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            return err, closed.value.rcvd.code

    err, code = asyncio.run(socket_refused(linqing))
    assert err["type"] == "error" and code == 4403


def test_transcript_access_is_audited(server, sup, clock):
    xiaoyu, linqing = Api(server, "xiaoyu"), Api(server, "linqing")
    conv = open_conversation(server, xiaoyu, linqing)
    say(server, xiaoyu, conv, "在吗")
    say(server, linqing, conv, "我在")
    say(server, xiaoyu, conv, PLAN)
    case_id = wait_queue(server, sup, lambda q: len(q) == 1)[0]["id"]

    def audit():
        async def go(db):
            return list(await db.scalars(select(TranscriptAccess).order_by(TranscriptAccess.id)))
        return server.db(go)

    assert audit() == []
    clock.advance(30)
    r = get(server, sup, f"/api/supervision/cases/{case_id}/transcript")
    assert r.status_code == 200
    assert [m["body"] for m in r.json()["messages"]] == ["在吗", "我在", PLAN]
    assert [m["sender_role"] for m in r.json()["messages"]] == ["seeker", "listener", "seeker"]
    (row,) = audit()
    assert (row.reader_id, row.reader_role, row.conversation_id, row.case_id, row.via, row.upto_seq) == (
        sup.id, "supervisor", conv, case_id, "api", 3)
    assert row.at == clock.now()
    page = get(server, sup, f"/supervision/cases/{case_id}")
    assert page.status_code == 200 and "对话查看记录" in page.text
    assert [a.via for a in audit()] == ["api", "page"]
    log = get(server, sup, f"/api/supervision/cases/{case_id}/access").json()
    assert [a["via"] for a in log] == ["api", "page"] and log[0]["reader_id"] == sup.id
    kinds = [e["kind"] for e in get(server, sup, f"/api/supervision/cases/{case_id}").json()["events"]]
    assert kinds.count("transcript") == 2
    # The listener's own view of the case does not list supervisors' reads.
    kinds = [e["kind"] for e in get(server, linqing, f"/api/supervision/cases/{case_id}").json()["events"]]
    assert "transcript" not in kinds


@pytest.mark.asyncio
async def test_whisper_join_takeover_resolve_and_debrief(server, seeker, listener, conversation, sup):
    s_ws, _ = await connect(seeker, conversation)
    await drain_sync(s_ws)
    l_ws, _ = await connect(listener, conversation)
    await drain_sync(l_ws)
    await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": PLAN}))
    await recv_until(s_ws, "hotline")
    case_id = wait_queue(server, sup, lambda q: len(q) == 1)[0]["id"]

    r = post(server, sup, f"/api/supervision/cases/{case_id}/whisper", {"body": "先问问对方现在在哪里"})
    assert r.status_code == 201
    w = await recv_until(l_ws, "whisper")
    assert w["body"] == "先问问对方现在在哪里" and w["from"] == "督导·陈老师"
    state = get(server, listener, f"/api/supervision/conversations/{conversation}/state").json()
    assert state["whispers"][0]["body"] == "先问问对方现在在哪里" and state["guidance"]["steps"]
    assert get(server, seeker, f"/api/supervision/conversations/{conversation}/state").json().keys() == {"hotline"}

    # Join: the supervisor is now in the conversation; both see the notice.
    assert post(server, sup, f"/api/supervision/cases/{case_id}/join").json()["status"] == "acknowledged"
    notice = await recv_until(s_ws, "message")
    assert notice["sender_role"] == "system" and "督导" in notice["body"]
    r = post(server, sup, f"/api/conversations/{conversation}/messages", {"client_id": cid(), "body": "我是督导，我在。"})
    assert r.status_code == 201
    m = await recv_until(s_ws, "message", sender_id=sup.id)
    assert m["sender_role"] == "supervisor"
    assert len(get(server, seeker, "/api/conversations").json()) == 1  # still one conversation for the seeker
    seen = [x["sender_role"] for x in history(server, listener, conversation)]
    assert seen == ["seeker", "system", "supervisor"]
    take = post(server, sup, f"/api/supervision/cases/{case_id}/takeover").json()
    assert take["taken_over_by"]["user_id"] == sup.id
    assert (await recv_until(l_ws, "case", reason="taken_over"))["case"]["taken_over_by"]["user_id"] == sup.id

    # The seeker never saw any of it except the notices in the conversation.
    assert not [f for f in await frames_for(s_ws, 0.2) if f["type"] in ("whisper", "case", "risk")]

    assert post(server, sup, f"/api/supervision/cases/{case_id}/resolve", {"note": ""}).status_code == 422
    r = post(server, sup, f"/api/supervision/cases/{case_id}/resolve", {"note": "对方已联系家人陪同，明天随访"})
    assert r.status_code == 200 and r.json()["status"] == "resolved" and r.json()["debrief"] == "offered"
    offer = await recv_until(l_ws, "debrief")
    assert offer["case_id"] == case_id
    assert post(server, listener, f"/api/supervision/cases/{case_id}/debrief", {"accept": True}).json()["debrief"] == \
        "accepted"
    assert get(server, sup, "/api/supervision/queue").json() == []
    view = get(server, sup, f"/api/supervision/cases/{case_id}").json()
    kinds = [e["kind"] for e in view["events"]]
    for k in ("whisper", "joined", "taken_over", "resolved", "debrief_offered", "debrief_accepted"):
        assert k in kinds
    resolved = next(e for e in view["events"] if e["kind"] == "resolved")
    assert resolved["note"] == "对方已联系家人陪同，明天随访"
    # A new crisis after resolution opens a new case.
    await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": IDEATION}))
    assert len(wait_queue(server, sup, lambda q: len(q) == 1)) == 1
    await s_ws.close()
    await l_ws.close()


def test_guardian_mode_keeps_a_paid_conversation_open_past_its_end(server, seeker, listener, sup, clock):
    fund(server, seeker, 500)
    before_wallet = available(server, seeker.id)
    r = buy(server, seeker, listener)
    assert r.status_code == 201, r.text
    order = r.json()["order"]
    conv = order["conversation_id"]
    say(server, seeker, conv, "在吗")
    clock.advance(3)
    say(server, listener, conv, "我在")
    clock.advance(60)
    say(server, seeker, conv, PLAN)
    case_id = wait_queue(server, sup, lambda q: len(q) == 1)[0]["id"]
    clock.advance(3)
    say(server, listener, conv, "我在，你现在在哪里？")

    clock.advance(minutes=29)  # past the notice and the paid end (30 min)
    time.sleep(0.5)  # many scheduler ticks
    o = get_order(server, seeker, order["id"])
    assert o["status"] == "active"
    assert not any(m["sender_role"] == "system" for m in history(server, seeker, conv))  # no notice, no "time's up"
    # The listener cannot end or block it now; the refusal is logged.
    for action in ("end", "block"):
        r = post(server, listener, f"/api/orders/{order['id']}/{action}")
        assert r.status_code == 409 and r.json()["error"]["code"] == "guardian_mode"

    clock.advance(minutes=10)  # 10 minutes beyond the paid period, still talking
    say(server, seeker, conv, "我还在天台上")
    clock.advance(20)
    say(server, listener, conv, "我一直在这里，你现在身边能看到什么？")
    time.sleep(0.3)
    assert get_order(server, seeker, order["id"])["status"] == "active"

    clock.advance(minutes=5)
    r = post(server, sup, f"/api/supervision/cases/{case_id}/resolve", {"note": "已联系紧急联系人，安全"})
    assert r.status_code == 200
    o = wait_for(server, seeker, order["id"], lambda o: o["status"] == "ended")
    assert o["end_reason"] == "completed" and o["ended_at"] == o["ends_at"]
    notice = [m["body"] for m in history(server, seeker, conv) if m["sender_role"] == "system"]
    assert len(notice) == 1 and "由平台承担" in notice[0]

    # The platform paid the time beyond the paid end (to the listener's last message) at the agreed
    # rate: linqing is ¥60/h in daytime; her last message came 10 min 26 s after the paid end
    # (626 s × ¥60/h = ¥10.43).  The seeker paid the order price only.
    view = get(server, sup, f"/api/supervision/cases/{case_id}").json()
    assert (view["overtime_seconds"], view["overtime_fen"]) == (626, 1043)
    kinds = [e["kind"] for e in view["events"]]
    for k in ("guardian_started", "guardian_hold", "refused_end", "resolved", "guardian_paid"):
        assert k in kinds, kinds
    assert earnings(server, listener.id) == 1043
    clock.advance(hours=24, seconds=1)
    wait_for(server, seeker, order["id"], lambda o: o["status"] == "settled")
    assert available(server, seeker.id) == before_wallet - 3000
    assert earnings(server, listener.id) == 1043 + 3000 - (3000 * 30 + 50) // 100
    books_ok(server)


def test_a_case_resolved_before_the_paid_end_leaves_the_order_as_bought(server, seeker, listener, sup, clock):
    fund(server, seeker, 500)
    order = buy(server, seeker, listener).json()["order"]
    conv = order["conversation_id"]
    say(server, seeker, conv, IDEATION)
    clock.advance(3)
    say(server, listener, conv, "我在，能和我多说说吗？")
    case_id = wait_queue(server, sup, lambda q: len(q) == 1)[0]["id"]
    clock.advance(minutes=26)  # the 5-minute notice is due: held back in guardian mode
    time.sleep(0.4)
    assert not any(m["sender_role"] == "system" for m in history(server, seeker, conv))
    assert post(server, sup, f"/api/supervision/cases/{case_id}/resolve", {"note": "聊开了，没有危险"}).status_code == 200
    clock.advance(minutes=4)
    o = wait_for(server, seeker, order["id"], lambda o: o["status"] == "ended")
    assert o["end_reason"] == "completed"
    bodies = [m["body"] for m in history(server, seeker, conv) if m["sender_role"] == "system"]
    assert any("时间到了" in b for b in bodies) and not any("由平台承担" in b for b in bodies)
    view = get(server, sup, f"/api/supervision/cases/{case_id}").json()
    assert (view["overtime_seconds"], view["overtime_fen"]) == (0, 0)
    assert earnings(server, listener.id) == 0  # nothing beyond the order, which settles as usual
    assert post(server, listener, f"/api/orders/{order['id']}/end").status_code == 409  # already ended
