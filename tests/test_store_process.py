"""SQLite message batches committed by the store process (``chat.storeproc``):
the protocol suite in ``test_chat_ws.py`` runs through it too; here, what is
particular to it — a store process killed while messages are in flight (no
loss, none stored twice, each delivered once), batches that queued up in its
pipe committed as one group, and the replay of a batch a dead process had
already committed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from miaohui.chat import storeproc
from miaohui.chat.writer import PendingMessage, commit_sqlite, open_sqlite
from miaohui.core.db import make_sync_engine

from .conftest import KEYS, Api, LiveServer, make_settings
from .test_chat_ws import connect, drain_sync, recv_until

pytestmark = pytest.mark.asyncio


def cid() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def store_server(sqlite_url, tmp_path, clock):
    s = LiveServer(make_settings(sqlite_url, tmp_path, store_process=1), clock).start()
    yield s
    s.stop()


def _conversation(server) -> tuple[Api, Api, str]:
    seeker, listener = Api(server, "xiaoyu"), Api(server, "linqing")
    r = httpx.post(f"{server.url}/api/conversations", json={"listener_id": listener.id}, headers=seeker.headers)
    assert r.status_code == 201, r.text
    return seeker, listener, r.json()["id"]


async def test_the_default_on_a_multicore_machine_is_the_store_process(sqlite_url, tmp_path):
    s = make_settings(sqlite_url, tmp_path, store_process=-1)
    assert s.effective_store_process == ((os.cpu_count() or 1) >= 2)
    assert not make_settings("postgresql+asyncpg://x/y", tmp_path, store_process=1).effective_store_process


async def test_a_killed_store_process_loses_nothing_and_stores_nothing_twice(store_server):
    server = store_server
    writer = server.ctx.writer
    assert writer.store is not None and writer.store.alive
    first = writer.store.proc
    seeker, listener, conversation = _conversation(server)
    s_ws, _ = await connect(seeker, conversation)
    await drain_sync(s_ws)
    l_ws, _ = await connect(listener, conversation)
    await drain_sync(l_ws)

    ids = [cid() for _ in range(120)]
    for k, c in enumerate(ids):
        await s_ws.send(json.dumps({"type": "send", "client_id": c, "body": f"第{k}条"}))
        if k == 40:
            os.kill(first.pid, signal.SIGKILL)  # mid-stream, batches in its pipe
    acks = {}
    while len(acks) < len(ids):
        a = await recv_until(s_ws, "ack", timeout=10)
        acks[a["client_id"]] = a["seq"]
    assert sorted(acks.values()) == list(range(1, len(ids) + 1))  # each stored once, no gaps
    got = []
    while len(got) < len(ids):
        got.append(await recv_until(l_ws, "message", timeout=10))
    assert sorted(m["seq"] for m in got) == list(range(1, len(ids) + 1))  # each delivered once
    assert {m["client_id"]: m["seq"] for m in got} == acks
    # the store process came back for later batches
    await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "之后"}))
    assert (await recv_until(s_ws, "ack", timeout=10))["seq"] == len(ids) + 1
    for _ in range(200):
        if writer.store.alive and writer.store.proc is not first:
            break
        await asyncio.sleep(0.05)
    assert writer.store.proc is not first and writer.store.starts == 2

    def count(path: str) -> int:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT count(*) FROM messages WHERE conversation_id = ?", (conversation,)).fetchone()[0]

    assert count(server.settings.resolved_database_url.split("///", 1)[1]) == len(ids) + 1
    await s_ws.close()
    await l_ws.close()


def _pending(conv: str, sender: str, body: str, client_id: str | None = None) -> PendingMessage:
    return PendingMessage(conv, sender, "seeker", client_id or cid(), "", None, body, (), "")


async def test_batches_answered_in_order_each_message_once(store_server):
    """Several batches in the store process's pipe at once (pipelined by the
    writer): each answered in order, each message stored and published once."""
    server = store_server
    seeker, _, conversation = _conversation(server)
    store = storeproc.StoreProcess(server.ctx.writer._sync_engine.url.render_as_string(hide_password=False), KEYS)
    await store.start()
    try:
        now = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
        batches = [[_pending(conversation, seeker.id, f"批{b}-{k}") for k in range(3)] for b in range(6)]
        results = await asyncio.gather(*(store.commit(b, [], now) for b in batches))
        seqs = [[res.stored[i].seq for i in range(3)] for res, _ in results]
        assert [s for b in seqs for s in b] == list(range(1, 19))  # in the order sent
        events = [e for _, ev in results for e in ev]
        assert len([e for e in events if e[0] == f"conv:{conversation}"]) == 18
        again, ev = await store.commit([batches[0][0]], [], now)  # a retry: the stored seq, nothing published
        assert again.stored[0].seq == 1 and again.stored[0].duplicate and ev == []
    finally:
        await store.close()


async def test_jobs_read_together_are_one_transaction_answered_one_by_one(store_server):
    server = store_server
    seeker, _, conversation = _conversation(server)
    commit = storeproc._open({"url": server.ctx.writer._sync_engine.url.render_as_string(hide_password=False),
                              "keys": KEYS})
    now = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    jobs = [{"id": 10 + b, **storeproc.encode_batch([_pending(conversation, seeker.id, f"组{b}-{k}") for k in range(2)],
                                                    [], now, False)} for b in range(3)]
    jobs[1]["m"].append(jobs[0]["m"][0])  # a retry inside the group
    answers = commit(jobs)
    assert [a["id"] for a in answers] == [10, 11, 12]
    res = [storeproc.decode_answer(a["r"]) for a in answers]
    assert [[st.seq for _, st in sorted(r.stored.items())] for r, _ in res] == [[1, 2], [3, 4, 1], [5, 6]]
    assert res[1][0].stored[2].duplicate
    assert len(res[0][1]) == 6 and res[1][1] == [] and res[2][1] == []  # the group's events with its first answer
    # a job that fails (a body that is not text) is answered with an error; the others commit alone
    bad = {"id": 20, **storeproc.encode_batch([_pending(conversation, seeker.id, "坏")], [], now, False)}
    bad["m"][0][6] = None
    good = {"id": 21, **storeproc.encode_batch([_pending(conversation, seeker.id, "好")], [], now, False)}
    out = commit([bad, good])
    assert out[0] == {"id": 20, "error": out[0]["error"]} and out[1]["r"]["s"][0][1] == 7


async def test_replay_publishes_what_a_dead_store_process_had_committed(store_server):
    from miaohui.core.crypto import KeyRing, message_aad

    server = store_server
    seeker, _, conv = _conversation(server)
    user = seeker.id
    engine = make_sync_engine(server.ctx.writer._sync_engine.url)
    raw = open_sqlite(engine)
    ring = KeyRing(KEYS)
    try:
        now = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
        msgs = [_pending(conv, user, f"重放{k}") for k in range(4)]
        for m in msgs:
            m.key_id, m.body_ct = ring.encrypt(m.body, message_aad(m.conversation_id, m.sender_id, m.client_id))
        first, _ = commit_sqlite(raw, msgs[:3], [], now, True)  # what the process did before it died
        res, events = commit_sqlite(raw, msgs, [], now, True, replay=True)
        assert [res.stored[i].seq for i in range(3)] == [first.stored[i].seq for i in range(3)]
        assert not any(res.stored[i].duplicate for i in range(4))  # acknowledged as new: nobody saw them yet
        assert res.stored[3].seq == first.stored[2].seq + 1
        assert len([e for e in events if e[0] == f"conv:{conv}"]) == 4
        plain, ev = commit_sqlite(raw, msgs, [], now, True)  # without replay: duplicates, nothing published
        assert all(plain.stored[i].duplicate for i in range(4)) and ev == []
    finally:
        raw.close()
        engine.dispose()
