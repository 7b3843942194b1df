"""End to end in headless Chromium: a seeker opens the AI companion from the
home page, sees "AI" in the header and on every reply, watches a reply stream
in, runs a tool (情绪命名) to the end from the tool bar, checks what the
companion remembered, then hands off to a human listener with a summary they
reviewed and edited — and the listener, in their own browser, reads it.
Screenshots go to $MIAOHUI_SCREENSHOTS when set."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.test_browser import PHONE, chromium, live, login, send, watch_errors  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("MIAOHUI_SCREENSHOTS")


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)


def last_ai(page: Page):
    return page.locator('li.msg.from-ai[data-seq]').last


def test_ai_conversation_with_tool_and_handoff(live, chromium):  # noqa: F811 - fixtures
    base = live.url
    errors: list[str] = []
    expect.set_options(timeout=10_000)
    ctx = chromium.new_context(**PHONE)
    # Record every provisional (streaming) bubble and how much text it showed.
    ctx.add_init_script("""
      window.__streams = [];
      new MutationObserver((records) => {
        for (const r of records) for (const n of r.addedNodes)
          if (n.nodeType === 1 && n.dataset && n.dataset.testid === "ai-streaming") window.__streams.push(n);
      }).observe(document, { childList: true, subtree: true });
    """)
    page = ctx.new_page()
    watch_errors(page, errors, "seeker")
    login(page, base, "xiaoyu")

    page.goto(f"{base}/")
    shot(page, "companion-home")
    page.get_by_test_id("home-companion").click()
    expect(page).to_have_url(re.compile(r"/chat/[0-9a-f]{32}$"))
    expect(page.get_by_test_id("ai-header-badge")).to_have_text("AI")
    greeting = page.locator("li.msg.from-ai").first
    expect(greeting).to_contain_text("不是真人")
    expect(greeting.get_by_test_id("ai-badge")).to_have_text("AI")
    # The mark is legible: white on violet, as in the header (not the grey of sender labels).
    assert greeting.get_by_test_id("ai-badge").evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"

    # A reply streams in (provisional bubble), then becomes the stored message.
    send(page, "叫我小雨吧。最近工作压力好大，老板肯定觉得我很没用")
    expect(page.locator("li.msg.from-ai[data-seq]")).to_have_count(2)
    expect(page.get_by_test_id("ai-streaming")).to_have_count(0)  # the stored message replaced it
    streamed = page.evaluate("window.__streams.map((n) => n.textContent)")
    assert len(streamed) == 1 and "读心术" in streamed[0]  # it had streamed the reply in before it was stored
    expect(last_ai(page)).to_contain_text("读心术")
    shot(page, "companion-chat")

    # A tool from the tool bar, run to completion.
    page.get_by_test_id("ai-tools").get_by_role("button", name="情绪命名").click()
    expect(last_ai(page)).to_contain_text("起个名字")
    for answer, expect_text in (("胸口闷闷的，很委屈，也有点生气", "最贴近"), ("委屈", "几分"),
                                ("7", "需要什么"), ("被理解", "起了名字")):
        n = page.locator("li.msg.from-ai[data-seq]").count()
        send(page, answer)
        expect(page.locator("li.msg.from-ai[data-seq]")).to_have_count(n + 1)
        expect(last_ai(page)).to_contain_text(expect_text)
    expect(last_ai(page)).to_contain_text("「委屈」")
    for bubble in page.locator("li.msg.from-ai").all():  # AI on every message
        expect(bubble.locator(".ai-badge")).to_have_text("AI")
    shot(page, "companion-tool")

    # Memory: what it kept, visible and deletable.
    page.goto(f"{base}/companion/memory")
    expect(page.get_by_test_id("memory-item")).to_have_count(1)
    expect(page.get_by_test_id("memory-item").locator("input")).to_have_value("小雨")
    shot(page, "companion-memory")

    # Handoff: review and edit the summary, then send it to a listener.
    page.goto(f"{base}/companion/handoff")
    expect(page.get_by_test_id("handoff-match")).to_be_visible()  # 帮我找人 with the summary, when matching is served
    summary = page.get_by_test_id("handoff-summary")
    expect(summary).to_contain_text("委屈")
    summary.fill(summary.input_value().replace("（写下你最希望倾听师知道或做的事）", "先听我说，不急着给建议。"))
    shot(page, "companion-handoff")
    page.locator("li.handoff-person", has_text="林晴").get_by_test_id("handoff-to").click()
    expect(page).to_have_url(re.compile(r"/chat/[0-9a-f]{32}$"))
    mine = page.locator("li.msg.mine").last
    expect(mine).to_contain_text("我和 AI 陪伴聊过")
    expect(mine).to_contain_text("先听我说，不急着给建议。")
    expect(page.get_by_test_id("ai-header-badge")).to_have_count(0)  # a human conversation now
    human_url = page.url

    # The other way out: 帮我找人 (matching) with the reviewed summary as the request.
    page.goto(f"{base}/companion/handoff")
    page.get_by_test_id("handoff-match").get_by_role("button").click()
    expect(page).to_have_url(re.compile(r"/match"))
    expect(page.get_by_test_id("match-text")).to_have_value(re.compile("委屈"))
    expect(page.get_by_test_id("match-results")).to_be_visible()

    # The listener reads the summary in their own browser.
    lctx = chromium.new_context(**PHONE)
    lpage = lctx.new_page()
    watch_errors(lpage, errors, "listener")
    login(lpage, base, "linqing")
    lpage.goto(human_url)
    expect(lpage.locator("li.msg.theirs").last).to_contain_text("先听我说，不急着给建议。")
    shot(lpage, "companion-listener")
    ctx.close()
    lctx.close()
    assert not errors, errors


def test_crisis_in_the_ai_chat_shows_help_and_calls_a_human(live, chromium):  # noqa: F811 - fixtures
    base = live.url
    errors: list[str] = []
    expect.set_options(timeout=10_000)
    ctx = chromium.new_context(**PHONE)
    page = ctx.new_page()
    watch_errors(page, errors, "seeker")
    login(page, base, "ahe")
    page.goto(f"{base}/companion")
    expect(page.get_by_test_id("ai-header-badge")).to_be_visible()
    send(page, "我真的不想活了")
    expect(page.get_by_test_id("ai-card-crisis")).to_be_visible()
    expect(page.get_by_test_id("hotline-card")).to_be_visible()
    expect(last_ai(page)).to_contain_text("真人督导")
    shot(page, "companion-crisis")
    page.get_by_test_id("ask-human").click()
    expect(page.get_by_test_id("ai-card-human")).to_contain_text("已通知")
    ctx.close()
    assert not errors, errors
