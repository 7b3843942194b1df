"""Suspending a listener and blocking a seeker, over the live server (SQLite
and PostgreSQL, real WebSockets, the fake clock):

* a suspension closes every order of the listener not yet finished, in its
  own transaction: scheduled ones (and running ones the listener never
  arrived at) are refunded whole at once, running served ones end now with
  the unserved time refunded at settlement; suspending twice, or racing the
  scheduler that starts orders, refunds nothing twice;
* the scheduler never starts an order whose listener is no longer listed;
* a suspended listener cannot send (REST or WebSocket) in their conversations;
* a seeker blocked by a listener cannot send to them or reopen the conversation.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from miaohui.chat.models import Message
from miaohui.ledger.models import Transfer
from miaohui.listeners.models import ListenerProfile
from tests.conftest import Api
from tests.test_orders import available, books_ok, buy, earnings, fund, get_order, history, say, wait_for

# The scheduler ticks every 50 ms, so a step of the fake clock is acted on at once.
pytestmark = pytest.mark.server_settings(sla_tick_seconds=0.05)


def at(clock, **delta) -> str:
    return (clock.now() + timedelta(**delta)).isoformat()


def suspend(server, admin: Api, listener: Api, reason: str = "核实有平台外交易") -> httpx.Response:
    return httpx.post(f"{server.url}/api/admin/listeners/{listener.id}/suspend", json={"reason": reason},
                      headers=admin.headers, timeout=30)


def send(server, who: Api, conv: str, text: str) -> httpx.Response:
    return httpx.post(f"{server.url}/api/conversations/{conv}/messages",
                      json={"client_id": uuid.uuid4().hex, "body": text}, headers=who.headers)


def stored(server, conv: str) -> int:
    return server.db(lambda db: db.scalar(
        select(func.count()).select_from(Message).where(Message.conversation_id == conv)))


def transfers(server, order_id: str) -> list[tuple[str, str, int]]:
    async def go(db):
        rows = await db.execute(select(Transfer.key, Transfer.code, Transfer.amount)
                                .where(Transfer.ref == f"order:{order_id}").order_by(Transfer.id))
        return [tuple(r) for r in rows]

    return server.db(go)


def refused(r: httpx.Response, code: str, status: int = 403) -> dict:
    assert r.status_code == status, r.text
    e = r.json()["error"]
    assert e["code"] == code and e["message"] and e["message_en"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in e["message"])  # Chinese first, English beside it
    return e


async def send_over(ws) -> dict:
    """Send one message on an open chat socket; the first ack or error frame for it."""
    client_id = uuid.uuid4().hex
    await ws.send(json.dumps({"type": "send", "client_id": client_id, "body": "还在吗"}))
    while True:
        f = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if f.get("client_id") == client_id and f["type"] in ("ack", "error"):
            return f


async def synced_socket(who: Api, conv: str):
    """``who``'s chat socket on ``conv``, opened and caught up (``synced``)."""
    ws = await who.ws(f"/ws/chat/{conv}?after_seq=0")
    while json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] != "synced":
        pass
    return ws


def ws_refused(who: Api, conv: str, code: str) -> None:
    """The chat socket opens (reading what was said is still theirs) and a send
    on it is refused with ``code``; the socket stays open."""

    async def go():
        ws = await synced_socket(who, conv)
        try:
            f = await send_over(ws)
            assert f["type"] == "error" and f["code"] == code and f["message"] and f["message_en"], f
            assert (await send_over(ws))["code"] == code  # still open, still refused
        finally:
            await ws.close()

    asyncio.run(go())


# ---------------------------------------------------------------- suspension


