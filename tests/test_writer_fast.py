"""The SQLite writer's one-statement batches (``MessageWriter._commit_fast``).

The counters come from the writer's memory, so everything that could make
that memory wrong is tried here against a real database file: another
process writing to the same conversation, an order starting, a deleted
conversation, a retry of a stored message, the write lock held elsewhere.
And a long random script of batches must leave exactly the same rows,
results and events as the ordinary path (five statements between BEGIN
IMMEDIATE and COMMIT), which reads everything from the database."""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
import threading
import time
from datetime import UTC, datetime

from miaohui.chat import evidence
from miaohui.chat.writer import MessageWriter, PendingMessage, Receipt
from miaohui.clock import FakeClock
from miaohui.core.broker import LocalBroker
from miaohui.core.db import make_engine, new_id


def make_db(template, path, conversations: int = 4) -> list[tuple[str, str, str]]:
    """A copy of the seeded template with ``conversations`` more conversations
    between its seekers and listeners: ``(conversation, seeker, listener)``."""
    shutil.copy(template, path)
    db = sqlite3.connect(path)
    seekers = [r[0] for r in db.execute("SELECT id FROM users WHERE role = 'seeker' ORDER BY username")]
    listeners = [r[0] for r in db.execute("SELECT id FROM users WHERE role = 'listener' ORDER BY username")]
    now = datetime(2026, 1, 1, tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    out = []
    for i in range(conversations):
        cid, s, lst = new_id(), seekers[i % len(seekers)], listeners[i % len(listeners)]
        db.execute(
            "INSERT INTO conversations (id, kind, pair_key, last_seq, created_at, last_activity_at)"
            " VALUES (?, 'listener', ?, 0, ?, ?)",
            (cid, f"test:{cid}", now, now),
        )
        for uid, role in ((s, "seeker"), (lst, "listener")):
            db.execute(
                "INSERT INTO participants (conversation_id, user_id, role, last_delivered_seq, last_read_seq,"
                " joined_at) VALUES (?, ?, ?, 0, 0, ?)",
                (cid, uid, role, now),
            )
        out.append((cid, s, lst))
    db.commit()
    db.close()
    return out


def msg(cid: str, sender: str, role: str, client_id: str, body: str = "今晚又睡不着") -> PendingMessage:
    return PendingMessage(cid, sender, role, client_id, "k1", b"ct:" + body.encode(), body, ("peer",))


class Runner:
    """A writer on its own event loop in a thread, like the server's."""

    def __init__(self, path, clock, one_statement: bool = True) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.writer = MessageWriter(make_engine(f"sqlite+aiosqlite:///{path}"), clock, LocalBroker())
        self.writer.one_statement = one_statement
        self.call(self.writer.start())

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def commit(self, msgs: list, receipts: list = ()):
        """One batch, as the writer's task would commit it: (results, events)."""
        return self.call(self.writer._commit(list(msgs), list(receipts)))

    def close(self) -> None:
        self.call(self.writer.stop())
        self.call(self.writer.engine.dispose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def snapshot(path) -> dict:
    db = sqlite3.connect(path)
    try:
        return {
            "messages": db.execute(
                "SELECT conversation_id, seq, sender_id, client_id, key_id, body_ct, chain, created_at"
                " FROM messages ORDER BY conversation_id, seq"
            ).fetchall(),
            "conversations": db.execute(
                "SELECT id, last_seq, chain_head, last_activity_at, active_order_id, seeker_sent_seq,"
                " listener_sent_seq FROM conversations ORDER BY id"
            ).fetchall(),
            "participants": db.execute(
                "SELECT conversation_id, user_id, last_delivered_seq, last_read_seq FROM participants"
                " ORDER BY conversation_id, user_id"
            ).fetchall(),
        }
    finally:
        db.close()


def script(convs, seed: int, batches: int = 60):
    """Random batches: messages from either side (a few retries of stored
    ones and duplicates within a batch), receipts (some beyond the last
    sequence number), now and then a conversation that does not exist."""
    rng = random.Random(seed)
    sent: list[tuple[str, str, str, str]] = []
    out = []
    for b in range(batches):
        msgs, receipts = [], []
        for _ in range(rng.randint(0, 7)):
            cid, s, lst = rng.choice(convs)
            sender, role = rng.choice(((s, "seeker"), (lst, "listener")))
            roll = rng.random()
            if sent and roll < 0.08:
                msgs.append(msg(*rng.choice(sent)))  # a retry of a stored message
            elif msgs and roll < 0.14:
                m = rng.choice(msgs)
                msgs.append(msg(m.conversation_id, m.sender_id, m.sender_role, m.client_id))  # twice in one batch
            elif roll < 0.17:
                msgs.append(msg("gone" + new_id()[:8], sender, role, f"c{b}-{len(msgs)}"))
            else:
                msgs.append(msg(cid, sender, role, f"c{b}-{len(msgs)}-{rng.getrandbits(32)}"))
        for _ in range(rng.choice((0, 0, 1, 3))):
            cid, s, lst = rng.choice(convs)
            top = rng.randint(0, 12)
            receipts.append(Receipt(cid, rng.choice((s, lst)), rng.randint(0, top), rng.randint(0, top)))
        sent += [(m.conversation_id, m.sender_id, m.sender_role, m.client_id) for m in msgs
                 if not m.conversation_id.startswith("gone")]
        out.append((msgs, receipts))
    return out


def stored_before(steps, batch) -> set[str]:
    """Client ids of messages stored by the batches before ``batch``."""
    out: set[str] = set()
    for msgs, _ in steps:
        if msgs is batch:
            return out
        out |= {m.client_id for m in msgs if not m.conversation_id.startswith("gone")}
    return out


def run_script(path, steps, one_statement: bool):
    clock = FakeClock()
    r = Runner(path, clock, one_statement)
    results = []
    try:
        for msgs, receipts in steps:
            clock.advance(seconds=1.5)
            fresh = [PendingMessage(m.conversation_id, m.sender_id, m.sender_role, m.client_id, m.key_id, m.body_ct,
                                    m.body, m.recipients) for m in msgs]
            for m in fresh:
                m.future = asyncio.run_coroutine_threadsafe(_future(), r.loop).result()
            res, events = r.commit(fresh, receipts)
            stored = {i: (s.seq, s.created_at, s.duplicate) for i, s in res.stored.items()}
            gone = [i for i, m in enumerate(fresh) if m.future.done() and isinstance(m.future.exception(), LookupError)]
            results.append((stored, gone, events, [(c.conversation_id, c.seq) for c in res.contracted]))
        return results, r.writer.counters()
    finally:
        r.close()


async def _future():
    return asyncio.get_running_loop().create_future()


def test_one_statement_batches_leave_what_the_ordinary_path_leaves(sqlite_template, tmp_path):
    a, b = tmp_path / "fast.db", tmp_path / "ordinary.db"
    convs = make_db(sqlite_template, a)
    shutil.copy(a, b)
    steps = script(convs, seed=7)
    fast, fast_counts = run_script(a, steps, one_statement=True)
    ordinary, ordinary_counts = run_script(b, steps, one_statement=False)
    assert fast == ordinary  # every ack (seq, time, duplicate?), every gone, every event, in order
    assert snapshot(a) == snapshot(b)  # rows, counters, chain heads, watermarks
    assert ordinary_counts["one_statement"] == 0
    # Most batches took one statement; one with a retry of a stored message cannot.
    with_retry = sum(1 for msgs, _ in steps if any(m.client_id in stored_before(steps, msgs) for m in msgs))
    assert fast_counts["one_statement"] >= len(steps) // 2
    assert fast_counts["fallbacks"] == with_retry > 0
    # The chain over every conversation still verifies.
    db = sqlite3.connect(a)
    for cid, *_ in convs:
        rows = db.execute(
            "SELECT seq, sender_id, created_at, body_ct, chain FROM messages WHERE conversation_id = ? ORDER BY seq",
            (cid,),
        ).fetchall()
        ok, head, bad = evidence.verify(
            [(s, u, datetime.fromisoformat(t).replace(tzinfo=UTC), ct[3:].decode(), ch) for s, u, t, ct, ch in rows]
        )
        assert ok and bad is None
        assert db.execute("SELECT chain_head FROM conversations WHERE id = ?", (cid,)).fetchone()[0] == (
            head if rows else None
        )
    db.close()


def test_another_process_writing_to_the_conversation_is_caught(sqlite_template, tmp_path):
    """Two processes on one database file: the second one's message moves
    the counter behind the first writer's back.  The first writer's next
    statement fails inside its transaction, writes nothing, and the batch
    takes the ordinary path: the next sequence number, the chain continued
    from the other process's head."""
    path = tmp_path / "two.db"
    (cid, s, lst), *_ = make_db(sqlite_template, path)
    clock = FakeClock()
    one, two = Runner(path, clock), Runner(path, clock)
    try:
        res, _ = one.commit([msg(cid, s, "seeker", "a1")])
        assert res.stored[0].seq == 1 and one.writer.counters()["one_statement"] == 1
        res, _ = two.commit([msg(cid, lst, "listener", "b1"), msg(cid, lst, "listener", "b2")])
        assert [res.stored[i].seq for i in (0, 1)] == [2, 3]
        res, _ = one.commit([msg(cid, s, "seeker", "a2")])
        assert res.stored[0].seq == 4
        assert one.writer.counters()["fallbacks"] == 1
        res, _ = one.commit([msg(cid, s, "seeker", "a3")])  # memory is right again
        assert res.stored[0].seq == 5 and one.writer.counters()["one_statement"] == 2
    finally:
        one.close()
        two.close()
    db = sqlite3.connect(path)
    rows = db.execute(
        "SELECT seq, sender_id, created_at, body_ct, chain FROM messages WHERE conversation_id = ? ORDER BY seq", (cid,)
    ).fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    ok, head, _ = evidence.verify(
        [(q, u, datetime.fromisoformat(t).replace(tzinfo=UTC), ct[3:].decode(), ch) for q, u, t, ct, ch in rows]
    )
    assert ok and db.execute("SELECT chain_head FROM conversations WHERE id = ?", (cid,)).fetchone()[0] == head
    db.close()


def test_an_order_that_starts_is_caught(sqlite_template, tmp_path):
    """The order running in a conversation is checked with the counter: a
    message right after an order starts is handed to the SLA hook."""
    path = tmp_path / "order.db"
    (cid, s, lst), *_ = make_db(sqlite_template, path)
    r = Runner(path, FakeClock())
    try:
        res, _ = r.commit([msg(cid, s, "seeker", "x1")])
        assert res.contracted == []
        db = sqlite3.connect(path)
        db.execute("UPDATE conversations SET active_order_id = 'order-1' WHERE id = ?", (cid,))
        db.commit()
        res, _ = r.commit([msg(cid, lst, "listener", "x2")])
        assert [(c.order_id, c.seq) for c in res.contracted] == [("order-1", 2)]
        assert r.writer.counters()["fallbacks"] == 1
        res, _ = r.commit([msg(cid, s, "seeker", "x3")])
        assert [(c.order_id, c.seq) for c in res.contracted] == [("order-1", 3)]
        db.execute("UPDATE conversations SET active_order_id = NULL WHERE id = ?", (cid,))
        db.commit()
        db.close()
        res, _ = r.commit([msg(cid, s, "seeker", "x4")])
        assert res.contracted == [] and res.stored[0].seq == 4
        assert r.writer.counters()["fallbacks"] == 2
    finally:
        r.close()


def test_a_deleted_conversation_is_caught(sqlite_template, tmp_path):
    path = tmp_path / "gone.db"
    (cid, s, _), (other, s2, _) = make_db(sqlite_template, path, 2)
    r = Runner(path, FakeClock())
    try:
        r.commit([msg(cid, s, "seeker", "g1"), msg(other, s2, "seeker", "h1")])
        db = sqlite3.connect(path)
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("DELETE FROM conversations WHERE id = ?", (cid,))
        db.commit()
        db.close()
        m, keep = msg(cid, s, "seeker", "g2"), msg(other, s2, "seeker", "h2")
        for x in (m, keep):
            x.future = asyncio.run_coroutine_threadsafe(_future(), r.loop).result()
        res, _ = r.commit([m, keep])
        assert isinstance(m.future.exception(), LookupError)
        assert res.stored[1].seq == 2
    finally:
        r.close()
    assert sqlite3.connect(path).execute("SELECT count(*) FROM messages WHERE conversation_id = ?", (cid,)).fetchone()[
        0
    ] == 0


def test_a_retry_of_a_stored_message_gets_its_sequence_number(sqlite_template, tmp_path):
    path = tmp_path / "retry.db"
    (cid, s, lst), *_ = make_db(sqlite_template, path)
    r = Runner(path, FakeClock())
    try:
        first, _ = r.commit([msg(cid, s, "seeker", "r1")])
        res, _ = r.commit([msg(cid, lst, "listener", "r2"), msg(cid, s, "seeker", "r1")])
        assert (res.stored[0].seq, res.stored[0].duplicate) == (2, False)
        assert (res.stored[1].seq, res.stored[1].duplicate) == (1, True)
        assert res.stored[1].created_at == first.stored[0].created_at
        assert r.writer.counters()["fallbacks"] == 1
    finally:
        r.close()
    assert sqlite3.connect(path).execute("SELECT count(*) FROM messages WHERE conversation_id = ?", (cid,)).fetchone()[
        0
    ] == 2


def test_the_write_lock_held_elsewhere_is_polled_for_on_the_loop(sqlite_template, tmp_path):
    """A risk-case record holding SQLite's write lock: the one statement is
    tried again every ~millisecond, awaiting in between, so the loop goes on
    (a ticker keeps ticking) and the batch commits as soon as the lock is
    free, still as one statement."""
    path = tmp_path / "lock.db"
    (cid, s, _), *_ = make_db(sqlite_template, path)
    r = Runner(path, FakeClock())
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    ticks = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    try:
        r.commit([msg(cid, s, "seeker", "l1")])
        tick = asyncio.run_coroutine_threadsafe(_start(ticker()), r.loop).result()
        holder.execute("BEGIN IMMEDIATE")
        t0 = time.monotonic()
        threading.Timer(0.1, lambda: holder.execute("COMMIT")).start()
        res, _ = r.commit([msg(cid, s, "seeker", "l2")])
        waited = time.monotonic() - t0
        r.loop.call_soon_threadsafe(tick.cancel)
        assert res.stored[0].seq == 2 and 0.1 <= waited < 1.0
        assert sum(1 for t in ticks if t0 < t < t0 + 0.1) >= 5  # the loop was not blocked
        c = r.writer.counters()
        assert (c["one_statement"], c["fallbacks"], c["lock_waits"]) == (2, 0, 1)
        assert 50 <= c["lock_wait_ms"] <= waited * 1000 + 1
    finally:
        r.close()
        holder.close()


def test_a_lock_held_for_long_goes_to_the_writer_thread(sqlite_template, tmp_path, monkeypatch):
    """Past FAST_LOCK_WAIT_S the batch takes the ordinary path, which waits
    for the lock on the writer thread; nothing is lost."""
    from miaohui.chat import writer as w

    monkeypatch.setattr(w, "FAST_LOCK_WAIT_S", 0.05)
    path = tmp_path / "lock2.db"
    (cid, s, _), *_ = make_db(sqlite_template, path)
    r = Runner(path, FakeClock())
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        r.commit([msg(cid, s, "seeker", "m1")])
        holder.execute("BEGIN IMMEDIATE")
        t0 = time.monotonic()
        threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
        res, _ = r.commit([msg(cid, s, "seeker", "m2")])
        assert res.stored[0].seq == 2 and time.monotonic() - t0 >= 0.3
        c = r.writer.counters()
        assert (c["one_statement"], c["fallbacks"], c["lock_waits"]) == (1, 1, 1)
    finally:
        r.close()
        holder.close()


async def _start(coro):
    return asyncio.get_running_loop().create_task(coro)


def test_batch_time_texts_are_the_strftime_forms():
    """The writer stamps each batch by ``isoformat`` (half the time of
    ``strftime``); the texts must stay what the chain and SQLAlchemy read."""
    from datetime import timedelta, timezone

    from hypothesis import given
    from hypothesis import strategies as st

    from miaohui.chat.writer import SqliteStore

    @given(st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9998, 12, 31)),
           st.integers(min_value=-14 * 60, max_value=14 * 60))
    def check(naive: datetime, offset_min: int) -> None:
        at = naive.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
        utc = at.astimezone(UTC)
        assert evidence.canonical_time(at) == utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert SqliteStore._ts(at) == utc.strftime("%Y-%m-%d %H:%M:%S.%f")

    check()
    whole = datetime(2026, 11, 24, 2, 0, 0, tzinfo=UTC)  # no microseconds: isoformat would drop them unasked
    assert evidence.canonical_time(whole) == "2026-11-24T02:00:00.000000Z"


