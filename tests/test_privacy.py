"""下载我的数据 and 注销账号 (``privacy``), over the real API and pages, on
SQLite and PostgreSQL: the copy holds the person's own data, readable;
closing waits for money and services to finish, needs the password and the
word, and then deletes what it says it deletes, keeps what the other side
and the books need (without the name), and ends every session."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets
from sqlalchemy import func, select

from miaohui.chat.models import Message
from miaohui.demo import PASSWORD
from miaohui.listeners import duty
from miaohui.listeners.models import DutyHour
from miaohui.matching.models import Favorite
from tests.conftest import Api
from tests.test_chat_ws import connect, drain_sync
from tests.test_companion_ws import tell_companion
from tests.test_orders import books_ok, buy, fund, say
from tests.test_trust import new_listener, upload
from tests.test_web_pages import signed_in, text_of


def signup(server, username: str, role: str = "seeker") -> Api:
    r = httpx.post(f"{server.url}/api/auth/signup", json={
        "username": username, "password": "longenough", "display_name": "夜行人", "role": role})
    assert r.status_code == 201, r.text
    return Api(server, username, "longenough")


def close(server, who: Api, password: str = "longenough", confirm: str = "注销") -> httpx.Response:
    return httpx.post(f"{server.url}/api/account/close", json={"password": password, "confirm": confirm},
                      headers=who.headers, timeout=20)


def favorites_of(server, seeker_id: str) -> int:
    return server.db(lambda db: db.scalar(select(func.count()).select_from(Favorite)
                                          .where(Favorite.seeker_id == seeker_id)))


def messages_in(server, conv: str) -> int:
    return server.db(lambda db: db.scalar(select(func.count()).select_from(Message)
                                          .where(Message.conversation_id == conv)))


def test_the_copy_holds_my_data_readable_and_nobody_elses(server, seeker, seeker2, listener):
    fund(server, seeker, 300)
    order = buy(server, seeker, listener).json()["order"]
    say(server, seeker, order["conversation_id"], "这段话只有我和倾听师看得到")
    say(server, listener, order["conversation_id"], "我在，慢慢说")
    other = httpx.post(f"{server.url}/api/conversations", json={"listener_id": listener.id},
                       headers=seeker2.headers).json()["id"]
    say(server, seeker2, other, "别人的心事")
    for who in (seeker, seeker2):
        assert httpx.put(f"{server.url}/api/favorites/{listener.id}", headers=who.headers).status_code == 200
    assert httpx.get(f"{server.url}/api/account/export").status_code == 401

    r = httpx.get(f"{server.url}/api/account/export", headers=seeker.headers)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert r.headers["cache-control"] == "no-store"
    data = r.json()
    assert data["account"]["username"] == "xiaoyu" and data["account"]["role"] == "seeker"
    (conv,) = data["conversations"]
    assert conv["with"] == ["林晴"]
    assert [(m["from"], m["text"], m["mine"]) for m in conv["messages"]] == [
        ("我", "这段话只有我和倾听师看得到", True), ("林晴", "我在，慢慢说", False)]
    assert [o["id"] for o in data["orders"]] == [order["id"]] and data["orders"][0]["as"] == "seeker"
    codes = [line["code"] for line in data["money"]["wallet"]]
    assert "topup" in codes and any(line["amount"] < 0 for line in data["money"]["wallet"])
    assert "别人的心事" not in r.text
    assert [f["listener_id"] for f in data["favorites"]] == [listener.id] and data["duty_hours"] == []
    # The listener's copy: every conversation they are in, from their side.
    mine = httpx.get(f"{server.url}/api/account/export", headers=listener.headers).json()
    texts = {m["text"] for c in mine["conversations"] for m in c["messages"]}
    assert {"这段话只有我和倾听师看得到", "别人的心事"} <= texts  # both were said to them
    assert mine["verification"]["identity"]["number"].count("*") >= 8  # masked, as on their own page
    # Their measured on-duty hours (the seed's four weeks), and nothing of who keeps them.
    assert mine["duty_hours"] and all(0 < h["minutes_on_duty"] <= 60 for h in mine["duty_hours"])
    assert mine["favorites"] == []


def test_closing_waits_for_money_and_services_and_needs_the_password_and_the_word(server, seeker, listener, admin):
    assert close(server, seeker, PASSWORD, "注 销").status_code == 400
    r = close(server, seeker, "wrong-password")
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_password"
    r = close(server, seeker, PASSWORD)  # the demo wallet holds ¥500
    assert r.status_code == 409 and r.json()["error"]["code"] == "account_busy"
    assert r.json()["error"]["blocking"] == ["钱包余额 ¥500.00 还没用完或退回：可以在钱包页申请退款，退回原支付账户"]
    assert httpx.get(f"{server.url}/api/auth/me", headers=seeker.headers).status_code == 200  # nothing changed

    # A listener with an order inside its dispute window waits for settlement.
    fresh = new_listener(server, admin, "fresh_listener")
    r = httpx.get(f"{server.url}/api/account/closing", headers=fresh.headers)
    assert r.json() == {"blocking": []}
    buyer = signup(server, "buyer")
    fund(server, buyer, 100)
    order = buy(server, buyer, listener)
    assert order.status_code == 201, order.text
    r = close(server, listener, PASSWORD)
    assert r.status_code == 409 and "1 个订单没有结算完" in r.json()["error"]["message"]
    # Staff accounts are closed by an admin.
    r = close(server, admin, PASSWORD)
    assert r.status_code == 403 and r.json()["error"]["code"] == "staff_account"
    # The seeker takes the balance back (余额退款): while it is on its way the account waits; once paid, it closes.
    w = httpx.post(f"{server.url}/api/wallet/refunds", json={"amount_fen": 50000}, headers=seeker.headers).json()
    r = close(server, seeker, PASSWORD)
    assert r.status_code == 409 and "退款中" in r.json()["error"]["message"]
    assert httpx.post(f"{server.url}/api/admin/withdrawals/{w['id']}/approve", headers=admin.headers).status_code == 200
    assert close(server, seeker, PASSWORD).status_code == 204
    books_ok(server)


def test_closing_deletes_what_it_says_keeps_the_rest_nameless_and_ends_every_session(server, listener):
    me = signup(server, "night_walker")
    conv = httpx.post(f"{server.url}/api/conversations", json={"listener_id": listener.id},
                      headers=me.headers).json()["id"]
    say(server, me, conv, "睡不着，想找人说说话")
    say(server, listener, conv, "我在")
    r = httpx.put(f"{server.url}/api/me/budget", json={"monthly_limit_fen": 30000, "hard_cap": True},
                  headers=me.headers)
    assert r.status_code == 200, r.text
    assert httpx.put(f"{server.url}/api/favorites/{listener.id}", headers=me.headers).status_code == 200

    async def scene():
        ai = await tell_companion(me, "叫我阿夜就好，我是夜班护士")
        async with me.client() as c:
            assert (await c.get("/api/companion/memory")).json()
        # A chat socket open when the account closes is closed by the server.
        live, _ = await connect(me, conv)
        await drain_sync(live)
        r = await asyncio.to_thread(close, server, me)
        assert r.status_code == 204, r.text
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(live.recv(), 5)
        return ai

    ai = asyncio.run(scene())
    # Signed out everywhere; the login no longer works; the login name is free again.
    assert httpx.get(f"{server.url}/api/auth/me", headers=me.headers).status_code == 401
    r = httpx.post(f"{server.url}/api/auth/login", json={"username": "night_walker", "password": "longenough"})
    assert r.status_code == 401
    assert close(server, me).status_code == 401
    # Deleted: the AI conversation's messages, its memories and state, the budget.
    assert messages_in(server, ai) == 0
    from miaohui.companion.models import CompanionMemory, CompanionProfile
    from miaohui.wellbeing.models import Budget

    for model in (CompanionMemory, CompanionProfile, Budget):
        assert server.db(lambda db, m=model: db.scalar(select(func.count()).select_from(m)
                                                         .where(m.user_id == me.id))) == 0, model
    assert favorites_of(server, me.id) == 0
    # Kept for the listener, without the name.
    history = httpx.get(f"{server.url}/api/conversations/{conv}/messages", headers=listener.headers).json()
    assert [m["body"] for m in history["messages"]] == ["睡不着，想找人说说话", "我在"]
    listed = httpx.get(f"{server.url}/api/conversations", headers=listener.headers).json()
    assert next(c for c in listed if c["id"] == conv)["peer"]["display_name"] == "已注销用户"
    again = signup(server, "night_walker")  # a new person may take the name
    assert again.id != me.id
    books_ok(server)


def test_a_closed_listener_leaves_the_directory_and_their_proofs_are_deleted(server, admin, seeker):
    gone = new_listener(server, admin, "leaving_listener")
    q = upload(server, gone, "degree", title="心理学学士").json()
    proof = server.settings.data_dir / "proofs" / f"{q['id']}.bin"
    assert proof.exists()
    assert any(c["user_id"] == gone.id for c in httpx.get(f"{server.url}/api/listeners").json())
    assert httpx.put(f"{server.url}/api/favorites/{gone.id}", headers=seeker.headers).status_code == 200

    async def on_duty(db):
        await duty.record(db, [gone.id], server.clock.now())
        await db.commit()

    server.db(on_duty)
    assert close(server, gone).status_code == 204
    assert not proof.exists()
    # Their measured hours are gone, and so is their place in seekers' 收藏.
    assert server.db(lambda db: db.scalar(select(func.count()).select_from(DutyHour)
                                          .where(DutyHour.listener_id == gone.id))) == 0
    assert server.db(lambda db: db.scalar(select(func.count()).select_from(Favorite)
                                          .where(Favorite.listener_id == gone.id))) == 0
    assert all(c["user_id"] != gone.id for c in httpx.get(f"{server.url}/api/listeners").json())
    r = httpx.post(f"{server.url}/api/conversations", json={"listener_id": gone.id}, headers=seeker.headers)
    assert r.status_code in (403, 404)


def test_the_account_page_downloads_and_closes(server, listener):
    me = signup(server, "page_user")
    c = httpx.Client(base_url=server.url, follow_redirects=False, timeout=10)
    r = c.get("/login")
    r = c.post("/login", data={"username": "page_user", "password": "longenough", "csrf_token": c.cookies["mh_csrf"]})
    assert r.status_code == 303
    page = c.get("/account")
    assert page.status_code == 200 and "下载我的数据" in page.text and 'data-testid="close-form"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert c.get("/api/account/export").json()["account"]["username"] == "page_user"
    # The form: the wrong word re-shows the page with the reason; the right one closes.
    r = c.post("/account/close", data={"password": "longenough", "confirm": "确定", "csrf_token": c.cookies["mh_csrf"]})
    assert r.status_code == 400 and "请输入“注销”两个字确认" in text_of(r.text)
    r = c.post("/account/close", data={"password": "longenough", "confirm": "注销", "csrf_token": "forged"})
    assert r.status_code == 403
    assert httpx.get(f"{server.url}/api/auth/me", headers=me.headers).status_code == 200
    r = c.post("/account/close", data={"password": "longenough", "confirm": "注销", "csrf_token": c.cookies["mh_csrf"]})
    assert r.status_code == 200 and "账号已注销" in r.text and 'mh_session=""' in r.headers.get("set-cookie", "")
    assert httpx.get(f"{server.url}/api/auth/me", headers=me.headers).status_code == 401
    assert c.get("/account").status_code == 303  # signed out: to the login page
    # Busy accounts see why instead of the form.
    busy = signed_in(server, "xiaoyu")
    page = busy.get("/account")
    assert "钱包余额 ¥500.00 还没用完" in text_of(page.text) and 'data-testid="close-form"' not in page.text
