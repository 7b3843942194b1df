"""Group commit: the only path by which chat messages reach the database.

Every sender (WebSocket frame or REST call) hands the writer a message and
waits on a future.  One task per process takes whatever has queued up while
the previous batch was committing and writes it in a single transaction:

1. drop retries whose ``(conversation, sender, client_id)`` already exists —
   they are answered with the stored sequence number (idempotency);
2. one conditional ``UPDATE conversations SET last_seq = last_seq + n`` per
   batch hands out sequence numbers (row locks on PostgreSQL, the database
   write lock on SQLite), so concurrent processes never collide;
3. one multi-row INSERT of the messages; read/delivery watermarks coalesced
   to one UPDATE per participant;
4. COMMIT — and only then are futures resolved (acks) and events published.

So nothing is acknowledged or delivered before it is durable, and at high
rates a single fsync covers hundreds of messages.  If a batch fails (say a
retry of the same client id raced in through another process), it is split
and each message is committed on its own, so one bad row never sinks others.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from sqlalchemy import bindparam, case, select
from sqlalchemy.exc import IntegrityError

from miaohui.chat import evidence
from miaohui.chat.models import SENT_SIDE, Conversation, Message, Participant
from miaohui.clock import Clock
from miaohui.core.db import make_sync_engine

log = logging.getLogger("miaohui.chat.writer")

MAX_BATCH = 2000
# PostgreSQL: when fewer than LINGER_BELOW items are waiting, linger so the
# batch can grow: a transaction has a fixed cost (round trips, fsync) that tiny
# batches pay again and again.  The linger adapts: short while batches are
# small (light load: latency matters most), longer once batches grow (heavy
# load: CPU per message matters most).  SQLite batches commit on the loop
# itself (see _commit) and take whatever queued while the loop was busy with
# the previous one, with no linger: a linger of 1–4 ms cost p99 more than the
# bigger batches saved (docs/performance.md).
LINGER_LIGHT_S = 0.001
LINGER_BUSY_S = 0.004
BUSY_BATCH = 8
LINGER_BELOW = 64
CHECKPOINT_EVERY_S = 1.0  # SQLite: how often the WAL is copied into the database (see _checkpoint_loop)
# SQLite's one-statement batches (see MessageWriter._commit_fast):
FAST_MAX_ROWS = 2048  # more rows than this take the ordinary path (SQLite's 32,766-variable limit)
CONV_CACHE_MAX = 65_536  # conversations whose counters the writer remembers
FAST_LOCK_WAIT_S = 1.0  # how long a one-statement batch polls for a write lock held elsewhere


@dataclass(slots=True)
class PendingMessage:
    conversation_id: str
    sender_id: str
    sender_role: str
    client_id: str
    key_id: str
    body_ct: bytes
    body: str
    recipients: tuple[str, ...]
    origin: str = ""
    future: asyncio.Future | None = None


@dataclass(slots=True)
class Receipt:
    conversation_id: str
    user_id: str
    delivered_seq: int = 0
    read_seq: int = 0


@dataclass(slots=True)
class Stored:
    seq: int
    created_at: datetime
    duplicate: bool = False
    at: str = ""  # created_at.isoformat(), made once for the whole batch

    def iso(self) -> str:
        """``created_at`` in ISO form.  A tz-aware ``isoformat()`` costs ~1–2 µs,
        and every message of a batch has the same time: the ack of each
        takes the batch's string instead of making its own."""
        return self.at or self.created_at.isoformat()


@dataclass(slots=True)
class Committed:
    """A durable message in a conversation that has a paid order running:
    what the SLA hook needs (no body)."""

    conversation_id: str
    order_id: str
    seq: int
    sender_id: str
    sender_role: str
    created_at: datetime


@dataclass
class _Result:
    stored: dict[int, Stored] = field(default_factory=dict)  # index in batch -> result
    gone: list[int] = field(default_factory=list)  # conversations that no longer exist
    contracted: list[Committed] = field(default_factory=list)  # messages under an order


def message_event(m: PendingMessage, seq: int, created_at: str) -> str:
    """The wire form of a message; ``origin`` first so a connection can skip
    its own echo with a prefix check instead of parsing JSON.  ``created_at``
    in ISO form, made once for the batch."""
    return orjson.dumps(
        {
            "origin": m.origin,
            "type": "message",
            "conversation_id": m.conversation_id,
            "seq": seq,
            "client_id": m.client_id,
            "sender_id": m.sender_id,
            "sender_role": m.sender_role,
            "body": m.body,
            "created_at": created_at,
        }
    ).decode()


