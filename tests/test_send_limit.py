"""How fast one person may send (core.ratelimit.SendLimiter): a token bucket
per person, on the chat socket and the REST fallback alike.  A refused send
is an error naming when to retry, nothing is stored, the socket stays open,
and the same client id goes through once the bucket has refilled."""

from __future__ import annotations

import json

import httpx
import pytest

from miaohui.clock import FakeClock
from miaohui.config import Settings
from miaohui.core.ratelimit import SendLimiter
from tests.conftest import LiveServer, make_settings
from tests.test_chat_ws import cid, connect, drain_sync, recv_until, stored_count


def test_a_burst_then_the_rate():
    clock = FakeClock()
    lim = SendLimiter(clock, rate=2.0, burst=3)
    assert [lim.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert lim.take("a") == pytest.approx(0.5)  # one token comes back every 1 / rate s
    assert lim.take("b") == 0.0  # buckets are per person
    clock.advance(0.25)
    assert lim.take("a") == pytest.approx(0.25)  # a refusal spends nothing
    clock.advance(0.25)
    assert lim.take("a") == 0.0
    assert lim.take("a") == pytest.approx(0.5)
    clock.advance(3600)  # idle: the bucket refills to the burst, no further
    assert [lim.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert lim.take("a") > 0


def test_memory_stays_bounded():
    clock = FakeClock()
    lim = SendLimiter(clock, rate=1.0, burst=2, max_keys=100)
    for i in range(100):
        lim.take(f"idle{i}")
    clock.advance(10)  # all refilled: forgetting them changes nothing
    lim.take("busy")
    assert len(lim._buckets) == 1
    for i in range(250):  # every one still spending: the longest held go
        lim.take(f"k{i}")
        lim.take(f"k{i}")
    assert len(lim._buckets) <= 100


def test_defaults_and_settings(monkeypatch):
    s = Settings()
    assert s.chat_send_rate_per_s == 3.0 and s.chat_send_burst == 30
    monkeypatch.setenv("MIAOHUI_CHAT_SEND_RATE_PER_S", "0.5")
    monkeypatch.setenv("MIAOHUI_CHAT_SEND_BURST", "5")
    s = Settings()
    assert s.chat_send_rate_per_s == 0.5 and s.chat_send_burst == 5
    monkeypatch.setenv("MIAOHUI_CHAT_SEND_RATE_PER_S", "0")
    with pytest.raises(ValueError):
        Settings()


@pytest.fixture
def limited(database_url, tmp_path, clock):
    s = LiveServer(make_settings(database_url, tmp_path, chat_send_rate_per_s=1.0, chat_send_burst=3), clock).start()
    yield s
    s.stop()


@pytest.fixture
def conv(limited):
    from tests.conftest import Api

    seeker, listener = Api(limited, "xiaoyu"), Api(limited, "linqing")
    r = httpx.post(f"{limited.url}/api/conversations", json={"listener_id": listener.id}, headers=seeker.headers)
    assert r.status_code == 201, r.text
    return seeker, listener, r.json()["id"]


@pytest.mark.asyncio
async def test_socket_refuses_a_flood_and_takes_the_same_client_id_later(limited, clock, conv):
    seeker, listener, conversation = conv
    s_ws, hello = await connect(seeker, conversation)
    assert hello["limits"]["send_rate_per_s"] == 1.0 and hello["limits"]["send_burst"] == 3
    await drain_sync(s_ws)
    l_ws, _ = await connect(listener, conversation)
    await drain_sync(l_ws)

    ids = [cid() for _ in range(5)]
    for i, c in enumerate(ids):
        await s_ws.send(json.dumps({"type": "send", "client_id": c, "body": f"第{i}条"}))
    frames = []
    while len(frames) < 5:
        f = json.loads(await s_ws.recv())
        if f["type"] in ("ack", "error"):
            frames.append(f)
    acks = [f for f in frames if f["type"] == "ack"]
    errors = [f for f in frames if f["type"] == "error"]
    assert [a["client_id"] for a in acks] == ids[:3] and [a["seq"] for a in acks] == [1, 2, 3]
    assert [e["client_id"] for e in errors] == ids[3:]
    assert {e["code"] for e in errors} == {"too_fast"}
    assert errors[0]["retry_after_ms"] == 1000 and errors[0]["message"].startswith("发送太快")
    assert errors[0]["message_en"]
    assert stored_count(limited, conversation) == 3
    got = [(await recv_until(l_ws, "message"))["seq"] for _ in range(3)]
    assert got == [1, 2, 3]

    # The socket stays open; once a token is back the refused message goes through, same client id.
    await s_ws.send(json.dumps({"type": "send", "client_id": ids[3], "body": "第3条"}))
    assert (await recv_until(s_ws, "error"))["retry_after_ms"] == 1000
    clock.advance(1.0)
    await s_ws.send(json.dumps({"type": "send", "client_id": ids[3], "body": "第3条"}))
    ack = await recv_until(s_ws, "ack")
    assert ack["client_id"] == ids[3] and ack["seq"] == 4 and ack["duplicate"] is False
    assert (await recv_until(l_ws, "message"))["body"] == "第3条"

    # One person's flood does not limit the other side of the conversation.
    await l_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "我在"}))
    assert (await recv_until(l_ws, "ack"))["seq"] == 5
    await s_ws.close()
    await l_ws.close()


@pytest.mark.asyncio
async def test_rest_send_answers_429_with_retry_after(limited, clock, conv):
    seeker, _listener, conversation = conv
    url = f"/api/conversations/{conversation}/messages"
    async with seeker.client() as c:
        codes = [(await c.post(url, json={"client_id": cid(), "body": "在吗"})).status_code for _ in range(3)]
        assert codes == [201, 201, 201]
        r = await c.post(url, json={"client_id": (late := cid()), "body": "在吗"})
        assert r.status_code == 429
        err = r.json()["error"]
        assert err["code"] == "too_fast" and err["retry_after_ms"] == 1000 and err["message"].startswith("发送太快")
        assert r.headers["retry-after"] == "1"
        assert stored_count(limited, conversation) == 3
        clock.advance(1.0)
        r = await c.post(url, json={"client_id": late, "body": "在吗"})
        assert r.status_code == 201 and r.json()["seq"] == 4
