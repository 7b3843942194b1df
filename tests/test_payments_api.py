"""Top-ups through the sandbox gateway, its signed callbacks, withdrawals and
the money pages — over a real server on SQLite and on PostgreSQL.  The
sandbox's callback is a real HTTP request from the server to itself."""

from __future__ import annotations

import asyncio
import time
from contextlib import closing

import httpx
import orjson
import pytest

from miaohui.ledger import service as ledger
from miaohui.payments.gateway import SIGNATURE_HEADER, signature_header
from tests.conftest import Api
from tests.test_web_pages import signed_in, text_of


def get(api: Api, path: str, **kw) -> httpx.Response:
    return httpx.get(api.server.url + path, headers=api.headers, timeout=10, **kw)


def post(api: Api, path: str, json=None) -> httpx.Response:
    return httpx.post(api.server.url + path, headers=api.headers, json=json, timeout=10)


def wallet(api: Api) -> dict:
    r = get(api, "/api/wallet")
    assert r.status_code == 200, r.text
    return r.json()


def wait_status(api: Api, payment_id: str, want: str, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        p = get(api, f"/api/wallet/topups/{payment_id}").json()
        if p["status"] == want or time.monotonic() > deadline:
            assert p["status"] == want, p
            return p
        time.sleep(0.05)


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and err["message_en"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in err["message"]), err  # Chinese first
    if code:
        assert err["code"] == code, err
    return err


def books_ok(server) -> dict:
    books = server.db(ledger.check_books)
    assert books["ok"], books["problems"]
    return books


def start_topup(api: Api, amount: int) -> dict:
    r = post(api, "/api/wallet/topups", {"amount_fen": amount})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["status"] == "pending" and out["amount_fen"] == amount
    assert out["pay_url"] == f"{api.server.url}/sandbox/pay/{out['payment_id']}"
    return out


def callback(server, payment_id: str, amount: int, type_: str = "payment.succeeded", t: int | None = None):
    body = orjson.dumps(
        {"id": "evt_test", "type": type_, "created": 0, "data": {"payment_id": payment_id, "amount_fen": amount}}
    )
    t = int(server.clock.now().timestamp()) if t is None else t
    return body, {SIGNATURE_HEADER: signature_header(server.settings.effective_gateway_secret, t, body)}


def deliver(server, body: bytes, headers: dict) -> httpx.Response:
    return httpx.post(
        server.url + "/api/payments/sandbox/webhook", content=body,
        headers={"content-type": "application/json", **headers}, timeout=10,
    )


# ------------------------------------------------------------------ top-ups


def test_topup_through_sandbox_callback(server, seeker, admin):
    before = wallet(seeker)
    assert before["balance_fen"] == 50000  # demo: a completed sandbox payment of ¥500
    topup = start_topup(seeker, 12345)
    r = post(seeker, f"/api/sandbox/payments/{topup['payment_id']}", {"outcome": "succeed"})
    assert r.status_code == 202 and r.json()["status"] == "succeeded"
    # The sandbox calls the webhook over HTTP in the background; poll until credited.
    wait_status(seeker, topup["payment_id"], "succeeded")
    after = wallet(seeker)
    assert after == {"balance_fen": 62345, "held_fen": 0, "available_fen": 62345}
    lines = get(seeker, "/api/wallet/statement").json()["lines"]
    assert lines[0]["code"] == "topup" and lines[0]["amount_fen"] == 12345 and lines[0]["label"] == "充值"
    # Confirming again is harmless: no second callback moves money.
    r = post(seeker, f"/api/sandbox/payments/{topup['payment_id']}", {"outcome": "succeed"})
    assert r.status_code == 202
    assert_error(post(seeker, f"/api/sandbox/payments/{topup['payment_id']}", {"outcome": "fail"}), 409, "intent_closed")
    time.sleep(0.2)
    assert wallet(seeker)["balance_fen"] == 62345
    books = get(admin, "/api/admin/ledger/check").json()
    assert books["ok"] and books["money_in"] == 50000 + 20000 + 12345


def test_forged_host_cannot_redirect_the_callback_nor_others_drive_a_payment(server, seeker, listener):
    """The gateway calls back this server whatever ``Host`` a request names (a
    forged one used to aim the signed event at another server), and only the
    payer can open or drive their checkout: anyone else's looks missing."""
    r = httpx.post(server.url + "/api/wallet/topups", json={"amount_fen": 1000}, timeout=10,
                   headers={**seeker.headers, "host": "127.0.0.1:9"})
    assert r.status_code == 201, r.text
    pid = r.json()["payment_id"]
    assert r.json()["pay_url"] == f"{server.url}/sandbox/pay/{pid}"
    assert_error(post(listener, f"/api/sandbox/payments/{pid}", {"outcome": "fail"}), 404, "not_found")
    assert get(listener, f"/sandbox/pay/{pid}").status_code == 404
    assert get(seeker, f"/sandbox/pay/{pid}").status_code == 200
    assert post(seeker, f"/api/sandbox/payments/{pid}", {"outcome": "succeed"}).status_code == 202
    wait_status(seeker, pid, "succeeded")
    assert wallet(seeker)["balance_fen"] == 51000
    books_ok(server)


def test_failed_payment_moves_nothing(server, seeker):
    topup = start_topup(seeker, 5000)
    r = post(seeker, f"/api/sandbox/payments/{topup['payment_id']}", {"outcome": "fail"})
    assert r.status_code == 202 and r.json()["status"] == "failed"
    p = wait_status(seeker, topup["payment_id"], "failed")
    assert p["status_label"] == "支付失败"
    assert wallet(seeker)["balance_fen"] == 50000
    assert_error(post(seeker, f"/api/sandbox/payments/{topup['payment_id']}", {"outcome": "succeed"}), 409)
    books_ok(server)


def test_callbacks_are_verified_and_idempotent(server, seeker):
    topup = start_topup(seeker, 8000)
    pid = topup["payment_id"]
    body, headers = callback(server, pid, 8000)

    # Tampered: the body says more money than was signed for.
    forged = body.replace(b"8000", b"9000")
    assert_error(deliver(server, forged, headers), 400, "bad_signature")
    # Signed with another secret; no signature at all; a malformed header.
    wrong = {SIGNATURE_HEADER: signature_header("not-the-secret", int(server.clock.now().timestamp()), body)}
    assert_error(deliver(server, body, wrong), 400, "bad_signature")
    assert_error(deliver(server, body, {}), 400, "bad_signature")
    assert_error(deliver(server, body, {SIGNATURE_HEADER: "v1=abc"}), 400, "bad_signature")
    # A captured callback replayed later than the tolerance.
    old_body, old_headers = callback(server, pid, 8000, t=int(server.clock.now().timestamp()) - 600)
    assert_error(deliver(server, old_body, old_headers), 400, "stale_callback")
    # Authentic but for another amount / an unknown payment.
    assert_error(deliver(server, *callback(server, pid, 7999)), 400, "amount_mismatch")
    assert_error(deliver(server, *callback(server, "0" * 32, 8000)), 400, "unknown_payment")
    assert wallet(seeker)["balance_fen"] == 50000
    assert get(seeker, f"/api/wallet/topups/{pid}").json()["status"] == "pending"

    # The real one, then replays of it: 200 every time, money moves once.
    for _ in range(3):
        r = deliver(server, body, headers)
        assert r.status_code == 200 and r.json() == {"received": True, "status": "succeeded"}
    assert wallet(seeker)["balance_fen"] == 58000
    # A late "failed" event for a payment that succeeded changes nothing.
    r = deliver(server, *callback(server, pid, 8000, "payment.failed"))
    assert r.status_code == 200 and r.json()["status"] == "succeeded"
    assert wallet(seeker)["balance_fen"] == 58000
    books_ok(server)


def test_topup_bad_amounts_and_roles(server, seeker, listener):
    for amount in (99, 0, -100, 500_001, 10**15):
        err = assert_error(post(seeker, "/api/wallet/topups", {"amount_fen": amount}), 400, "amount_out_of_range")
        assert "¥1.00" in err["message"] and "¥5000.00" in err["message"]
    for body in ({"amount_fen": "100"}, {"amount_fen": 100.5}, {"amount_fen": 100.0}, {}, {"amount_fen": True}):
        assert_error(post(seeker, "/api/wallet/topups", body), 422, "invalid_input")
    assert_error(post(listener, "/api/wallet/topups", {"amount_fen": 1000}), 403, "forbidden_role")
    assert_error(httpx.post(server.url + "/api/wallet/topups", json={"amount_fen": 1000}), 401)
    assert_error(httpx.get(server.url + "/api/wallet"), 401)
    assert_error(post(seeker, "/api/sandbox/payments/nope", {"outcome": "succeed"}), 404)
    assert_error(post(seeker, "/api/sandbox/payments/nope", {"outcome": "maybe"}), 422)
    assert wallet(seeker)["balance_fen"] == 50000


def test_statements_are_private(server, seeker, seeker2, admin, listener):
    topup = start_topup(seeker, 3000)
    assert_error(get(seeker2, f"/api/wallet/topups/{topup['payment_id']}"), 404, "not_found")
    mine = get(seeker2, "/api/wallet/statement").json()["lines"]
    assert [line["amount_fen"] for line in mine] == [20000]  # only ahe's own top-up
    assert_error(get(seeker, f"/api/admin/ledger/users/{seeker2.id}/statement"), 403, "forbidden_role")
    assert_error(get(listener, "/api/admin/withdrawals"), 403)
    assert_error(get(seeker, "/api/listener/earnings"), 403)
    r = get(admin, f"/api/admin/ledger/users/{seeker2.id}/statement")
    assert r.status_code == 200 and r.json()["lines"][0]["amount_fen"] == 20000
    assert_error(get(seeker, "/api/wallet/statement", params={"before": "x1"}), 400, "bad_cursor")


# -------------------------------------------------------------- withdrawals


def give_earnings(server, seeker: Api, listener: Api, ref: str, net: int) -> None:
    """The real path: a seeker's hold settles into the listener's earnings."""

    async def go(db):
        await ledger.hold(db, ref=ref, payer_id=seeker.id, amount=net + 1000)
        await ledger.settle(db, ref=ref, payee_id=listener.id, payee_net=net, commission=1000, refund=0)
        await db.commit()

    server.db(go)


def test_withdrawal_request_approve_reject(server, seeker, listener, admin):
    give_earnings(server, seeker, listener, "order:test-w", 20000)
    assert get(listener, "/api/listener/earnings").json() == {
        "balance_fen": 20000, "held_fen": 0, "available_fen": 20000,
    }
    assert_error(post(listener, "/api/listener/withdrawals", {"amount_fen": 500}), 400, "amount_too_small")
    assert_error(post(listener, "/api/listener/withdrawals", {"amount_fen": 20001}), 402, "insufficient_funds")
    assert_error(post(listener, "/api/listener/withdrawals", {"amount_fen": "5000"}), 422)
    assert_error(post(seeker, "/api/listener/withdrawals", {"amount_fen": 5000}), 403)

    r = post(listener, "/api/listener/withdrawals", {"amount_fen": 15000})
    assert r.status_code == 201 and r.json()["status"] == "requested", r.text
    w1 = r.json()["id"]
    assert get(listener, "/api/listener/earnings").json() == {
        "balance_fen": 20000, "held_fen": 15000, "available_fen": 5000,
    }
    # The reserved money cannot be asked for twice.
    assert_error(post(listener, "/api/listener/withdrawals", {"amount_fen": 6000}), 402, "insufficient_funds")
    w2 = post(listener, "/api/listener/withdrawals", {"amount_fen": 5000}).json()["id"]

    queue = get(admin, "/api/admin/withdrawals").json()
    assert {w["id"] for w in queue} == {w1, w2} and queue[0]["user"]["username"] == "linqing"
    assert_error(post(listener, f"/api/admin/withdrawals/{w1}/approve"), 403)

    r = post(admin, f"/api/admin/withdrawals/{w1}/approve")
    assert r.status_code == 200 and r.json()["status"] == "paid" and r.json()["payout_ref"].startswith("sbpo_")
    assert_error(post(admin, f"/api/admin/withdrawals/{w1}/approve"), 409, "withdrawal_closed")
    assert_error(post(admin, f"/api/admin/withdrawals/{w1}/reject", {"reason": "x"}), 409, "withdrawal_closed")

    r = post(admin, f"/api/admin/withdrawals/{w2}/reject", {"reason": "账户信息不完整"})
    assert r.status_code == 200 and r.json()["status"] == "rejected" and r.json()["reason"] == "账户信息不完整"
    assert_error(post(admin, f"/api/admin/withdrawals/{w2}/approve"), 409, "withdrawal_closed")
    assert_error(post(admin, f"/api/admin/withdrawals/{'0' * 32}/approve"), 404)

    assert get(listener, "/api/listener/earnings").json() == {
        "balance_fen": 5000, "held_fen": 0, "available_fen": 5000,
    }
    mine = get(listener, "/api/listener/withdrawals").json()
    assert {w["id"]: w["status_label"] for w in mine} == {w1: "已打款", w2: "已驳回"}
    books = books_ok(server)
    assert books["money_out"] == 15000 and books["payouts_in_flight"] == 0 and books["platform_revenue"] == 1000


def test_concurrent_withdrawals_and_approvals(server, seeker, listener, admin):
    """Racing HTTP requests against the live server: no 500s, money moves once."""
    give_earnings(server, seeker, listener, "order:test-c", 10_000)

    async def burst(api: Api, method: str, paths_bodies: list[tuple[str, dict | None]]) -> list[int]:
        async with api.client() as c:
            rs = await asyncio.gather(*(c.request(method, p, json=b) for p, b in paths_bodies))
        return [r.status_code for r in rs]

    codes = asyncio.run(burst(listener, "POST", [("/api/listener/withdrawals", {"amount_fen": 3_000})] * 6))
    assert sorted(codes) == [201] * 3 + [402] * 3, codes
    w = get(listener, "/api/listener/withdrawals").json()[0]["id"]
    codes = asyncio.run(burst(admin, "POST", [(f"/api/admin/withdrawals/{w}/approve", None)] * 4))
    assert sorted(codes) == [200] + [409] * 3, codes
    assert get(listener, "/api/listener/earnings").json() == {
        "balance_fen": 7_000, "held_fen": 6_000, "available_fen": 1_000,
    }
    assert books_ok(server)["money_out"] == 3_000


def test_a_seekers_unused_balance_goes_back_through_the_payout_queue(server, seeker, admin):
    """余额退款: reserved at once (not spendable, not askable twice), approved
    or rejected by an admin in the withdrawal queue, paid out through the
    gateway; the wallet statement says where the money went."""
    assert wallet(seeker)["available_fen"] == 50000  # the demo wallet
    assert_error(post(seeker, "/api/wallet/refunds", {"amount_fen": 0}), 400, "amount_too_small")
    assert_error(post(seeker, "/api/wallet/refunds", {"amount_fen": 50001}), 402, "insufficient_funds")
    assert_error(post(admin, "/api/wallet/refunds", {"amount_fen": 100}), 403)
    r1 = post(seeker, "/api/wallet/refunds", {"amount_fen": 30000})
    assert r1.status_code == 201 and r1.json()["kind"] == "wallet" and r1.json()["kind_label"] == "余额退款", r1.text
    assert wallet(seeker) == {"balance_fen": 50000, "held_fen": 30000, "available_fen": 20000}
    assert_error(post(seeker, "/api/wallet/refunds", {"amount_fen": 20001}), 402, "insufficient_funds")
    r2 = post(seeker, "/api/wallet/refunds", {"amount_fen": 1})  # no minimum: every fen may go back
    assert r2.status_code == 201, r2.text
    queue = {w["id"]: w for w in get(admin, "/api/admin/withdrawals").json()}
    assert queue[r1.json()["id"]]["kind_label"] == "余额退款" and queue[r1.json()["id"]]["user"]["username"] == "xiaoyu"
    assert post(admin, f"/api/admin/withdrawals/{r1.json()['id']}/approve").json()["status"] == "paid"
    assert post(admin, f"/api/admin/withdrawals/{r2.json()['id']}/reject", {"reason": "重复申请"}).status_code == 200
    assert wallet(seeker) == {"balance_fen": 20000, "held_fen": 0, "available_fen": 20000}
    mine = {w["id"]: w["status_label"] for w in get(seeker, "/api/wallet/refunds").json()}
    assert mine == {r1.json()["id"]: "已退回原支付账户", r2.json()["id"]: "已驳回"}
    lines = get(seeker, "/api/wallet/statement").json()["lines"]
    assert [(x["label"], x["state_label"], x["amount_fen"]) for x in lines if x["code"] == "wallet_refund"] == [
        ("余额退款", "已驳回", -1), ("余额退款", "已退回原支付账户", -30000)]
    books = books_ok(server)
    assert books["money_out"] == 30000 and books["payouts_in_flight"] == 0


def test_the_wallet_page_refunds_the_whole_balance_it_showed(server, seeker, admin):
    from tests.test_web_pages import signed_in, text_of

    c = signed_in(server, "xiaoyu")
    page = c.get("/wallet")
    assert "申请退回 ¥500.00" in text_of(page.text)
    csrf = c.cookies["mh_csrf"]
    r = c.post("/wallet/refund", data={"csrf_token": csrf, "amount_fen": "49999"})  # not what it holds now
    assert r.status_code == 409 and "余额已变化" in text_of(r.text)
    assert wallet(seeker)["held_fen"] == 0
    r = c.post("/wallet/refund", data={"csrf_token": csrf, "amount_fen": "50000"})
    assert r.status_code == 303 and r.headers["location"] == "/wallet?refund=1"
    page = text_of(c.get("/wallet?refund=1").text)
    assert "退款申请已提交" in page and "没有可退的余额" in page and "审核中" in page
    assert wallet(seeker) == {"balance_fen": 50000, "held_fen": 50000, "available_fen": 0}
    admin_page = text_of(signed_in(server, "admin").get("/admin/withdrawals").text)
    assert "余额退款" in admin_page and "小雨" in admin_page


# -------------------------------------------------------------------- pages


def test_wallet_pages_topup_with_forms(server):
    with closing(signed_in(server, "xiaoyu")) as c:
        r = c.get("/wallet")
        assert r.status_code == 200
        text = text_of(r.text)
        for s in ("我的钱包", "可用余额", "¥500.00", "托管中", "¥50.00", "¥100.00", "¥200.00", "去支付", "充值"):
            assert s in text, s
        csrf = c.cookies.get("mh_csrf")
        assert c.post("/wallet/topup", data={"preset": "5000"}).status_code == 403  # no CSRF field
        r = c.post("/wallet/topup", data={"csrf_token": csrf, "preset": "5000", "custom_yuan": "abc"})
        assert r.status_code == 400 and "请输入正确的金额" in text_of(r.text)
        r = c.post("/wallet/topup", data={"csrf_token": csrf, "preset": "5000", "custom_yuan": "0.5"})
        assert r.status_code == 400 and "充值金额需在 ¥1.00 至 ¥5000.00 之间" in text_of(r.text)
        r = c.post("/wallet/topup", data={"csrf_token": csrf, "preset": "5000", "custom_yuan": "88.8"})
        assert r.status_code == 303
        pay_url = r.headers["location"]
        r = c.get(pay_url)
        assert r.status_code == 200
        text = text_of(r.text)
        assert "沙箱支付" in text and "¥88.80" in text and "确认支付" in text and "模拟失败" in text
        assert c.post(pay_url, data={"outcome": "succeed"}).status_code == 403
        r = c.post(pay_url, data={"csrf_token": csrf, "outcome": "succeed"})
        assert r.status_code == 303 and r.headers["location"].startswith("/wallet?payment=")
        deadline = time.monotonic() + 15
        while "充值成功" not in (text := text_of(c.get(r.headers["location"]).text)):
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
        assert "¥588.80" in text and "已到账" in text

    with closing(signed_in(server, "linqing")) as c:
        assert c.get("/wallet").status_code == 403
        r = c.get("/console/earnings")
        assert r.status_code == 200
        text = text_of(r.text)
        assert "我的收入" in text and "可提现" in text and "¥0.00" in text and "还没有提现记录" in text
        r = c.post("/console/earnings/withdraw", data={"csrf_token": c.cookies.get("mh_csrf"), "amount_yuan": "50"})
        assert r.status_code == 402 and "可提现金额不足" in text_of(r.text)


def test_admin_withdrawal_page(server, seeker, listener):
    give_earnings(server, seeker, listener, "order:test-p", 9000)
    with closing(signed_in(server, "linqing")) as c:
        csrf = c.cookies.get("mh_csrf")
        r = c.post("/console/earnings/withdraw", data={"csrf_token": csrf, "amount_yuan": "60.5"})
        assert r.status_code == 303
        text = text_of(c.get(r.headers["location"]).text)
        assert "提现申请已提交" in text and "¥60.50" in text and "审核中" in text
    with closing(signed_in(server, "admin")) as c:
        r = c.get("/admin/withdrawals")
        text = text_of(r.text)
        assert r.status_code == 200 and "提现审核" in text and "林晴" in text and "¥60.50" in text
        assert "借贷平衡" in text
        wid = r.text.split('data-withdrawal-id="', 1)[1].split('"', 1)[0]
        csrf = c.cookies.get("mh_csrf")
        r = c.post(f"/admin/withdrawals/{wid}/approve", data={"csrf_token": csrf})
        assert r.status_code == 303
        assert "已打款" in text_of(c.get(r.headers["location"]).text)
        r = c.post(f"/admin/withdrawals/{wid}/approve", data={"csrf_token": csrf})
        assert r.status_code == 409 and "该提现申请已处理" in text_of(r.text)
    with closing(signed_in(server, "xiaoyu")) as c:
        assert c.get("/admin/withdrawals").status_code == 403
    assert get(listener, "/api/listener/earnings").json()["balance_fen"] == 9000 - 6050


@pytest.fixture
def anon_client(server):
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=10) as c:
        yield c


