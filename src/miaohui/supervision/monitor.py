"""The safety step on the message path (one per process, ``ctx.safety``).

On the WebSocket path (``chat.gateway``), which carries nearly all traffic,
the step is split in two:

* **before storing**, :meth:`SafetyMonitor.prescan` runs only the boundary
  tables (either side: contact details are masked in the body that is stored
  and delivered) — tens of microseconds, and it must precede the write;
* **after COMMIT**, :meth:`SafetyMonitor.after_commit` queues a seeker's
  message for the risk model, with that seeker's recent messages in this
  conversation as history (kept here in memory: no database read).  The queue
  is drained 10 ms after its first message (or at once when 32 wait), so the
  seeker messages of several writer batches are assessed together by
  :func:`~miaohui.safety.assess.assess_many`
  (one vectorised n-gram pass for the whole batch), and nobody's ack or
  delivery waits for the model.  A batch holds one message per conversation
  (the next one of a conversation waits for the history this one leaves), so
  the results are the same as assessing each message alone, in order.  With
  ``safety_workers`` on, batches go to a subprocess
  (:mod:`miaohui.supervision.worker`); else they run on the loop.

:meth:`check` / :meth:`acheck` do both halves before storing, for the rare
paths that want the verdict at once (REST sends, the companion's hand-off).

After COMMIT, :meth:`SafetyMonitor.committed` publishes what follows, on
private topics that only the intended person's sockets subscribe to:

* ``safety:<conversation>:<user>`` — every chat socket subscribes to its own
  one (see ``chat.gateway``): the listener gets ``risk`` (emotions, topics and
  an approach hint at distress; the guidance panel at ideation and above),
  boundary notes and whispers; the seeker only ever gets the ``hotline`` card
  and the off-platform ``boundary`` warning — never a risk event;
* ``user:<listener>`` — the listener's console (inbox socket);
* ``supervision`` — every supervisor's console, via the case record.

Recording a case (ideation and above, any boundary flag) is a database write
off the sender's path: in a process of its own with ``safety_workers`` on
(:mod:`miaohui.supervision.recorder`), else in a background task.  Message
text is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from types import SimpleNamespace

import orjson

from miaohui.clock import Clock
from miaohui.safety import assess
from miaohui.safety.assess import assess_many_alone, history_signals_from, rank_alone
from miaohui.safety.boundaries import LABELS as BOUNDARY_LABELS
from miaohui.safety.boundaries import PUBLIC_NUMBERS, Scan, scan
from miaohui.supervision import guidance as g
from miaohui.supervision.recorder import RecorderProcess
from miaohui.supervision.worker import RiskWorker, WorkerGone

log = logging.getLogger("miaohui.supervision")

HISTORY_MESSAGES = 8  # recent messages of the same seeker passed to assess()
HISTORY_CONVERSATIONS = 20_000  # LRU bound on conversations remembered per process
HINT_REFRESH_S = 15.0  # a listener's distress hint changes at most this often in one conversation
SUPERVISION_TOPIC = "supervision"
FLUSH_MAX = 32  # seeker messages assessed per loop turn (≈ 2–3 ms of loop time at most)
SAFETY_LINGER_S = 0.010  # how long the first queued message waits for others (risk events only; acks never wait)
WORKER_BATCH_MAX = 256  # seeker messages per round trip to the worker process
FINISH_CHUNK = 32  # a worker batch's verdicts published per loop turn
DRAIN_WAIT_S = 10  # at shutdown, how long the worker may take with what is queued


def private_topic(conversation_id: str, user_id: str) -> str:
    """A participant's private safety stream in one conversation."""
    return f"safety:{conversation_id}:{user_id}"


def dumps(d: dict) -> str:
    return orjson.dumps(d).decode()


@dataclass(slots=True)
class Verdict:
    """What :meth:`SafetyMonitor.check` found in one message (no text kept
    beyond the masked body that replaces it)."""

    conversation_id: str
    sender_id: str
    sender_role: str
    peer_id: str
    body: str
    scan: Scan | None
    tier: str = "none"
    level: int = 0
    score: float = 0.0
    signals: tuple[str, ...] = ()
    emotions: tuple[tuple[str, float], ...] = ()
    topics: tuple[str, ...] = ()

    @property
    def rank(self) -> int:
        return g.TIER_RANK.get(self.tier, 0)

    @property
    def seeker_id(self) -> str:
        return self.sender_id if self.sender_role == "seeker" else self.peer_id

    @property
    def listener_id(self) -> str:
        return self.peer_id if self.sender_role == "seeker" else self.sender_id


