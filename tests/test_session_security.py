"""Sessions under attack: the login limit holds when guesses arrive all at
once, and a session that ends (logout) takes its open sockets with it.

Real servers, real sockets, SQLite and PostgreSQL (the ``server`` fixture);
the Redis-backed limiter and broker against a real redis-server, with two
servers sharing only the database and Redis for the cross-process case.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

import httpx
import pytest
import websockets
from sqlalchemy import func, select

from miaohui.accounts import service as accounts
from miaohui.chat.models import Message
from miaohui.clock import FakeClock
from miaohui.core.ratelimit import LoginLimiter, RedisLoginLimiter
from miaohui.demo import PASSWORD
from tests.conftest import Api, LiveServer, _clone_pg, make_settings

WRONG = "not-the-password"


def cid() -> str:
    return uuid.uuid4().hex


def stored(server, conversation: str, client_id: str | None = None) -> int:
    q = select(func.count()).select_from(Message).where(Message.conversation_id == conversation)
    if client_id is not None:
        q = q.where(Message.client_id == client_id)
    return server.db(lambda db: db.scalar(q))


async def recv_type(ws, type_: str, timeout: float = 5.0) -> dict:
    async def go():
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == type_:
                return frame

    return await asyncio.wait_for(go(), timeout)


async def open_chat(api: Api, conversation: str):
    ws = await api.ws(f"/ws/chat/{conversation}?after_seq=0")
    await recv_type(ws, "synced")
    return ws


async def open_inbox(api: Api):
    ws = await api.ws("/ws/inbox")
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"
    return ws


async def close_code(ws, timeout: float = 5.0) -> tuple[int, list[dict]]:
    """Read until the server closes the socket: ``(close code, frames read)``;
    a socket still open after ``timeout`` fails the test."""
    frames: list[dict] = []

    async def go():
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                frames.append(json.loads(await ws.recv()))

    try:
        await asyncio.wait_for(go(), timeout)
    except TimeoutError:
        pytest.fail(f"socket still open {timeout} s after its session ended")
    return ws.close_code, frames


# ------------------------------------------------------------- login limit


class CountVerifies:
    """How many passwords argon2 actually checked (the server runs in this process)."""

    def __init__(self, monkeypatch) -> None:
        self.n = 0
        real = accounts._verify

        async def counted(hash_, password):
            self.n += 1
            await asyncio.sleep(0.02)  # a real argon2 check takes this long or more
            return await real(hash_, password)

        monkeypatch.setattr(accounts, "_verify", counted)


async def flood(url: str, username: str, n: int) -> list[int]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as c:
        rs = await asyncio.gather(
            *(c.post("/api/auth/login", json={"username": username, "password": WRONG}) for _ in range(n))
        )
    for r in rs:
        assert r.status_code != 500, r.text
        if r.status_code == 429:
            err = r.json()["error"]
            assert err["code"] == "too_many_attempts" and err["message"] and err["message_en"]
    return [r.status_code for r in rs]


def assert_limited(server, statuses: list[int], verifies: CountVerifies) -> None:
    limit = server.settings.login_max_failures
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) == limit, statuses
    assert verifies.n == limit  # the rest were refused before argon2 (and the database)
    # The right password, now: refused while the account (and the IP) is limited.
    r = httpx.post(server.url + "/api/auth/login", json={"username": "ahe", "password": PASSWORD})
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_attempts"
    assert verifies.n == limit


async def test_parallel_wrong_passwords_are_limited(server, clock, monkeypatch):
    verifies = CountVerifies(monkeypatch)
    statuses = await flood(server.url, "ahe", 50)
    assert_limited(server, statuses, verifies)
    clock.advance(server.settings.login_window_seconds + 1)
    r = httpx.post(server.url + "/api/auth/login", json={"username": "ahe", "password": PASSWORD})
    assert r.status_code == 200


async def test_right_password_releases_its_reservation(server):
    """A success does not count against the IP, and clears the account's count."""
    url = server.url + "/api/auth/login"
    limit = server.settings.login_max_failures
    for _ in range(limit - 1):
        assert httpx.post(url, json={"username": "ahe", "password": WRONG}).status_code == 401
    for _ in range(3):
        assert httpx.post(url, json={"username": "ahe", "password": PASSWORD}).status_code == 200
    assert httpx.post(url, json={"username": "ahe", "password": WRONG}).status_code == 401  # the IP's last
    assert httpx.post(url, json={"username": "xiaoyu", "password": PASSWORD}).status_code == 429  # per IP


