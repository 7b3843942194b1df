"""The safety step in worker processes (``safety_workers`` > 0): the same
verdicts as on the event loop — masked bodies, risk guidance for the
listener, the hotline card for the seeker — with the loop left free."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.conftest import Api, LiveServer, make_settings
from tests.test_chat_ws import cid, connect, drain_sync, recv_until

pytestmark = pytest.mark.asyncio


def _with_workers(url, tmp_path, clock):
    s = LiveServer(make_settings(url, tmp_path, safety_workers=1), clock).start()
    yield s
    s.stop()


@pytest.fixture
def server(sqlite_url, tmp_path, clock):
    yield from _with_workers(sqlite_url, tmp_path, clock)


async def _pair(server):
    """小雨 and 林晴 in a new conversation, both connected and synced."""
    seeker, listener = Api(server, "xiaoyu"), Api(server, "linqing")
    r = httpx.post(f"{server.url}/api/conversations", json={"listener_id": listener.id}, headers=seeker.headers)
    conv = r.json()["id"]
    s_ws, _ = await connect(seeker, conv)
    await drain_sync(s_ws)
    l_ws, _ = await connect(listener, conv)
    await drain_sync(l_ws)
    return seeker, listener, conv, s_ws, l_ws


async def test_safety_step_in_a_worker_process(server):
    assert server.ctx.safety._worker is not None and server.ctx.safety._worker.alive
    seeker, listener, conv, s_ws, l_ws = await _pair(server)
    await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "加我微信 abc_12345"}))
    delivered = await recv_until(l_ws, "message", timeout=10)
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


@pytest.fixture
def server_any_db(database_url, tmp_path, clock):
    yield from _with_workers(database_url, tmp_path, clock)


async def test_cases_are_recorded_by_the_recorder_process_and_survive_its_death(server_any_db):
    """With safety workers on, risk cases are written by a process of their
    own (``supervision.recorder``); supervisors get the same live frames.  If
    that process dies, the server records in-process: no case is lost."""
    from tests.test_supervision import IMMINENT, PLAN, wait_queue

    server = server_any_db
    # Started with the server, not by the first case: spawning a process
    # stops the loop for every socket (docs/performance.md, session 14).
    started = server.ctx.safety._cases.proc
    assert started is not None and started.returncode is None
    seeker, listener, sup = Api(server, "xiaoyu"), Api(server, "linqing"), Api(server, "supervisor")
    r = httpx.post(f"{server.url}/api/conversations", json={"listener_id": listener.id}, headers=seeker.headers)
    conv = r.json()["id"]
    s_ws, _ = await connect(seeker, conv)
    await drain_sync(s_ws)
    async with sup.ws("/ws/supervision") as q:
        assert json.loads(await q.recv())["type"] == "hello"
        await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": PLAN}))
        ack = await recv_until(s_ws, "ack", timeout=20)
        case = await recv_until(q, "case", timeout=20)
        assert case["alarm"] is True and case["case"]["conversation_id"] == conv
        assert case["case"]["seeker"]["display_name"] == "小雨"
    cases = server.ctx.safety._cases
    assert cases.recorded == 1 and cases.proc is started and cases.proc.returncode is None
    queue = wait_queue(server, sup, lambda q: len(q) == 1)
    view = httpx.get(f"{server.url}/api/supervision/cases/{queue[0]['id']}", headers=sup.headers).json()
    opened = next(e for e in view["events"] if e["kind"] == "opened")
    assert opened["data"]["seq"] == ack["seq"]

    cases.proc.kill()
    for _ in range(200):
        if cases.dead:
            break
        await asyncio.sleep(0.025)
    assert cases.dead
    await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": IMMINENT}))
    wait_queue(server, sup, lambda q: len(q) == 1 and q[0]["tier"] == "imminent", timeout=10)
    await s_ws.close()


async def test_a_dead_risk_worker_is_replaced_and_no_message_goes_unassessed(server):
    """If the worker process dies, messages are still assessed — in the server
    while a new worker starts (at most one start a second), else by the new
    one — and the listener still gets the guidance."""
    from tests.test_supervision import PLAN

    worker = server.ctx.safety._worker
    seeker, listener, conv, s_ws, l_ws = await _pair(server)
    first = worker.proc
    first.kill()
    for _ in range(200):  # the server's loop notices the exit
        if first.returncode is not None:
            break
        await asyncio.sleep(0.025)
    await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": PLAN}))
    risk = await recv_until(l_ws, "risk", timeout=10)
    assert risk["tier"] in ("plan", "imminent") and risk["guidance"]
    await asyncio.sleep(1.2)  # restarts are at most one a second
    await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "我已经把安眠药都准备好了，今晚就吃"}))
    risk = await recv_until(l_ws, "risk", timeout=20)
    assert risk["tier"] == "imminent"
    assert worker.alive and worker.proc is not first and worker.starts == 2 and worker.batches >= 1
    await s_ws.close()
    await l_ws.close()


async def test_a_worker_that_cannot_start_is_retried_less_and_less_often():
    """A worker that dies before it is ready (say its models are missing) is
    not restarted in a tight loop; meanwhile batches fall back to the server."""
    from miaohui.supervision.worker import RESTART_AFTER_S, RiskWorker, WorkerGone

    w = RiskWorker(module="miaohui.no_such_module")
    await w.start()  # the process exits at once
    for _ in range(200):
        if w.failures:
            break
        await asyncio.sleep(0.025)
    assert w.failures == 1 and not w.alive and w.restart_after == 2 * RESTART_AFTER_S
    with pytest.raises(WorkerGone):
        await w.assess([("你好", {})])  # too soon to try again: the caller assesses itself
    w._last_start -= w.restart_after  # time passes
    with pytest.raises(WorkerGone):
        await w.assess([("你好", {})])  # it tries again, and that one dies too
    assert w.starts == 2 and w.failures == 2 and w.restart_after == 4 * RESTART_AFTER_S
    await w.close()


async def test_a_dead_workers_reader_never_fails_its_successors_batches():
    from miaohui.supervision.worker import RiskWorker

    w = RiskWorker()
    await w.start()
    old, old_reader = w.proc, w._reader
    await w._spawn()  # a successor starts while the old process still runs …
    batch = asyncio.ensure_future(w.assess([("我已经把安眠药都准备好了，今晚就吃", {})]))
    await asyncio.sleep(0)  # … is sent a batch (it answers once its models are loaded) …
    old.kill()
    await old_reader  # … and only then does the old one's reader end
    ((a, alone),) = await batch
    assert a.tier == "imminent" and w.alive and w.proc is not old
    await w.close()


async def test_the_recorder_puts_what_arrives_within_its_linger_in_one_transaction():
    """Verdicts that arrive within ``LINGER_S`` of the first share one
    transaction (its fixed cost was most of a record's); EOF ends the stream
    after the last batch."""
    import os
    import threading

    from miaohui.supervision.recorder import _batches

    r, w = os.pipe()
    try:
        batches = _batches(r, linger=0.3)
        os.write(w, b"a\n")
        threading.Timer(0.05, lambda: os.write(w, b"b\nc\n")).start()
        assert next(batches) == [b"a", b"b", b"c"]
        os.write(w, b"d\n")
        os.close(w)
        w = -1
        assert next(batches) == [b"d"]
        assert next(batches, None) is None
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