def analyse(body: str, hsig: dict[str, float], public_numbers, seeker: bool):
    """The CPU part of the safety step, a pure function (runs in a worker
    process when ``safety_workers`` > 0): the boundary scan, and for a
    seeker's message the risk assessment with its history signals and what
    the message is alone (see :func:`assess_batch`)."""
    sc = scan(body, public_numbers)
    if not seeker:
        return sc, None, None
    (a, alone), = assess_batch([(body, hsig)], extras=True)
    return sc, a, alone


def assess_batch(items: list[tuple[str, dict[str, float]]], extras: bool | str = "risk"):
    """Risk assessments of a batch of seeker messages, each with its history
    signals, paired with ``(rank, joking)`` of the message *alone* — what the
    monitor remembers as history for the next ones (``history_signals_from``);
    a message with history is read once, and only its rules run again
    without the history (:func:`~miaohui.safety.assess.assess_many_alone`).
    Runs in a worker process when ``safety_workers`` > 0."""
    return assess_many_alone(items, extras=extras)


def _warm(nice: int = 0) -> None:
    """A worker's start: lower its priority below the event loop's (see
    ``Settings.safety_workers_nice``), then load the models once, not on the
    first real message."""
    if nice > 0:
        with contextlib.suppress(OSError):
            os.nice(nice)
    assess_batch([("你好", None)])


# A stored seeker message waiting for the risk model (see
# :meth:`SafetyMonitor.after_commit`): ``(conversation_id, sender_id, peer_id,
# body, seq, then, *scan, queued_at)``, ``scan`` being the :class:`Scan`'s four
# fields, ``then`` a callable(tier) or None and ``queued_at`` the monotonic
# clock.  A flat tuple of strings, numbers and (nearly always empty) tuples on
# purpose: a collection stops tracking such a tuple the first time it sees it,
# while an object (a dataclass, or a tuple holding a tuple it has not
# yet untracked) is walked by every collection for as long as it lives.  When
# the risk worker falls behind (5,000 msg/s on two cores), thousands of these
# wait; as objects they made the event loop's young collections grow with the
# queue: 11.7, 29.3 and 36.3 ms at 3,300, 5,200 and 10,000 queued
# (docs/performance.md, session 12).
_Queued = tuple


class _ToLoop:
    """A broker facade for another thread: publishes hop to the server's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, broker) -> None:
        self.loop, self.broker = loop, broker

    def publish_nowait(self, topic: str, data: str) -> None:
        self.loop.call_soon_threadsafe(self.broker.publish_nowait, topic, data)


class _Recorder:
    """Risk-case records on their own thread and event loop (SQLite only).

    SQLite has one write lock.  A case is recorded in a write transaction of
    several statements; driven by the server's busy event loop, every
    statement waited for a loop turn, so the lock stayed taken for tens of
    milliseconds — and the message writer waited behind it (at 1,000 msg/s,
    p99 delivery 155 ms with case recording, 25 ms without;
    docs/performance.md).  On a loop of its own the same transaction holds the
    lock for about a millisecond.  ``service.observe`` runs unchanged, with a
    context whose broker hops back to the server's loop.  (PostgreSQL has no
    such lock: there the monitor records on the server's loop.)"""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._rctx = None

    def _start(self) -> None:
        from miaohui.core.db import make_engine, make_sessionmaker

        ctx = self.ctx
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="risk-cases", daemon=True)
        self._thread.start()
        self._engine = make_engine(ctx.settings.resolved_database_url)
        self._rctx = SimpleNamespace(settings=ctx.settings, clock=ctx.clock, keyring=getattr(ctx, "keyring", None),
                                     sessionmaker=make_sessionmaker(self._engine, ctx.clock),
                                     broker=_ToLoop(asyncio.get_running_loop(), ctx.broker))

    async def record(self, v: Verdict, seq: int) -> None:
        from miaohui.supervision import service

        if self.loop is None:
            self._start()
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(service.observe(self._rctx, v, seq), self.loop))

    async def close(self) -> None:
        if self.loop is None:
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._engine.dispose(), self.loop))
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self._thread.join, 5)
        self.loop.close()
        self.loop = None


