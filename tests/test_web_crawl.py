"""Every page, as every role, over a real server (SQLite and PostgreSQL).

The other page tests check what particular pages say.  This one walks the
whole site the way people do: it opens every page route that takes no
parameter, follows every same-site link it finds, and does that signed out
and as each demo role, with a conversation, an order and a crisis case in
the database so that the pages behind ids are reached too.  No page may
answer 5xx, and every HTML page is a Chinese page.  A template that fails to
compile (an unknown filter, say) only fails when it is first rendered, so
only a walk like this finds it.
"""

from __future__ import annotations

import re
import time
from collections import Counter, deque
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.conftest import Api, LiveServer
from tests.test_orders import buy, say
from tests.test_web_pages import browser, signed_in

NOT_PAGES = ("/api", "/ws", "/static", "/docs", "/redoc", "/openapi")  # the API, sockets, files, API docs
PLAN = "今晚我就跳下去，再见了"  # the model rates it "plan" or above (tests/test_supervision.py)
HREF = re.compile(r"""\bhref=["']([^"'#]+)""")
PAGE_LIMIT = 250  # per role; the demo site has well under that many distinct pages
QUERY_VARIANTS = 4  # a page's query strings followed (the directory's filters combine without end)


@pytest.fixture
def lived_in(server):
    """A conversation with messages, a paid order in it and an open crisis
    case; returns the pages only scripts link to."""
    seeker, listener, sup = Api(server, "xiaoyu"), Api(server, "linqing"), Api(server, "supervisor")
    r = buy(server, seeker, listener)
    assert r.status_code == 201, r.text
    conv = r.json()["order"]["conversation_id"]
    for who, text in ((seeker, "你好，最近睡不着"), (listener, "我在，慢慢说"), (seeker, PLAN)):
        say(server, who, conv, text)
    deadline = time.time() + 10
    while not (queue := httpx.get(f"{server.url}/api/supervision/queue", headers=sup.headers).json()):
        assert time.time() < deadline, "the crisis message never made a case"
        time.sleep(0.05)
    # Pages the scripts link to (the queue is drawn client-side), so the walk starts there too.
    return [f"/chat/{conv}", f"/supervision/cases/{queue[0]['id']}"]


def page_routes(app) -> list[str]:
    """GET routes that are pages (not the API, sockets or files) and take no parameter."""
    out = []
    routes = list(app.routes)
    while routes:
        route = routes.pop()
        if (included := getattr(route, "original_router", None)) is not None:  # FastAPI's include_router
            routes.extend(included.routes)
            continue
        methods, path = getattr(route, "methods", None) or (), getattr(route, "path", "{")
        if "GET" not in methods or "{" in path:
            continue
        if path.startswith(NOT_PAGES):
            continue
        out.append(path)
    return sorted(out)


def walk(client: httpx.Client, server: LiveServer, seeds: list[str]) -> dict[str, int]:
    """Breadth-first over same-site links; returns each page's status."""
    seen: dict[str, int] = {}
    variants: Counter[str] = Counter()
    queue = deque(seeds)
    while queue and len(seen) < PAGE_LIMIT:
        path = queue.popleft()
        if path in seen:
            continue
        r = client.get(path)
        seen[path] = r.status_code
        if r.status_code >= 500 or not r.headers.get("content-type", "").startswith("text/html"):
            continue
        assert '<html lang="zh-CN" data-tz="Asia/Shanghai">' in r.text, path
        for href in HREF.findall(r.text):
            url = urlsplit(urljoin(server.url + path, href))
            if url.netloc != urlsplit(server.url).netloc:
                continue
            if url.path.startswith(NOT_PAGES) or url.path == "/logout":
                continue
            nxt = url.path + (f"?{url.query}" if url.query else "")
            if nxt in seen or nxt in queue or (url.query and variants[url.path] >= QUERY_VARIANTS):
                continue
            variants[url.path] += bool(url.query)
            queue.append(nxt)
    return seen


@pytest.mark.parametrize("who", [None, "xiaoyu", "linqing", "newlistener", "supervisor", "admin"])
def test_every_page_renders_for_every_role(server, lived_in, who):
    seeds = page_routes(server.app)
    assert {"/", "/listeners", "/console", "/console/offerings", "/supervision", "/admin"} <= set(seeds)
    client = browser(server) if who is None else signed_in(server, who)
    try:
        seen = walk(client, server, [*seeds, *lived_in])
    finally:
        client.close()
    broken = {p: s for p, s in seen.items() if s >= 500}
    assert not broken, broken
    assert len(seen) < PAGE_LIMIT, "the walk did not finish; raise PAGE_LIMIT"
    ok = {p for p, s in seen.items() if s == 200}
    # The walk got past the front door: each role reached the pages behind ids it may see.
    expected = {
        None: ["/listeners/"],
        "xiaoyu": ["/listeners/", "/chat/", "/orders/"],
        "linqing": ["/chat/", "/console/offerings", "/orders/"],
        "newlistener": ["/console"],
        "supervisor": ["/supervision/cases/"],
        "admin": ["/admin"],
    }[who]
    for prefix in expected:
        assert any(p.startswith(prefix) for p in ok), (prefix, sorted(ok))
