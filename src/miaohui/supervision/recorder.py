"""Risk-case records in a process of their own (when safety workers are on).

Why a process: recording a case (:func:`miaohui.supervision.service.observe`)
is a write transaction of several ORM statements plus a read for the
supervisors' summary — about 5 ms of CPU for an open case, 9 ms for a new one
(here, batched and without aiosqlite's thread hops, 2–4 ms).
Counselling-style chat opens or updates a case on about 2 % of seeker lines,
and inside the server process those records cost ~17 % of a core at 1,000
msg/s of the benchmark (where every case is new); worse, the recording thread took the GIL from the event loop in
millisecond slices, so every socket waited: p99 delivery 97 ms with case
records against 22 ms without (docs/performance.md, session 4).  In a process
of its own the same service code runs unchanged and the server only writes
one short line per verdict.

Protocol (JSON lines over the child's stdin/stdout; the message text is never
sent — a record needs the verdict, not the words):

* server → recorder, first line: the :class:`~miaohui.config.Settings` as JSON;
  then one line per verdict ``{"v": [...], "seq": n, "now": iso}`` where
  ``now`` is the server's clock when the message was assessed (so records
  carry the server's time, injectable clock included);
* recorder → server: one line per batch — the verdict lines that had queued
  up, recorded in one transaction (:func:`service.observe_many`), in order —
  ``{"n": count, "frames": [[topic, data], ...]}``: how many verdicts it
  answers and what the service published (the supervisors' queue, the
  listener's console), which the server publishes on its broker.

Nothing is lost if the recorder dies: the server keeps every verdict it sent
until its answer arrives and records the unanswered ones itself
(:class:`RecorderProcess`).  EOF on stdin ends the recorder after the last
answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import sys
import time
from collections import deque
from datetime import datetime
from types import SimpleNamespace

import orjson

from miaohui.safety.boundaries import Scan

log = logging.getLogger("miaohui.supervision")

LINE_LIMIT = 1 << 24  # one answer line: the summaries of at most MAX_BATCH cases
MAX_BATCH = 64
LINGER_S = 0.1  # how long a verdict waits for others to share its transaction (see _batches)
CLOSE_WAIT_S = 10.0  # at shutdown, how long the recorder may take to answer what it was sent


def encode_verdict(v, seq: int, now: datetime) -> bytes:
    """One protocol line for verdict ``v`` (without the message text)."""
    sc = v.scan
    scan = [list(sc.attachment), list(sc.off_platform), list(sc.masked)] if sc is not None else None
    return orjson.dumps({
        "v": [v.conversation_id, v.sender_id, v.sender_role, v.peer_id, v.tier, v.level, float(v.score),
              list(v.signals), scan],
        "seq": seq, "now": now.isoformat(),
    }) + b"\n"


def decode_verdict(job: dict):
    from miaohui.supervision.monitor import Verdict

    conv, sender, role, peer, tier, level, score, signals, scan = job["v"]
    sc = Scan("", *(tuple(x) for x in scan)) if scan is not None else None
    v = Verdict(conv, sender, role, peer, "", sc, tier, int(level), float(score), tuple(signals))
    return v, int(job["seq"]), datetime.fromisoformat(job["now"])


class _At:
    """The server's clock as it was when the message was assessed."""

    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