@pytest.fixture
async def redis_server_clean(redis_server):
    import redis.asyncio as redis

    async def wipe():
        r = redis.from_url(redis_server.url)
        keys = [k async for k in r.scan_iter("miaohui:login:*")]
        if keys:
            await r.delete(*keys)
        await r.aclose()

    await wipe()
    yield redis_server
    await wipe()


async def test_parallel_wrong_passwords_are_limited_with_redis(redis_server_clean, sqlite_url, tmp_path, monkeypatch):
    server = LiveServer(make_settings(sqlite_url, tmp_path, redis_url=redis_server_clean.url), FakeClock()).start()
    try:
        assert type(server.ctx.login_limiter) is RedisLoginLimiter
        verifies = CountVerifies(monkeypatch)
        assert_limited(server, await flood(server.url, "ahe", 50), verifies)
    finally:
        server.stop()


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_reserve_is_all_or_nothing(backend, request):
    clock = FakeClock()
    if backend == "redis":
        lim = RedisLoginLimiter(request.getfixturevalue("redis_server").url, clock, 2, 60)
    else:
        lim = LoginLimiter(clock, 2, 60)
    keys = ("ip:r1", "user:ra", "user:rb")
    try:
        await lim.reset(*keys)
        a = await lim.reserve("ip:r1", "user:ra")
        b = await lim.reserve("ip:r1", "user:ra")
        assert a is not None and b is not None
        assert await lim.reserve("ip:r1", "user:rb") is None  # the IP is full: user:rb counts nothing
        assert not await lim.blocked("user:rb")
        await lim.release(a, "ip:r1")
        assert await lim.blocked("user:ra") and not await lim.blocked("ip:r1")
        assert await lim.reserve("ip:r1", "user:ra") is None  # the account is still full
        assert await lim.reserve("ip:r1", "user:rb") is not None
        clock.advance(61)
        assert await lim.reserve("ip:r1", "user:ra") is not None
    finally:
        await lim.reset(*keys)
        await lim.aclose()


async def test_busy_verifier_answers_429_and_counts_nothing(server, monkeypatch):
    """Beyond the argon2 queue a login is refused at once (429), and the
    refusal does not count as a failure."""
    import threading

    monkeypatch.setattr(accounts, "_verify_slots", threading.BoundedSemaphore(1))
    assert accounts._verify_slots.acquire(blocking=False)  # the one slot, taken
    r = httpx.post(server.url + "/api/auth/login", json={"username": "ahe", "password": PASSWORD})
    assert r.status_code == 429 and r.json()["error"]["code"] == "login_busy"
    assert r.json()["error"]["message"] and r.headers["retry-after"] == "1"
    accounts._verify_slots.release()
    limiter = server.ctx.login_limiter
    assert not await limiter.blocked("user:ahe")
    assert len(limiter._prune("ip:127.0.0.1")) == 0
    r = httpx.post(server.url + "/api/auth/login", json={"username": "ahe", "password": PASSWORD})
    assert r.status_code == 200


# ------------------------------------------------------- logout and sockets


async def test_logout_closes_open_sockets(server, seeker, listener, conversation):
    s_chat = await open_chat(seeker, conversation)
    s_inbox = await open_inbox(seeker)
    l_chat = await open_chat(listener, conversation)

    await s_chat.send(json.dumps({"type": "send", "client_id": cid(), "body": "退出前的一句"}))
    await recv_type(s_chat, "ack")
    await recv_type(l_chat, "message")
    before = stored(server, conversation)

    r = httpx.post(server.url + "/api/auth/logout", headers=seeker.headers)
    assert r.status_code == 204
    late = cid()
    with contextlib.suppress(websockets.ConnectionClosed):  # the old socket tries to go on
        await s_chat.send(json.dumps({"type": "send", "client_id": late, "body": "退出后的一句"}))

    code, frames = await close_code(s_chat)
    assert code == 4401
    assert not [f for f in frames if f["type"] in ("ack", "message")], frames
    assert frames and frames[-1]["type"] == "error" and frames[-1]["message"]
    code, _ = await close_code(s_inbox)
    assert code == 4401

    await asyncio.sleep(0.3)  # anything accepted would be committed by now
    assert stored(server, conversation) == before and stored(server, conversation, late) == 0
    with pytest.raises(TimeoutError):  # and the listener never hears it
        await recv_type(l_chat, "message", timeout=0.5)
    # The listener's own session is untouched.
    await l_chat.send(json.dumps({"type": "send", "client_id": cid(), "body": "我还在"}))
    await recv_type(l_chat, "ack")
    await l_chat.close()

    # And the old token opens nothing any more.
    ws = await seeker.ws(f"/ws/chat/{conversation}")
    assert (await close_code(ws))[0] == 4401


