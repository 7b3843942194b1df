"""End to end in headless Chromium, three browser contexts: a seeker sends a
plan-level message and, within one second, the listener's guidance panel, the
supervisor's queue alarm and the seeker's hotline card are on screen.  Then
the supervisor opens the case (audited transcript) and whispers to the
listener, who alone sees it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from miaohui.clock import Clock
from miaohui.safety import assess
from tests.conftest import Api, LiveServer, make_settings
from tests.test_browser import CHROMIUM_ARGS, PHONE, chromium, login, watch_errors  # noqa: F401
from tests.test_orders import buy, fund

pytestmark = pytest.mark.browser

PLAN = "今晚我就跳下去，再见了"


@pytest.fixture
def live(sqlite_url, tmp_path):
    server = LiveServer(make_settings(sqlite_url, tmp_path), Clock()).start()
    yield server
    server.stop()


def shots_dir(tmp_path: Path) -> Path:
    d = Path(os.environ.get("MIAOHUI_SCREENSHOTS", tmp_path))
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_plan_message_reaches_listener_supervisor_and_seeker_within_a_second(live, chromium, tmp_path):  # noqa: F811
    assert assess(PLAN).tier in ("plan", "imminent")  # the real model decides
    base = live.url
    shots = shots_dir(tmp_path)
    errors: list[str] = []
    expect.set_options(timeout=10_000)
    seeker_api, listener_api = Api(live, "xiaoyu"), Api(live, "linqing")
    fund(live, seeker_api, 500)
    r = buy(live, seeker_api, listener_api, "1h")  # a paid hour under way
    assert r.status_code == 201, r.text
    conv = r.json()["order"]["conversation_id"]

    pages = {}
    for who, username in (("seeker", "xiaoyu"), ("listener", "linqing"), ("supervisor", "supervisor")):
        page = chromium.new_context(**PHONE).new_page()
        watch_errors(page, errors, who)
        login(page, base, username)
        pages[who] = page
    seeker, listener, supervisor = pages["seeker"], pages["listener"], pages["supervisor"]

    expect(supervisor).to_have_url(f"{base}/supervision")
    expect(supervisor.get_by_test_id("case-queue")).to_be_attached()
    expect(supervisor.locator("#queue-empty")).to_be_visible()
    for page in (seeker, listener):
        page.goto(f"{base}/chat/{conv}")
    for page in (seeker, listener, supervisor):
        expect(page.locator("html")).to_have_attribute("data-live", "open")
    expect(listener.get_by_test_id("worry-button")).to_be_visible()
    expect(seeker.get_by_test_id("worry-button")).to_have_count(0)

    composer = seeker.get_by_test_id("composer")
    for i in range(8):  # a conversation under way: the list is full, the newest line at its foot
        composer.fill(f"这是我今天想说的第 {i + 1} 件小事")
        composer.press("Enter")
    expect(seeker.get_by_test_id("message")).to_have_count(8)
    composer.fill(PLAN)
    t0 = time.monotonic()
    composer.press("Enter")
    panel = listener.get_by_test_id("guidance-panel")
    alarm_item = supervisor.locator('[data-testid="case-item"][data-alarm="true"]')
    card = seeker.get_by_test_id("hotline-card")
    panel.wait_for(state="visible", timeout=1000)
    alarm_item.wait_for(state="visible", timeout=1000)
    supervisor.get_by_test_id("queue-alarm").wait_for(state="visible", timeout=1000)
    card.wait_for(state="visible", timeout=1000)
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0, f"took {elapsed:.3f} s"

    # What each of them sees.
    expect(panel).to_contain_text("直接、平静地问")
    expect(panel).to_contain_text("你现在身边能看到什么？摸到什么？")
    expect(panel).to_contain_text("督导已收到通知")
    expect(alarm_item).to_contain_text("小雨")
    expect(alarm_item).to_contain_text("守护中")
    assert supervisor.evaluate("document.documentElement.dataset.alarm") == "on"
    assert int(supervisor.evaluate("document.documentElement.dataset.alarmCount || '0'")) >= 1
    expect(card).to_contain_text("12356")
    expect(card).to_contain_text("010-82951332")
    expect(card).to_contain_text("400-161-9995")
    expect(card.locator('a[href="tel:12356"]')).to_have_count(1)
    # On a phone the whole card fits (every number tappable, none cut off by the
    # area's edge) and the seeker's own message is still in sight below it.
    seeker.wait_for_function("""() => {
        const area = document.querySelector('.safety-area').getBoundingClientRect();
        return [...document.querySelectorAll('[data-testid=hotline-card] a[href^="tel:"]')]
            .every(a => { const b = a.getBoundingClientRect(); return b.top >= area.top && b.bottom <= area.bottom + 1; });
    }""", timeout=2000)
    seeker.wait_for_function("""() => {
        const s = document.getElementById('messages').getBoundingClientRect();
        const ms = document.querySelectorAll('[data-testid=message]');
        const m = ms[ms.length - 1].getBoundingClientRect();
        return m.top >= s.top - 1 && m.bottom <= s.bottom + 1;
    }""", timeout=2000)
    # Risk guidance never reaches the seeker's page.
    expect(seeker.get_by_test_id("guidance-panel")).to_have_count(0)
    expect(listener.get_by_test_id("hotline-card")).to_have_count(0)
    expect(listener.get_by_test_id("worry-button")).to_have_text("督导跟进中")  # the case is open
    listener.screenshot(path=str(shots / "listener_guidance.png"), full_page=True)
    seeker.screenshot(path=str(shots / "seeker_hotline.png"), full_page=True)
    supervisor.screenshot(path=str(shots / "supervisor_queue_alarm.png"), full_page=True)

    # The supervisor opens the case: the transcript is there (and the read is audited), and whispers.
    case_id = alarm_item.get_attribute("data-case-id")
    alarm_item.click()
    expect(supervisor).to_have_url(f"{base}/supervision/cases/{case_id}")
    expect(supervisor.get_by_test_id("transcript")).to_contain_text(PLAN)
    expect(supervisor.get_by_test_id("access-log")).to_contain_text("督导·陈老师")
    supervisor.get_by_test_id("ack-button").click()
    expect(supervisor.get_by_test_id("case-status")).to_have_text("处理中")
    supervisor.get_by_test_id("whisper-body").fill("先问问她现在在哪里，身边有没有人。")
    supervisor.get_by_role("button", name="发送给倾听师").click()
    expect(listener.get_by_test_id("whisper")).to_contain_text("先问问她现在在哪里")
    # A reply while the supervisor watches arrives live on the case page.
    listener.get_by_test_id("composer").fill("我在这里陪着你。你现在在哪里？")
    listener.get_by_test_id("composer").press("Enter")
    expect(supervisor.get_by_test_id("transcript")).to_contain_text("我在这里陪着你")
    supervisor.screenshot(path=str(shots / "supervisor_case.png"), full_page=True)
    listener.screenshot(path=str(shots / "listener_whisper.png"), full_page=True)
    expect(seeker.get_by_test_id("whisper")).to_have_count(0)

    listener.reload()  # the button still knows, from the page's first render
    expect(listener.get_by_test_id("worry-button")).to_have_text("督导跟进中")

    # The listener's console shows the open case.
    listener.goto(f"{base}/console")
    expect(listener.get_by_test_id("console-case")).to_contain_text("小雨")
    listener.screenshot(path=str(shots / "listener_console.png"), full_page=True)

    # The supervisor joins: the chat shows the order, but only its parties may extend or end it,
    # and the way back leads to the supervision desk.
    supervisor.get_by_test_id("join-button").click()
    supervisor.locator("#open-chat").click()
    expect(supervisor).to_have_url(f"{base}/chat/{conv}")
    bar = supervisor.get_by_test_id("order-bar")
    expect(bar).to_contain_text("1小时")
    expect(bar.locator("button")).to_have_count(0)
    expect(supervisor.locator(".chat-back")).to_have_attribute("href", "/supervision")
    expect(seeker.get_by_test_id("order-bar").get_by_role("button", name="续费30分钟")).to_be_visible()
    # Opened with cards above the list, the page still starts at the newest line (the join notice).
    supervisor.wait_for_function("""() => {
        const s = document.getElementById('messages');
        return s.scrollHeight - s.scrollTop - s.clientHeight < 2;
    }""", timeout=2000)
    supervisor.screenshot(path=str(shots / "supervisor_chat.png"), full_page=True)
    assert not errors, errors

