"""关闭页面后也提醒 in headless Chromium.

A listener turns it on in the console's 新消息提醒 panel, closes the page, and
a seeker writes: the server sends the notice through a push service speaking
RFC 8030 over HTTP (tests/fake_push_service.py), the test — as the browser's
push client — decrypts it with the subscription's keys and hands it to the
page's real service worker (DevTools' ``ServiceWorker.deliverPushMessage``,
what Chrome's push client does), which shows the notification.

Headless Chromium has no push client of its own (no connection to Google's
service), so an init script stands in for ``PushManager`` with the test's
keys; the other test lets the real one refuse, as it does on a browser that
cannot reach its vendor's push service, and checks that the page says so."""

from __future__ import annotations

import json

import httpx
import pytest
from playwright.sync_api import expect

from miaohui.clock import Clock
from miaohui.push import webpush
from tests.conftest import Api, LiveServer, free_port, make_settings
from tests.fake_push_service import Device, FakePushService
from tests.test_browser import PHONE, chromium, login, watch_errors  # noqa: F401
from tests.test_browser_notify import CLEAR, TRACE, listed, turn_on, wait_shown
from tests.test_orders import say

pytestmark = pytest.mark.browser

PUSH_PORT = free_port()

# The browser's push client, with the test's subscription: subscribe() records
# the application-server key it was given; the subscription survives reloads.
PUSH_CLIENT = """
(() => {
  const SUB = %s;
  const held = () => localStorage.getItem("test-push") === "1";
  const b64 = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
  const bytes = (text) => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)).buffer;
  const sub = () => ({ endpoint: SUB.endpoint, toJSON: () => SUB,
                       options: { userVisibleOnly: true, applicationServerKey: bytes(localStorage.getItem("test-push-key")) },
                       unsubscribe: async () => { localStorage.removeItem("test-push"); return true; } });
  PushManager.prototype.subscribe = async function (options) {
    localStorage.setItem("test-push-key", b64(new Uint8Array(options.applicationServerKey)));
    localStorage.setItem("test-push", "1");
    return sub();
  };
  PushManager.prototype.getSubscription = async function () { return held() ? sub() : null; };
})();
"""


@pytest.fixture
def push_live(sqlite_url, tmp_path):
    service = FakePushService(PUSH_PORT).start()
    settings = make_settings(sqlite_url, tmp_path, push_extra_origins=[service.origin])
    server = LiveServer(settings, Clock()).start()
    service.app_key = webpush.unb64u(httpx.get(f"{server.url}/api/push/key").json()["public_key"])
    yield server, service
    server.stop()
    service.stop()


def registration_id(cdp, page) -> str:
    found: list[dict] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: found.extend(e["registrations"]))
    cdp.send("ServiceWorker.enable")
    for _ in range(50):
        if found:
            break
        page.wait_for_timeout(100)
    (reg,) = [r for r in found if not r.get("isDeleted")]
    return reg["registrationId"]