class _Collect:
    """A broker that keeps what is published, for the answer line."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, str]] = []

    def publish_nowait(self, topic: str, data: str) -> None:
        self.frames.append((topic, data))


def main() -> None:
    """``python -m miaohui.supervision.recorder`` (started by :class:`RecorderProcess`)."""
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by accident goes to stderr, never into the protocol
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s recorder: %(message)s")
    from miaohui.config import Settings
    from miaohui.core.crypto import KeyRing
    from miaohui.core.db import make_sessionmaker
    from miaohui.supervision import service

    batches = _batches(sys.stdin.fileno())
    first = next(batches, [])
    if not first:
        return
    settings = Settings.model_validate_json(first[0])
    loop = asyncio.new_event_loop()
    engine = _engine(settings.resolved_database_url)
    ctx = SimpleNamespace(settings=settings, clock=None, keyring=KeyRing(settings.effective_message_keys),
                          sessionmaker=make_sessionmaker(engine), broker=None)

    def record(lines: list[bytes]) -> None:
        out = ctx.broker = _Collect()
        jobs = []
        for line in lines:
            try:
                jobs.append(decode_verdict(orjson.loads(line)))
            except Exception:
                log.exception("bad line from the server")
        try:
            if jobs:
                ctx.clock = _At(jobs[-1][2])
                loop.run_until_complete(service.observe_many(ctx, [(v, seq) for v, seq, _ in jobs]))
        except Exception:  # one bad case must not sink the others: record them one by one
            out.frames.clear()
            for v, seq, now in jobs:
                ctx.clock = _At(now)
                try:
                    loop.run_until_complete(service.observe(ctx, v, seq))
                except Exception:
                    log.exception("recording a risk case failed (conversation %s)", v.conversation_id)
        proto.write(orjson.dumps({"n": len(lines), "frames": out.frames}) + b"\n")
        proto.flush()

    try:
        if first[1:]:
            record(first[1:])
        for lines in batches:
            record(lines)
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()


def _batches(fd: int, most: int = MAX_BATCH, linger: float = LINGER_S):
    """Lines from ``fd``, as lists: whatever arrives within ``linger`` of the
    first line (and whatever queued up while the last batch was being
    written) goes in one transaction.  A transaction's fixed cost (its
    statements, the commit, the supervisors' summaries) is most of a
    record's: at 2,000 seeker messages a second one verdict in ~60 is
    recorded, and one transaction each took ~15 % of a core; a tenth of a
    second's wait — for the supervisors' queue, not for the listener's
    guidance or the seeker's hotline card, which never wait for a record —
    puts several in one."""
    buf = b""
    eof = False
    while not eof:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            eof = True
        elif linger > 0 and chunk.count(b"\n") < most:  # a backlog fills a batch without waiting
            time.sleep(linger)
        buf += chunk
        while not eof and select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                eof = True
            buf += chunk
        *lines, buf = buf.split(b"\n")
        lines = [x for x in lines if x.strip()]
        for i in range(0, len(lines), most):
            yield lines[i : i + most]


def _engine(url: str):
    """The recorder's engine.  On SQLite, aiosqlite's calls run inline instead
    of on its worker thread: this process does nothing but record, so the
    thread only added a round trip per call (about 40 per new case) — and a
    transaction holds SQLite's one write lock, which the server's message
    writer is waiting for, until its last round trip is done.  Inline, a new
    case costs about 4 ms of CPU instead of 11 (docs/performance.md)."""
    from miaohui.core.db import make_engine

    if not url.startswith("sqlite"):
        return make_engine(url)
    import sqlite3
    from functools import partial

    import aiosqlite
    from sqlalchemy import event
    from sqlalchemy.engine import make_url

    path = make_url(url).database

    class _Inline(aiosqlite.Connection):
        async def _execute(self, fn, *args, **kwargs):
            if not self._running or not self._connection:
                raise ValueError("Connection closed")
            return fn(*args, **kwargs)

    async def connect():
        conn = _Inline(partial(sqlite3.connect, path, timeout=30, check_same_thread=False), 64)
        conn._thread.daemon = True  # it only opens and closes the connection
        return await conn

    engine = make_engine(url, async_creator=connect)

    @event.listens_for(engine.sync_engine, "connect")
    def _normal(dbapi_conn, _record) -> None:
        # After the engine's own pragmas (synchronous=FULL): a case commit
        # appends to the WAL without its own fsync (≈4 ms here, all of it
        # holding the write lock the message writer waits for).  The WAL is
        # one sequential file, so the message writer's next commit — within
        # milliseconds while anyone is chatting — fsyncs these pages with its
        # own; a power cut in between loses at most those last case updates,
        # never a message (their texts are the writer's, always FULL).
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return engine


class RecorderProcess:
    """The server's end: ``submit`` never blocks (the line goes to the pipe's
    transport buffer); answers are published as they come.  If the child is
    gone, ``submit`` returns False and the caller records in-process; verdicts
    that were sent but never answered are handed to ``fallback`` (awaitable
    ``fallback(v, seq, now)``) so no case is lost."""

    def __init__(self, settings, broker, fallback) -> None:
        self.settings = settings
        self.broker = broker
        self.fallback = fallback
        self.proc: asyncio.subprocess.Process | None = None
        self._pending: deque[tuple] = deque()
        self._reader: asyncio.Task | None = None
        self._starting: asyncio.Task | None = None
        self.dead = False
        self.recorded = 0

    async def start(self) -> None:
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "miaohui.supervision.recorder",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=LINE_LIMIT)
            self.proc.stdin.write(self.settings.model_dump_json().encode() + b"\n")
            self._reader = asyncio.get_running_loop().create_task(self._read(), name="risk-case-recorder")
        except Exception:
            log.exception("could not start the risk-case recorder process; recording in-process")
            self.dead = True

    def submit(self, v, seq: int, now: datetime) -> bool:
        if self.dead or self.proc is None or self.proc.stdin.is_closing():
            return False
        self._pending.append((v, seq, now))
        self.proc.stdin.write(encode_verdict(v, seq, now))
        return True

    async def _read(self) -> None:
        assert self.proc is not None
        try:
            async for line in self.proc.stdout:
                try:
                    answer = orjson.loads(line)
                    for _ in range(answer["n"]):
                        self._pending.popleft()
                    self.recorded += answer["n"]
                    for topic, data in answer["frames"]:
                        self.broker.publish_nowait(topic, data)
                except Exception:
                    log.exception("bad answer from the risk-case recorder")
        except Exception:
            log.exception("reading the risk-case recorder failed")
        finally:
            self.dead = True
            lost, self._pending = list(self._pending), deque()
            if lost:
                log.error("risk-case recorder ended with %d cases unanswered; recording them in-process", len(lost))
            for v, seq, now in lost:
                with contextlib.suppress(Exception):
                    await self.fallback(v, seq, now)

    async def close(self) -> None:
        """Let the recorder answer everything sent, then end it."""
        if self._starting is not None:
            await self._starting
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            self.proc.stdin.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), CLOSE_WAIT_S)
            except TimeoutError:
                self.proc.kill()
                await self._reader
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), 5)
        self.proc = None


if __name__ == "__main__":
    main()
