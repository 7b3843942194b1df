"""心情 in headless Chromium: one tap at the start of a paid sitting in the
chat, one on the receipt after it, each saved at once and changeable, and
the listener's pages show neither."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import Api
from tests.test_browser import PHONE, chromium, live, login, send, watch_errors  # noqa: F401
from tests.test_orders import buy, fund, wait_for

pytestmark = pytest.mark.browser


def moods(server, seeker: Api, order_id: str) -> tuple:
    got = httpx.get(f"{server.url}/api/orders/{order_id}/mood", headers=seeker.headers).json()
    return got["before"], got["after"]


def test_before_in_the_chat_and_after_on_the_receipt(live, chromium, tmp_path):  # noqa: F811
    errors: list[str] = []
    expect.set_options(timeout=10_000)
    seeker, listener = Api(live, "xiaoyu"), Api(live, "linqing")
    fund(live, seeker, 500)
    order = buy(live, seeker, listener, "30m").json()["order"]
    page = chromium.new_context(**PHONE).new_page()
    watch_errors(page, errors, "seeker")
    login(page, live.url, "xiaoyu")
    page.goto(f"{live.url}/chat/{order['conversation_id']}")

    ask = page.get_by_test_id("mood-before")
    expect(ask).to_contain_text("开始之前，你现在的心情怎么样？")
    expect(ask.get_by_test_id("mood-note")).to_have_text("倾听师看不到你的回答。")
    page.screenshot(path=str(tmp_path / "mood_before.png"))
    ask.get_by_role("button", name="有点低落").click()
    expect(ask.get_by_role("button", name="有点低落")).to_have_attribute("aria-pressed", "true")
    expect(ask.get_by_test_id("mood-note")).to_contain_text("谢谢")
    assert moods(live, seeker, order["id"]) == (2, None)
    expect(ask).to_be_hidden(timeout=8000)  # it steps aside by itself

    # The listener comes and the seeker ends it; the receipt asks how it was.
    httpx.post(f"{live.url}/api/conversations/{order['conversation_id']}/messages",
               json={"client_id": "c-mood-1", "body": "我在"}, headers=listener.headers)
    send(page, "谢谢你，我好一点了")
    assert httpx.post(f"{live.url}/api/orders/{order['id']}/end", json={}, headers=seeker.headers).status_code == 200
    wait_for(live, seeker, order["id"], lambda o: o["status"] == "ended")
    page.goto(f"{live.url}/orders/{order['id']}")
    after = page.get_by_test_id("mood-after")
    expect(after).to_contain_text("聊完之后，你现在感觉怎么样？")
    expect(after.get_by_test_id("mood-note")).to_have_text("聊之前你选的是「有点低落」。倾听师看不到你的回答。")
    after.get_by_role("button", name="一般").click()
    expect(after.get_by_role("button", name="一般")).to_have_attribute("aria-pressed", "true")
    after.get_by_role("button", name="还可以").click()  # changed: the last answer counts
    expect(after.get_by_role("button", name="还可以")).to_have_attribute("aria-pressed", "true")
    expect(after.get_by_role("button", name="一般")).to_have_attribute("aria-pressed", "false")
    assert moods(live, seeker, order["id"]) == (2, 4)
    page.screenshot(path=str(tmp_path / "mood_after.png"), full_page=True)
    page.reload()
    expect(page.get_by_test_id("mood-after").get_by_role("button", name="还可以")).to_have_attribute(
        "aria-pressed", "true")

    theirs = chromium.new_context(**PHONE).new_page()
    watch_errors(theirs, errors, "listener")
    login(theirs, live.url, "linqing")
    theirs.goto(f"{live.url}/orders/{order['id']}")
    expect(theirs.get_by_test_id("receipt")).to_be_visible()
    expect(theirs.get_by_test_id("mood-after")).to_have_count(0)
    assert "有点低落" not in theirs.content() and "还可以" not in theirs.content()
    assert errors == [], errors