class _Inbox:
    """What the writer task takes its batches from: ``asyncio.Queue``'s
    methods that it uses, for one consumer, on a deque.  Every message and
    receipt passes through here on the event loop; ``asyncio.Queue``'s
    bookkeeping (unfinished-task count, an ``Event`` cleared on every put, a
    getter deque) cost 0.6–1 µs an item against ~0.3 here."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque = deque()
        self._waiter: asyncio.Future | None = None

    def put_nowait(self, item) -> None:
        self._items.append(item)
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    async def get(self):
        items = self._items
        while not items:
            self._waiter = w = asyncio.get_running_loop().create_future()
            try:
                await w
            finally:
                self._waiter = None
        return items.popleft()

    def get_nowait(self):
        return self._items.popleft()

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items


class MessageWriter:
    one_statement = True  # SQLite: try the one-statement batch first (see _commit_fast)

    def __init__(self, engine, clock: Clock, broker) -> None:
        self.engine = engine
        self.clock = clock
        self.broker = broker
        self.is_pg = engine.dialect.name == "postgresql"
        self._sync_engine = None
        self._sqlite = None  # the writer thread's own DBAPI connection
        self._checkpointer: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        if engine.dialect.name == "sqlite":
            self._sync_engine = make_sync_engine(engine.url.set(drivername="sqlite+pysqlite"))
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="message-writer")
        self._q = _Inbox()
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # set by start()
        # Called on the loop after COMMIT with the batch's messages under an
        # order (the SLA hook); must not block.
        self.on_contracted: list = []
        self.batches = 0
        self.messages = 0
        self._last_batch = 0
        self._catch_up = False  # set by the checkpoint thread: see _catch_up_checkpoint
        self.catch_ups = 0
        self.wal_resets = 0  # catch-ups after which the WAL held nothing uncopied
        # SQLite: each conversation's [last_seq, chain_head, active_order_id]
        # as of this writer's last commit (see _commit_fast).
        self._convs: dict[str, list] = {}
        self.fast_batches = 0
        self.fast_fallbacks = 0  # one-statement batches that failed and took the ordinary path
        self.lock_waits = 0  # one-statement batches that found the write lock held and polled for it
        self.lock_wait_s = 0.0  # … and how long they waited in all

    def counters(self) -> dict[str, int]:
        """How the batches went (``/healthz``; operators and the benchmark)."""
        return {"batches": self.batches, "messages": self.messages, "one_statement": self.fast_batches,
                "fallbacks": self.fast_fallbacks, "lock_waits": self.lock_waits,
                "lock_wait_ms": round(self.lock_wait_s * 1000), "wal_resets": self.wal_resets}

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="message-writer")
        if self._sync_engine is not None:
            self._stop_checkpoints = threading.Event()
            self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="wal-checkpoint", daemon=True)
            self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """PASSIVE checkpoints every second: they copy WAL pages into the
        database without blocking the writer.

        A checkpoint that runs beside a busy writer never catches up with it:
        the WAL is only written from its start again once everything in it has
        been copied, so under steady chat it grew without end (500–900 MB in
        a two-minute benchmark run), every batch appended to a growing file, and
        each fsync had to journal the new size as well.  So each round is two
        PASSIVE checkpoints here (the second copies what arrived during the
        first), then the writer copies the last few frames itself, between two
        batches (:meth:`_catch_up_checkpoint`); its next batch starts the WAL
        over (docs/performance.md, session 8)."""
        conn = self._sync_engine.raw_connection()
        try:
            while not self._stop_checkpoints.wait(CHECKPOINT_EVERY_S):
                try:
                    cur = conn.cursor()
                    cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self._catch_up = True  # read by the writer task; a plain flag, no hand-off
                except Exception:
                    log.exception("WAL checkpoint failed")
        finally:
            conn.close()

    def _catch_up_checkpoint(self) -> None:
        """On the writer's connection, between batches: copy the frames written
        since the checkpoint thread's last pass (a few milliseconds' worth), so
        the WAL holds nothing uncopied and the next batch writes it from the
        start.  It costs the loop that copy and the database's fsync, once a
        second.  PASSIVE never waits for a lock: a reader still on old frames
        just makes it copy less, and the WAL starts over on a later round."""
        self._catch_up = False
        cur = self._raw().cursor()
        try:
            _, frames, copied = cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.OperationalError:
            return
        finally:
            cur.close()
        self.catch_ups += 1
        if frames >= 0 and copied == frames:
            self.wal_resets += 1

    async def stop(self) -> None:
        """Finish what is queued (nothing accepted is dropped), then stop."""
        if self._task is None:
            return
        self._q.put_nowait(None)
        try:
            await asyncio.wait_for(self._task, 10)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
        self._task = self._loop = None
        if self._checkpointer is not None:
            self._stop_checkpoints.set()
            self._checkpointer.join(5)
            self._checkpointer = None
        if self._executor is not None:
            if self._sqlite is not None:
                self._executor.submit(self._sqlite.close).result()
                self._sqlite = None
            self._executor.shutdown(wait=True)
            self._sync_engine.dispose()

    def submit(self, msg: PendingMessage) -> asyncio.Future:
        # The writer's own loop, not get_running_loop(): on CPython 3.11 each
        # call of that is a getpid() system call (its check for a fork),
        # once per message here.
        msg.future = (self._loop or asyncio.get_running_loop()).create_future()
        self._q.put_nowait(msg)
        return msg.future

    def submit_receipt(self, r: Receipt) -> None:
        self._q.put_nowait(r)

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            item = await self._q.get()
            if item is not None and self._q.qsize() < LINGER_BELOW:
                if self._sync_engine is None:
                    await asyncio.sleep(LINGER_BUSY_S if self._last_batch >= BUSY_BATCH else LINGER_LIGHT_S)
                else:
                    await asyncio.sleep(0)  # one loop turn: frames already read join this batch
            if self._catch_up and item is not None:
                self._catch_up_checkpoint()
            batch = []
            while True:
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
                if self._q.empty() or len(batch) >= MAX_BATCH:
                    break
                item = self._q.get_nowait()
            self._last_batch = len(batch)
            if batch:
                try:
                    await self._process(batch)
                except Exception:  # never let the writer die
                    log.exception("writer batch failed")
                    for it in batch:
                        if isinstance(it, PendingMessage) and not it.future.done():
                            it.future.set_exception(RuntimeError("store failed"))

    async def _process(self, batch: list) -> None:
        msgs = [x for x in batch if isinstance(x, PendingMessage)]
        receipts = [x for x in batch if isinstance(x, Receipt)]
        try:
            results, events = await self._commit(msgs, receipts)
        except Exception as exc:
            if len(batch) > 1:
                log.warning("batch of %d failed (%s); committing one by one", len(batch), type(exc).__name__)
                for item in batch:
                    await self._process([item])
                return
            if not (msgs and isinstance(exc, IntegrityError)):
                raise
            # A retry raced in through another process: answer with the stored row.
            results, events = await self._commit(msgs, [])
        self.batches += 1
        self.messages += len(results.stored)
        # Durable: now acknowledge and fan out, in sequence order.
        for topic, data in events:
            self.broker.publish_nowait(topic, data)
        if results.contracted:
            for hook in self.on_contracted:
                try:
                    hook(results.contracted)
                except Exception:
                    log.exception("contract hook failed")
        for i, m in enumerate(msgs):
            st = results.stored.get(i)
            if st is not None and not m.future.done():
                m.future.set_result(st)

    async def _commit(self, msgs: list[PendingMessage], receipts: list[Receipt]):
        now = self.clock.now()
        if self._sync_engine is not None:
            out = await self._commit_fast(msgs, receipts, now) if self.one_statement else None
            if out is None:
                # SQLite's ordinary path: the batch on the event loop when the
                # write lock is free (nearly always), with no thread hand-offs.
                # On the writer thread every statement gave the GIL back and
                # waited up to a switch interval (5 ms) to get it again from a
                # busy loop: p99 delivery 9.2 → 6.9 ms at 1,000 msg/s, 56 → 31
                # ms at 3,000 (docs/performance.md).  When someone else holds
                # the lock (a risk-case record, an order, a REST write of this
                # very loop), the batch waits for it on the writer thread
                # instead — the loop must never wait for a lock it may itself
                # be needed to release.
                out = self._commit_sqlite(msgs, receipts, now, False)
                if out is None:
                    out = await asyncio.get_running_loop().run_in_executor(
                        self._executor, self._commit_sqlite, msgs, receipts, now, True
                    )
                res, events, seen = out
                self._remember(seen)
            else:
                res, events = out
        else:
            async with self.engine.begin() as conn:
                res, events = await conn.run_sync(
                    lambda sync_conn: commit_batch(CoreStore(sync_conn, self.is_pg), msgs, receipts, now)
                )
        for i in res.gone:
            if not msgs[i].future.done():
                msgs[i].future.set_exception(LookupError("conversation gone"))
        return res, events

    async def _commit_fast(self, msgs, receipts, now):
        """The batch as ONE SQLite statement in autocommit mode, or ``None``
        (nothing written) when the ordinary path must take it.

        The ordinary path is five statements between BEGIN IMMEDIATE and
        COMMIT, each a round trip between Python and SQLite, and it reads
        before it writes: retries already stored, then the counters.  Here
        the counters come from memory (``self._convs``, what this writer
        committed last), :func:`commit_batch` plans the batch against them,
        and a single ``INSERT`` into the connection's TEMP view
        ``chat_batch`` hands every row to triggers (:data:`FAST_SCHEMA`)
        that insert the messages, advance the counters and chain heads and
        the watermarks — and first check, row by row, that each
        conversation's counter and running order are what memory said.  So
        nothing is trusted that is not checked inside the transaction: a
        conversation another process wrote to, an order that started or
        ended, a deleted conversation make the statement fail as a whole,
        and a retry of a stored message fails the unique index on client
        ids.  Any failure writes nothing; the batch then takes the ordinary
        path, which reads everything again and refreshes memory.

        It runs on the loop, like the ordinary path: SQLite's own work is a
        third cheaper (no reads, one statement to bind and step), and the
        rest of the batch is the same.  On the writer thread the statement
        would leave the loop free during its fsync, but getting the GIL back
        from a busy loop cost more than that (docs/performance.md, session 9).
        When another connection holds the write lock the statement fails at
        once (``busy_timeout=0``) and is tried again every ~millisecond,
        awaiting in between, for up to :data:`FAST_LOCK_WAIT_S`; then the
        ordinary path waits for the lock on the writer thread.  The risk-case
        recorder takes the lock a few times a second: sending those batches
        to the thread, where every statement waited for the GIL behind the
        busy loop, set the p99 of everything else (docs/performance.md,
        session 9)."""
        raw = self._raw()
        store = FastStore(self._convs, raw)
        try:
            res, events = commit_batch(store, msgs, receipts, now)
        except sqlite3.Error:  # reading counters it did not know failed (locked schema, I/O)
            return None
        sql, params = store.statement()
        if sql is None:
            return None if store.params else (res, events)  # too big / nothing to write
        locked_at = 0.0
        while True:
            try:
                await self._step(raw, sql, params)
                if locked_at:
                    self.lock_wait_s += time.monotonic() - locked_at
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    self.fast_fallbacks += 1
                    return None
                # Another connection holds the write lock (a risk-case record,
                # an order, a REST write of this very loop): poll for it here,
                # awaiting between tries so the loop goes on — and can finish
                # that REST write.  Nothing was written and memory still
                # holds, so the same statement is tried again.
                now_m = time.monotonic()
                if not locked_at:
                    locked_at = now_m
                    self.lock_waits += 1
                elif now_m - locked_at > FAST_LOCK_WAIT_S:
                    self.fast_fallbacks += 1
                    return None  # the ordinary path waits on the writer thread
            except sqlite3.Error as exc:
                # Stale memory or a retry of a stored message (see above).
                if isinstance(exc, sqlite3.IntegrityError):
                    for cid in store.state:
                        self._convs.pop(cid, None)
                self.fast_fallbacks += 1
                return None
            await asyncio.sleep(LOCK_POLL_S)
        self._remember(store.state)
        self.fast_batches += 1
        return res, events

    async def _step(self, raw, sql: str, params) -> None:
        """Execute a one-statement batch, here on the loop (see
        :meth:`_commit_fast`).  A seam for the bench variant ``fastthread``,
        which runs :func:`_execute` on the writer's thread instead."""
        _execute(raw, sql, params)

    def _remember(self, state: dict[str, list]) -> None:
        convs = self._convs
        convs.update(state)
        if len(convs) > CONV_CACHE_MAX:
            for cid in list(convs)[: CONV_CACHE_MAX // 4]:  # the longest remembered
                del convs[cid]

    def _raw(self):
        raw = self._sqlite
        if raw is None:
            raw = self._sqlite = self._sync_engine.raw_connection()
            cur = raw.cursor()
            # Checkpoints run on their own thread (see _checkpoint_loop), not
            # inside a batch, where copying and fsyncing megabytes would stall
            # every message queued behind it.
            cur.execute("PRAGMA wal_autocheckpoint=0")
            # Wait for the write lock ourselves (_begin_immediate), not with
            # SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20 … ms.
            cur.execute("PRAGMA busy_timeout=0")
            # No implicit BEGIN from the sqlite3 module: the ordinary path
            # says BEGIN IMMEDIATE itself, and a one-statement batch is its own
            # transaction (_commit_fast).
            raw.dbapi_connection.isolation_level = None
            cur.executescript(FAST_SCHEMA)
            cur.close()
        return raw

    def _commit_sqlite(self, msgs, receipts, now, wait: bool):
        """The batch in one SQLite transaction.  ``wait=False`` (on the loop):
        ``None``, nothing done, if another connection holds the write lock;
        ``wait=True`` (on the writer thread): wait for it.  The connection is
        used by one batch at a time, here or on the thread, never both.
        Returns ``(result, events, counters seen)``."""
        raw = self._raw()
        cur = raw.cursor()
        try:
            if wait:
                _begin_immediate(cur)  # take the write lock up front: no upgrade deadlocks
            elif not _try_begin_immediate(cur):
                return None
            try:
                store = SqliteStore(cur)
                res, events = commit_batch(store, msgs, receipts, now)
                raw.commit()
                return res, events, store.seen
            except BaseException:
                raw.rollback()
                raise
        finally:
            cur.close()


LOCK_POLL_S = 0.0003  # how often the writer retries a write lock someone else holds
LOCK_WAIT_S = 30.0


def _begin_immediate(cur) -> None:
    """BEGIN IMMEDIATE, retried every 0.3 ms while another connection (a risk
    case record, an order) holds SQLite's write lock.  SQLite's own busy
    handler backs off in steps of 1, 2, 5, 10, 15, 20, 25 … ms, so a lock held
    for 3 ms could cost a whole batch of messages 8 ms or more — and every
    message in it its p99 (docs/performance.md)."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while not _try_begin_immediate(cur):
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError("database is locked")
        time.sleep(LOCK_POLL_S)


def _try_begin_immediate(cur) -> bool:
    """BEGIN IMMEDIATE now, or ``False`` if another connection holds the lock."""
    try:
        cur.execute("BEGIN IMMEDIATE")
        return True
    except sqlite3.OperationalError as e:
        if "locked" not in str(e):
            raise
        return False


_NONE_SENT = (0, 0)  # set_heads: a conversation whose sides sent nothing in the batch


class CoreStore:
    """The writer's five statements through SQLAlchemy Core (PostgreSQL)."""

    def __init__(self, conn, lock_rows: bool) -> None:
        self.conn = conn
        self.lock_rows = lock_rows

    def existing(self, client_ids) -> list[tuple]:
        # ``client_id`` leads the unique index: one index probe per id.
        return list(
            self.conn.execute(
                select(Message.conversation_id, Message.sender_id, Message.client_id, Message.seq, Message.created_at)
                .where(Message.client_id.in_(client_ids))
            )
        )

    def bump_seqs(self, counts: dict[str, int], now: datetime) -> dict[str, tuple]:
        conv = Conversation.__table__
        ids = sorted(counts)
        if self.lock_rows:
            # Lock rows in a fixed order so concurrent writers never deadlock.
            self.conn.execute(select(conv.c.id).where(conv.c.id.in_(ids)).order_by(conv.c.id).with_for_update())
        self.conn.execute(
            conv.update()
            .where(conv.c.id == bindparam("cid"))
            .values(last_seq=conv.c.last_seq + bindparam("n"), last_activity_at=bindparam("at")),
            [{"cid": c, "n": counts[c], "at": now} for c in ids],
        )
        conv_rows = self.conn.execute(
            select(conv.c.id, conv.c.last_seq, conv.c.chain_head, conv.c.active_order_id).where(conv.c.id.in_(ids))
        )
        return {r[0]: (r[1], r[2], r[3]) for r in conv_rows}

    def last_seqs(self, ids) -> dict[str, int]:
        conv = Conversation.__table__
        return {r[0]: r[1] for r in self.conn.execute(select(conv.c.id, conv.c.last_seq).where(conv.c.id.in_(ids)))}

    def set_heads(self, heads: dict[str, bytes], sent: dict[str, list[int]]) -> None:
        conv = Conversation.__table__
        s, lst = conv.c.seeker_sent_seq, conv.c.listener_sent_seq
        params = []
        for c, h in heads.items():
            seeker_seq, listener_seq = sent.get(c, _NONE_SENT)
            params.append({"cid": c, "head": h, "s": seeker_seq, "l": listener_seq})
        self.conn.execute(
            conv.update().where(conv.c.id == bindparam("cid")).values(
                chain_head=bindparam("head"),
                seeker_sent_seq=case((s < bindparam("s"), bindparam("s")), else_=s),
                listener_sent_seq=case((lst < bindparam("l"), bindparam("l")), else_=lst),
            ),
            params,
        )

    def insert(self, rows: list[tuple], now: datetime) -> None:
        keys = ("conversation_id", "seq", "sender_id", "client_id", "key_id", "body_ct", "chain")
        self.conn.execute(Message.__table__.insert(),
                          [dict(zip(keys, r[:7], strict=True), created_at=now) for r in rows])

    def watermarks(self, rows: list[tuple[str, str, int, int]]) -> None:
        p = Participant.__table__
        self.conn.execute(
            p.update()
            .where(p.c.conversation_id == bindparam("cid"), p.c.user_id == bindparam("uid"))
            .values(
                last_delivered_seq=case(
                    (p.c.last_delivered_seq < bindparam("d"), bindparam("d")), else_=p.c.last_delivered_seq
                ),
                last_read_seq=case((p.c.last_read_seq < bindparam("r"), bindparam("r")), else_=p.c.last_read_seq),
            ),
            [{"cid": c, "uid": u, "d": d, "r": r} for c, u, d, r in rows],
        )


# Each conversation's counter, chain head and running order (both SQLite paths).
COUNTERS_SQL = "SELECT id, last_seq, chain_head, active_order_id FROM conversations WHERE id IN ({})"


def _select_in(cur, sql: str, values) -> list[tuple]:
    """``sql`` with its ``IN ({})`` filled for ``values``, in chunks that stay
    under SQLite's variable limit."""
    values = list(values)
    out: list[tuple] = []
    for i in range(0, len(values), 500):
        part = values[i : i + 500]
        out += cur.execute(sql.format(",".join("?" * len(part))), part).fetchall()
    return out


class SqliteStore:
    """The same five statements as plain SQL on the writer thread's sqlite3
    connection: no per-row type processing or statement cache look-ups, which
    were most of the writer's CPU (docs/performance.md).  Datetimes use
    SQLAlchemy's SQLite storage format so the ORM reads them back unchanged."""

    def __init__(self, cur) -> None:
        self.cur = cur
        self._bump: tuple[dict[str, int], str] = ({}, "")
        # Counters as this batch leaves them, for the writer's memory (_commit_fast).
        self.seen: dict[str, list] = {}

    @staticmethod
    def _ts(now: datetime) -> str:
        """SQLAlchemy's SQLite form, ``%Y-%m-%d %H:%M:%S.%f`` in UTC, by
        ``isoformat`` (half the time of ``strftime``; one a batch, on the loop)."""
        return now.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    def _in(self, sql: str, values) -> list[tuple]:
        return _select_in(self.cur, sql, values)

    def existing(self, client_ids) -> list[tuple]:
        rows = self._in(
            "SELECT conversation_id, sender_id, client_id, seq, created_at FROM messages WHERE client_id IN ({})",
            client_ids,
        )
        return [(a, b, c, d, datetime.fromisoformat(e).replace(tzinfo=UTC)) for a, b, c, d, e in rows]

    def bump_seqs(self, counts: dict[str, int], now: datetime) -> dict[str, tuple]:
        """Read the counters only: the batch holds SQLite's write lock (BEGIN
        IMMEDIATE), so nobody can move them before :meth:`set_heads` writes
        the bump together with the new chain heads — one UPDATE a
        conversation instead of two (each conversation found here has
        messages in the batch, so gets a head)."""
        rows = self._in(COUNTERS_SQL, counts)
        self._bump = (counts, self._ts(now))
        self.seen = {r[0]: [r[1] + counts[r[0]], r[2], r[3]] for r in rows}
        return {cid: tuple(st) for cid, st in self.seen.items()}

    def set_heads(self, heads: dict[str, bytes], sent: dict[str, list[int]]) -> None:
        counts, ts = self._bump
        for cid, h in heads.items():
            self.seen[cid][1] = h
        self.cur.executemany(
            "UPDATE conversations SET last_seq = last_seq + ?, last_activity_at = ?, chain_head = ?,"
            " seeker_sent_seq = max(seeker_sent_seq, ?), listener_sent_seq = max(listener_sent_seq, ?) WHERE id = ?",
            [(counts[c], ts, h, *sent.get(c, _NONE_SENT), c) for c, h in heads.items()],
        )

    def last_seqs(self, ids) -> dict[str, int]:
        return dict(self._in("SELECT id, last_seq FROM conversations WHERE id IN ({})", ids))

    def insert(self, rows: list[tuple], now: datetime) -> None:
        ts = self._ts(now)
        self.cur.executemany(
            "INSERT INTO messages (conversation_id, seq, sender_id, client_id, key_id, body_ct, chain, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(*r[:7], ts) for r in rows],
        )

    def watermarks(self, rows: list[tuple[str, str, int, int]]) -> None:
        self.cur.executemany(
            "UPDATE participants SET last_delivered_seq = max(last_delivered_seq, ?),"
            " last_read_seq = max(last_read_seq, ?) WHERE conversation_id = ? AND user_id = ?",
            [(d, r, c, u) for c, u, d, r in rows],
        )


# The one-statement batch (MessageWriter._commit_fast): a TEMP view on the
# writer's own connection, whose rows are handed to triggers.  ``kind`` 'm': a
# message (its conversation's counter must stand at ``seq`` - 1 and its order
# be ``order_id``, else the whole statement fails; ``side``, when the sender is
# the seeker or the listener side, moves that side's sent counter); 'v': a conversation's
# counter must stand at ``seq`` (receipts are clamped to it); 'w': a
# participant's watermarks move up to ``delivered_seq`` / ``read_seq``.
# Rows of any other kind (NULL: padding) do nothing.
FAST_SCHEMA = """
CREATE TEMP VIEW IF NOT EXISTS chat_batch (kind, conversation_id, seq, user_id, client_id, key_id, body_ct,
    chain, created_at, order_id, delivered_seq, read_seq, side)
    AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL;
CREATE TEMP TRIGGER IF NOT EXISTS chat_batch_message INSTEAD OF INSERT ON chat_batch WHEN NEW.kind = 'm'
BEGIN
    SELECT RAISE(ABORT, 'miaohui: conversation state changed') WHERE NOT EXISTS (
        SELECT 1 FROM conversations WHERE id = NEW.conversation_id AND last_seq = NEW.seq - 1
            AND active_order_id IS NEW.order_id);
    INSERT INTO messages (conversation_id, seq, sender_id, client_id, key_id, body_ct, chain, created_at)
        VALUES (NEW.conversation_id, NEW.seq, NEW.user_id, NEW.client_id, NEW.key_id, NEW.body_ct, NEW.chain,
                NEW.created_at);
    UPDATE conversations SET last_seq = NEW.seq, last_activity_at = NEW.created_at, chain_head = NEW.chain,
        seeker_sent_seq = CASE NEW.side WHEN 'seeker' THEN NEW.seq ELSE seeker_sent_seq END,
        listener_sent_seq = CASE NEW.side WHEN 'listener' THEN NEW.seq ELSE listener_sent_seq END
        WHERE id = NEW.conversation_id;
END;
CREATE TEMP TRIGGER IF NOT EXISTS chat_batch_counter INSTEAD OF INSERT ON chat_batch WHEN NEW.kind = 'v'
BEGIN
    SELECT RAISE(ABORT, 'miaohui: conversation state changed') WHERE NOT EXISTS (
        SELECT 1 FROM conversations WHERE id = NEW.conversation_id AND last_seq = NEW.seq);
END;
CREATE TEMP TRIGGER IF NOT EXISTS chat_batch_watermark INSTEAD OF INSERT ON chat_batch WHEN NEW.kind = 'w'
BEGIN
    UPDATE participants SET last_delivered_seq = max(last_delivered_seq, NEW.delivered_seq),
        last_read_seq = max(last_read_seq, NEW.read_seq)
        WHERE conversation_id = NEW.conversation_id AND user_id = NEW.user_id;
END;
"""
_FAST_ROW = "(?,?,?,?,?,?,?,?,?,?,?,?,?)"
_FAST_WIDTH = 13
_fast_sql: dict[int, str] = {}


def _execute(raw, sql: str, params) -> None:
    """In autocommit, BEGIN … COMMIT (fsync) happen inside this one ``execute``."""
    cur = raw.cursor()
    try:
        cur.execute(sql, params)
    finally:
        cur.close()


def _fast_rows(n: int) -> int:
    """Rows in the statement for ``n`` real ones: exact up to 32, then the next
    multiple of 32 (padded with NULL rows), so a few dozen statement texts
    cover every batch and stay in the sqlite3 module's statement cache."""
    return n if n <= 32 else -(-n // 32) * 32


class FastStore:
    """:func:`commit_batch`'s statements, collected as rows of one INSERT into
    ``chat_batch`` (see :meth:`MessageWriter._commit_fast`).  Counters come
    from the writer's memory; those it does not know yet are read first (a
    plain read outside any transaction — the triggers check them anyway)."""

    def __init__(self, convs: dict[str, list], raw) -> None:
        self.convs = convs
        self.raw = raw
        self.params: list = []  # _FAST_WIDTH values a row
        self.state: dict[str, list] = {}  # as this batch leaves each conversation it writes to
        self._ts = ""

    def existing(self, client_ids) -> list[tuple]:
        return []  # a retry of a stored message fails the unique index instead

    def _known(self, ids) -> None:
        missing = [c for c in ids if c not in self.convs]
        if missing:
            cur = self.raw.cursor()
            try:
                for cid, last_seq, head, order_id in _select_in(cur, COUNTERS_SQL, missing):
                    self.convs[cid] = [last_seq, head, order_id]
            finally:
                cur.close()

    def bump_seqs(self, counts: dict[str, int], now: datetime) -> dict[str, tuple]:
        self._known(counts)
        self._ts = SqliteStore._ts(now)
        out = {}
        for cid, n in counts.items():
            st = self.convs.get(cid)
            if st is not None:  # else gone
                self.state[cid] = [st[0] + n, st[1], st[2]]
                out[cid] = (st[0] + n, st[1], st[2])
        return out

    def insert(self, rows: list[tuple], now: datetime) -> None:
        p, ts, state = self.params, self._ts, self.state
        for cid, seq, sender_id, client_id, key_id, body_ct, chain, side in rows:
            p += ("m", cid, seq, sender_id, client_id, key_id, body_ct, chain, ts, state[cid][2], None, None, side)

    def set_heads(self, heads: dict[str, bytes], sent: dict[str, list[int]]) -> None:
        # Each side's counter was set by its 'm' rows (FAST_SCHEMA).
        for cid, h in heads.items():
            self.state[cid][1] = h

    def last_seqs(self, ids) -> dict[str, int]:
        self._known(ids)
        out = {}
        for cid in ids:
            st = self.state.get(cid) or self.convs.get(cid)
            if st is not None:
                out[cid] = st[0]
                self.params += ("v", cid, st[0], None, None, None, None, None, None, None, None, None, None)
        return out

    def watermarks(self, rows: list[tuple[str, str, int, int]]) -> None:
        p = self.params
        for cid, uid, d, r in rows:
            p += ("w", cid, None, uid, None, None, None, None, None, None, d, r, None)

    def statement(self) -> tuple[str | None, list]:
        """``(sql, params)``; ``sql`` is ``None`` when there is nothing to
        write, or too much for one statement."""
        rows = len(self.params) // _FAST_WIDTH
        if not rows or rows > FAST_MAX_ROWS:
            return None, self.params
        n = _fast_rows(rows)
        sql = _fast_sql.get(n)
        if sql is None:
            sql = _fast_sql[n] = "INSERT INTO chat_batch VALUES " + ",".join([_FAST_ROW] * n)
        params = self.params
        if n > rows:
            params = params + [None] * ((n - rows) * _FAST_WIDTH)
        return sql, params


def commit_batch(store, msgs: list[PendingMessage], receipts: list[Receipt], now: datetime):
    """The batch's logic, inside a transaction the caller opened and commits.
    Touches no futures: the caller resolves them on the loop after COMMIT."""
    res = _Result()
    events: list[tuple[str, str]] = []
    # 1. Idempotency: find retries already stored (and duplicates within this batch).
    first_index: dict[tuple[str, str, str], int] = {}
    fresh: list[int] = []
    dup_of: dict[int, int] = {}
    for i, m in enumerate(msgs):
        key = (m.conversation_id, m.sender_id, m.client_id)
        if key in first_index:
            dup_of[i] = first_index[key]
        else:
            first_index[key] = i
            fresh.append(i)
    if fresh:
        existing = {(r[0], r[1], r[2]): Stored(r[3], r[4], True) for r in store.existing({msgs[i].client_id for i in fresh})}
        still = []
        for i in fresh:
            m = msgs[i]
            st = existing.get((m.conversation_id, m.sender_id, m.client_id))
            if st is not None:
                res.stored[i] = st
            else:
                still.append(i)
        fresh = still

    # 2. Sequence numbers: bump each conversation's counter by its count in
    #    this batch, then read the new values inside the same transaction (the
    #    rows stay locked — PostgreSQL row locks, SQLite's write lock — so no
    #    other process can interleave).
    watermarks: dict[tuple[str, str], list[int]] = {}
    sent: dict[str, list[int]] = {}  # conversation -> [seeker's, listener's] last seq sent (0: none)
    if fresh:
        counts: dict[str, int] = {}
        for i in fresh:
            cid = msgs[i].conversation_id
            counts[cid] = counts.get(cid, 0) + 1
        state = store.bump_seqs(counts, now)
        next_seq = {cid: st[0] - counts[cid] + 1 for cid, st in state.items()}
        heads = {cid: st[1] or evidence.GENESIS for cid, st in state.items()}
        rows = []
        at = now.isoformat()
        at_text = evidence.canonical_time(now).encode()
        for i in fresh:
            m = msgs[i]
            if m.conversation_id not in next_seq:
                res.gone.append(i)
                continue
            seq = next_seq[m.conversation_id]
            next_seq[m.conversation_id] = seq + 1
            res.stored[i] = Stored(seq, now, False, at)
            chain = heads[m.conversation_id] = evidence.link_at(
                heads[m.conversation_id], seq, m.sender_id, at_text, evidence.body_digest(m.body)
            )
            side = SENT_SIDE.get(m.sender_role)
            rows.append((m.conversation_id, seq, m.sender_id, m.client_id, m.key_id, m.body_ct, chain, side))
            order_id = state[m.conversation_id][2]
            if order_id:
                res.contracted.append(Committed(m.conversation_id, order_id, seq, m.sender_id, m.sender_role, now))
            # The sender has read and received everything up to their own
            # message: for either side that is its counter on the conversation
            # row (Participant.watermarks), else its participant row.
            if side is not None:
                sent.setdefault(m.conversation_id, [0, 0])[side == "listener"] = seq
            else:
                wm = watermarks.setdefault((m.conversation_id, m.sender_id), [0, 0])
                wm[0] = max(wm[0], seq)
                wm[1] = max(wm[1], seq)
            events.append((f"conv:{m.conversation_id}", message_event(m, seq, at)))
            if m.recipients:
                activity = orjson.dumps(
                    {"type": "activity", "conversation_id": m.conversation_id, "seq": seq, "sender_id": m.sender_id,
                     "at": at}
                ).decode()
                for r in m.recipients:
                    events.append((f"user:{r}", activity))
        if rows:
            store.insert(rows, now)
            store.set_heads({cid: heads[cid] for cid in {r[0] for r in rows}}, sent)

    # 3. Receipts, coalesced per participant and clamped to what exists.
    if receipts:
        last = store.last_seqs({r.conversation_id for r in receipts})
        for r in receipts:
            top = last.get(r.conversation_id, 0)
            wm = watermarks.setdefault((r.conversation_id, r.user_id), [0, 0])
            wm[0] = max(wm[0], min(top, max(r.delivered_seq, r.read_seq)))
            wm[1] = max(wm[1], min(top, r.read_seq))
    if watermarks:
        store.watermarks([(c, u, d, r) for (c, u), (d, r) in watermarks.items()])
        for cid, uid in {(r.conversation_id, r.user_id): None for r in receipts}:
            d, rd = watermarks[(cid, uid)]
            events.append(
                (
                    f"conv:{cid}",
                    orjson.dumps(
                        {"type": "receipt", "conversation_id": cid, "user_id": uid, "delivered_seq": d, "read_seq": rd}
                    ).decode(),
                )
            )
    for i, j in dup_of.items():
        if j in res.stored:
            st = res.stored[j]
            res.stored[i] = Stored(st.seq, st.created_at, True)
    return res, events
