"""End to end in headless Chromium: a seeker and a listener, each in their own
browser context, use the real pages and the real chat client against a real
server — including a network drop during which a message is sent, which must
arrive exactly once."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from miaohui.clock import Clock
from miaohui.demo import PASSWORD
from tests.conftest import Api, LiveServer, make_settings
from tests.test_orders import buy, say, wait_for

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PHONE = {"viewport": {"width": 390, "height": 844}, "locale": "zh-CN"}


@pytest.fixture
def live(sqlite_url, tmp_path):
    server = LiveServer(make_settings(sqlite_url, tmp_path), Clock()).start()
    yield server
    server.stop()


@pytest.fixture
def chromium():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def watch_errors(page: Page, errors: list[str], who: str) -> None:
    page.on("pageerror", lambda e: errors.append(f"{who}: {e}"))

    def on_console(msg) -> None:
        # Chromium logs failed connection attempts while offline; those are expected.
        if msg.type == "error" and not re.search(
            r"WebSocket|ERR_INTERNET_DISCONNECTED|Failed to load", msg.text
        ):
            errors.append(f"{who}: {msg.text}")

    page.on("console", on_console)


def login(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("form.logout")).to_be_visible()


def send(page: Page, text: str) -> None:
    composer = page.get_by_test_id("composer")
    composer.fill(text)
    composer.press("Enter")
    expect(composer).to_have_value("")


def stored_messages(server: LiveServer, listener: Api, conversation_id: str) -> list[dict]:
    r = httpx.get(
        f"{server.url}/api/conversations/{conversation_id}/messages",
        params={"limit": 200},
        headers=listener.headers,
    )
    r.raise_for_status()
    return r.json()["messages"]


def stored_bodies(server: LiveServer, listener: Api, conversation_id: str) -> list[str]:
    return [m["body"] for m in stored_messages(server, listener, conversation_id)]


UUID7 = re.compile(r"^([0-9a-f]{8})-([0-9a-f]{4})-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_seeker_and_listener_chat_through_a_network_drop(live, chromium):
    base = live.url
    started_ms = int(time.time() * 1000)
    errors: list[str] = []
    expect.set_options(timeout=10_000)

    seeker_ctx = chromium.new_context(**PHONE)
    listener_ctx = chromium.new_context(**PHONE)
    seeker = seeker_ctx.new_page()
    listener = listener_ctx.new_page()
    watch_errors(seeker, errors, "seeker")
    watch_errors(listener, errors, "listener")

    # Both sign in through the real form; the listener lands on the console.
    login(listener, base, "linqing")
    expect(listener).to_have_url(f"{base}/console")
    expect(listener.get_by_test_id("accepting-toggle")).to_have_text("接单中")
    expect(listener.locator("html")).to_have_attribute("data-live", "open")
    login(seeker, base, "xiaoyu")
    expect(seeker).to_have_url(f"{base}/listeners")

    # Directory → profile → 开始倾诉.  The listener is on the console (inbox socket), so online.
    seeker.reload()
    card = seeker.get_by_test_id("listener-card").filter(has_text="林晴")
    expect(card).to_contain_text("在线")
    expect(card).to_contain_text("¥60/小时")
    card.click()
    expect(seeker.get_by_role("heading", name="林晴")).to_be_visible()
    seeker.get_by_test_id("start-chat").click()
    expect(seeker).to_have_url(re.compile(r"/chat/[0-9a-f]+$"))
    conversation_id = seeker.url.rsplit("/", 1)[1]
    expect(seeker.get_by_test_id("presence")).to_have_text("在线")

    # The conversation appears live on the console, then an unread badge with the first message.
    item = listener.locator(f'[data-testid="conversation-item"][data-conversation-id="{conversation_id}"]')
    expect(item).to_be_visible()
    expect(item).to_contain_text("小雨")
    send(seeker, "你好，最近晚上总是睡不着。")
    mine = seeker.locator('[data-testid="message"][data-mine="true"]')
    expect(mine.last.get_by_test_id("message-status")).to_have_text(re.compile("已发送|已送达"))
    expect(item.get_by_test_id("unread-badge")).to_have_text("1")
    expect(item).to_contain_text("你好，最近晚上总是睡不着。")

    # The listener opens it: she reads the message, and the seeker sees 已读.
    item.click()
    expect(listener).to_have_url(f"{base}/chat/{conversation_id}")
    theirs = listener.locator('[data-testid="message"][data-mine="false"]')
    expect(theirs).to_have_count(1)
    expect(theirs.first).to_have_attribute("data-seq", "1")
    expect(mine.last.get_by_test_id("message-status")).to_have_text("已读")

    # The listener types: the seeker sees 对方正在输入…, and it goes away with the reply.
    typing = seeker.get_by_test_id("typing-indicator")
    expect(typing).to_be_hidden()
    listener.get_by_test_id("composer").press_sequentially("我在，", delay=40)
    expect(typing).to_be_visible()
    expect(typing).to_have_text("对方正在输入…")
    listener.get_by_test_id("composer").press_sequentially("慢慢说。", delay=20)
    listener.get_by_test_id("send-button").click()
    expect(typing).to_be_hidden()
    reply = seeker.locator('[data-testid="message"][data-mine="false"]')
    expect(reply).to_have_count(1)
    expect(reply.first).to_contain_text("我在，慢慢说。")
    expect(reply.first).to_have_attribute("data-seq", "2")
    # The seeker's page is open and at the bottom, so the listener's reply is read too.
    expect(
        listener.locator('[data-testid="message"][data-mine="true"]').last.get_by_test_id("message-status")
    ).to_have_text("已读")

    # Another round, so both sides have several messages in seq order.
    send(seeker, "分手以后，一躺下脑子就停不下来。")
    expect(theirs).to_have_count(2)
    expect(mine.last.get_by_test_id("message-status")).to_have_text("已读")

    # The network drops: the banner shows, and a message sent now waits in the outbox.
    seeker_ctx.set_offline(True)
    banner = seeker.get_by_test_id("reconnect-banner")
    expect(banner).to_be_visible()
    expect(banner).to_have_text("连接已断开，正在重连…")
    offline_text = "断网时写的这句话，也要送到。"
    send(seeker, offline_text)
    pending = mine.filter(has_text=offline_text)
    expect(pending.get_by_test_id("message-status")).to_have_text("发送中")
    seeker.wait_for_timeout(300)
    expect(listener.locator('[data-testid="message"]', has_text=offline_text)).to_have_count(0)

    # Back online: reconnect, resend with the same client id, delivered exactly once.
    seeker_ctx.set_offline(False)
    expect(banner).to_be_hidden()
    expect(pending.get_by_test_id("message-status")).to_have_text("已读")
    expect(listener.locator('[data-testid="message"]', has_text=offline_text)).to_have_count(1)
    expect(seeker.locator('[data-testid="message"]', has_text=offline_text)).to_have_count(1)

    # The lid closes with an unsent message: the outbox survives in localStorage
    # and a fresh page sends it once the network is back.
    seeker_ctx.set_offline(True)
    expect(banner).to_be_visible()
    lid_text = "合上电脑前写的最后一句。"
    send(seeker, lid_text)
    expect(mine.filter(has_text=lid_text).get_by_test_id("message-status")).to_have_text("发送中")
    seeker.close()
    seeker_ctx.set_offline(False)
    seeker = seeker_ctx.new_page()
    watch_errors(seeker, errors, "seeker2")
    seeker.goto(f"{base}/chat/{conversation_id}")
    again = seeker.locator('[data-testid="message"][data-mine="true"]').filter(has_text=lid_text)
    expect(again.get_by_test_id("message-status")).to_have_text("已读")
    expect(listener.locator('[data-testid="message"]', has_text=lid_text)).to_have_count(1)

    # Ground truth from the server: every message stored exactly once, in order.
    stored = stored_messages(live, Api(live, "linqing"), conversation_id)
    bodies = [m["body"] for m in stored]
    # Each with the client id the browser made for it: a UUIDv7 of its send
    # time, so the ids grow with seq, and the server's idempotency index
    # takes them at its right edge (docs/protocol.md).
    client_ids = [m["client_id"] for m in stored]
    v7 = [UUID7.match(c) for c in client_ids]
    assert all(v7), client_ids
    stamps = [int(m[1] + m[2], 16) for m in v7]
    assert client_ids == sorted(client_ids) and len(set(client_ids)) == 5
    assert started_ms - 2000 <= stamps[0] <= stamps[-1] <= time.time() * 1000 + 2000
    assert bodies == [
        "你好，最近晚上总是睡不着。",
        "我在，慢慢说。",
        "分手以后，一躺下脑子就停不下来。",
        offline_text,
        lid_text,
    ]
    seqs = listener.locator('[data-testid="message"]').evaluate_all(
        "els => els.map(e => Number(e.dataset.seq))"
    )
    assert seqs == [1, 2, 3, 4, 5]
    assert seeker.evaluate("Object.keys(localStorage).filter(k => k.startsWith('mh:outbox:'))") == []
    assert not errors, errors

    seeker_ctx.close()
    listener_ctx.close()


def test_history_paging_escaping_and_composer_limit(live, chromium):
    base = live.url
    errors: list[str] = []
    expect.set_options(timeout=10_000)
    seeker_api, listener_api = Api(live, "xiaoyu"), Api(live, "linqing")
    r = httpx.post(
        f"{live.url}/api/conversations", json={"listener_id": listener_api.id}, headers=seeker_api.headers
    )
    conversation_id = r.json()["id"]
    for i in range(1, 71):
        who = seeker_api if i % 2 else listener_api
        body = "<b>不是粗体</b><img src=x onerror=alert(1)>" if i == 3 else f"第 {i} 条"
        r = httpx.post(
            f"{live.url}/api/conversations/{conversation_id}/messages",
            json={"client_id": f"seed-{i:04d}-abcdef", "body": body},
            headers=who.headers,
        )
        assert r.status_code == 201, r.text

    ctx = chromium.new_context(**PHONE)
    page = ctx.new_page()
    watch_errors(page, errors, "seeker")
    page.on("dialog", lambda d: errors.append(f"dialog opened: {d.message}"))
    login(page, base, "xiaoyu")
    page.goto(f"{base}/chat/{conversation_id}")
    messages = page.get_by_test_id("message")
    expect(messages).to_have_count(50)
    expect(messages.first).to_have_attribute("data-seq", "21")
    expect(messages.last).to_contain_text("第 70 条")

    page.get_by_test_id("load-older").click()
    expect(messages).to_have_count(70)
    expect(page.get_by_test_id("load-older")).to_be_hidden()
    seqs = messages.evaluate_all("els => els.map(e => Number(e.dataset.seq))")
    assert seqs == list(range(1, 71))
    # Shown as text, never as markup.
    third = page.locator('[data-testid="message"][data-seq="3"] .bubble')
    expect(third).to_have_text("<b>不是粗体</b><img src=x onerror=alert(1)>")
    assert page.locator(".bubble b, .bubble img").count() == 0

    # Own messages from history carry their receipt state: the listener wrote after seq 69, so she read it.
    status_69 = page.locator('[data-testid="message"][data-seq="69"]').get_by_test_id("message-status")
    expect(status_69).to_have_text("已读")

    # Composer: counter against 4000, over the limit cannot be sent.
    composer, send_button = page.get_by_test_id("composer"), page.get_by_test_id("send-button")
    expect(send_button).to_be_disabled()
    composer.fill("好" * 4001)
    expect(page.locator("#counter")).to_have_text("4001/4000")
    expect(send_button).to_be_disabled()
    composer.press("Enter")
    expect(page.get_by_test_id("chat-error")).to_contain_text("消息过长")
    composer.fill("第一行")
    composer.press("Shift+Enter")
    composer.press_sequentially("第二行")
    expect(composer).to_have_value("第一行\n第二行")
    composer.press("Enter")
    expect(messages).to_have_count(71)
    expect(messages.last.get_by_test_id("message-status")).to_have_text("已发送")
    expect(messages.last).to_have_attribute("data-seq", "71")
    assert not errors, errors
    ctx.close()


def test_seeker_buys_30_minutes_chats_with_a_breach_and_sees_the_deduction(sqlite_url, tmp_path, chromium):
    from datetime import UTC, datetime

    from miaohui.clock import FakeClock

    # Server time close to the browser's, but moved by hand for the breach.
    clock = FakeClock(datetime.now(UTC).replace(hour=6, minute=0))  # 14:00 in Shanghai: daytime price
    live = LiveServer(make_settings(sqlite_url, tmp_path, sla_tick_seconds=0.1), clock).start()
    try:
        base = live.url
        errors: list[str] = []
        expect.set_options(timeout=10_000)
        seeker = chromium.new_context(**PHONE).new_page()
        listener = chromium.new_context(**PHONE).new_page()
        watch_errors(seeker, errors, "seeker")
        watch_errors(listener, errors, "listener")
        login(listener, base, "linqing")
        expect(listener.get_by_test_id("live-orders")).to_be_attached()

        login(seeker, base, "xiaoyu")
        linqing = Api(live, "linqing")
        seeker.goto(f"{base}/listeners/{linqing.id}")
        expect(seeker.get_by_test_id("offerings")).to_contain_text("10 秒内回复")
        seeker.get_by_test_id("buy-30m").click()
        expect(seeker.get_by_test_id("quote-total")).to_have_text("¥30.00")
        expect(seeker.get_by_test_id("contract")).to_contain_text("不是赠与")
        seeker.screenshot(path=str(tmp_path / "order_new.png"), full_page=True)
        seeker.get_by_test_id("buy").click()
        expect(seeker).to_have_url(re.compile(r"/chat/"))
        chat_url = seeker.url
        expect(seeker.get_by_test_id("order-bar")).to_contain_text("30分钟 · 10秒回")

        # The listener's console shows the order; the seeker's message starts the reply clock.
        row = listener.get_by_test_id("live-order")
        expect(row).to_have_count(1)
        send(seeker, "今天被老板当众骂了，很难受")
        expect(listener.get_by_test_id("order-countdown")).to_contain_text("内回复")
        listener.screenshot(path=str(tmp_path / "console_orders.png"), full_page=True)

        clock.advance(15)  # 15 s > 10 s: this reply is late
        row.locator("a").click()
        expect(listener.get_by_test_id("reply-clock")).to_be_visible()
        send(listener, "我在，被当众批评真的很伤人")
        expect(seeker.get_by_test_id("message").last).to_contain_text("被当众批评")
        expect(listener.get_by_test_id("reply-clock")).to_have_text("已回复")
        seeker.screenshot(path=str(tmp_path / "chat_order.png"), full_page=True)

        seeker.goto(f"{base}/orders")
        seeker.locator(".order-item a").first.click()
        expect(seeker.get_by_test_id("breaches")).to_have_text("1")
        expect(seeker.get_by_test_id("compensation")).to_have_text("¥1.50")
        expect(seeker.get_by_test_id("receipt")).to_contain_text("非赠与")
        expect(seeker.get_by_test_id("latencies")).to_contain_text("15.0 秒")
        seeker.screenshot(path=str(tmp_path / "receipt.png"), full_page=True)

        seeker.goto(chat_url)
        # 续费: the price at this order's rate is shown and agreed to before anything is paid.
        asked: list[str] = []
        seeker.once("dialog", lambda d: (asked.append(d.message), d.accept()))
        bar = seeker.get_by_test_id("order-bar")
        bar.get_by_role("button", name="续费30分钟").click()
        expect(bar.get_by_role("button", name="已续费")).to_be_disabled()
        assert len(asked) == 1 and "¥30.00" in asked[0] and "按本单价格" in asked[0]
        assert errors == []
    finally:
        live.stop()


def test_a_flood_is_held_and_resent_in_order(sqlite_url, tmp_path, chromium):
    """Past the per-person send limit the server refuses with ``too_fast``: the
    page says so, holds its outbox, and resends in order once allowed; nothing
    is lost, duplicated or reordered."""
    live = LiveServer(make_settings(sqlite_url, tmp_path, chat_send_rate_per_s=2.0, chat_send_burst=2), Clock()).start()
    try:
        errors: list[str] = []
        expect.set_options(timeout=10_000)
        seeker_api, listener_api = Api(live, "xiaoyu"), Api(live, "linqing")
        r = httpx.post(f"{live.url}/api/conversations", json={"listener_id": listener_api.id},
                       headers=seeker_api.headers)
        conversation_id = r.json()["id"]
        ctx = chromium.new_context(**PHONE)
        page = ctx.new_page()
        watch_errors(page, errors, "seeker")
        login(page, live.url, "xiaoyu")
        page.goto(f"{live.url}/chat/{conversation_id}")
        expect(page.locator("html")).to_have_attribute("data-live", "open")
        texts = [f"一口气说第{i}句" for i in range(6)]
        for t in texts:
            send(page, t)
        expect(page.get_by_test_id("chat-error")).to_contain_text("发送太快")
        mine = page.locator('[data-testid="message"][data-mine="true"]')
        expect(mine).to_have_count(6)
        for i in range(6):
            expect(mine.nth(i).get_by_test_id("message-status")).to_have_text(re.compile("已发送|已送达"))
        assert stored_bodies(live, listener_api, conversation_id) == texts
        assert [m.get_attribute("data-seq") for m in mine.all()] == [str(i) for i in range(1, 7)]
        assert errors == []
        ctx.close()
    finally:
        live.stop()


@pytest.fixture
def ended_order(sqlite_url, tmp_path):
    """A server on a hand-moved clock at 14:00 in Shanghai (daytime price), and
    a 30-minute order from 小雨 to 林晴 (¥30 held) that has just ended after
    林晴 replied: ``(live, clock, order)``."""
    from datetime import UTC, datetime

    from miaohui.clock import FakeClock

    clock = FakeClock(datetime.now(UTC).replace(hour=6, minute=0))
    live = LiveServer(make_settings(sqlite_url, tmp_path, sla_tick_seconds=0.1), clock).start()
    try:
        xiaoyu, linqing = Api(live, "xiaoyu"), Api(live, "linqing")
        r = buy(live, xiaoyu, linqing)
        assert r.status_code == 201, r.text
        order = r.json()["order"]
        say(live, xiaoyu, order["conversation_id"], "谢谢你昨天陪我聊")
        say(live, linqing, order["conversation_id"], "不客气，我一直在")
        clock.advance(minutes=31)
        wait_for(live, xiaoyu, order["id"], lambda o: o["status"] == "ended")
        yield live, clock, order
    finally:
        live.stop()


def phone(chromium, base: str, username: str, errors: list[str]) -> Page:
    """A signed-in phone-sized page whose script errors land in ``errors``."""
    page = chromium.new_context(**PHONE).new_page()
    watch_errors(page, errors, username)
    login(page, base, username)
    return page


def test_after_the_service_a_review_settlement_withdrawal_and_payout(ended_order, tmp_path, chromium):
    """The money's way home, in the pages: the seeker sends a gift and reviews
    the ended order, the dispute window closes and the ledger settles, the
    listener replies to the review, asks for a withdrawal on the earnings page
    and an admin pays it out."""
    live, clock, order = ended_order
    base = live.url
    errors: list[str] = []
    expect.set_options(timeout=10_000)
    xiaoyu, linqing = Api(live, "xiaoyu"), Api(live, "linqing")

    seeker = phone(chromium, base, "xiaoyu", errors)
    seeker.goto(f"{base}/orders/{order['id']}")
    seeker.locator("#gift-form input[name=amount]").fill("5")
    seeker.locator("#gift-form").get_by_role("button", name="赠送").click()
    expect(seeker.locator("#order-note")).to_contain_text("谢谢你的心意")
    seeker.get_by_test_id("review-link").click()
    seeker.locator("label.star").nth(3).click()  # 4 stars
    # Lit from the left up to the one chosen: the first four, not the fifth.
    lit = seeker.locator("label.star").evaluate_all("ls => ls.map(l => getComputedStyle(l).color)")
    assert len(set(lit[:4])) == 1 and lit[4] != lit[0], lit
    assert seeker.locator("label.star input:checked").get_attribute("value") == "4"
    box = seeker.locator(".star-row").bounding_box()
    assert box["width"] <= seeker.viewport_size["width"]  # no overflow off the phone screen
    seeker.locator("label.chip-check").first.click()
    seeker.locator("textarea[name=text]").fill("很耐心，不评判")
    seeker.get_by_test_id("review-submit").click()
    expect(seeker).to_have_url(re.compile(rf"/listeners/{linqing.id}#reviews$"))  # to the review, published
    expect(seeker.locator("body")).to_contain_text("很耐心，不评判")
    seeker.goto(f"{base}/orders/{order['id']}/review")
    expect(seeker.get_by_test_id("review-done")).to_contain_text("★★★★☆")

    clock.advance(hours=24, seconds=1)  # the dispute window closes: the ledger settles
    wait_for(live, xiaoyu, order["id"], lambda o: o["status"] == "settled")

    listener = phone(chromium, base, "linqing", errors)
    listener.goto(f"{base}/listeners/{linqing.id}")
    reply = listener.locator("form.reply-form")
    reply.locator("input[name=text]").fill("谢谢你愿意说出来")
    reply.get_by_role("button", name="回复").click()
    expect(listener.get_by_test_id("review-reply")).to_contain_text("谢谢你愿意说出来")
    listener.goto(f"{base}/console/earnings")
    # The ¥30 order and the ¥5 gift, both settled, less the platform's 30 % commission.
    expect(listener.get_by_test_id("earnings-available")).to_have_attribute("data-fen", "2450")
    form = listener.get_by_test_id("withdraw-form")
    form.locator("input[name=amount_yuan]").fill("20")
    form.get_by_role("button", name="申请提现").click()
    expect(listener.get_by_test_id("withdraw-done")).to_be_visible()
    expect(listener.get_by_test_id("withdrawals")).to_contain_text("¥20.00")
    pending = listener.locator("[data-testid=withdrawals] li").first.get_attribute("data-status")

    admin = phone(chromium, base, "admin", errors)
    admin.goto(f"{base}/admin/withdrawals")
    item = admin.get_by_test_id("withdrawal")
    expect(item).to_have_count(1)
    item.get_by_role("button", name="批准并打款").click()
    expect(admin.get_by_test_id("withdrawal")).to_have_count(0)
    expect(admin.get_by_test_id("books-ok")).to_have_text("借贷平衡，各账户与流水一致")

    listener.goto(f"{base}/console/earnings")
    expect(listener.locator("[data-testid=withdrawals] li").first).to_have_attribute("data-status", "paid")
    assert pending != "paid"
    listener.screenshot(path=str(tmp_path / "earnings_paid.png"), full_page=True)
    assert errors == []


def test_a_dispute_from_the_order_page_is_decided_by_a_supervisor_and_refunded(ended_order, chromium):
    """Within the dispute window the seeker disputes on the order page,
    settlement pauses, a supervisor decides a refund on the disputes page and
    the seeker's wallet shows it."""
    live, _clock, order = ended_order
    base = live.url
    errors: list[str] = []
    expect.set_options(timeout=10_000)
    xiaoyu = Api(live, "xiaoyu")

    seeker = phone(chromium, base, "xiaoyu", errors)
    seeker.goto(f"{base}/wallet")
    before = int(seeker.get_by_test_id("wallet-available").get_attribute("data-fen"))
    seeker.goto(f"{base}/orders/{order['id']}")
    seeker.locator("#dispute-form textarea[name=reason]").fill("倾听师只回了一句就再没出现")
    seeker.locator("#dispute-form").get_by_role("button", name="提交申诉").click()
    expect(seeker.locator("body")).to_contain_text("申诉处理中，暂停结算")

    sup = phone(chromium, base, "supervisor", errors)
    sup.goto(f"{base}/admin/disputes")
    card = sup.get_by_test_id("dispute")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("倾听师只回了一句就再没出现")
    card.locator("input[name=refund]").fill("30.00")
    card.locator("input[name=note]").fill("倾听师未履约，全额退款")
    card.get_by_role("button", name="裁决").click()
    expect(sup.get_by_test_id("dispute")).to_have_count(0)

    o = httpx.get(f"{base}/api/orders/{order['id']}", headers=xiaoyu.headers).json()
    assert o["status"] in ("settled", "refunded"), o
    seeker.goto(f"{base}/wallet")  # the ¥30 held in escrow comes back whole
    expect(seeker.get_by_test_id("wallet-available")).to_have_attribute("data-fen", str(before + 3000))
    assert errors == []


