"""Two real server processes behind one PostgreSQL and a real redis-server:
a seeker on one process and a listener on the other talk in real time."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from tests.conftest import KEYS, SECRET, Api, _clone_pg, free_port
from tests.test_chat_ws import connect, drain_sync, recv_until

pytestmark = pytest.mark.asyncio


class Proc:
    def __init__(self, port: int, env: dict, log_path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.p = subprocess.Popen(
            [sys.executable, "-m", "miaohui", "serve", "--no-migrate", "--port", str(port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz").json()["broker"] == "RedisBroker":
                    return
            except Exception:
                pass
            if time.time() > deadline or self.p.poll() is not None:
                self.stop()
                raise RuntimeError(open(log_path).read())
            time.sleep(0.1)

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
        self.log.close()


@pytest.fixture
def two_servers(pg_server, pg_template, redis_server, tmp_path):
    url = _clone_pg(pg_server, pg_template)
    env = dict(
        os.environ,
        MIAOHUI_DATABASE_URL=url,
        MIAOHUI_REDIS_URL=redis_server.url,
        MIAOHUI_SECRET_KEY=SECRET,
        MIAOHUI_MESSAGE_KEYS=KEYS,
        MIAOHUI_DATA_DIR=str(tmp_path),
        MIAOHUI_CHAT_SEND_BURST="1000",  # the test blasts 100 messages a side at once
    )
    a = Proc(free_port(), env, tmp_path / "a.log")
    try:
        b = Proc(free_port(), env, tmp_path / "b.log")
    except Exception:
        a.stop()
        raise
    yield a, b
    a.stop()
    b.stop()


async def test_cross_process_delivery(two_servers):
    a, b = two_servers
    seeker = Api(a, "xiaoyu")  # Api only needs .url / .ws_url
    listener = Api(b, "linqing")

    inbox = await listener.ws("/ws/inbox")
    await recv_until(inbox, "hello")
    # Listener connected on B shows as online in A's directory (shared presence).
    online = httpx.get(a.url + "/api/listeners", params={"online": "true"}).json()
    assert [c["user_id"] for c in online] == [listener.id]

    r = httpx.post(a.url + "/api/conversations", json={"listener_id": listener.id}, headers=seeker.headers)
    conv = r.json()["id"]
    assert (await recv_until(inbox, "conversation"))["conversation_id"] == conv

    s_ws, _ = await connect(seeker, conv)
    await drain_sync(s_ws)
    l_ws, _ = await connect(listener, conv)
    await drain_sync(l_ws)
    assert (await recv_until(s_ws, "presence", user_id=listener.id))["status"] == "online"

    await s_ws.send(json.dumps({"type": "send", "client_id": uuid.uuid4().hex, "body": "A 进程发出"}))
    assert (await recv_until(s_ws, "ack"))["seq"] == 1
    m = await recv_until(l_ws, "message")
    assert m["body"] == "A 进程发出" and m["seq"] == 1
    assert (await recv_until(inbox, "activity"))["seq"] == 1

    await l_ws.send(json.dumps({"type": "typing", "state": "start"}))
    assert (await recv_until(s_ws, "typing"))["user_id"] == listener.id
    await l_ws.send(json.dumps({"type": "send", "client_id": uuid.uuid4().hex, "body": "B 进程回复"}))
    assert (await recv_until(l_ws, "ack"))["seq"] == 2
    assert (await recv_until(s_ws, "message"))["body"] == "B 进程回复"
    await l_ws.send(json.dumps({"type": "read", "seq": 2}))
    assert (await recv_until(s_ws, "receipt", user_id=listener.id))["read_seq"] == 2

    # Both processes write to the same conversation at once: sequence numbers
    # stay unique and gap-free, and every message reaches the other side once.
    async def blast(ws, n, tag):
        for i in range(n):
            await ws.send(json.dumps({"type": "send", "client_id": f"{tag}-{i:04d}-{uuid.uuid4().hex[:6]}", "body": tag}))
        acks, received = [], []
        while len(acks) < n or len(received) < n:
            f = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if f["type"] == "ack":
                acks.append(f["seq"])
            elif f["type"] == "message":
                received.append(f["seq"])
        return acks, received

    (sa, got_s), (sb, got_l) = await asyncio.gather(blast(s_ws, 100, "from-a"), blast(l_ws, 100, "from-b"))
    assert sorted(sa + sb) == list(range(3, 203))
    assert sorted(got_l) == sorted(sa) and sorted(got_s) == sorted(sb)

    # A client that reconnects to the *other* process resumes from its seq.
    await s_ws.close()
    s_on_b = Api(b, "xiaoyu")
    ws, hello = await connect(s_on_b, conv, after_seq=200)
    assert hello["last_seq"] == 202
    assert [m["seq"] for m in await drain_sync(ws)] == [201, 202]
    for w in (ws, l_ws, inbox):
        await w.close()
    # The servers' logs name no client address and no query string (uvicorn's
    # WebSocket access lines are dropped), and never a message's text.
    for proc in (a, b):
        proc.log.flush()
        log = open(proc.log.name, encoding="utf-8").read()
        assert '"WebSocket' not in log and "after_seq" not in log and "进程" not in log, log[-2000:]


async def test_login_limit_counts_across_processes(two_servers, redis_server):
    """Guesses spread over two processes count together (Redis-backed limiter)."""
    import redis.asyncio as redis

    a, b = two_servers
    try:
        async with httpx.AsyncClient() as client:
            for i in range(5):
                server = a if i % 2 else b
                r = await client.post(f"{server.url}/api/auth/login", json={"username": "ahe", "password": "wrong"})
                assert r.status_code == 401
            for server in (a, b):
                r = await client.post(f"{server.url}/api/auth/login",
                                      json={"username": "ahe", "password": "miaohui-demo"})
                assert r.status_code == 429 and r.json()["error"]["message"]
    finally:  # the shared redis-server outlives this test: leave no block behind for 127.0.0.1
        r = redis.from_url(redis_server.url)
        keys = [k async for k in r.scan_iter("miaohui:login:*")]
        if keys:
            await r.delete(*keys)
        await r.aclose()