def test_suspension_refunds_scheduled_orders_to_the_fen_once(server, seeker, listener, admin, clock):
    fund(server, seeker, 500)
    before = available(server, seeker.id)
    r1 = buy(server, seeker, listener, "30m", start_at=at(clock, seconds=60))
    r2 = buy(server, seeker, listener, "1h", start_at=at(clock, hours=1))
    assert r1.status_code == 201 and r2.status_code == 201, (r1.text, r2.text)
    o1, o2 = r1.json()["order"], r2.json()["order"]
    assert o1["status"] == o2["status"] == "scheduled"
    assert available(server, seeker.id) == before - o1["price_fen"] - o2["price_fen"]

    assert suspend(server, admin, listener).status_code == 204
    for o in (o1, o2):
        got = get_order(server, seeker, o["id"])
        assert got["status"] == "refunded" and got["end_reason"] == "suspended"
        assert got["end_reason_label"] and got["estimate"]["refund"] == o["price_fen"]
    assert available(server, seeker.id) == before  # every fen back, at once
    books_ok(server)
    notices = [m["body"] for m in history(server, seeker, o1["conversation_id"]) if m["sender_role"] == "system"]
    assert sum("全额退回" in b for b in notices) == 2  # one notice per order

    # Time passes beyond both starts: nothing starts, nobody is charged, the listener earns nothing.
    clock.advance(hours=2)
    time.sleep(0.3)  # a few scheduler passes
    r = httpx.get(f"{server.url}/api/listener/orders/live", headers=listener.headers)
    assert r.status_code == 200 and r.json() == []
    for o in (o1, o2):
        assert get_order(server, seeker, o["id"])["status"] == "refunded"
        assert [key.rsplit(":", 1)[1] for key, _, _ in transfers(server, o["id"])] == ["hold", "void"]

    # Suspending again is refused and moves nothing.
    r = suspend(server, admin, listener, "again")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_listed"
    # Reinstated and suspended once more: the orders already closed are not refunded twice.
    assert httpx.post(f"{server.url}/api/admin/listeners/{listener.id}/reinstate", json={"reason": "申诉成立"},
                      headers=admin.headers).status_code == 204
    assert suspend(server, admin, listener, "再次核实").status_code == 204
    assert available(server, seeker.id) == before
    for o in (o1, o2):
        assert [key.rsplit(":", 1)[1] for key, _, _ in transfers(server, o["id"])] == ["hold", "void"]
    books_ok(server)


def test_suspension_ends_running_orders_and_refunds_the_unserved_part(server, seeker, seeker2, listener, admin,
                                                                       clock):
    """Through a report upheld with a suspension.  A served order ends now (the
    unserved 45 of 60 minutes refunded at settlement); one the listener never
    arrived at is refunded whole at once."""
    fund(server, seeker, 500)
    fund(server, seeker2, 500)
    s_before, s2_before = available(server, seeker.id), available(server, seeker2.id)
    e_before = earnings(server, listener.id)
    served = buy(server, seeker, listener, "1h").json()["order"]
    say(server, listener, served["conversation_id"], "你好，我在")
    wait_for(server, seeker, served["id"], lambda o: o["listener_arrived"])
    clock.advance(minutes=15)
    idle = buy(server, seeker2, listener, "30m").json()["order"]  # just started, no reply yet
    assert served["status"] == idle["status"] == "active"

    rep = httpx.post(f"{server.url}/api/reports", json={"target_kind": "listener", "target_id": listener.id,
                                                         "reason": "要求加微信私下转账"}, headers=seeker.headers)
    assert rep.status_code == 201, rep.text
    r = httpx.post(f"{server.url}/api/admin/reports/{rep.json()['id']}/decide",
                   json={"action": "suspend", "note": "核实有平台外交易"}, headers=admin.headers, timeout=30)
    assert r.status_code == 200, r.text

    o = get_order(server, seeker, served["id"])
    assert o["status"] == "ended" and o["end_reason"] == "suspended"
    assert o["estimate"]["unserved"] == 4500 and o["estimate"]["refund"] == 4500
    o2 = get_order(server, seeker2, idle["id"])
    assert o2["status"] == "refunded" and o2["end_reason"] == "suspended"
    assert available(server, seeker2.id) == s2_before
    r = httpx.get(f"{server.url}/api/listener/orders/live", headers=listener.headers)
    assert r.json() == []
    notices = [m["body"] for m in history(server, seeker, served["conversation_id"]) if m["sender_role"] == "system"]
    assert any("提前结束" in b and "申诉" in b for b in notices)

    # After the dispute window: the seeker paid for 15 minutes, the listener got that less commission.
    clock.advance(hours=24, seconds=1)
    o = wait_for(server, seeker, served["id"], lambda o: o["status"] == "settled")
    assert available(server, seeker.id) == s_before - 1500
    assert earnings(server, listener.id) == e_before + 1500 - o["estimate"]["commission"]
    books_ok(server)


def test_activation_is_refused_when_the_listener_is_no_longer_listed(server, seeker, listener, clock):
    """Whatever took the listing down (here the status is changed directly,
    as a suspension made before this fix did), the scheduler refunds instead
    of starting the service."""
    fund(server, seeker, 500)
    before = available(server, seeker.id)
    order = buy(server, seeker, listener, "30m", start_at=at(clock, seconds=60)).json()["order"]
    assert order["status"] == "scheduled"

    async def take_down(db):
        await db.execute(update(ListenerProfile).where(ListenerProfile.user_id == listener.id)
                         .values(status="suspended"))
        await db.commit()

    server.db(take_down)
    clock.advance(seconds=61)
    o = wait_for(server, seeker, order["id"], lambda o: o["status"] != "scheduled")
    assert o["status"] == "refunded" and o["end_reason"] == "suspended"
    assert available(server, seeker.id) == before
    assert httpx.get(f"{server.url}/api/listener/orders/live", headers=listener.headers).json() == []
    assert [key.rsplit(":", 1)[1] for key, _, _ in transfers(server, order["id"])] == ["hold", "void"]
    books_ok(server)