class SafetyMonitor:
    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.broker = ctx.broker
        # Per conversation, the seeker's last messages: (text, tier rank alone, joking alone).
        self._history: OrderedDict[str, deque[tuple[str, int, bool]]] = OrderedDict()
        # Per conversation, the last distress hint sent to the listener and when (see _fresh_hint).
        self._hinted: OrderedDict[str, tuple[tuple, float]] = OrderedDict()
        # The platform's injectable clock (a bare context, as some tests build, gets a real one).
        self.clock = getattr(ctx, "clock", None) or Clock()
        self._tasks: set[asyncio.Task] = set()
        self.public_numbers = PUBLIC_NUMBERS | g.hotline_numbers(ctx.settings)
        self.assessed = 0
        self.batches = 0
        self.lag_s = 0.0  # how long the oldest message last finished (a batch, or a chunk of one) waited
        self.lag_max_s = 0.0  # … the longest since start
        self._queue: list[_Queued] = []
        self._scheduled = False  # a worker-pool consumer is running
        self._handle: asyncio.Handle | None = None  # the pending in-loop flush
        self._handle_now = False
        self.linger_s = SAFETY_LINGER_S
        url = getattr(ctx.settings, "resolved_database_url", "")
        self._recorder = _Recorder(ctx) if url.startswith("sqlite") else None
        self._worker: RiskWorker | None = None
        self._cases: RecorderProcess | None = None
        if ctx.settings.effective_safety_workers > 0:
            # The risk model and the case records each in a process of their
            # own (supervision.worker, supervision.recorder): in this one they
            # cost the event loop CPU and the GIL.  One worker: batches are
            # assessed in order, each with the history the one before it left.
            self._worker = RiskWorker(ctx.settings.safety_workers_nice)
            self._cases = RecorderProcess(ctx.settings, self.broker, self._record_here)

    def counters(self) -> dict:
        """How far behind the risk model is (``/healthz``; operators and the
        benchmark): seeker messages waiting now, assessed so far, and how long
        messages waited from COMMIT to their assessment — the oldest of the
        last batch finished (or of its last chunk: see ``FINISH_CHUNK``), and
        the longest since start.  Nobody's message waits for this,
        but a risk alert is only as fresh as this lag."""
        return {"queued": len(self._queue), "assessed": self.assessed, "batches": self.batches,
                "lag_ms": round(self.lag_s * 1000, 1), "lag_ms_max": round(self.lag_max_s * 1000, 1)}

    def warm(self) -> None:
        """Load the models and build the batch scorer (≈ 1 s, once per
        process; off the loop, at start-up).  Even with a worker process this
        process keeps them: REST sends, the companion and a worker's restart
        use them, and loading them on the loop would stall every socket."""
        _warm()
        scan("你好", self.public_numbers)

    async def start(self) -> None:
        """Start the worker processes before traffic: the risk worker (it
        loads its own models) and the case recorder.  Spawning a process
        stopped this loop for 10–30 ms (docs/performance.md, session 14),
        which the first risk case used to pay for every socket."""
        if self._worker is not None:
            await self._worker.start()
        if self._cases is not None:
            await self._cases.start()

    # ------------------------------------------------- the WebSocket message path

    def prescan(self, sender_role: str, body: str) -> Scan | None:
        """Before storing: the boundary scan alone (its ``text`` is the body to
        store and deliver, contact details masked).  ``None`` for platform
        notices and supervisors, which are not scanned."""
        if sender_role not in ("seeker", "listener"):
            return None
        return scan(body, self.public_numbers)

    def after_commit(self, conversation_id: str, sender_id: str, sender_role: str, peer_id: str, body: str,
                     sc: Scan | None, seq: int, duplicate: bool = False, then=None) -> None:
        """The message (``body`` as the sender wrote it, ``sc`` its
        :meth:`prescan`) is durable as ``seq``.  A seeker's message is queued
        for the risk model, assessed with the rest of its batch at the end of
        this loop turn; then :meth:`committed` publishes, and ``then(tier)``
        runs (the AI companion's reply).  Listener messages publish their
        boundary flags at once.  Never blocks; a retry (``duplicate``) was
        handled the first time."""
        if duplicate or sender_role != "seeker" or sc is None:
            if not duplicate and sc is not None and sc.flagged:
                self.committed(Verdict(conversation_id, sender_id, sender_role, peer_id, sc.text, sc), seq)
            if then is not None:
                then("none")
            return
        self._queue.append((conversation_id, sender_id, peer_id, body, seq, then, sc.text, sc.attachment,
                            sc.off_platform, sc.masked, time.monotonic()))
        if self._worker is not None:
            if not self._scheduled:
                self._scheduled = True
                self._spawn(self._consume())
        else:
            self._schedule(now=len(self._queue) >= FLUSH_MAX)

    def _schedule(self, now: bool) -> None:
        """A flush ``linger_s`` from the first queued message (so that, at any
        rate, a batch holds several messages: scoring one costs nearly what
        scoring ten does), or at once when a full batch is waiting."""
        h = self._handle
        if h is not None:
            if not now or self._handle_now:
                return
            h.cancel()
        loop = asyncio.get_running_loop()
        self._handle_now = now
        self._handle = loop.call_soon(self._flush) if now else loop.call_later(self.linger_s, self._flush)

    def _contexts(self, items: list[_Queued]) -> list[dict[str, float]]:
        return [self._history_of(it[0])[1] for it in items]

    def _take(self, most: int) -> list[_Queued]:
        """The next batch: up to ``most`` queued messages, in order, at most
        one per conversation — a message is assessed with its conversation's
        history, which the one before it only joins when that one is
        finished.  Later messages of those conversations stay queued, in
        order, for the next batch (looking at most ``4 × most`` deep, so a
        long backlog costs nothing extra)."""
        window = self._queue[: 4 * most]
        seen: set[str] = set()
        items: list[_Queued] = []
        rest: list[_Queued] = []
        for it in window:
            if len(items) < most and it[0] not in seen:
                seen.add(it[0])
                items.append(it)
            else:
                rest.append(it)
        self._queue[: len(window)] = rest
        return items

    def _flush(self) -> None:
        """Assess what was queued this loop turn, in one batch, on the loop —
        at most ``FLUSH_MAX`` messages, so one batch never holds the loop for
        long; the rest go in the next turn, after other sockets had theirs."""
        self._handle = None
        items = self._take(FLUSH_MAX)
        if self._queue:
            self._schedule(now=True)
        if not items:
            return
        contexts = self._contexts(items)
        try:
            results = assess_batch([(it[3], c) for it, c in zip(items, contexts, strict=True)])
        except Exception:
            log.exception("risk assessment failed for a batch of %d messages", len(items))
            results = None
        self.batches += 1
        self._finish(items, results)

    async def _consume(self) -> None:
        """With a worker process: one consumer ships what queued up meanwhile
        to the worker, a batch per round trip, in order.  If the worker is
        gone, the batch is assessed here (and the worker restarted): no
        message goes unassessed."""
        try:
            while self._queue:
                if len(self._queue) < FLUSH_MAX:
                    await asyncio.sleep(self.linger_s)  # let a batch gather (see _schedule)
                items = self._take(WORKER_BATCH_MAX)
                contexts = self._contexts(items)
                payload = [(it[3], c) for it, c in zip(items, contexts, strict=True)]
                try:
                    try:
                        results = await self._worker.assess(payload)
                    except WorkerGone:
                        results = assess_batch(payload)
                except Exception:
                    log.exception("risk assessment failed for a batch of %d messages", len(items))
                    results = None
                # Verdicts are published FINISH_CHUNK at a time, one loop turn
                # each: a worker batch holds up to 256 messages, and finishing
                # them in one go held every socket of this process for ~10 ms.
                self.batches += 1
                for i in range(0, len(items), FINISH_CHUNK):
                    if i:
                        await asyncio.sleep(0)
                    self._finish(items[i : i + FINISH_CHUNK], None if results is None else results[i : i + FINISH_CHUNK])
        finally:
            self._scheduled = False

    def _finish(self, items: list[_Queued], results) -> None:
        if items:
            # Taken in queue order, so the first of these waited longest.
            lag = time.monotonic() - items[0][-1]
            self.lag_s = lag
            self.lag_max_s = max(self.lag_max_s, lag)
        for k, (conversation_id, sender_id, peer_id, body, seq, then, *scanned, _) in enumerate(items):
            tier = "none"
            try:
                a, alone = results[k] if results is not None else (None, None)
                hist = self._recent(conversation_id)
                v = self._verdict(conversation_id, sender_id, "seeker", peer_id, body, Scan(*scanned), a, hist, alone)
                if v is not None:
                    tier = v.tier
                    self.committed(v, seq)
            except Exception:
                log.exception("safety step failed (conversation %s, seq %d)", conversation_id, seq)
            if then is not None:
                try:
                    then(tier)
                except Exception:
                    log.exception("after-safety callback failed (conversation %s)", conversation_id)

    # ------------------------------------------------------------ before

    def check(self, conversation_id: str, sender_id: str, sender_role: str, peer_id: str, body: str) -> Verdict | None:
        """Scan (and for seekers assess) a message before it is stored.
        ``None`` when there is nothing to act on; else a :class:`Verdict`
        whose ``body`` is what must be stored and delivered."""
        if sender_role not in ("seeker", "listener"):
            return None  # platform notices and supervisors are not scanned
        seeker = sender_role == "seeker"
        hist, hsig = self._history_of(conversation_id) if seeker else (None, {})
        sc, a, alone = analyse(body, hsig, self.public_numbers, seeker)
        return self._verdict(conversation_id, sender_id, sender_role, peer_id, body, sc, a, hist, alone)

    async def acheck(self, conversation_id: str, sender_id: str, sender_role: str, peer_id: str,
                     body: str) -> Verdict | None:
        """:meth:`check` for the message path: with ``safety_workers`` > 0 the
        scan and the risk model run in worker processes, so the event loop
        (every socket of this process) is not held for them; the sender's
        own next frame waits, which keeps its messages in order."""
        if self._worker is None or sender_role != "seeker":
            return self.check(conversation_id, sender_id, sender_role, peer_id, body)
        hist, hsig = self._history_of(conversation_id)
        sc = scan(body, self.public_numbers)
        try:
            ((a, alone),) = await self._worker.assess([(body, hsig)])
        except WorkerGone:
            ((a, alone),) = assess_batch([(body, hsig)], extras=True)
        return self._verdict(conversation_id, sender_id, sender_role, peer_id, body, sc, a, hist, alone)

    def _recent(self, conversation_id: str) -> deque[tuple[str, int, bool]]:
        """The seeker's last messages in this conversation (LRU-bounded)."""
        hist = self._history.get(conversation_id)
        if hist is None:
            hist = self._history[conversation_id] = deque(maxlen=HISTORY_MESSAGES)
            if len(self._history) > HISTORY_CONVERSATIONS:
                self._history.popitem(last=False)
        else:
            self._history.move_to_end(conversation_id)
        return hist

    def _history_of(self, conversation_id: str):
        hist = self._recent(conversation_id)
        # assess(text, history) reads each earlier message *alone* (its tier
        # and whether it jokes); the monitor remembered those when it
        # assessed them, so the history signals cost nothing to rebuild and
        # give exactly what passing the texts would.
        return hist, history_signals_from([(r, j) for _, r, j in hist])

    def _verdict(self, conversation_id, sender_id, sender_role, peer_id, body, sc, a, hist,
                 alone=None) -> Verdict | None:
        v = None
        if a is not None:
            self.assessed += 1
            if not hist or hist[-1][0] != body:  # a resend of the same message is not new history
                rank, joke = alone if alone is not None else rank_alone(assess(body, extras=False))
                hist.append((body, rank, joke))
            if a.tier != "none":
                v = Verdict(conversation_id, sender_id, sender_role, peer_id, sc.text, sc, a.tier, a.level, a.score,
                            a.signals, a.emotions, a.topics)
        if v is None and sc.flagged:
            v = Verdict(conversation_id, sender_id, sender_role, peer_id, sc.text, sc)
        return v

    def close(self) -> None:
        """Nothing left to do here: :meth:`drain` ended the processes."""

    # ------------------------------------------------------------- after

    def committed(self, v: Verdict, seq: int, duplicate: bool = False) -> None:
        """The message is durable as ``seq``: tell whoever must know.  Called
        on the event loop; never blocks (the case is recorded in a task)."""
        if duplicate:
            return  # the first delivery of this message already did all this
        conv = v.conversation_id
        pub = self.broker.publish_nowait
        listener_topic = private_topic(conv, v.listener_id)
        sc = v.scan
        if sc is not None and sc.kinds:
            if sc.off_platform or sc.masked:
                for uid, role in ((v.seeker_id, "seeker"), (v.listener_id, "listener")):
                    frame = {"type": "boundary", "conversation_id": conv, "seq": seq, "kind": "off_platform",
                             "masked": bool(sc.masked), **g.OFF_PLATFORM_WARNING[role]}
                    if sc.masked:
                        frame["body"] = v.body  # lets the sender's own bubble show the masked text too
                    pub(private_topic(conv, uid), dumps(frame))
            if sc.attachment:
                note = g.ATTACHMENT_NOTE if v.sender_role == "seeker" else g.LISTENER_ATTACHMENT_NOTE
                pub(listener_topic, dumps({"type": "boundary", "conversation_id": conv, "seq": seq,
                                           "kind": "attachment", "from": v.sender_role,
                                           "signals": [BOUNDARY_LABELS.get(s, s) for s in sc.attachment], **note}))
        if v.rank >= 1:
            emotions = [{"label": lab, "prob": p} for lab, p in v.emotions]
            frame = {"type": "risk", "conversation_id": conv, "seq": seq, "tier": v.tier,
                     "tier_label": g.TIER_LABELS[v.tier], "level": v.level, "emotions": emotions,
                     "topics": list(v.topics), "signals": [g.SIGNAL_LABELS.get(s, s) for s in v.signals[:6]]}
            if v.rank >= g.GUARDIAN_RANK:
                frame["guidance"] = g.guidance(v.tier)
                self._hinted.pop(conv, None)
                fresh = True
            else:
                fresh = self._fresh_hint(conv, frame)
            if fresh:
                data = dumps(frame)
                pub(listener_topic, data)
                pub(f"user:{v.listener_id}", data)
            if v.rank >= g.ALARM_RANK:
                card = {"type": "hotline", "conversation_id": conv, **g.hotline_card(self.ctx.settings)}
                pub(private_topic(conv, v.seeker_id), dumps(card))
        if v.rank >= g.GUARDIAN_RANK or (sc is not None and sc.kinds):
            self._spawn(self._record(v, seq))

    def _fresh_hint(self, conversation_id: str, frame: dict) -> bool:
        """Whether a distress frame goes to the listener; if so, its ``hint``
        is added.  It goes when it differs from the last one this listener
        got in this conversation (tier, the emotions and topics shown, the
        hint), and at most once every :data:`HINT_REFRESH_S` seconds.

        The card is one slot beside the chat that each frame replaces.  A
        seeker who stays sad for twenty messages would otherwise send the
        same card twenty times (40 % of counselling lines are rated
        distress), and one who types a burst of short lines made it change
        under the listener's eyes with every line, each time two more frames
        of ~770 bytes.  Held back, nothing is lost: the listener sees the
        conversation itself, and the next hint after the interval is current.
        Guidance (ideation and above) never waits and is not sent through
        here, and after it the next hint is news (``committed``)."""
        hinted = self._hinted
        now = self.clock.monotonic()
        last = hinted.get(conversation_id)
        if last is not None and now - last[1] < HINT_REFRESH_S:
            hinted.move_to_end(conversation_id)
            return False
        hint = g.approach_hint(frame["emotions"], frame["topics"])
        key = (frame["tier"], tuple(e["label"] for e in frame["emotions"]), tuple(frame["topics"]),
               hint["approach"], tuple(hint["explore"]))
        if last is not None and last[0] == key:
            hinted.move_to_end(conversation_id)
            return False
        frame["hint"] = hint
        hinted[conversation_id] = (key, now)
        hinted.move_to_end(conversation_id)
        if len(hinted) > HISTORY_CONVERSATIONS:
            hinted.popitem(last=False)
        return True

    def after(self, v: Verdict):
        """A done-callback for the writer's future: :meth:`committed` once stored."""

        def done(fut: asyncio.Future) -> None:
            if not fut.cancelled() and fut.exception() is None:
                st = fut.result()
                self.committed(v, st.seq, st.duplicate)

        return done

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, v: Verdict, seq: int) -> None:
        cases = self._cases
        if cases is not None and not cases.dead:
            now = self.clock.now()
            await cases.start()
            if cases.submit(v, seq, now):
                return
        await self._record_here(v, seq)

    async def _record_here(self, v: Verdict, seq: int, now=None) -> None:
        """Record in this process: on its own thread for SQLite (see
        :class:`_Recorder`), else on the loop."""
        from miaohui.supervision import service

        try:
            if self._recorder is not None:
                await self._recorder.record(v, seq)
            else:
                await service.observe(self.ctx, v, seq)
        except Exception:
            log.exception("recording a risk case failed (conversation %s, seq %d)", v.conversation_id, seq)

    async def drain(self) -> None:
        """Assess what is still queued, wait for case records in flight, end
        the worker processes (shutdown)."""
        for _ in range(DRAIN_WAIT_S * 20):
            if not self._scheduled:
                break
            await asyncio.sleep(0.05)  # the worker's consumer finishes what is queued
        while self._queue:
            if self._handle is not None:
                self._handle.cancel()
            self._flush()
        if self._worker is not None:
            await self._worker.close()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._cases is not None:
            await self._cases.close()
        if self._recorder is not None:
            await self._recorder.close()

