"""The safety step in worker processes (``safety_workers`` > 0): the same
verdicts as on the event loop — masked bodies, risk guidance for the
listener, the hotline card for the seeker — with the loop left free."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import Api, LiveServer, make_settings
from tests.test_chat_ws import cid, connect, drain_sync, recv_until

pytestmark = pytest.mark.asyncio


@pytest.fixture
def server(sqlite_url, tmp_path, clock):
    s = LiveServer(make_settings(sqlite_url, tmp_path, safety_workers=1), clock).start()
    yield s
    s.stop()


async def test_safety_step_in_a_worker_process(server):
    assert server.ctx.safety._pool is not None
    seeker, listener = Api(server, "xiaoyu"), Api(server, "linqing")
    r = httpx.post(f"{server.url}/api/conversations", json={"listener_id": listener.id}, headers=seeker.headers)
    conv = r.json()["id"]
    s_ws, _ = await connect(seeker, conv)
    await drain_sync(s_ws)
    l_ws, _ = await connect(listener, conv)
    await drain_sync(l_ws)
    await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "加我微信 abc_12345"}))
    delivered = await recv_until(l_ws, "message", timeout=20)  # the first call may wait for the worker's start
    assert delivered["body"] == "加我微信 [账号已隐藏]"
    await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "安眠药我已经买好了，今晚就吃"}))
    risk = await recv_until(l_ws, "risk", timeout=10)
    assert risk["tier"] in ("plan", "imminent") and risk["guidance"]
    card = await recv_until(s_ws, "hotline", timeout=10)
    assert any(h["number"] == "12356" for h in card["lines"])
    # The REST path goes through the worker too.
    r = httpx.post(f"{server.url}/api/conversations/{conv}/messages",
                   json={"client_id": cid(), "body": "我电话 138 1234 5678"}, headers=listener.headers)
    assert r.status_code == 201
    msg = await recv_until(s_ws, "message", timeout=10)
    assert "1381234" not in msg["body"].replace(" ", "")
    await s_ws.close()
    await l_ws.close()
