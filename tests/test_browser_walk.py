"""Every page in headless Chromium, as every role: the scripts load and run
without an error, and nothing they call answers 5xx.

tests/test_web_crawl.py walks the server-rendered HTML; this walk runs the
ES modules too, since a page whose script throws is as broken as one that
does not render, and only a browser finds out."""

from __future__ import annotations

import re
from collections import deque
from urllib.parse import urlsplit

import pytest

from tests.conftest import LiveServer
from tests.test_browser import PHONE, chromium, live, login, watch_errors  # noqa: F401 (fixtures)
from tests.test_web_crawl import NOT_PAGES, lived_in, page_routes  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser
ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def server(live: LiveServer) -> LiveServer:  # noqa: F811 (what lived_in seeds)
    return live


@pytest.mark.parametrize("who", [None, "xiaoyu", "linqing", "newlistener", "supervisor", "admin"])
def test_every_page_runs_its_scripts_without_error(chromium, live, lived_in, who):  # noqa: F811
    context = chromium.new_context(**PHONE)
    page = context.new_page()
    errors: list[str] = []
    watch_errors(page, errors, who or "visitor")
    page.on(
        "response",
        lambda r: r.status >= 500 and errors.append(f"{who}: {r.status} from {r.url}"),
    )
    if who is not None:
        login(page, live.url, who)
    # Every page route, then the links the pages show (a profile, an order, its
    # report…): one page of each shape, since pages of one shape run one script.
    queue, shapes, seen = deque([*page_routes(live.app), *lived_in]), set(), []
    while queue:
        path = queue.popleft()
        if (shape := ID.sub("{id}", path)) in shapes:
            continue
        shapes.add(shape)
        response = page.goto(live.url + path)
        if response is None or not response.headers.get("content-type", "").startswith("text/html"):
            continue
        page.wait_for_load_state("networkidle")
        seen.append(path)
        for href in page.eval_on_selector_all("a[href^='/']", "els => els.map(e => e.getAttribute('href'))"):
            link = urlsplit(href).path
            if not link.startswith(NOT_PAGES) and ID.sub("{id}", link) not in shapes:
                queue.append(link)
    context.close()
    assert not errors, errors
    assert len(seen) >= 20, seen
    if who == "xiaoyu":  # pages only links lead to were reached
        assert {"/listeners/{id}", "/orders/{id}", "/orders/{id}/report"} <= {ID.sub("{id}", p) for p in seen}, seen