def test_suspension_racing_the_scheduler_and_itself_refunds_exactly_once(server, seeker, seeker2, listener, admin,
                                                                           clock):
    fund(server, seeker, 500)
    fund(server, seeker2, 500)
    before = {u.id: available(server, u.id) for u in (seeker, seeker2)}
    start = at(clock, seconds=30)
    orders = [buy(server, u, listener, "30m", start_at=start).json()["order"] for u in (seeker, seeker2)]
    assert all(o["status"] == "scheduled" for o in orders)
    clock.advance(seconds=31)  # the scheduler (every 50 ms) now starts them, while two admins suspend
    with ThreadPoolExecutor(2) as pool:
        codes = sorted(r.status_code for r in pool.map(lambda _: suspend(server, admin, listener), range(2)))
    assert codes == [204, 409]
    for o, u in zip(orders, (seeker, seeker2), strict=True):
        got = wait_for(server, u, o["id"], lambda x: x["status"] == "refunded")
        assert got["end_reason"] == "suspended"
        assert [key.rsplit(":", 1)[1] for key, _, _ in transfers(server, o["id"])] == ["hold", "void"]
        assert available(server, u.id) == before[u.id]
    books_ok(server)


def test_a_suspended_listener_cannot_send_rest_or_websocket(server, seeker, listener, admin, conversation):
    say(server, listener, conversation, "你好")
    assert suspend(server, admin, listener).status_code == 204
    n = stored(server, conversation)

    refused(send(server, listener, conversation, "我们加个微信吧"), "listener_suspended")
    ws_refused(listener, conversation, "listener_suspended")
    assert stored(server, conversation) == n  # nothing from the listener got through
    assert history(server, listener, conversation)[-1]["body"] == "你好"  # what was said stays readable
    # The seeker keeps their conversation.
    assert [m["body"] for m in history(server, seeker, conversation)][-1] == "你好"

    # Reinstated: they can talk again.
    assert httpx.post(f"{server.url}/api/admin/listeners/{listener.id}/reinstate", json={"reason": "申诉成立"},
                      headers=admin.headers).status_code == 204
    assert send(server, listener, conversation, "我回来了").status_code == 201


# --------------------------------------------------------------------- blocks


def test_a_blocked_seeker_cannot_send_or_reopen_the_conversation(server, seeker, listener, clock):
    fund(server, seeker, 500)
    order = buy(server, seeker, listener, "1h").json()["order"]
    conv = order["conversation_id"]
    say(server, listener, conv, "你好")
    say(server, seeker, conv, "在吗")
    clock.advance(minutes=5)
    r = httpx.post(f"{server.url}/api/orders/{order['id']}/block", json={"reason": "辱骂"}, headers=listener.headers)
    assert r.status_code == 200 and r.json()["end_reason"] == "blocked"
    n = stored(server, conv)

    e = refused(send(server, seeker, conv, "为什么不理我"), "blocked")
    assert "发消息" in e["message"]
    refused(httpx.post(f"{server.url}/api/conversations", json={"listener_id": listener.id},
                       headers=seeker.headers), "blocked")
    ws_refused(seeker, conv, "blocked")
    assert stored(server, conv) == n
    assert history(server, seeker, conv)[-1]["body"] == "在吗"  # their own words stay theirs to read
    # No new order either (as before).
    r = buy(server, seeker, listener)
    assert r.status_code == 403 and r.json()["error"]["code"] == "blocked"
    # Another seeker is not affected.
    other = Api(server, "ahe")
    assert httpx.post(f"{server.url}/api/conversations", json={"listener_id": listener.id},
                      headers=other.headers).status_code == 201


def test_block_of_a_scheduled_order_also_stops_messages(server, seeker, listener, clock):
    fund(server, seeker, 500)
    before = available(server, seeker.id)
    order = buy(server, seeker, listener, "30m", start_at=at(clock, hours=1)).json()["order"]
    r = httpx.post(f"{server.url}/api/orders/{order['id']}/block", json={}, headers=listener.headers)
    assert r.status_code == 200 and r.json()["status"] == "refunded"
    assert available(server, seeker.id) == before
    refused(send(server, seeker, order["conversation_id"], "我做错了什么"), "blocked")
    # The listener is still a participant and can read what was said.
    assert httpx.get(f"{server.url}/api/conversations/{order['conversation_id']}/messages",
                     headers=listener.headers).status_code == 200