async def test_logout_spares_other_sessions_of_the_same_person(server, seeker, conversation):
    other = Api(server, "xiaoyu")  # the same person on a second device
    keep = await open_chat(other, conversation)
    gone = await open_chat(seeker, conversation)
    assert httpx.post(server.url + "/api/auth/logout", headers=seeker.headers).status_code == 204
    assert (await close_code(gone))[0] == 4401
    await keep.send(json.dumps({"type": "send", "client_id": cid(), "body": "另一台手机"}))
    assert (await recv_type(keep, "ack"))["duplicate"] is False
    await keep.close()


async def test_web_logout_closes_cookie_sockets(server, conversation):
    """The page's 退出 (a form, cookie session) ends the sockets the same way."""
    from tests.test_web_pages import signed_in

    browser = signed_in(server, "xiaoyu")
    try:
        cookie = f"mh_session={browser.cookies['mh_session']}"
        ws = await websockets.connect(
            f"{server.ws_url}/ws/chat/{conversation}", additional_headers={"cookie": cookie}
        )
        await recv_type(ws, "synced")
        inbox = await websockets.connect(f"{server.ws_url}/ws/inbox", additional_headers={"cookie": cookie})
        await recv_type(inbox, "hello")
        r = browser.post("/logout", data={"csrf_token": browser.cookies["mh_csrf"]})
        assert r.status_code == 303
    finally:
        browser.close()
    assert (await close_code(ws))[0] == 4401
    assert (await close_code(inbox))[0] == 4401


def test_ending_all_sessions_announces_each_after_commit(server):
    a, b, other = Api(server, "xiaoyu"), Api(server, "xiaoyu"), Api(server, "ahe")
    published: list[str] = []

    class Recorder:
        def publish_nowait(self, topic: str, data: str) -> None:
            published.append(topic)

    async def end(db, commit: bool):
        db.info[accounts.BROKER_INFO] = Recorder()
        await accounts.end_user_sessions(db, a.id)
        assert not published  # nothing before COMMIT
        await (db.commit() if commit else db.rollback())

    server.db(lambda db: end(db, commit=False))
    assert not published
    assert httpx.get(server.url + "/api/auth/me", headers=a.headers).status_code == 200
    server.db(lambda db: end(db, commit=True))
    topics = {accounts.session_topic(accounts.token_hash(t)) for t in (a.token, b.token)}
    assert topics <= set(published)
    assert accounts.session_topic(accounts.token_hash(other.token)) not in published
    for api, status in ((a, 401), (b, 401), (other, 200)):
        assert httpx.get(server.url + "/api/auth/me", headers=api.headers).status_code == status


async def test_logout_in_one_process_closes_sockets_in_another(pg_server, pg_template, redis_server, tmp_path):
    """Two servers sharing only PostgreSQL and Redis: the socket is on A, the
    logout on B."""
    url = _clone_pg(pg_server, pg_template)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = LiveServer(make_settings(url, tmp_path / "a", redis_url=redis_server.url), FakeClock()).start()
    b = LiveServer(make_settings(url, tmp_path / "b", redis_url=redis_server.url), FakeClock()).start()
    try:
        seeker, listener = Api(a, "xiaoyu"), Api(a, "linqing")
        r = httpx.post(f"{a.url}/api/conversations", json={"listener_id": listener.id}, headers=seeker.headers)
        conversation = r.json()["id"]
        s_chat = await open_chat(seeker, conversation)
        s_inbox = await open_inbox(seeker)
        assert httpx.post(f"{b.url}/api/auth/logout", headers=seeker.headers).status_code == 204
        assert (await close_code(s_chat))[0] == 4401
        assert (await close_code(s_inbox))[0] == 4401
    finally:
        b.stop()
        a.stop()
        import redis.asyncio as redis

        r = redis.from_url(redis_server.url)
        keys = [k async for k in r.scan_iter("miaohui:login:*")]
        if keys:
            await r.delete(*keys)
        await r.aclose()


async def test_logout_closes_the_supervision_socket(server):
    sup = Api(server, "supervisor")
    ws = await sup.ws("/ws/supervision")
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"
    assert httpx.post(server.url + "/api/auth/logout", headers=sup.headers).status_code == 204
    code, frames = await close_code(ws)
    assert code == 4401 and frames and frames[-1]["type"] == "error"
