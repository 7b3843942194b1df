"""Orders over the live server, on SQLite and PostgreSQL, driven by the fake
clock: purchase and escrow, breaches measured on the server, disappearance,
no-show, capacity, night pricing, late-night confirmation, budgets,
restarts, disputes, gifts, extension, evidence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from miaohui.demo import PASSWORD
from miaohui.ledger import service as ledger
from tests.conftest import KEYS, SECRET, Api, LiveServer

SH = ZoneInfo("Asia/Shanghai")


# The scheduler ticks every 50 ms, so a step of the fake clock is acted on at once.
pytestmark = pytest.mark.server_settings(sla_tick_seconds=0.05)


def fund(server: LiveServer, user: Api, yuan: int) -> None:
    async def go(db):
        await ledger.topup(db, payment_id=f"test-{user.id}-{yuan}-{time.time_ns()}", user_id=user.id, amount=yuan * 100,
                           clock=server.clock)
        await db.commit()

    server.db(go)


def available(server: LiveServer, user_id: str) -> int:
    return server.db(lambda db: ledger.wallet(db, user_id)).available


def earnings(server: LiveServer, user_id: str) -> int:
    return server.db(lambda db: ledger.earnings(db, user_id)).balance


def books_ok(server: LiveServer) -> None:
    report = server.db(ledger.check_books)
    assert report["ok"], report


def quoted_total(server: LiveServer, who: Api, listener: Api, kind: str, start_at: str | None = None) -> int | None:
    """The total the purchase page shows (``GET …/quote``), or None where there is no quote."""
    params = {"kind": kind} | ({"start_at": start_at} if start_at else {})
    r = httpx.get(f"{server.url}/api/listeners/{listener.id}/quote", params=params, headers=who.headers)
    return r.json()["quote"]["total_fen"] if r.status_code == 200 else None


def buy(server: LiveServer, who: Api, listener: Api, kind: str = "30m", **kw) -> httpx.Response:
    """Buy as the purchase page does: for the total just quoted (unless the
    test names ``expected_total_fen``); with no quote to be had (an unknown
    listener, a bad start), any figure — the purchase is refused anyway."""
    agreed = "expected_total_fen" in kw
    if not agreed:
        total = quoted_total(server, who, listener, kind, kw.get("start_at"))
        kw["expected_total_fen"] = 100_000_000 if total is None else total
    r = httpx.post(f"{server.url}/api/orders", json={"listener_id": listener.id, "kind": kind, **kw},
                   headers=who.headers)
    if not agreed and r.status_code == 409 and r.json()["error"]["code"] == "price_changed":
        # On the real clock near 23:00 the night share grows between quote and purchase:
        # agree to the figure offered, as the page's second click does.
        kw["expected_total_fen"] = r.json()["error"]["total_fen"]
        r = httpx.post(f"{server.url}/api/orders", json={"listener_id": listener.id, "kind": kind, **kw},
                       headers=who.headers)
    return r


def extend(server: LiveServer, who: Api, order_id: str, kind: str = "30m", **kw) -> httpx.Response:
    """Extend as the order bar does: quote first, then buy for that total."""
    if "expected_total_fen" not in kw:
        q = httpx.get(f"{server.url}/api/orders/{order_id}/extend/quote", params={"kind": kind}, headers=who.headers)
        kw["expected_total_fen"] = q.json()["total_fen"] if q.status_code == 200 else 100_000_000
    return httpx.post(f"{server.url}/api/orders/{order_id}/extend", json={"kind": kind, **kw}, headers=who.headers)


def get_order(server: LiveServer, who: Api, order_id: str) -> dict:
    r = httpx.get(f"{server.url}/api/orders/{order_id}", headers=who.headers)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(server, who, order_id, pred, timeout=5.0) -> dict:
    deadline = time.time() + timeout
    while True:
        o = get_order(server, who, order_id)
        if pred(o):
            return o
        if time.time() > deadline:
            raise AssertionError(f"order never reached the expected state: {o['status']} {o}")
        time.sleep(0.05)


def say(server: LiveServer, who: Api, conv: str, text: str) -> dict:
    r = httpx.post(f"{server.url}/api/conversations/{conv}/messages",
                   json={"client_id": f"c-{time.time_ns()}", "body": text}, headers=who.headers)
    assert r.status_code == 201, r.text
    return r.json()


def history(server, who, conv) -> list[dict]:
    r = httpx.get(f"{server.url}/api/conversations/{conv}/messages?limit=200", headers=who.headers)
    return r.json()["messages"]


@pytest.fixture
def funded(server, seeker):
    fund(server, seeker, 500)
    return seeker


def test_30_minute_order_with_a_breach_settles_with_compensation(server, funded, listener, clock):
    seeker = funded
    before = available(server, seeker.id)
    r = buy(server, seeker, listener)
    assert r.status_code == 201, r.text
    order = r.json()["order"]
    # 20:00 in Shanghai: daytime, ¥60/h → ¥30 for 30 min; linqing promises 10 s.
    assert order["status"] == "active" and order["price_fen"] == 3000 and order["response_window_s"] == 10
    assert available(server, seeker.id) == before - 3000  # held in escrow, not paid out
    conv = order["conversation_id"]

    say(server, seeker, conv, "在吗，我有点难受")
    clock.advance(4)
    say(server, listener, conv, "我在，慢慢说")  # 4 s: within the window
    clock.advance(1)
    say(server, seeker, conv, "今天又被骂了")
    clock.advance(25)
    say(server, listener, conv, "被骂的时候一定很委屈")  # 25 s > 10 s: breach
    o = wait_for(server, seeker, order["id"], lambda o: o["turns"] == 2)
    assert o["breaches"] == 1
    assert [(t["latency_ms"], t["breached"]) for t in o["replies"]] == [(4000, False), (25000, True)]
    assert o["estimate"]["compensation"] == 150  # 5 % of ¥30

    clock.advance(minutes=26)  # 5 minutes before the end: a notice to both
    deadline = time.time() + 5
    while not any("还剩 5 分钟" in m["body"] for m in history(server, seeker, conv)) and time.time() < deadline:
        time.sleep(0.05)
    clock.advance(minutes=4)
    o = wait_for(server, seeker, order["id"], lambda o: o["status"] == "ended")
    assert o["end_reason"] == "completed" and o["ended_at"] == o["ends_at"]
    bodies = [m["body"] for m in history(server, seeker, conv) if m["sender_role"] == "system"]
    assert any("时间到了" in b for b in bodies) and any("还剩 5 分钟" in b for b in bodies)

    # Receipt (HTML) shows the deduction before settlement.
    page = httpx.get(f"{server.url}/orders/{order['id']}", headers=seeker.headers)
    assert page.status_code == 200 and "¥1.50" in page.text and "不是赠与" not in page.text
    assert "非赠与" in page.text

    clock.advance(hours=24, seconds=1)
    o = wait_for(server, seeker, order["id"], lambda o: o["status"] == "settled")
    assert available(server, seeker.id) == before - 3000 + 150
    gross = 3000 - 150
    assert earnings(server, listener.id) == gross - (gross * 30 + 50) // 100
    books_ok(server)

    # Public stats come from these measurements, not from the profile.
    st = httpx.get(f"{server.url}/api/listeners/{listener.id}/stats").json()
    assert st["turns"] == 2 and st["instant_rate"] == 0.5 and st["median_reply_ms"] == 14500
    assert st["completed_orders"] == 1 and st["hours_served"] == 0.5
    page = httpx.get(f"{server.url}/listeners", headers=seeker.headers).text
    assert "50%（2 次回复）" in page


def test_no_show_is_refunded_in_full(server, funded, listener, clock):
    before = available(server, funded.id)
    order = buy(server, funded, listener).json()["order"]
    say(server, funded, order["conversation_id"], "你好？")
    clock.advance(minutes=5, seconds=1)
    o = wait_for(server, funded, order["id"], lambda o: o["status"] == "refunded")
    assert o["end_reason"] == "no_show"
    assert available(server, funded.id) == before
    books_ok(server)


def test_disappearing_listener_ends_the_order_and_unserved_time_is_refunded(server, funded, listener, clock):
    before = available(server, funded.id)
    order = buy(server, funded, listener, "1h").json()["order"]  # ¥60
    conv = order["conversation_id"]
    say(server, listener, conv, "晚上好")
    clock.advance(minutes=20)
    say(server, funded, conv, "你还在吗")
    clock.advance(minutes=10, seconds=1)
    o = wait_for(server, funded, order["id"], lambda o: o["status"] == "ended")
    assert o["end_reason"] == "disappeared" and o["breaches"] == 1
    # Ended at 30 min: half the hour unserved (¥30) + one breach (5 % of ¥60 = ¥3).
    assert o["estimate"]["unserved"] == 3000 and o["estimate"]["compensation"] == 300
    assert any("10分钟未回复" in m["body"] for m in history(server, funded, conv) if m["sender_role"] == "system")
    clock.advance(hours=24, seconds=1)
    wait_for(server, funded, order["id"], lambda o: o["status"] == "settled")
    assert available(server, funded.id) == before - 6000 + 3300
    books_ok(server)


def test_capacity_limits_what_can_be_sold(server, funded, seeker2, listener):
    r = httpx.put(f"{server.url}/api/listener/capacity", json={"capacity": 1}, headers=listener.headers)
    assert r.status_code == 200
    assert buy(server, funded, listener).status_code == 201
    fund(server, seeker2, 100)
    before = available(server, seeker2.id)
    r = buy(server, seeker2, listener)
    assert r.status_code == 409 and r.json()["error"]["code"] == "listener_full"
    assert available(server, seeker2.id) == before  # nothing held
    r = httpx.put(f"{server.url}/api/listener/capacity", json={"capacity": 9}, headers=listener.headers)
    assert r.status_code == 400 and r.json()["error"]["message"]


def new_seeker(server: LiveServer, username: str) -> Api:
    r = httpx.post(f"{server.url}/api/auth/signup", json={"username": username, "password": PASSWORD,
                                                          "display_name": "新来的", "role": "seeker"})
    assert r.status_code == 201, r.text
    return Api(server, username)


def test_insufficient_balance_moves_nothing(server, listener):
    broke = new_seeker(server, "broke")
    fund(server, broke, 20)
    r = buy(server, broke, listener)  # ¥30 > ¥20
    assert r.status_code == 402, r.text
    err = r.json()["error"]
    assert err["code"] == "insufficient_funds" and err["message"] and err["message_en"]
    assert httpx.get(f"{server.url}/api/orders", headers=broke.headers).json() == []
    assert available(server, broke.id) == 2000
    books_ok(server)


def test_bad_input_is_a_clear_4xx(server, funded, listener):
    cases = [
        {"listener_id": listener.id, "kind": "week"},
        {"listener_id": "x" * 40, "kind": "1h"},
        {"listener_id": listener.id, "kind": "1h", "start_at": "not a date"},
    ]
    for body in cases:
        r = httpx.post(f"{server.url}/api/orders", json=body, headers=funded.headers)
        assert r.status_code == 422, r.text
    r = buy(server, funded, listener, start_at="2030-01-01T00:00:00+00:00")
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_start"
    r = buy(server, funded, Api(server, "newlistener"))
    assert r.status_code == 404
    r = buy(server, listener, listener)
    assert r.status_code == 403
    assert httpx.get(f"{server.url}/api/orders", headers=funded.headers).json() == []


def test_night_pricing_across_23_in_the_quote(server, funded, listener, clock):
    clock.set(datetime(2026, 1, 1, 22, 30, tzinfo=SH).astimezone(UTC))
    r = httpx.get(f"{server.url}/api/listeners/{listener.id}/quote?kind=1h", headers=funded.headers)
    q = r.json()["quote"]
    assert (q["day_seconds"], q["night_seconds"]) == (1800, 1800)
    assert (q["day_fen"], q["night_fen"], q["total_fen"]) == (3000, 9000, 12000)
    assert "不是赠与" in r.json()["contract"]["text"][0]
    order = buy(server, funded, listener, "1h").json()["order"]
    assert order["price_fen"] == 12000


def test_late_night_big_purchase_needs_a_second_confirmation(server, funded, listener, clock):
    clock.set(datetime(2026, 1, 2, 2, 0, tzinfo=SH).astimezone(UTC))
    r = buy(server, funded, listener, "night")  # 02:00–07:00 at ¥180/h less 10 % = ¥810
    fund(server, funded, 1000)
    r = buy(server, funded, listener, "night")
    assert r.status_code == 409 and r.json()["error"]["code"] == "confirm_required"
    token = r.json()["error"]["confirm_token"]
    r = buy(server, funded, listener, "night", confirm_token=token)
    assert r.status_code == 409 and r.json()["error"]["code"] == "confirm_too_soon"
    r = buy(server, funded, listener, "night", confirm_token="123.99999.forged")
    assert r.status_code == 409 and r.json()["error"]["code"] == "confirm_required"
    clock.advance(10)
    r = buy(server, funded, listener, "night", confirm_token=token)
    assert r.status_code == 201, r.text
    assert r.json()["order"]["price_fen"] == 80955  # ten seconds less of the night than quoted


def test_budget_warns_then_hard_cap_blocks(server, funded, listener):
    r = httpx.put(f"{server.url}/api/me/budget", json={"monthly_limit_fen": 5000, "hard_cap": False},
                  headers=funded.headers)
    assert r.status_code == 200
    r = buy(server, funded, listener)  # ¥30 of ¥50 → 60 %: no warning
    assert r.status_code == 201 and "budget_warning" not in r.json()
    say(server, listener, r.json()["order"]["conversation_id"], "在")  # served: ending early is not a no-show
    httpx.post(f"{server.url}/api/orders/{r.json()['order']['id']}/end", json={}, headers=funded.headers)
    r = httpx.put(f"{server.url}/api/me/budget", json={"monthly_limit_fen": 7000, "hard_cap": True},
                  headers=funded.headers)
    assert r.json()["spent_this_month_fen"] == 3000
    r = buy(server, funded, listener, "1h")  # ¥30 + ¥60 > ¥70
    assert r.status_code == 409 and r.json()["error"]["code"] == "budget_exceeded"


def test_restart_still_detects_breaches_and_ends_on_time(server, funded, listener, clock):
    order = buy(server, funded, listener).json()["order"]
    conv = order["conversation_id"]
    say(server, listener, conv, "我在")
    say(server, funded, conv, "说不出口")
    server.stop()
    clock.advance(40)
    server.start()
    say(server, listener, conv, "没关系，我们慢慢来")
    o = wait_for(server, funded, order["id"], lambda o: o["turns"] == 1)
    assert o["breaches"] == 1 and o["replies"][0]["latency_ms"] == 40000
    server.stop()
    clock.advance(minutes=45)  # past the end while down
    server.start()
    o = wait_for(server, funded, order["id"], lambda o: o["status"] == "ended")
    assert o["ended_at"] == o["ends_at"] and o["end_reason"] == "completed"


def test_dispute_is_decided_by_a_supervisor_and_executed_by_the_ledger(server, funded, listener, seeker2, clock):
    before = available(server, funded.id)
    order = buy(server, funded, listener).json()["order"]
    say(server, listener, order["conversation_id"], "你好")
    clock.advance(minutes=31)
    wait_for(server, funded, order["id"], lambda o: o["status"] == "ended")
    url = f"{server.url}/api/orders/{order['id']}/disputes"
    assert httpx.post(url, json={"reason": "一直在敷衍"}, headers=listener.headers).status_code == 409
    assert httpx.post(url, json={"reason": "一直在敷衍"}, headers=seeker2.headers).status_code == 404
    assert httpx.post(url, json={"reason": "一直在敷衍"}, headers=funded.headers).status_code == 201
    assert httpx.post(url, json={"reason": "再来一次"}, headers=funded.headers).status_code == 409
    sup = Api(server, "supervisor")
    queue = httpx.get(f"{server.url}/api/admin/disputes", headers=sup.headers).json()
    assert [d["order"]["id"] for d in queue] == [order["id"]]
    assert httpx.get(f"{server.url}/api/admin/disputes", headers=funded.headers).status_code == 403
    clock.advance(hours=25)  # past the window: a disputed order does not settle on its own
    time.sleep(0.3)
    assert get_order(server, funded, order["id"])["status"] == "disputed"
    resolve = f"{server.url}/api/admin/disputes/{order['id']}/resolve"
    assert httpx.post(resolve, json={"refund_fen": 99999}, headers=sup.headers).status_code == 400
    r = httpx.post(resolve, json={"refund_fen": 1000, "note": "部分退款"}, headers=sup.headers)
    assert r.status_code == 200 and r.json()["status"] == "settled"
    assert httpx.post(resolve, json={"refund_fen": 3000}, headers=sup.headers).status_code == 409
    assert available(server, funded.id) == before - 2000
    assert earnings(server, listener.id) == 2000 - 600
    books_ok(server)


def test_gifts_only_after_service_capped_and_refundable(server, funded, listener, clock):
    order = buy(server, funded, listener).json()["order"]
    gifts = f"{server.url}/api/orders/{order['id']}/gifts"
    r = httpx.post(gifts, json={"amount_fen": 500}, headers=funded.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "gift_after_service"
    say(server, listener, order["conversation_id"], "在的")
    clock.advance(minutes=31)
    wait_for(server, funded, order["id"], lambda o: o["status"] == "ended")
    r = httpx.post(gifts, json={"amount_fen": 1600}, headers=funded.headers)  # cap: 50 % of ¥30
    assert r.status_code == 400 and r.json()["error"]["code"] == "gift_cap"
    g = httpx.post(gifts, json={"amount_fen": 500, "note": "谢谢你"}, headers=funded.headers).json()
    after_gift = available(server, funded.id)
    r = httpx.post(f"{server.url}/api/gifts/{g['id']}/refund", headers=funded.headers)
    assert r.status_code == 200 and r.json()["status"] == "refunded"
    assert available(server, funded.id) == after_gift + 500
    assert httpx.post(f"{server.url}/api/gifts/{g['id']}/refund", headers=funded.headers).status_code == 409
    g2 = httpx.post(gifts, json={"amount_fen": 1000}, headers=funded.headers).json()
    clock.advance(hours=24, seconds=1)
    deadline = time.time() + 5
    while earnings(server, listener.id) < 2100 + 700 and time.time() < deadline:
        time.sleep(0.05)
    assert httpx.post(f"{server.url}/api/gifts/{g2['id']}/refund", headers=funded.headers).status_code == 409
    assert earnings(server, listener.id) == 2100 + 700  # order (¥30 − 30 %) + gift (¥10 − 30 %)
    books_ok(server)


def test_extension_continues_without_a_gap(server, funded, listener, clock):
    order = buy(server, funded, listener).json()["order"]
    conv = order["conversation_id"]
    say(server, listener, conv, "在")
    r = extend(server, funded, order["id"])
    assert r.status_code == 201, r.text
    ext = r.json()
    assert ext["status"] == "scheduled" and ext["starts_at"] == order["ends_at"]
    clock.advance(minutes=30, seconds=1)
    wait_for(server, funded, order["id"], lambda o: o["status"] == "ended")
    wait_for(server, funded, ext["id"], lambda o: o["status"] == "active")
    say(server, funded, conv, "谢谢你多陪我一会")
    clock.advance(5)
    say(server, listener, conv, "不客气")
    o = wait_for(server, funded, ext["id"], lambda o: o["turns"] == 1)
    assert o["breaches"] == 0
    clock.advance(minutes=6)
    o = get_order(server, funded, ext["id"])
    assert o["status"] == "active"  # the listener was there: no no-show on an extension


def test_listener_block_refunds_unserved_time_and_stops_new_orders(server, funded, listener, clock):
    order = buy(server, funded, listener, "1h").json()["order"]
    say(server, listener, order["conversation_id"], "你好")
    clock.advance(minutes=15)
    r = httpx.post(f"{server.url}/api/orders/{order['id']}/block", json={"reason": "辱骂"}, headers=listener.headers)
    assert r.status_code == 200 and r.json()["end_reason"] == "blocked"
    assert r.json()["estimate"]["unserved"] == 4500
    r = buy(server, funded, listener)
    assert r.status_code == 403 and r.json()["error"]["code"] == "blocked"


def test_orders_are_private(server, funded, seeker2, listener):
    order = buy(server, funded, listener).json()["order"]
    for path in (f"/api/orders/{order['id']}", f"/api/orders/{order['id']}/report"):
        assert httpx.get(server.url + path, headers=seeker2.headers).status_code == 404
    other = Api(server, "zhouyan")
    assert httpx.get(f"{server.url}/api/orders/{order['id']}", headers=other.headers).status_code == 404
    assert httpx.post(f"{server.url}/api/orders/{order['id']}/end", json={}, headers=other.headers).status_code == 404
    assert httpx.get(f"{server.url}/orders/{order['id']}", headers=seeker2.headers).status_code == 403


def test_listener_console_orders_most_urgent_first(server, funded, seeker2, listener, clock):
    fund(server, seeker2, 100)
    a = buy(server, funded, listener).json()["order"]
    b = buy(server, seeker2, listener).json()["order"]
    say(server, seeker2, b["conversation_id"], "先问一个")
    clock.advance(3)
    say(server, funded, a["conversation_id"], "后问一个")
    wait_for(server, funded, a["id"], lambda o: o["pending_since"] is not None)
    live = httpx.get(f"{server.url}/api/listener/orders/live", headers=listener.headers).json()
    assert [o["id"] for o in live] == [b["id"], a["id"]]
    assert live[0]["pending_since"] is not None


def _verify(server: LiveServer, path) -> tuple[int, dict]:
    env = {**os.environ, "MIAOHUI_DATABASE_URL": server.settings.resolved_database_url, "MIAOHUI_SECRET_KEY": SECRET,
           "MIAOHUI_MESSAGE_KEYS": KEYS, "MIAOHUI_DATA_DIR": str(server.settings.data_dir)}
    p = subprocess.run([sys.executable, "-m", "miaohui", "orders", "verify", str(path)], env=env,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, json.loads(p.stdout)


def test_report_lists_every_latency_and_detects_tampering(server, funded, listener, clock, tmp_path):
    order = buy(server, funded, listener).json()["order"]
    conv = order["conversation_id"]
    say(server, funded, conv, "第一句")
    clock.advance(2)
    say(server, funded, conv, "第二句")
    clock.advance(12)
    say(server, listener, conv, "我在听")
    wait_for(server, funded, order["id"], lambda o: o["turns"] == 1)
    r = httpx.get(f"{server.url}/api/orders/{order['id']}/report?download=1", headers=funded.headers)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    rep = r.json()
    assert [(m["seq"], m["latency_ms"]) for m in rep["messages"]] == [(1, 14000), (2, 12000)]
    assert rep["breaches"] == 1 and rep["turns"][0]["breached"] is True
    assert rep["chain"]["intact"] and rep["chain"]["upto_seq"] == 3
    path = tmp_path / "report.json"
    path.write_text(json.dumps(rep))
    rc, out = _verify(server, path)
    assert rc == 0 and out["ok"], out

    # An edited report fails its signature.
    forged = {**rep, "breaches": 0}
    path.write_text(json.dumps(forged))
    rc, out = _verify(server, path)
    assert rc == 1 and any("signature" in p for p in out["problems"])

    # An edited message in the database breaks the chain (even re-encrypted with the real key).
    path.write_text(json.dumps(rep))

    async def rewrite(db):
        from sqlalchemy import update

        from miaohui.chat.models import Message
        from miaohui.core.crypto import KeyRing, message_aad

        m = await db.scalar(select(Message).where(Message.conversation_id == conv, Message.seq == 2))
        kid, ct = KeyRing(KEYS).encrypt("我从没说过这句", message_aad(conv, m.sender_id, m.client_id))
        await db.execute(update(Message).where(Message.id == m.id).values(body_ct=ct, key_id=kid))
        await db.commit()

    server.db(rewrite)
    rc, out = _verify(server, path)
    assert rc == 1 and any("chain" in p for p in out["problems"]), out
    page = httpx.get(f"{server.url}/orders/{order['id']}/report", headers=funded.headers)
    assert page.status_code == 200 and "已损坏" in page.text


def test_concurrent_decisions_on_one_order_end_in_exactly_one_outcome(server, funded, listener, clock):
    before = available(server, funded.id)
    order = buy(server, funded, listener).json()["order"]
    say(server, listener, order["conversation_id"], "你好")
    clock.advance(minutes=31)
    wait_for(server, funded, order["id"], lambda o: o["status"] == "ended")
    assert httpx.post(f"{server.url}/api/orders/{order['id']}/disputes", json={"reason": "不满意"},
                      headers=funded.headers).status_code == 201
    sup, adm = Api(server, "supervisor"), Api(server, "admin")
    url = f"{server.url}/api/admin/disputes/{order['id']}/resolve"

    def decide(i: int) -> int:
        who = sup if i % 2 else adm
        refund = 3000 if i % 2 else 1000  # full refund (void) races a partial one (settle)
        return httpx.post(url, json={"refund_fen": refund}, headers=who.headers, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(decide, range(8)))
    assert sorted(codes) == [200] + [409] * 7
    final = get_order(server, funded, order["id"])
    assert final["status"] in ("refunded", "settled")
    spent = before - available(server, funded.id)
    assert spent == (0 if final["status"] == "refunded" else 2000)
    books_ok(server)