def test_a_block_never_cuts_off_a_seeker_while_a_guardian_case_is_open(server, seeker, listener, clock):
    """Guardian mode (an open risk case at ideation or above): nothing cuts the
    conversation off — the block takes effect once the case is resolved."""
    fund(server, seeker, 500)
    order = buy(server, seeker, listener, "30m", start_at=at(clock, hours=1)).json()["order"]
    conv = order["conversation_id"]
    r = httpx.post(f"{server.url}/api/supervision/worry", json={"conversation_id": conv, "note": "对方说不想活了"},
                   headers=listener.headers)
    assert r.status_code == 201 and r.json()["guardian"] is True, r.text
    case_id = r.json()["id"]
    r = httpx.post(f"{server.url}/api/orders/{order['id']}/block", json={}, headers=listener.headers)
    assert r.status_code == 200 and r.json()["status"] == "refunded"
    assert send(server, seeker, conv, "我还在").status_code == 201
    sup = Api(server, "supervisor")
    r = httpx.post(f"{server.url}/api/supervision/cases/{case_id}/resolve", json={"note": "已联系家人陪同"},
                   headers=sup.headers)
    assert r.status_code == 200, r.text
    refused(send(server, seeker, conv, "还在吗"), "blocked")


def test_a_socket_open_when_the_listener_is_suspended_stops_sending_until_reinstated(
        server, seeker, listener, admin, conversation):
    """The suspension reaches a socket already open (in every process, through the
    broker): its sends are refused at once, it stays open to read, and
    reinstatement lets the same socket send again."""

    async def go():
        ws = await synced_socket(listener, conversation)
        try:
            assert (await send_over(ws))["type"] == "ack"
            r = await asyncio.to_thread(suspend, server, admin, listener)
            assert r.status_code == 204
            n = await asyncio.to_thread(stored, server, conversation)
            assert (await send_over(ws))["code"] == "listener_suspended"
            assert await asyncio.to_thread(stored, server, conversation) == n
            r = await asyncio.to_thread(httpx.post, f"{server.url}/api/admin/listeners/{listener.id}/reinstate",
                                        json={"reason": "申诉成立"}, headers=admin.headers)
            assert r.status_code == 204
            assert (await send_over(ws))["type"] == "ack"
        finally:
            await ws.close()

    asyncio.run(go())


def test_a_socket_open_when_the_seeker_is_blocked_stops_sending(server, seeker, listener, clock):
    """The block reaches the seeker's socket already open (through the broker):
    their next send on it is refused and stored nowhere; the socket stays open."""
    fund(server, seeker, 500)
    order = buy(server, seeker, listener, "1h").json()["order"]
    conv = order["conversation_id"]
    say(server, listener, conv, "你好")

    async def go():
        ws = await synced_socket(seeker, conv)
        try:
            assert (await send_over(ws))["type"] == "ack"
            r = await asyncio.to_thread(httpx.post, f"{server.url}/api/orders/{order['id']}/block",
                                        json={"reason": "辱骂"}, headers=listener.headers)
            assert r.status_code == 200
            n = await asyncio.to_thread(stored, server, conv)
            f = await send_over(ws)
            assert f["type"] == "error" and f["code"] == "blocked" and f["message"], f
            assert await asyncio.to_thread(stored, server, conv) == n
        finally:
            await ws.close()

    asyncio.run(go())


def test_resolving_the_guardian_case_mutes_a_blocked_seekers_open_socket(server, seeker, listener, clock):
    """While the guardian case is open the blocked seeker's socket still sends;
    the resolution reaches that same socket, which is refused from then on."""
    fund(server, seeker, 500)
    order = buy(server, seeker, listener, "30m", start_at=at(clock, hours=1)).json()["order"]
    conv = order["conversation_id"]
    r = httpx.post(f"{server.url}/api/supervision/worry", json={"conversation_id": conv, "note": "对方说不想活了"},
                   headers=listener.headers)
    case_id = r.json()["id"]

    async def go():
        ws = await synced_socket(seeker, conv)
        try:
            r = await asyncio.to_thread(httpx.post, f"{server.url}/api/orders/{order['id']}/block", json={},
                                        headers=listener.headers)
            assert r.status_code == 200
            assert (await send_over(ws))["type"] == "ack"  # guardian mode: never cut off
            sup = Api(server, "supervisor")
            r = await asyncio.to_thread(httpx.post, f"{server.url}/api/supervision/cases/{case_id}/resolve",
                                        json={"note": "已联系家人陪同"}, headers=sup.headers)
            assert r.status_code == 200, r.text
            assert (await send_over(ws))["code"] == "blocked"
        finally:
            await ws.close()

    asyncio.run(go())