def test_an_admin_suspends_and_reinstates_a_listener_in_the_pages(live, chromium):
    """Suspension takes a listener out of the directory at once and tells them
    why on their 认证 page; reinstating lists them again."""
    base = live.url
    errors: list[str] = []
    expect.set_options(timeout=10_000)
    zhouyan = Api(live, "zhouyan")
    r = httpx.post(f"{base}/api/conversations", json={"listener_id": zhouyan.id}, headers=Api(live, "ahe").headers)
    conv = r.json()["id"]
    listener = phone(chromium, base, "zhouyan", errors)
    listener.goto(f"{base}/chat/{conv}")
    expect(listener.locator("html")).to_have_attribute("data-live", "open")
    expect(listener.get_by_test_id("send-refusal")).to_be_hidden()

    admin = phone(chromium, base, "admin", errors)
    admin.goto(f"{base}/admin/listeners")
    card = admin.locator(f"[data-testid=listed-listener][data-listener-id='{zhouyan.id}']")
    card.locator("summary").click()
    card.locator("input[name=reason]").fill("多次被投诉回复敷衍，暂停待核查")
    card.get_by_test_id("suspend-button").click()
    expect(card.locator(".result")).to_have_text("已暂停")

    seeker = phone(chromium, base, "ahe", errors)
    seeker.goto(f"{base}/listeners")
    expect(seeker.locator(f"a[href='/listeners/{zhouyan.id}']")).to_have_count(0)
    # The chat already open: the next send is refused, the page says why and stops offering to send.
    send_box = listener.get_by_test_id("composer")
    send_box.fill("还在吗")
    send_box.press("Enter")
    expect(listener.get_by_test_id("send-refusal")).to_contain_text("暂停")
    expect(send_box).to_be_disabled()
    expect(listener.get_by_test_id("send-button")).to_be_disabled()
    listener.reload()  # and so does the page, from the start
    expect(listener.get_by_test_id("send-refusal")).to_contain_text("暂停")
    expect(listener.get_by_test_id("composer")).to_be_disabled()
    listener.goto(f"{base}/verification")
    expect(listener.get_by_test_id("suspended-notice")).to_contain_text("多次被投诉回复敷衍")

    admin.goto(f"{base}/admin/listeners")
    back = admin.locator(f"[data-testid=suspended-listener][data-listener-id='{zhouyan.id}']")
    back.get_by_role("button", name="恢复上架").click()
    expect(back.locator(".result")).to_have_text("已恢复上架")
    seeker.goto(f"{base}/listeners")
    expect(seeker.locator(f"a[href='/listeners/{zhouyan.id}']").first).to_be_visible()
    listener.goto(f"{base}/chat/{conv}")
    expect(listener.get_by_test_id("send-refusal")).to_be_hidden()
    send(listener, "我回来了")
    assert errors == []


