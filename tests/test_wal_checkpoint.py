"""SQLite's WAL starts over while chat runs: the checkpoint thread's two
PASSIVE passes plus the writer's catch-up between batches leave nothing
uncopied, so the next batch writes the WAL from its start (instead of
appending to a file that grows for as long as anyone is chatting)."""

from __future__ import annotations

import asyncio
import json
import struct
import time
import uuid
from pathlib import Path

import pytest


@pytest.fixture
def database_url(sqlite_url) -> str:  # SQLite's WAL
    return sqlite_url


def wal_of(server) -> Path:
    return Path(server.settings.resolved_database_url.split(":///", 1)[1] + "-wal")


def wal_header(path: Path) -> tuple[int, int]:
    """(checkpoint sequence, salt-1) from the WAL header: both change each time
    a writer starts the WAL over from its beginning."""
    with open(path, "rb") as f:
        head = f.read(32)
    magic, _version, _page, ckpt_seq, salt1 = struct.unpack(">IIIII", head[:20])
    assert magic in (0x377F0682, 0x377F0683)
    return ckpt_seq, salt1


def test_the_wal_starts_over_under_steady_chat(server, seeker, listener, conversation, monkeypatch):
    from miaohui.chat import writer as writer_mod

    writer = server.ctx.writer
    monkeypatch.setattr(writer_mod, "CHECKPOINT_EVERY_S", 0.05)
    wal = wal_of(server)
    sent = 0

    async def chat(seconds: float) -> None:
        nonlocal sent
        async with seeker.ws(f"/ws/chat/{conversation}?after_seq=0") as ws:
            while json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] != "synced":
                pass
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                c = uuid.uuid4().hex
                await ws.send(json.dumps({"type": "send", "client_id": c, "body": "今晚又睡不着"}))
                while True:
                    f = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    if f["type"] == "ack" and f["client_id"] == c:
                        sent += 1
                        break

    asyncio.run(chat(0.3))  # the old 1 s wait ends; the patched interval is in force
    before = wal_header(wal)
    resets = writer.wal_resets
    asyncio.run(chat(1.5))
    after = wal_header(wal)
    assert sent > 50
    assert writer.catch_ups > 0 and writer.wal_resets > resets
    assert after[0] > before[0] and after[1] != before[1], (before, after)
    # What the chat wrote is all still there.
    got = asyncio.run(_count(seeker, conversation))
    assert got == sent


async def _count(api, conversation) -> int:
    n, before = 0, None
    async with api.client() as c:
        while True:
            params = {"limit": 200, **({"before_seq": before} if before else {})}
            page = (await c.get(f"/api/conversations/{conversation}/messages", params=params)).json()
            n += sum(1 for m in page["messages"] if m["body"] == "今晚又睡不着")
            if not page["has_more"]:
                return n
            before = page["messages"][0]["seq"]


def test_the_writers_catch_up_is_what_lets_the_wal_start_over(tmp_path, sqlite_url, clock, monkeypatch):
    """With the checkpoint thread idle, the WAL only grows; one catch-up on the
    writer's connection between batches copies everything, and the very next
    batch writes the WAL from its start."""
    import httpx

    from miaohui.chat import writer as writer_mod
    from tests.conftest import Api, LiveServer, make_settings

    monkeypatch.setattr(writer_mod, "CHECKPOINT_EVERY_S", 3600.0)
    s = LiveServer(make_settings(sqlite_url, tmp_path), clock).start()
    try:
        seeker, listener = Api(s, "xiaoyu"), Api(s, "linqing")
        r = httpx.post(f"{s.url}/api/conversations", json={"listener_id": listener.id}, headers=seeker.headers)
        conversation = r.json()["id"]
        wal = wal_of(s)
        writer = s.ctx.writer
        loop = writer._task.get_loop()

        def send(n: int) -> None:
            for _ in range(n):
                r = httpx.post(f"{s.url}/api/conversations/{conversation}/messages",
                               json={"client_id": uuid.uuid4().hex, "body": "还在吗"}, headers=seeker.headers)
                assert r.status_code in (200, 201), r.text

        send(5)
        first = wal_header(wal)
        send(5)
        assert wal_header(wal) == first  # nothing copied: every batch appends

        async def catch_up() -> None:
            writer._catch_up_checkpoint()

        asyncio.run_coroutine_threadsafe(catch_up(), loop).result(5)
        assert writer.wal_resets == 1
        send(1)
        after = wal_header(wal)
        assert after[0] == first[0] + 1 and after[1] != first[1]
    finally:
        s.stop()