def test_a_listener_turns_it_on_closes_the_page_and_is_still_told(push_live, chromium):  # noqa: F811
    server, service = push_live
    errors: list[str] = []
    expect.set_options(timeout=10_000)
    device = Device(service)
    ctx = chromium.new_context(**PHONE, permissions=["notifications"])
    ctx.add_init_script(PUSH_CLIENT % json.dumps(device.subscription()))
    ctx.add_init_script(TRACE)
    page = ctx.new_page()
    watch_errors(page, errors, "linqing")
    login(page, server.url, "linqing")
    expect(page.locator("html")).to_have_attribute("data-live", "open")
    turn_on(page, "：系统通知 + 提示音")
    push = page.get_by_test_id("notify-push")
    expect(push).to_have_text("开启")
    push.click()
    expect(page.get_by_test_id("notify-push-note")).to_contain_text("已开启")
    expect(page.get_by_test_id("notify-state")).to_have_text("：系统通知 + 关闭页面后 + 提示音")
    assert page.evaluate("localStorage.getItem('test-push-key')") == webpush.b64u(service.app_key)
    # The page again: the panel asks the browser and the server, and shows it on.
    page.reload()
    page.get_by_test_id("notify-settings").locator("summary").click()
    expect(page.get_by_test_id("notify-settings")).to_have_attribute("data-push", "on")
    page.screenshot(path=str(server.settings.data_dir / "push-panel.png"))

    # The listener closes the console (no page of ours is open) and a seeker writes.
    page.evaluate(CLEAR)
    page.goto("about:blank")
    seeker = Api(server, "xiaoyu")
    listener_id = Api(server, "linqing").id
    r = httpx.post(f"{server.url}/api/conversations", json={"listener_id": listener_id}, headers=seeker.headers)
    conv = r.json()["id"]
    say(server, seeker, conv, "今晚真的撑不住了，想找人说说话")
    (notice,) = service.wait_for(device)
    assert notice["body"] == "有人找你倾诉，请尽快回复" and "撑不住" not in json.dumps(notice)

    # Chrome's push client hands the decrypted message to the service worker.
    cdp = ctx.new_cdp_session(page)
    worker = registration_id(cdp, page)
    cdp.send("ServiceWorker.deliverPushMessage", {"origin": server.url, "registrationId": worker, "data": json.dumps(notice)})
    page.goto(f"{server.url}/static/favicon.svg")  # a page of ours, to read the notifications with
    n = wait_shown(page, lambda n: n["tag"] == f"mh-conv-{conv}", read=listed)
    assert n == {"title": "秒回", "body": "有人找你倾诉，请尽快回复", "tag": f"mh-conv-{conv}", "url": f"/chat/{conv}"}

    # Two more pushes, each with no page of ours in front (the worker shows nothing over a focused
    # one), read once the worker is done with them (see test_browser_notify.TRACE).
    tag = f"mh-conv-{conv}"
    stamps = """async (tag) => (await (await navigator.serviceWorker.getRegistration("/")).getNotifications({ tag }))
        .map((n) => n.timestamp)"""

    def push_unseen(data: dict) -> None:
        page.goto("about:blank")
        cdp.send("ServiceWorker.deliverPushMessage", {"origin": server.url, "registrationId": worker, "data": json.dumps(data)})
        page.wait_for_timeout(700)
        page.goto(f"{server.url}/static/favicon.svg")

    # The same notice again within the minute (the page, or this worker, told them already): not shown again.
    first = page.evaluate(stamps, tag)
    assert len(first) == 1
    push_unseen(notice)
    assert page.evaluate(stamps, tag) == first
    # Another notice under that tag (the reply clock's warning) is shown: it takes the first one's place.
    warning = {**notice, "title": "秒回 · 该回复了", "body": "还有 3 秒就超出回复时限"}
    push_unseen(warning)
    assert [x for x in listed(page) if x["tag"] == tag] == [
        {"title": "秒回 · 该回复了", "body": "还有 3 秒就超出回复时限", "tag": tag, "url": f"/chat/{conv}"}]

    # Turning it off unsubscribes the browser and forgets the device.
    page.goto(f"{server.url}/console")
    page.get_by_test_id("notify-settings").locator("summary").click()
    expect(page.get_by_test_id("notify-settings")).to_have_attribute("data-push", "on")
    page.get_by_test_id("notify-push").click()
    expect(page.get_by_test_id("notify-settings")).to_have_attribute("data-push", "off")
    assert httpx.get(f"{server.url}/api/push/devices", headers=Api(server, "linqing").headers).json() == []
    assert errors == []


def test_a_browser_that_cannot_reach_its_push_service_is_told_so(push_live, chromium):  # noqa: F811
    server, _ = push_live
    errors: list[str] = []
    expect.set_options(timeout=10_000)
    ctx = chromium.new_context(**PHONE, permissions=["notifications"])
    ctx.add_init_script(TRACE)
    page = ctx.new_page()
    watch_errors(page, errors, "linqing")
    login(page, server.url, "linqing")
    expect(page.locator("html")).to_have_attribute("data-live", "open")
    turn_on(page, "：系统通知 + 提示音")
    page.get_by_test_id("notify-push").click()  # headless Chromium's own push client: no service to reach
    expect(page.get_by_test_id("notify-push-note")).to_contain_text("收不到推送")
    expect(page.get_by_test_id("notify-push")).to_have_text("开启")
    expect(page.get_by_test_id("notify-state")).to_have_text("：系统通知 + 提示音")
    assert httpx.get(f"{server.url}/api/push/devices", headers=Api(server, "linqing").headers).json() == []
    # Turning system notifications off hides the row: nothing when closed without them.
    page.get_by_test_id("notify-system").click()
    expect(page.locator("#notify-push-row")).to_be_hidden()
    # Chromium says why on the console itself (a Playwright context is incognito).
    assert [e for e in errors if "Push API in incognito" not in e] == []


def test_a_lost_phone_is_removed_from_the_account_page(push_live, chromium):  # noqa: F811
    server, service = push_live
    errors: list[str] = []
    expect.set_options(timeout=10_000)
    lost = Device(service)
    phone = Api(server, "linqing")
    r = httpx.put(f"{server.url}/api/push/subscription", json=lost.subscription(), headers=phone.headers)
    assert r.status_code == 200, r.text
    page = chromium.new_context(**PHONE).new_page()
    watch_errors(page, errors, "linqing")
    login(page, server.url, "linqing")
    page.goto(f"{server.url}/account")
    row = page.get_by_test_id("push-device")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("127.0.0.1")
    expect(row).not_to_contain_text("这台设备")  # subscribed through the phone's sign-in, not this one
    page.screenshot(path=str(server.settings.data_dir / "account-devices.png"), full_page=True)
    row.get_by_role("button", name="移除").click()
    expect(page.get_by_test_id("push-devices")).to_contain_text("还没有")
    assert httpx.get(f"{server.url}/api/push/devices", headers=phone.headers).json() == []
    assert errors == []