def test_offerings_answer_beside_the_button_that_saved(live, chromium, tmp_path):
    """服务与价格: each form says 已保存 (or why not) next to its own button —
    on a phone the page's foot is screens away — and the change is stored."""
    base = live.url
    errors: list[str] = []
    expect.set_options(timeout=10_000)
    listener = phone(chromium, base, "linqing", errors)
    listener.goto(f"{base}/console/offerings")
    form = listener.get_by_test_id("offering-1h")
    form.locator("select[name=response_window_s]").select_option("30")
    form.get_by_role("button", name="保存").click()
    result = form.get_by_test_id("form-result")
    expect(result).to_have_text("已保存")
    expect(result).to_be_in_viewport()
    expect(listener.get_by_test_id("offering-30m").get_by_test_id("form-result")).to_have_text("")
    listener.screenshot(path=str(tmp_path / "offerings_saved.png"))
    offers = httpx.get(f"{base}/api/listeners/{Api(live, 'linqing').id}/offerings").json()["offerings"]
    assert any(o["kind"] == "1h" and o["response_window_s"] == 30 for o in offers), offers
    assert errors == []


def test_times_in_the_chat_and_the_list_are_the_platforms_wherever_the_device_is(sqlite_url, tmp_path, chromium):
    """A message stored at 17:30 UTC on 10 March is 01:30 on 11 March in
    Shanghai (the platform's zone, as every server-rendered page writes it)
    and 13:30 on 10 March in New York, where this browser thinks it is."""
    from datetime import UTC, datetime

    from miaohui.clock import FakeClock

    live = LiveServer(make_settings(sqlite_url, tmp_path), FakeClock(datetime(2026, 3, 10, 17, 30, tzinfo=UTC))).start()
    try:
        expect.set_options(timeout=10_000)
        seeker_api, listener_api = Api(live, "xiaoyu"), Api(live, "linqing")
        r = httpx.post(f"{live.url}/api/conversations", json={"listener_id": listener_api.id}, headers=seeker_api.headers)
        conversation_id = r.json()["id"]
        say(live, listener_api, conversation_id, "我在，慢慢说")
        ctx = chromium.new_context(**PHONE, timezone_id="America/New_York")
        page = ctx.new_page()
        errors: list[str] = []
        watch_errors(page, errors, "seeker")
        assert page.evaluate("new Date('2026-03-10T17:30:00Z').getHours()") == 13  # the device is elsewhere
        login(page, live.url, "xiaoyu")
        page.goto(f"{live.url}/conversations")
        expect(page.get_by_test_id("conversation-item").locator("time")).to_have_text(re.compile(r"^(2026/)?3/11$|3月11日"))
        page.goto(f"{live.url}/chat/{conversation_id}")
        expect(page.get_by_test_id("message").locator("time")).to_have_text(re.compile(r"3月11日 01:30$"))
        assert errors == []
        ctx.close()
    finally:
        live.stop()