def test_the_writer_inbox_keeps_order_and_wakes_its_one_consumer():
    from miaohui.chat.writer import _Inbox

    async def run() -> list:
        q = _Inbox()
        got: list = []

        async def consumer() -> None:
            while (item := await q.get()) is not None:
                got.append(item)

        task = asyncio.create_task(consumer())
        await asyncio.sleep(0)  # the consumer waits on an empty inbox
        for i in range(3):
            q.put_nowait(i)
        assert q.qsize() == 3 and not q.empty()
        assert q.get_nowait() == 0
        await asyncio.sleep(0)
        assert got == [1, 2] and q.empty()
        q.put_nowait(3)
        q.put_nowait(None)
        await asyncio.wait_for(task, 1)
        waiting = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        waiting.cancel()  # a cancelled get leaves no waiter behind
        await asyncio.gather(waiting, return_exceptions=True)
        assert q._waiter is None
        q.put_nowait("x")
        assert await q.get() == "x"
        return got

    assert asyncio.run(run()) == [1, 2, 3]


def test_submit_makes_its_future_without_asking_for_the_running_loop(sqlite_template, tmp_path, monkeypatch):
    """On CPython 3.11 ``asyncio.get_running_loop()`` is a ``getpid()``
    system call; ``submit`` runs once per message, so it uses the loop the
    writer started on.  The message is still stored and acknowledged."""
    path = tmp_path / "submit.db"
    (cid, s, _lst), *_ = make_db(sqlite_template, path)
    r = Runner(path, FakeClock())
    try:
        import miaohui.chat.writer as w

        calls = []
        real = asyncio.get_running_loop

        def counting():
            calls.append(1)
            return real()

        async def send():
            monkeypatch.setattr(w.asyncio, "get_running_loop", counting)
            try:
                fut = r.writer.submit(msg(cid, s, "seeker", "sub-1"))
            finally:
                monkeypatch.setattr(w.asyncio, "get_running_loop", real)
            assert fut.get_loop() is r.loop
            return await fut

        stored = r.call(send())
        assert calls == []
        assert (stored.seq, stored.duplicate) == (1, False)
    finally:
        r.close()
