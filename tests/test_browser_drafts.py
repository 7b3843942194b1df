"""草稿 and leaving a shared device, in headless Chromium: what a seeker typed
and did not send survives leaving the chat (the list shows it as [草稿]) and
goes when it is sent; signing out removes drafts and unsent messages from the
browser, asking first when something is still unsent; closing the account
removes them too.  Device settings stay."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import Api
from tests.test_browser import PHONE, chromium, live, login, send, watch_errors  # noqa: F401
from tests.test_privacy import signup

pytestmark = pytest.mark.browser

PERSONAL = "Object.keys(localStorage).filter((k) => k.startsWith('mh:')).sort()"


def test_a_draft_survives_leaving_and_signing_out_clears_the_device(live, chromium):  # noqa: F811
    errors: list[str] = []
    expect.set_options(timeout=10_000)
    ctx = chromium.new_context(**PHONE)
    page = ctx.new_page()
    watch_errors(page, errors, "seeker")
    login(page, live.url, "xiaoyu")
    seeker, listener = Api(live, "xiaoyu"), Api(live, "linqing")
    conv = httpx.post(f"{live.url}/api/conversations", json={"listener_id": listener.id},
                      headers=seeker.headers).json()["id"]

    page.goto(f"{live.url}/chat/{conv}")
    send(page, "你好")
    page.get_by_test_id("composer").fill("其实我还没想好\n怎么开口")
    page.goto(f"{live.url}/conversations")
    item = page.locator(f'[data-testid="conversation-item"][data-conversation-id="{conv}"]')
    expect(item.get_by_test_id("draft-mark")).to_have_text("[草稿]")
    expect(item).to_contain_text("其实我还没想好 怎么开口")

    item.click()
    expect(page.get_by_test_id("composer")).to_have_value("其实我还没想好\n怎么开口")
    page.get_by_test_id("send-button").click()
    expect(page.get_by_test_id("composer")).to_have_value("")
    expect(page.locator('[data-testid="message"][data-mine="true"]').last.get_by_test_id("message-status")).to_have_text(
        re.compile("已发送|已送达"))
    page.goto(f"{live.url}/conversations")
    expect(item.get_by_test_id("draft-mark")).to_have_count(0)
    expect(item).to_contain_text("怎么开口")

    # A draft, and a message that could not go out (as chat.js leaves it offline): both wait on this device.
    page.evaluate("localStorage.setItem('mh-notify', JSON.stringify({sound: true}))")  # a device setting
    item.click()
    page.get_by_test_id("composer").fill("没写完的话")
    page.wait_for_timeout(500)  # the draft is saved 300 ms after typing stops
    page.goto(f"{live.url}/conversations")
    page.evaluate(
        "([k, v]) => localStorage.setItem(k, v)",
        [f"mh:outbox:{seeker.id}:{conv}", '[{"client_id": "c-offline", "body": "断网时发的"}]'],
    )
    keys = page.evaluate(PERSONAL)
    assert [k.split(":")[1] for k in keys] == ["draft", "outbox"], keys

    # 退出 asks first: one message has not gone out.  Staying keeps everything.
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.locator("form.logout button").click()
    assert asked == ["还有 1 条消息没有发出。退出登录会删除它们，确定退出吗？"]
    expect(page).to_have_url(f"{live.url}/conversations")
    assert page.evaluate(PERSONAL) == keys

    # Leaving anyway: the device keeps no trace of the conversation, only its settings.
    page.once("dialog", lambda d: d.accept())
    page.locator("form.logout button").click()
    expect(page).not_to_have_url(f"{live.url}/conversations")
    expect(page.locator("form.logout")).to_have_count(0)
    assert page.evaluate(PERSONAL) == []
    assert page.evaluate("localStorage.getItem('mh-notify')") == '{"sound":true}'
    assert errors == [], errors


def test_closing_the_account_clears_the_device(live, chromium):  # noqa: F811
    errors: list[str] = []
    expect.set_options(timeout=10_000)
    page = chromium.new_context(**PHONE).new_page()
    watch_errors(page, errors, "seeker")
    seeker = signup(live, "drafter")  # a new account: nothing (money, orders) holds its closing back
    listener = Api(live, "linqing")
    page.goto(f"{live.url}/login")
    page.get_by_label("用户名").fill("drafter")
    page.get_by_label("密码").fill("longenough")
    page.get_by_role("button", name="登录").click()
    expect(page.locator("form.logout")).to_be_visible()
    conv = httpx.post(f"{live.url}/api/conversations", json={"listener_id": listener.id},
                      headers=seeker.headers).json()["id"]
    page.goto(f"{live.url}/chat/{conv}")
    page.get_by_test_id("composer").fill("想说又不敢说")
    page.wait_for_timeout(500)
    assert len(page.evaluate(PERSONAL)) == 1

    page.goto(f"{live.url}/account")
    form = page.get_by_test_id("close-form")
    form.locator('input[name="password"]').fill("longenough")
    word = re.search(r"输入“(.+?)”确认", form.inner_text()).group(1)
    form.locator('input[name="confirm"]').fill(word)
    form.get_by_role("button", name="注销账号").click()
    expect(page.get_by_test_id("account-closed")).to_be_visible()
    page.wait_for_timeout(300)
    assert page.evaluate(PERSONAL) == []
    assert errors == [], errors
