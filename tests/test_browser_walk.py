"""Every page in headless Chromium, as every role: the scripts load and run
without an error, and nothing they call answers 5xx.

tests/test_web_crawl.py walks the server-rendered HTML; this walk runs the
ES modules too, since a page whose script throws is as broken as one that
does not render, and only a browser finds out."""

from __future__ import annotations

import pytest

from tests.conftest import LiveServer
from tests.test_browser import PHONE, chromium, live, login, watch_errors  # noqa: F401 (fixtures)
from tests.test_web_crawl import lived_in, page_routes  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser


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
    seen = 0
    for path in [*page_routes(live.app), *lived_in]:
        response = page.goto(live.url + path)
        if response is None or not response.headers.get("content-type", "").startswith("text/html"):
            continue
        page.wait_for_load_state("networkidle")
        seen += 1
    context.close()
    assert not errors, errors
    assert seen >= 20, seen
