"""Money guards on orders, over the live server on SQLite and PostgreSQL:
the price bound at purchase (``expected_total_fen``), extensions at the
agreed rate and refunded with an order that ends unserved, an early end
before the listener arrives refunded whole, the budget's hard cap under
concurrent purchases and for gifts, and single-use late-night
confirmations.  Each test fails on the code before these guards."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import Api, LiveServer, make_settings
from tests.test_orders import (
    SH,
    available,
    books_ok,
    buy,
    earnings,
    extend,
    fund,
    get_order,
    quoted_total,
    say,
    wait_for,
)

# The scheduler ticks every 50 ms, so a step of the fake clock is acted on at once.
pytestmark = pytest.mark.server_settings(sla_tick_seconds=0.05)


@pytest.fixture
def funded(server, seeker):
    fund(server, seeker, 500)
    return seeker


def set_price(server: LiveServer, listener: Api, fen_per_hour: int) -> None:
    prof = httpx.get(f"{server.url}/api/listener/profile", headers=listener.headers).json()
    body = {k: prof[k] for k in ("headline", "bio", "topics", "languages")} | {"price_per_hour_fen": fen_per_hour}
    r = httpx.put(f"{server.url}/api/listener/profile", json=body, headers=listener.headers)
    assert r.status_code == 200, r.text


def test_a_purchase_needs_the_total_shown(server, funded, listener):
    r = httpx.post(f"{server.url}/api/orders", json={"listener_id": listener.id, "kind": "30m"},
                   headers=funded.headers)
    assert r.status_code == 422
    r = buy(server, funded, listener, expected_total_fen="3000")  # strict: a number, not text
    assert r.status_code == 422
    assert httpx.get(f"{server.url}/api/orders", headers=funded.headers).json() == []


def test_a_price_raised_after_the_quote_is_not_charged(server, funded, listener):
    shown = quoted_total(server, funded, listener, "30m")
    assert shown == 3000
    before = available(server, funded.id)
    set_price(server, listener, 24000)  # ¥60/h → ¥240/h while the seeker reads the contract
    r = buy(server, funded, listener, expected_total_fen=shown)
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["code"] == "price_changed" and "¥120.00" in err["message"] and err["message_en"]
    assert err["total_fen"] == 12000 and err["quote"]["total_fen"] == 12000
    assert available(server, funded.id) == before  # nothing held
    assert httpx.get(f"{server.url}/api/orders", headers=funded.headers).json() == []
    r = buy(server, funded, listener, expected_total_fen=err["total_fen"])  # the seeker agrees to the new price
    assert r.status_code == 201 and r.json()["order"]["price_fen"] == 12000
    # A price that fell is charged as it is, never the higher figure confirmed.
    set_price(server, listener, 6000)
    r = buy(server, funded, listener, start_at=(server.clock.now() + timedelta(hours=1)).isoformat(),
            expected_total_fen=12000)
    assert r.status_code == 201 and r.json()["order"]["price_fen"] == 3000
    books_ok(server)


def test_extension_is_at_the_agreed_rate_whatever_the_price_today(server, funded, listener):
    order = buy(server, funded, listener).json()["order"]
    say(server, listener, order["conversation_id"], "在")
    set_price(server, listener, 90000)
    q = httpx.get(f"{server.url}/api/orders/{order['id']}/extend/quote", params={"kind": "30m"},
                  headers=funded.headers)
    assert q.status_code == 200 and q.json()["total_fen"] == 3000 and q.json()["late_night_confirm"] is False
    before = available(server, funded.id)
    r = extend(server, funded, order["id"], expected_total_fen=2999)
    assert r.status_code == 409 and r.json()["error"]["code"] == "price_changed"
    r = extend(server, funded, order["id"])
    assert r.status_code == 201, r.text
    ext = r.json()
    assert ext["price_fen"] == 3000 and ext["response_window_s"] == order["response_window_s"]
    assert available(server, funded.id) == before - 3000
    contract = get_order(server, funded, ext["id"])["contract"]  # the contract names the order extended
    assert contract["extends_order_id"] == order["id"] and contract["price"]["base_fen_per_hour"] == 6000
    books_ok(server)


def test_an_extension_is_refunded_when_the_listener_blocks(server, funded, listener, clock):
    before = available(server, funded.id)
    earned = earnings(server, listener.id)
    order = buy(server, funded, listener).json()["order"]
    say(server, listener, order["conversation_id"], "在")
    ext = extend(server, funded, order["id"]).json()
    clock.advance(minutes=10)
    r = httpx.post(f"{server.url}/api/orders/{order['id']}/block", json={"reason": "辱骂"}, headers=listener.headers)
    assert r.status_code == 200
    e = get_order(server, funded, ext["id"])
    assert e["status"] == "refunded" and e["end_reason"] == "blocked"
    # The extension never starts afterwards, and nothing of it reaches the listener.
    clock.advance(minutes=25)
    clock.advance(hours=25)
    wait_for(server, funded, order["id"], lambda o: o["status"] == "settled")
    assert get_order(server, funded, ext["id"])["status"] == "refunded"
    assert available(server, funded.id) == before - 1000  # 10 of 30 minutes served at ¥60/h
    assert earnings(server, listener.id) == earned + 700  # ¥10 less 30 %
    books_ok(server)


def test_an_extension_goes_with_a_no_show(server, funded, listener, clock):
    before = available(server, funded.id)
    order = buy(server, funded, listener).json()["order"]
    clock.advance(minutes=1)
    ext = extend(server, funded, order["id"]).json()  # bought before the listener said a word
    clock.advance(minutes=5)
    o = wait_for(server, funded, order["id"], lambda o: o["status"] == "refunded")
    assert o["end_reason"] == "no_show"
    e = wait_for(server, funded, ext["id"], lambda o: o["status"] == "refunded")
    assert e["end_reason"] == "no_show"
    clock.advance(minutes=30)
    assert get_order(server, funded, ext["id"])["status"] == "refunded"  # never started
    assert available(server, funded.id) == before
    r = httpx.get(f"{server.url}/api/conversations/{order['conversation_id']}/messages?limit=200",
                  headers=funded.headers)
    assert any("续费的时段随之取消" in m["body"] for m in r.json()["messages"])
    books_ok(server)


def test_ending_before_the_listener_arrives_is_a_full_refund(server, funded, listener, clock):
    before = available(server, funded.id)
    order = buy(server, funded, listener).json()["order"]
    clock.advance(minutes=2)
    r = httpx.post(f"{server.url}/api/orders/{order['id']}/end", json={}, headers=funded.headers)
    assert r.status_code == 200 and r.json()["status"] == "refunded"
    assert r.json()["estimate"]["refund"] == 3000
    assert available(server, funded.id) == before
    # A listener who ends before their first message: the same.
    order = buy(server, funded, listener).json()["order"]
    r = httpx.post(f"{server.url}/api/orders/{order['id']}/end", json={}, headers=listener.headers)
    assert r.status_code == 200 and r.json()["status"] == "refunded"
    assert available(server, funded.id) == before
    books_ok(server)


def test_hard_cap_holds_against_concurrent_purchases(server, funded, listener):
    r = httpx.put(f"{server.url}/api/me/budget", json={"monthly_limit_fen": 3000, "hard_cap": True},
                  headers=funded.headers)
    assert r.status_code == 200
    now = server.clock.now()
    starts = [(now + timedelta(hours=14 + i)).isoformat() for i in range(6)]

    def one(start: str) -> int:
        return buy(server, funded, listener, start_at=start, expected_total_fen=3000).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(one, starts))
    assert sorted(codes) == [201] + [409] * 5, codes
    assert httpx.get(f"{server.url}/api/me/budget", headers=funded.headers).json()["spent_this_month_fen"] == 3000
    books_ok(server)


def test_gifts_count_against_the_hard_cap(server, funded, listener, clock):
    order = buy(server, funded, listener).json()["order"]
    say(server, listener, order["conversation_id"], "在")
    clock.advance(minutes=31)
    wait_for(server, funded, order["id"], lambda o: o["status"] == "ended")
    r = httpx.put(f"{server.url}/api/me/budget", json={"monthly_limit_fen": 3500, "hard_cap": True},
                  headers=funded.headers)
    assert r.status_code == 200
    gifts = f"{server.url}/api/orders/{order['id']}/gifts"
    before = available(server, funded.id)
    r = httpx.post(gifts, json={"amount_fen": 600}, headers=funded.headers)  # ¥30 + ¥6 > ¥35
    assert r.status_code == 409 and r.json()["error"]["code"] == "budget_exceeded"
    assert available(server, funded.id) == before
    r = httpx.post(gifts, json={"amount_fen": 500}, headers=funded.headers)
    assert r.status_code == 201, r.text
    books_ok(server)


def test_a_late_night_confirmation_pays_for_one_order(server, funded, listener, clock):
    clock.set(datetime(2026, 1, 2, 2, 0, tzinfo=SH).astimezone(UTC))
    fund(server, funded, 2000)
    r = buy(server, funded, listener, "night")
    assert r.status_code == 409 and r.json()["error"]["code"] == "confirm_required"
    token = r.json()["error"]["confirm_token"]
    clock.advance(10)
    r = buy(server, funded, listener, "night", confirm_token=token)
    assert r.status_code == 201, r.text
    first = r.json()["order"]
    r = httpx.post(f"{server.url}/api/orders/{first['id']}/end", json={}, headers=funded.headers)
    assert r.status_code == 200 and r.json()["status"] == "refunded"  # the listener never came
    before = available(server, funded.id)
    r = buy(server, funded, listener, "night", confirm_token=token)  # the same token, within its ten minutes
    assert r.status_code == 409 and r.json()["error"]["code"] == "confirm_required"
    assert "已经用于另一笔订单" in r.json()["error"]["message"]
    assert available(server, funded.id) == before
    # The token binds the start asked for: one for 'now' does not buy a later slot.
    later = (clock.now() + timedelta(hours=1)).isoformat()
    r = buy(server, funded, listener, "night", confirm_token=r.json()["error"]["confirm_token"], start_at=later)
    assert r.status_code == 409 and r.json()["error"]["code"] == "confirm_required"
    books_ok(server)


def test_order_pages_speak_to_whoever_reads_them(server, funded, listener, clock):
    """The seeker's receipt says 你与倾听师, the listener's 你与倾诉者 (with
    the seeker's pseudonym, never the listener's own name as the other
    party), staff see both; an early end shows when it really ended."""
    order = buy(server, funded, listener).json()["order"]
    say(server, listener, order["conversation_id"], "在的")
    say(server, funded, order["conversation_id"], "今天好累")
    clock.advance(3)
    say(server, listener, order["conversation_id"], "我听着")
    clock.advance(minutes=5)
    assert httpx.post(f"{server.url}/api/orders/{order['id']}/end", json={}, headers=funded.headers).status_code == 200

    def page(who: Api, path: str) -> str:
        r = httpx.get(server.url + path, headers={**who.headers, "accept": "text/html"})
        assert r.status_code == 200, r.text
        return r.text

    mine = page(funded, f"/orders/{order['id']}")
    assert "你与倾听师「林晴」" in mine and "退还给你" in mine and "你发送于" in mine
    served = page(listener, f"/orders/{order['id']}")
    assert "你与倾诉者「小雨」" in served and "你的所得" in served and "退还给倾诉者" in served
    assert "倾诉者发送于" in served and "你与倾听师" not in served
    listing = page(listener, "/orders")
    assert "倾诉者 小雨" in listing and "· 林晴" not in listing
    assert "（提前结束）" in listing
    staff = page(Api(server, "supervisor"), f"/orders/{order['id']}")
    assert "倾诉者「小雨」与倾听师「林晴」" in staff


def test_pages_read_times_in_the_platforms_time_zone(database_url, tmp_path, clock):
    """``MIAOHUI_TIMEZONE`` decides what clock the pages show, not a constant."""
    live = LiveServer(make_settings(database_url, tmp_path, timezone="UTC"), clock).start()
    try:
        seeker, listener = Api(live, "xiaoyu"), Api(live, "linqing")
        fund(live, seeker, 500)
        order = buy(live, seeker, listener).json()["order"]
        start = datetime.fromisoformat(order["starts_at"]).astimezone(UTC).strftime("%m-%d %H:%M")
        shanghai = datetime.fromisoformat(order["starts_at"]).astimezone(SH).strftime("%m-%d %H:%M")
        html = httpx.get(f"{live.url}/orders", headers={**seeker.headers, "accept": "text/html"}).text
        assert start in html and shanghai not in html
    finally:
        live.stop()
