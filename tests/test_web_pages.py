"""Server-rendered pages over a real server (SQLite and PostgreSQL): they
render in Chinese, forms are CSRF-protected, and pages authorize like the API."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from miaohui.demo import PASSWORD
from tests.conftest import Api

HOTLINE = "心理援助热线 12356 · 北京心理危机干预中心 010-82951332"


def text_of(html: str) -> str:
    """Visible-ish text: tags dropped, whitespace collapsed."""
    html = re.sub(r"<script\b.*?</script>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def browser(server) -> httpx.Client:
    return httpx.Client(base_url=server.url, follow_redirects=False, timeout=10)


def form_login(client: httpx.Client, username: str, password: str = PASSWORD, **extra) -> httpx.Response:
    r = client.get("/login")
    assert r.status_code == 200
    csrf = client.cookies.get("mh_csrf")
    assert csrf
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf, **extra}
    )


def signed_in(server, username: str) -> httpx.Client:
    c = browser(server)
    r = form_login(c, username)
    assert r.status_code == 303, r.text
    return c


@pytest.fixture
def anon(server):
    with browser(server) as c:
        yield c


# ------------------------------------------------------------------- render


def test_public_pages_render_in_chinese(server, anon):
    r = anon.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN" data-tz="Asia/Shanghai">' in r.text
    assert 'name="viewport"' in r.text
    text = text_of(r.text)
    assert "找倾听师" in text
    assert HOTLINE in text
    assert "Content-Security-Policy" in r.headers
    assert "mh_csrf" in r.headers.get("set-cookie", "")

    r = anon.get("/login")
    assert r.status_code == 200 and "登录秒回" in r.text
    assert re.search(r'name="csrf_token" value="[^"]+"', r.text)

    r = anon.get("/signup")
    assert r.status_code == 200
    text = text_of(r.text)
    for s in ("昵称", "倾诉者", "倾听师", "不需要真实姓名"):
        assert s in text
    assert HOTLINE in text

    r = anon.get("/static/css/app.css")
    assert r.status_code == 200
    r = anon.get("/static/js/chat.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]


def test_directory_cards_and_filters(server, anon):
    r = anon.get("/listeners")
    assert r.status_code == 200
    text = text_of(r.text)
    for name in ("林晴", "周言", "阿瑾", "小白"):
        assert name in text
    assert "新倾听师" not in text  # pending profiles are never listed
    assert "¥60/小时" in text and "¥80/小时" in text
    # Only verified qualifications show, as badges (issue 6): the demo's are reviewed by an admin.
    assert "资质（自述）" not in text and 'class="badge-verified">国家三级心理咨询师' in r.text
    assert "离线" in text
    assert "只看在线" in text
    assert HOTLINE in text

    r = anon.get("/listeners", params={"topic": "失恋"})
    text = text_of(r.text)
    assert "林晴" in text and "周言" not in text

    # Nobody is connected, so nobody is online.
    r = anon.get("/listeners", params={"online": "1"})
    assert r.status_code == 200
    assert 'data-testid="listener-card"' not in r.text
    assert "现在没有在线的倾听师" in text_of(r.text)


def test_directory_shows_online_listener(server, anon):
    listener = Api(server, "linqing")

    async def connected():
        async with listener.ws("/ws/inbox") as ws:
            await ws.recv()  # hello: now counted online
            return anon.get("/listeners", params={"online": "1"})

    r = asyncio.run(connected())
    text = text_of(r.text)
    assert "林晴" in text and "在线" in text and "周言" not in text


def test_profile_page(server, anon):
    listener = Api(server, "linqing")
    r = anon.get(f"/listeners/{listener.id}")
    assert r.status_code == 200
    text = text_of(r.text)
    assert "林晴" in text and "¥60/小时" in text and "关于我" in text
    assert "登录后开始倾诉" in text
    assert f"/login?next=/listeners/{listener.id}" in r.text

    seeker = signed_in(server, "xiaoyu")
    r = seeker.get(f"/listeners/{listener.id}")
    assert 'data-testid="start-chat"' in r.text and "开始倾诉" in r.text

    # Pending and unknown listeners are not reachable.
    pending = Api(server, "newlistener")
    assert anon.get(f"/listeners/{pending.id}").status_code == 404
    assert anon.get("/listeners/nope").status_code == 404


# ----------------------------------------------------------- login & csrf


def test_login_form_requires_csrf(server, anon):
    anon.get("/login")
    assert anon.cookies.get("mh_csrf")
    data = {"username": "xiaoyu", "password": PASSWORD}

    r = anon.post("/login", data=data)
    assert r.status_code == 403
    assert "页面已过期" in r.text
    assert "mh_session" not in r.headers.get("set-cookie", "")

    r = anon.post("/login", data={**data, "csrf_token": "forged-token"})
    assert r.status_code == 403
    assert "mh_session" not in r.headers.get("set-cookie", "")
    assert anon.cookies.get("mh_session") is None

    # A matching field without the cookie (cross-site form) fails too.
    with browser(server) as other:
        r = other.post("/login", data={**data, "csrf_token": anon.cookies.get("mh_csrf")})
        assert r.status_code == 403


def test_login_form_success_sets_session_and_redirects(server, anon):
    r = form_login(anon, "xiaoyu")
    assert r.status_code == 303
    assert r.headers["location"] == "/listeners"
    assert "mh_session" in r.headers.get("set-cookie", "")
    assert "httponly" in r.headers["set-cookie"].lower()
    me = anon.get("/api/auth/me")
    assert me.status_code == 200 and me.json()["username"] == "xiaoyu"
    # Already signed in: /login sends you on.
    assert anon.get("/login").status_code == 303

    with browser(server) as c:
        assert form_login(c, "linqing").headers["location"] == "/console"
    with browser(server) as c:
        assert form_login(c, "admin").headers["location"] == "/admin"
    with browser(server) as c:
        assert form_login(c, "ahe", next="/conversations").headers["location"] == "/conversations"
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        with browser(server) as c:
            assert form_login(c, "ahe", next=evil).headers["location"] == "/listeners"


def test_login_form_wrong_password(server, anon):
    r = form_login(anon, "xiaoyu", "wrong-password")
    assert r.status_code == 401
    assert "用户名或密码错误" in r.text
    assert 'value="xiaoyu"' in r.text  # username kept, password not
    assert "mh_session" not in r.headers.get("set-cookie", "")

    r = form_login(anon, "", "")
    assert r.status_code == 400 and "请输入用户名和密码" in r.text


def test_signup_form(server, anon):
    anon.get("/signup")
    csrf = anon.cookies.get("mh_csrf")
    base = {"username": "newseeker", "display_name": "<img src=x>", "password": "long-enough-pw"}

    r = anon.post("/signup", data={**base, "role": "seeker"})
    assert r.status_code == 403
    assert "mh_session" not in r.headers.get("set-cookie", "")

    r = anon.post("/signup", data={**base, "role": "seeker", "password": "short", "csrf_token": csrf})
    assert r.status_code == 400 and "密码至少 8 位" in r.text

    r = anon.post("/signup", data={**base, "role": "seeker", "csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/listeners"
    assert "mh_session" in r.headers.get("set-cookie", "")
    home = anon.get("/")
    assert "<img src=x" not in home.text  # user content is escaped
    assert "&lt;img src=x&gt;" in home.text

    with browser(server) as c:
        c.get("/signup")
        r = c.post("/signup", data={**base, "role": "seeker", "csrf_token": c.cookies.get("mh_csrf")})
        assert r.status_code == 409 and "该用户名已被使用" in r.text

    with browser(server) as c:
        c.get("/signup?role=listener")
        data = {
            "username": "newlistener2",
            "display_name": "晚风",
            "password": "long-enough-pw",
            "role": "listener",
        }
        r = c.post("/signup", data={**data, "csrf_token": c.cookies.get("mh_csrf")})
        assert r.status_code == 303 and r.headers["location"] == "/console"
        console = c.get("/console")
        assert console.status_code == 200
        assert "资料审核中" in text_of(console.text)


def test_logout_requires_csrf(server):
    c = signed_in(server, "xiaoyu")
    r = c.post("/logout", data={})
    assert r.status_code == 403
    assert c.get("/api/auth/me").status_code == 200
    r = c.post("/logout", data={"csrf_token": c.cookies.get("mh_csrf")})
    assert r.status_code == 303 and r.headers["location"] == "/"
    c.cookies.delete("mh_session")  # what the browser does with the expired cookie
    assert c.get("/api/auth/me").status_code == 401


# ------------------------------------------------------------ authorization


def test_chat_page_only_for_participants(server, anon, conversation):
    r = anon.get(f"/chat/{conversation}")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")

    owner = signed_in(server, "xiaoyu")
    r = owner.get(f"/chat/{conversation}")
    assert r.status_code == 200
    assert "林晴" in r.text
    assert 'data-testid="composer"' in r.text and 'data-testid="reconnect-banner"' in r.text
    assert r.headers.get("cache-control") == "no-store"

    listener = signed_in(server, "linqing")
    assert listener.get(f"/chat/{conversation}").status_code == 200

    other = signed_in(server, "ahe")
    r = other.get(f"/chat/{conversation}")
    assert r.status_code == 403
    assert "无权访问" in r.text
    assert "林晴" not in r.text and "小雨" not in r.text  # nothing about the conversation leaks
    assert conversation not in r.text
    # A conversation id that does not exist looks exactly the same.
    missing = other.get("/chat/0123456789abcdef0123456789abcdef")
    assert missing.status_code == 403


def test_chat_page_escapes_messages(server, seeker, conversation):
    body = "</script><script>alert(1)</script>"
    r = httpx.post(
        f"{server.url}/api/conversations/{conversation}/messages",
        json={"client_id": "xss-test-0001", "body": body},
        headers=seeker.headers,
    )
    assert r.status_code == 201, r.text
    page = signed_in(server, "xiaoyu").get(f"/chat/{conversation}")
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text
    assert "</script><script>" not in page.text


def test_admin_page_roles(server, anon):
    r = anon.get("/admin")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fadmin"

    seeker = signed_in(server, "xiaoyu")
    r = seeker.get("/admin")
    assert r.status_code in (403, 303)
    assert "新倾听师" not in r.text

    listener = signed_in(server, "linqing")
    assert listener.get("/admin").status_code == 403

    admin = signed_in(server, "admin")
    r = admin.get("/admin")
    assert r.status_code == 200
    text = text_of(r.text)
    assert "待审核的倾听师" in text and "新倾听师" in text and "批准" in text


def test_console_pages_roles(server, anon):
    assert anon.get("/console").status_code == 303

    seeker = signed_in(server, "xiaoyu")
    assert seeker.get("/console").status_code == 403
    assert seeker.get("/console/profile").status_code == 403
    r = seeker.get("/conversations")
    assert r.status_code == 200 and "我的会话" in r.text

    listener = signed_in(server, "linqing")
    r = listener.get("/console")
    assert r.status_code == 200
    text = text_of(r.text)
    assert "工作台" in text and "接单中" in text and "审核中" not in text
    r = listener.get("/console/profile")
    assert r.status_code == 200
    assert "失恋、分手后的夜晚" in r.text and 'value="60"' in r.text
    assert "夜间（23:00–07:00）按日间价的 300% 计" in text_of(r.text)
    r = listener.get("/console/offerings")
    assert r.status_code == 200
    # The night price shown is what a quote charges for a night hour: +200 % by default.
    assert "日间 ¥60/小时 · 夜间（23:00–07:00）¥180/小时" in text_of(r.text)
    # Each package shows what it sells for now (the clock reads 20:00 in Shanghai: 包夜 is 8 night hours).
    assert re.search(r'data-testid="price-30m">现在售出：¥30\.00<', r.text)
    assert re.search(r'data-testid="price-night">现在售出：¥[0-9.]+（含夜间 8 小时）', r.text)
    assert listener.get("/conversations").status_code == 303

    # A listener not yet listed (审核中) is not told they are taking orders: nobody can find them yet.
    pending = signed_in(server, "newlistener")
    text = text_of(pending.get("/console").text)
    assert "审核中" in text and "未上架" in text and "接单中" not in text
    assert ' id="accepting-toggle"' not in pending.get("/console").text  # no switch to flip


def test_purchase_page_leads_to_the_top_up_when_the_wallet_is_short(server):
    """A pay button that could only be refused is not offered: the page says how
    much is missing and links to the wallet instead."""
    seeker = signed_in(server, "xiaoyu")
    linqing = Api(server, "linqing").id
    wallet = seeker.get("/api/wallet").json()["available_fen"]
    r = seeker.get(f"/orders/new?listener={linqing}&kind=month")
    assert r.status_code == 200
    total = int(re.search(r'data-testid="quote-total">¥([0-9.]+)<', r.text).group(1).replace(".", ""))
    assert total > wallet
    assert 'id="buy"' not in r.text and 'data-testid="topup-first"' in r.text
    missing = total - wallet
    assert f"还差 <strong>¥{missing // 100}.{missing % 100:02d}</strong>" in r.text
    r = seeker.get(f"/orders/new?listener={linqing}&kind=30m")
    assert 'id="buy"' in r.text and "还差" not in r.text


# ------------------------------------------------------------ error pages

PAGE = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_browsers_get_error_pages_in_chinese_and_the_api_gets_json(server, anon):
    r = anon.get("/no-such-page", headers=PAGE)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN" data-tz="Asia/Shanghai">' in r.text and "页面不存在" in r.text and HOTLINE in text_of(r.text)
    assert "Content-Security-Policy" in r.headers

    r = anon.get("/no-such-page")  # no Accept: text/html, so not a page
    assert r.status_code == 404 and r.json()["error"]["code"] == "http_404"
    r = anon.get("/api/no-such-thing", headers=PAGE)
    assert r.status_code == 404 and r.json()["error"]["message"] == "页面不存在"

    seeker = signed_in(server, "xiaoyu")
    r = seeker.get("/orders/new", headers=PAGE)  # a link without its listener
    assert r.status_code == 422 and "链接有误" in r.text and '<html lang="zh-CN" data-tz="Asia/Shanghai">' in r.text
    assert "退出" in text_of(r.text) and "注册" not in text_of(r.text)  # her own navigation, signed in
    r = seeker.get("/orders/new?listener=" + "x" * 40, headers=PAGE)
    assert r.status_code == 422 and "链接有误" in r.text
    r = seeker.get("/api/orders/quote")
    assert r.status_code in (404, 405, 422) and r.json()["error"]["message"]


def test_an_exhausted_database_pool_is_a_503_to_retry_not_a_crash(server, anon):
    """Every connection busy for the pool's whole timeout (a burst of requests on
    PostgreSQL): 503 with Retry-After, in Chinese and English; nothing crashed."""
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    async def starved():
        raise PoolTimeout("QueuePool limit of size 10 overflow 20 reached")

    server.app.add_api_route("/api/starved-for-test", starved)
    r = anon.get("/api/starved-for-test")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"] == {"code": "busy", "message": "现在请求太多，请稍后重试", "message_en": "server busy, please retry"}
    assert anon.get("/healthz").status_code == 200


def test_a_crash_is_a_500_in_chinese_and_the_server_goes_on(server, anon):
    async def crash():
        raise RuntimeError("a bug")

    server.app.add_api_route("/crash-for-test", crash)
    server.app.add_api_route("/api/crash-for-test", crash)
    r = anon.get("/crash-for-test", headers=PAGE)
    assert r.status_code == 500 and "出了点问题" in r.text and '<html lang="zh-CN" data-tz="Asia/Shanghai">' in r.text
    assert "a bug" not in r.text and "Traceback" not in r.text
    r = anon.get("/api/crash-for-test")
    assert r.status_code == 500 and r.json()["error"] == {
        "code": "internal", "message": "服务器出错了，请稍后再试", "message_en": "internal error"
    }
    assert anon.get("/healthz").status_code == 200


def current_nav(html: str) -> list[str]:
    nav = re.search(r'<nav class="nav".*?</nav>', html, flags=re.S).group(0)
    return re.findall(r'<a href="[^"]*"[^>]*aria-current="page"[^>]*>([^<]+)</a>', nav)


def test_the_navigation_lights_the_section_a_page_belongs_to(server, seeker, listener, anon):
    conv = httpx.post(f"{server.url}/api/conversations", json={"listener_id": listener.id},
                      headers=seeker.headers).json()["id"]
    cases = {
        None: {"/listeners": "找倾听师", f"/listeners/{listener.id}": "找倾听师", "/login": "登录", "/": None},
        "xiaoyu": {"/conversations": "我的会话", f"/chat/{conv}": "我的会话",
                   "/companion/memory": "我的会话", "/match": "找倾听师", "/orders": "订单", "/wallet": "钱包",
                   "/listeners": "找倾听师", "/": None},
        "linqing": {"/console": "工作台", f"/chat/{conv}": "工作台", "/console/profile": "资料",
                    "/console/offerings": "资料", "/verification/training": "认证", "/console/earnings": "收入",
                    "/orders": "订单"},
        "admin": {"/admin": "审核", "/admin/review": "审核", "/admin/listeners": "审核", "/admin/withdrawals": "提现",
                  "/admin/disputes": "申诉", "/supervision": "督导台"},
        "supervisor": {"/supervision": "督导台", "/admin/disputes": "申诉", "/listeners": "倾听师"},
    }
    for who, pages in cases.items():
        client = anon if who is None else signed_in(server, who)
        for path, section in pages.items():
            r = client.get(path)
            assert r.status_code == 200, (who, path, r.status_code)
            assert current_nav(r.text) == ([section] if section else []), (who, path)
