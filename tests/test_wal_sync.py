"""The WAL's fsync through Linux AIO (miaohui.core.aiosync): grouped syncs that
complete on the event loop, and a message writer that commits at
synchronous=NORMAL yet acknowledges and delivers nothing before the WAL's
fsync has completed."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest

from miaohui.core.aiosync import AsyncFdatasync


@pytest.fixture
def database_url(sqlite_url) -> str:  # these tests are about SQLite's WAL
    return sqlite_url


def test_syncs_are_grouped_and_complete_on_the_loop(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"")

    async def go():
        s = AsyncFdatasync.open(str(path))
        assert s is not None, "Linux AIO FDSYNC is available on the machines this runs on"
        try:
            base = s.submitted  # open() checks the interface with one sync
            with open(path, "ab") as f:
                f.write(b"x" * 4096)
            first = s.sync()
            assert s.busy
            second, third = s.sync(), s.sync()  # asked while the first runs: the next sync, shared
            assert second is third and second is not first
            await asyncio.wait_for(first, 5)
            await asyncio.wait_for(second, 5)
            assert s.submitted == base + 2 and s.inline == 0 and not s.busy
            # Idle again: the next caller starts a sync of its own at once.
            fourth = s.sync()
            assert fourth is not second and s.busy
            await asyncio.wait_for(fourth, 5)
        finally:
            s.close()
        assert s._fd == -1 and s._efd == -1

    asyncio.run(go())


def test_close_finishes_what_is_running_and_queued(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"y" * 8192)

    async def go():
        s = AsyncFdatasync.open(str(path))
        running, queued = s.sync(), s.sync()
        s.close()  # the kernel's running sync is waited for; the queued one is done here
        assert running.done() and running.exception() is None
        assert queued.done() and queued.exception() is None

    asyncio.run(go())


def test_a_file_the_kernel_cannot_fsync_asynchronously_is_refused(tmp_path):
    async def go():
        # /dev/null has no fsync operation: io_submit says EINVAL, and the caller
        # is told to keep syncing inside COMMIT.
        return AsyncFdatasync.open("/dev/null")

    assert asyncio.run(go()) is None


def _cid() -> str:
    return uuid.uuid4().hex


def test_writer_commits_at_normal_and_acks_only_after_the_wal_fsync(server, seeker, listener, conversation):
    writer = server.ctx.writer
    wal = writer._wal
    assert wal is not None and wal.path.endswith("miaohui.db-wal")
    assert writer._sqlite.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: COMMIT does not fsync

    events: list[str] = []
    sync, publish = wal.sync, writer.broker.publish_nowait

    def tracing_sync():
        fut = sync()
        fut.add_done_callback(lambda _f: events.append("synced"))
        events.append("sync")
        return fut

    def tracing_publish(topic, data):
        if '"type":"message"' in data:
            events.append("publish")
        return publish(topic, data)

    wal.sync = tracing_sync
    writer.broker.publish_nowait = tracing_publish
    submitted = wal.submitted

    async def go():
        async with seeker.ws(f"/ws/chat/{conversation}?after_seq=0") as a, \
                listener.ws(f"/ws/chat/{conversation}?after_seq=0") as b:
            for ws in (a, b):
                while json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] != "synced":
                    pass
            for i in range(5):
                c = _cid()
                await a.send(json.dumps({"type": "send", "client_id": c, "body": f"第{i}条"}))
                while True:
                    f = json.loads(await asyncio.wait_for(a.recv(), 5))
                    if f["type"] == "ack" and f["client_id"] == c:
                        break
                while True:
                    f = json.loads(await asyncio.wait_for(b.recv(), 5))
                    if f["type"] == "message" and f["client_id"] == c:
                        break

    asyncio.run(go())
    assert wal.submitted >= submitted + 5
    # One message a batch here: each delivery was published after a sync completed
    # since the previous delivery, i.e. the one its batch waited for.
    assert events.count("publish") == 5
    since_last = []
    for e in events:
        if e == "publish":
            assert "synced" in since_last, events
            since_last = []
        else:
            since_last.append(e)
    assert writer._durable == writer._commits


def test_writer_can_be_told_to_sync_inside_commit(tmp_path, sqlite_url, clock):
    from tests.conftest import LiveServer, make_settings

    s = LiveServer(make_settings(sqlite_url, tmp_path, sqlite_aio_fsync=False), clock).start()
    try:
        w = s.ctx.writer
        assert w._wal is None
        assert w._raw().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        s.stop()


def test_an_fsync_error_falls_back_to_syncing_inside_commit(server, seeker, listener, conversation):
    """EIO from the kernel's sync: the batch is synced again on the writer thread,
    acknowledged once that succeeds, and later batches sync inside COMMIT."""
    writer = server.ctx.writer
    wal = writer._wal
    assert wal is not None
    loop_holder = {}

    def failing_sync():
        loop = asyncio.get_running_loop()
        loop_holder["loop"] = loop
        fut = loop.create_future()
        loop.call_soon(fut.set_exception, OSError(5, os.strerror(5)))
        return fut

    wal.sync = failing_sync

    async def go():
        async with seeker.ws(f"/ws/chat/{conversation}?after_seq=0") as a:
            while json.loads(await asyncio.wait_for(a.recv(), 5))["type"] != "synced":
                pass
            for i in range(2):
                c = _cid()
                await a.send(json.dumps({"type": "send", "client_id": c, "body": f"故障{i}"}))
                while True:
                    f = json.loads(await asyncio.wait_for(a.recv(), 5))
                    if f["type"] == "ack" and f["client_id"] == c:
                        break

    asyncio.run(go())
    assert "loop" in loop_holder  # the failing sync was really asked for
    assert writer._wal is None and writer._durable == writer._commits
    assert writer._sqlite.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again