def test_money_pages_need_sign_in(server, anon_client):
    for path in ("/wallet", "/console/earnings", "/admin/withdrawals", "/sandbox/pay/abc"):
        r = anon_client.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path


def test_sandbox_is_off_in_production_unless_asked_for():
    from miaohui.config import Settings
    from tests.conftest import KEYS, SECRET

    prod = dict(env="production", secret_key=SECRET, message_keys=KEYS)
    assert Settings(**prod).sandbox_payments_enabled is False
    assert Settings(**prod, sandbox_payments=True).sandbox_payments_enabled is True
    assert Settings(secret_key=SECRET, message_keys=KEYS).sandbox_payments_enabled is True


@pytest.fixture
def no_sandbox(database_url, tmp_path, clock):
    from tests.conftest import LiveServer, make_settings

    s = LiveServer(make_settings(database_url, tmp_path, sandbox_payments=False), clock).start()
    yield s
    s.stop()


def test_without_a_gateway_nothing_is_paid_in_or_out(no_sandbox):
    """With the sandbox off (production's default) and no real gateway, a top-up
    is refused before anything is recorded and an approved payout sends nothing:
    no wallet is credited with money that never arrived."""
    seeker, listener, admin = Api(no_sandbox, "xiaoyu"), Api(no_sandbox, "linqing"), Api(no_sandbox, "admin")
    before, lines = wallet(seeker), get(seeker, "/api/wallet/statement").json()["lines"]
    assert_error(post(seeker, "/api/wallet/topups", {"amount_fen": 5000}), 503, "payments_unavailable")
    assert wallet(seeker) == before and get(seeker, "/api/wallet/statement").json()["lines"] == lines
    give_earnings(no_sandbox, seeker, listener, "order:test-nogw", 9000)
    w = post(listener, "/api/listener/withdrawals", {"amount_fen": 5000}).json()
    assert_error(post(admin, f"/api/admin/withdrawals/{w['id']}/approve"), 503, "payments_unavailable")
    assert get(listener, "/api/listener/withdrawals").json()[0]["status"] == "requested"
    assert get(listener, "/api/listener/earnings").json()["held_fen"] == 5000
    books_ok(no_sandbox)
