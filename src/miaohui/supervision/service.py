"""Risk cases and what supervisors do with them.  No HTTP here.

* :func:`observe` — the safety monitor saw something (ideation or above, a
  boundary flag) in a committed message: open or update the conversation's
  one open case, log the step, tell the supervisors (alarm at plan/imminent).
* :func:`worry` — a listener pressed "我担心对方": a case at once, with an alarm.
* Supervisors: :func:`queue` (risk, then waiting time), :func:`transcript`
  (every read audited in ``transcript_access`` before anything is returned),
  :func:`whisper`, :func:`join` / take over, :func:`acknowledge`, :func:`resolve`.
  Joining gives a participant's access (the history too), so it is audited
  like a transcript read; resolving takes every supervisor out again.
* Guardian mode: :func:`guardian_for_order` is how the orders scheduler asks
  whether it may end an order; :func:`guardian_paid` records what the
  platform paid the listener for the time beyond the paid period.

Every step writes a :class:`CaseEvent`.  Nothing here reads or writes
another domain's tables: chat, accounts and orders are reached through their
services (orders through ``ctx.orders``, the scheduler).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, false, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.accounts import service as accounts
from miaohui.accounts.models import User
from miaohui.chat import service as chat
from miaohui.core.crypto import KeyRing
from miaohui.core.db import begin_write, new_id
from miaohui.core.errors import AppError
from miaohui.safety.boundaries import ATTACHMENT, OFF_PLATFORM
from miaohui.safety.boundaries import LABELS as BOUNDARY_LABELS
from miaohui.supervision import guidance as g
from miaohui.supervision.models import OPEN, CaseEvent, RiskCase, TranscriptAccess
from miaohui.supervision.monitor import SUPERVISION_TOPIC, Verdict, dumps, private_topic

log = logging.getLogger("miaohui.supervision")

STAFF = ("supervisor", "admin")
MAX_SIGNALS = 30
MAX_NOTE = 2000


def case_not_found() -> AppError:
    return AppError("case_not_found", "找不到这个个案", "case not found", 404)


def staff_only() -> AppError:
    return AppError("supervisors_only", "只有督导可以进行此操作", "supervisors only", 403)


def _note_aad(case_id: str, kind: str) -> bytes:
    return f"case|{case_id}|{kind}".encode()


# ------------------------------------------------------------------ records


async def _lock_open(db: AsyncSession, conversation_id: str) -> RiskCase | None:
    return await db.scalar(
        select(RiskCase).where(RiskCase.open_key == conversation_id).with_for_update()
        .execution_options(populate_existing=True)
    )


async def _open_case(db: AsyncSession, conversation_id: str, seeker_id: str, listener_id: str, source: str,
                     now: datetime) -> tuple[RiskCase, bool]:
    """The conversation's open case, locked; created if there is none."""
    await begin_write(db)
    case = await _lock_open(db, conversation_id)
    if case is not None:
        return case, False
    case = RiskCase(
        conversation_id=conversation_id, open_key=conversation_id, seeker_id=seeker_id, listener_id=listener_id,
        status="open", source=source, tier="none", level=0, score=0.0, rank=0, signals=[], flags={}, worried=False,
        last_seq=0, opened_at=now, last_seen_at=now, overtime_seconds=0, overtime_fen=0,
    )
    try:
        async with db.begin_nested():
            db.add(case)
            await db.flush()
    except IntegrityError:  # another process opened it first: use that one
        case = await _lock_open(db, conversation_id)
        if case is None:
            raise
        return case, False
    return case, True


def _event(db: AsyncSession, case: RiskCase, now: datetime, kind: str, actor_id: str | None = None,
           keyring: KeyRing | None = None, note: str = "", **data) -> CaseEvent:
    ev = CaseEvent(case_id=case.id, at=now, actor_id=actor_id, kind=kind, data=data)
    if note and keyring is not None:
        ev.key_id, ev.body_ct = keyring.encrypt(note[:MAX_NOTE], _note_aad(case.id, kind))
    db.add(ev)
    return ev


def _raise_rank(case: RiskCase, now: datetime, db: AsyncSession) -> None:
    case.rank = max(g.TIER_RANK.get(case.tier, 0), g.GUARDIAN_RANK if case.worried else 0, case.rank)
    if case.rank >= g.GUARDIAN_RANK and case.guardian_since is None:
        case.guardian_since = now
        _event(db, case, now, "guardian_started", rank=case.rank)


async def observe(ctx, v: Verdict, seq: int) -> RiskCase:
    """Record what the monitor saw in message ``seq`` and tell supervisors."""
    (case,) = await observe_many(ctx, [(v, seq)])
    return case


async def observe_many(ctx, items: list[tuple[Verdict, int]]) -> list[RiskCase]:
    """:func:`observe` for several messages in one short transaction.

    This is the message path's (every case the safety monitor records), so it
    is written for the time it holds the database: on SQLite the write lock is
    shared with the message writer, and every millisecond it is held is a
    millisecond no chat message can be stored.  Through the ORM (lock the
    case, a savepoint to insert it, flushes) a new case held it for ~4–10 ms;
    here it is one SELECT of the open cases, the same rules applied to plain
    objects (:func:`_apply`, :func:`_raise_rank`), and three statements — new
    cases, changed cases, events — for the whole batch.  Messages apply in
    order, so two of one conversation update one case as they would one after
    the other.  If another process opened a case for one of the conversations
    meanwhile (PostgreSQL; SQLite's lock excludes it), the batch is redone."""
    now = ctx.clock.now()
    for attempt in range(3):
        try:
            return await _observe_many(ctx, items, now)
        except (IntegrityError, sqlite3.IntegrityError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class _Events:
    """Collects the events :func:`_apply` makes, as rows for one INSERT."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, ev: CaseEvent) -> None:
        self.rows.append({"case_id": ev.case_id, "at": ev.at, "actor_id": ev.actor_id, "kind": ev.kind,
                          "data": ev.data or {}, "key_id": ev.key_id, "body_ct": ev.body_ct})


_CHANGING = ("tier", "level", "score", "signals", "flags", "rank", "last_seq", "last_seen_at", "guardian_since")


async def _observe_many(ctx, items: list[tuple[Verdict, int]], now: datetime) -> list[RiskCase]:
    convs = sorted({v.conversation_id for v, _ in items})
    async with ctx.sessionmaker() as db:
        if db.bind.dialect.name == "postgresql":
            t = RiskCase.__table__
            await begin_write(db)
            conn = await db.connection()
            # A fixed order: concurrent writers never deadlock.
            q = select(t).where(t.c.open_key.in_(convs)).order_by(t.c.id).with_for_update()
            rows = sorted((dict(r) for r in (await conn.execute(q)).mappings()), key=lambda r: r["open_key"])
            events, out, new = _plan(items, rows, now)
            for stmt, params in _writes(events, out, new):
                await conn.execute(stmt, params)
            await db.commit()
        else:
            events, out, new = await _observe_sqlite(db, items, convs, now)
        # One summary per case, after its last message in this batch; an alarm when it opened or rose.
        first: dict[str, tuple[bool, int]] = {}
        for case, created, before in out:
            c, b = first.get(case.id, (False, before))
            first[case.id] = (c or created, min(b, before))
        touched = list({case.id: case for case, _, _ in out}.values())
        for case, s in zip(touched, await summaries(db, touched, ctx.clock.now()), strict=True):
            created, before = first[case.id]
            alarm = case.rank >= g.ALARM_RANK and (created or case.rank > before)
            _publish_summary(ctx, case, s, alarm=alarm, reason="opened" if created else "updated")
    return [case for case, _, _ in out]


_CASE_COLUMNS = tuple(c.name for c in RiskCase.__table__.columns)
_NEW_CASES = RiskCase.__table__.insert()
_CHANGED_CASES = (RiskCase.__table__.update().where(RiskCase.__table__.c.id == bindparam("b_id"))
                  .values({k: bindparam(f"b_{k}") for k in _CHANGING}))
_NEW_EVENTS = CaseEvent.__table__.insert()


def _writes(events: _Events, out, new: dict[str, RiskCase]) -> list[tuple]:
    """A batch's writes: ``(statement, parameter dicts)`` for the new cases,
    the changed ones and the events (at most three statements)."""
    writes: list[tuple] = []
    if new:
        writes.append((_NEW_CASES, [{k: getattr(c, k) for k in _CASE_COLUMNS} for c in new.values()]))
    changed = [c for c in {id(c): c for c, _, _ in out}.values() if c.conversation_id not in new]
    if changed:
        writes.append((_CHANGED_CASES, [{"b_id": c.id, **{f"b_{k}": getattr(c, k) for k in _CHANGING}}
                                        for c in changed]))
    if events.rows:
        writes.append((_NEW_EVENTS, events.rows))
    return writes


async def _observe_sqlite(db: AsyncSession, items: list[tuple[Verdict, int]], convs: list[str], now: datetime):
    """:func:`_observe_many`'s reads and writes on SQLite, where the write lock
    is the message writer's too: every millisecond it is held, no chat message
    can be stored.  Through the session (a typed read, the plan, every
    parameter processed, a round of SQLAlchemy per statement) a batch held it
    ~2 ms alone and ~5–9 ms under chat load, a few times a second
    (docs/performance.md, sessions 9–10).  So everything is done before the
    lock: read the open cases as the driver returns them, plan, render the
    writes for the driver.  Under the lock, on the driver's connection, only
    the same read again — if anything changed meanwhile (a supervisor closed a
    case, another process recorded one), plan again — and the prepared writes."""
    dialect = db.bind.dialect
    marks = ",".join("?" * len(convs))
    read = f"SELECT {', '.join(_CASE_COLUMNS)} FROM risk_cases WHERE open_key IN ({marks}) ORDER BY open_key"

    def plan(rows: list[tuple]):
        events, out, new = _plan(items, _typed(dialect, rows), now)
        return events, out, new, [_for_driver(dialect, stmt, ps) for stmt, ps in _writes(events, out, new)]

    async with db.bind.connect() as conn:
        dc = (await conn.get_raw_connection()).driver_connection  # aiosqlite, in autocommit (core.db)
        seen = await dc.execute_fetchall(read, convs)
        events, out, new, writes = plan(seen)
        await dc.execute("BEGIN IMMEDIATE")
        try:
            now_open = await dc.execute_fetchall(read, convs)
            if now_open != seen:
                events, out, new, writes = plan(now_open)
            for sql, rows in writes:
                await dc.executemany(sql, rows)
            await dc.execute("COMMIT")
        except BaseException:
            await dc.execute("ROLLBACK")
            raise
    return events, out, new


def _typed(dialect, rows: list[tuple]) -> list[dict]:
    """Driver rows as the ORM would have typed them (JSON, UTC datetimes, booleans)."""
    cols = RiskCase.__table__.columns
    procs = _result_processors(dialect)
    return [{c.name: (p(v) if p else v) for c, p, v in zip(cols, procs, row, strict=True)} for row in rows]


def _for_driver(dialect, stmt, params: list[dict]) -> tuple[str, list[tuple]]:
    """``stmt`` (one of the module's statements) with ``params`` rendered for
    the DB-API driver: the SQL text and positional rows, every bind processor
    (JSON, datetimes) already applied."""
    sql, keys, procs = _rendered(dialect, stmt, tuple(params[0]))
    return sql, [tuple(p(r[k]) if p else r[k] for k, p in zip(keys, procs, strict=True)) for r in params]


@functools.cache
def _result_processors(dialect) -> list:
    return [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in RiskCase.__table__.columns]


@functools.cache
def _rendered(dialect, stmt, keys: tuple[str, ...]) -> tuple[str, list[str], list]:
    """``stmt`` compiled once per dialect and parameter names: its SQL, the
    parameter names in positional order and their bind processors."""
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
    names = compiled.positiontup
    return (compiled.string, [compiled.binds[n].key for n in names],
            [compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names])


def _plan(items: list[tuple[Verdict, int]], rows: list[dict], now: datetime):
    """What a batch of verdicts makes of the open cases ``rows``: the event
    rows, ``(case, created, rank before)`` per verdict, and the new cases.
    Plain objects only (no session), so it can run before the write lock."""
    events = _Events()
    cases = {r["open_key"]: RiskCase(**r) for r in rows}
    new: dict[str, RiskCase] = {}
    out: list[tuple[RiskCase, bool, int]] = []
    for v, seq in items:
        case = cases.get(v.conversation_id)
        created = case is None
        if created:
            case = cases[v.conversation_id] = new[v.conversation_id] = RiskCase(
                id=new_id(), conversation_id=v.conversation_id, open_key=v.conversation_id,
                seeker_id=v.seeker_id, listener_id=v.listener_id, status="open",
                source="model" if v.rank >= g.GUARDIAN_RANK else "boundary", tier="none", level=0,
                score=0.0, rank=0, signals=[], flags={}, worried=False, last_seq=0, opened_at=now,
                last_seen_at=now, overtime_seconds=0, overtime_fen=0)
        out.append((case, created, case.rank))
        _apply(events, case, created, v, seq, now)
    return events, out, new


def _apply(db, case: RiskCase, created: bool, v: Verdict, seq: int, now: datetime) -> None:
    sc = v.scan
    before = case.rank
    if v.rank > g.TIER_RANK.get(case.tier, 0):
        case.tier = v.tier
    case.level = max(case.level, v.level)
    case.score = max(case.score, float(v.score))
    if v.signals:
        case.signals = list(dict.fromkeys([*case.signals, *v.signals]))[:MAX_SIGNALS]
    case.last_seen_at = now
    case.last_seq = max(case.last_seq, seq)
    _raise_rank(case, now, db)
    if v.rank >= g.GUARDIAN_RANK:
        kind = "opened" if created else "escalated" if case.rank > before else "assessed"
        _event(db, case, now, kind, tier=v.tier, level=v.level, score=round(float(v.score), 4),
               signals=list(v.signals[:12]), seq=seq)
    elif created:
        _event(db, case, now, "opened", tier=case.tier, level=case.level, seq=seq,
               source="model" if v.rank >= g.GUARDIAN_RANK else "boundary")
    if sc is not None and sc.kinds:
        flags = dict(case.flags or {})
        for kind, names in ((ATTACHMENT, sc.attachment), (OFF_PLATFORM, (*sc.off_platform, *sc.masked))):
            if not names:
                continue
            f = dict(flags.get(kind) or {"signals": [], "count": 0, "from": []})
            f["signals"] = list(dict.fromkeys([*f["signals"], *names]))
            f["count"] = f["count"] + 1
            f["from"] = list(dict.fromkeys([*f["from"], v.sender_role]))
            flags[kind] = f
            _event(db, case, now, "flag", flag=kind, signals=list(names), sender_role=v.sender_role, seq=seq,
                   masked=bool(sc.masked) if kind == OFF_PLATFORM else False)
        case.flags = flags


async def worry(ctx, listener: User, conversation_id: str, note: str = "") -> RiskCase:
    """"我担心对方": a listener calls a supervisor into the conversation at once."""
    if listener.role != "listener":
        raise AppError("listeners_only", "只有倾听师可以发起求助", "only listeners can call a supervisor", 403)
    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        roles = await chat.participants(db, conversation_id) if conversation_id and len(conversation_id) <= 32 else {}
        if roles.get(listener.id) != "listener":
            raise chat.conversation_forbidden()
        seeker_id = next((u for u, r in roles.items() if r == "seeker"), "")
        await db.rollback()
        case, _ = await _open_case(db, conversation_id, seeker_id, listener.id, "worry", now)
        case.worried = True
        if "worry" not in case.signals:
            case.signals = [*case.signals, "worry"][:MAX_SIGNALS]
        case.last_seen_at = now
        _event(db, case, now, "worry", listener.id, ctx.keyring, note)
        _raise_rank(case, now, db)
        await db.commit()
        await _publish(ctx, db, case, alarm=True, reason="worry")
    log.info("listener asked for a supervisor (case %s)", case.id)
    return case


async def seeker_asks_human(ctx, seeker: User, conversation_id: str, companion_id: str) -> RiskCase:
    """A seeker in an AI companion conversation pressed "现在请真人督导来": like
    "我担心对方", a case at once, with an alarm (the AI participant stands where
    a listener would)."""
    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        roles = await chat.participants(db, conversation_id) if conversation_id and len(conversation_id) <= 32 else {}
        if roles.get(seeker.id) != "seeker" or companion_id not in roles:
            raise chat.conversation_forbidden()
        await db.rollback()
        case, _ = await _open_case(db, conversation_id, seeker.id, companion_id, "seeker", now)
        case.worried = True
        if "seeker_request" not in case.signals:
            case.signals = [*case.signals, "seeker_request"][:MAX_SIGNALS]
        case.last_seen_at = now
        _event(db, case, now, "seeker_request", seeker.id)
        _raise_rank(case, now, db)
        await db.commit()
        await _publish(ctx, db, case, alarm=True, reason="seeker_request")
    log.info("seeker asked for a human supervisor (case %s)", case.id)
    return case


# -------------------------------------------------------------------- reads


def summary(case: RiskCase, names: dict[str, User], now: datetime) -> dict:
    def who(uid: str | None) -> dict | None:
        if not uid:
            return None
        u = names.get(uid)
        return {"user_id": uid, "display_name": u.display_name if u else ""}

    open_ = case.status in OPEN
    flags = {
        kind: {**f, "labels": [BOUNDARY_LABELS.get(s, s) for s in f.get("signals", [])]}
        for kind, f in (case.flags or {}).items()
    }
    return {
        "id": case.id,
        "conversation_id": case.conversation_id,
        "status": case.status,
        "status_label": g.STATUS_LABELS.get(case.status, case.status),
        "source": case.source,
        "tier": case.tier,
        "tier_label": g.TIER_LABELS.get(case.tier, case.tier),
        "level": case.level,
        "score": round(case.score, 3),
        "rank": case.rank,
        "alarm": open_ and case.rank >= g.ALARM_RANK,
        "guardian": open_ and case.rank >= g.GUARDIAN_RANK,
        "worried": case.worried,
        "signals": [{"key": s, "label": g.SIGNAL_LABELS.get(s, s)} for s in case.signals],
        "flags": flags,
        "seeker": who(case.seeker_id),
        "listener": who(case.listener_id),
        "opened_at": case.opened_at.isoformat(),
        "last_seen_at": case.last_seen_at.isoformat(),
        "waiting_s": max(0, int((now - case.opened_at).total_seconds())) if open_ else None,
        "acknowledged_by": who(case.acknowledged_by),
        "joined_by": who(case.joined_by),
        "taken_over_by": who(case.taken_over_by),
        "resolved_at": case.resolved_at.isoformat() if case.resolved_at else None,
        "resolved_by": who(case.resolved_by),
        "held_order_id": case.held_order_id,
        "overtime_seconds": case.overtime_seconds,
        "overtime_fen": case.overtime_fen,
        "debrief": case.debrief,
        "server_now": now.isoformat(),
    }


async def summaries(db: AsyncSession, cases: list[RiskCase], now: datetime) -> list[dict]:
    ids = {uid for c in cases for uid in (c.seeker_id, c.listener_id, c.acknowledged_by, c.joined_by,
                                            c.taken_over_by, c.resolved_by) if uid}
    names = await accounts.users_by_ids(db, list(ids)) if ids else {}
    return [summary(c, names, now) for c in cases]


def queue_key(case: RiskCase) -> tuple:
    """Risk first (rank, then level), then who has waited longest — never FIFO alone."""
    return (-case.rank, -case.level, case.opened_at)


async def queue(db: AsyncSession) -> list[RiskCase]:
    rows = await db.scalars(
        select(RiskCase).where(RiskCase.status.in_(OPEN))
        .order_by(RiskCase.rank.desc(), RiskCase.level.desc(), RiskCase.opened_at.asc()).limit(500)
    )
    return list(rows)


def _readable(user: User):
    """Cases ``user`` may see: staff all, a listener only their own."""
    q = select(RiskCase)
    if user.role in STAFF:
        return q
    if user.role == "listener":
        return q.where(RiskCase.listener_id == user.id)
    return q.where(false())


async def cases_for(db: AsyncSession, user: User, limit: int = 100) -> list[RiskCase]:
    q = _readable(user)
    if user.role in STAFF:
        q = q.where(RiskCase.status == "resolved")  # the open ones are the queue
    return list(await db.scalars(q.order_by(RiskCase.opened_at.desc()).limit(limit)))


async def get_for(db: AsyncSession, user: User, case_id: str) -> RiskCase:
    if not case_id or len(case_id) > 32:
        raise case_not_found()
    case = await db.scalar(_readable(user).where(RiskCase.id == case_id))
    if case is None:
        raise case_not_found()
    return case


async def events_of(db: AsyncSession, keyring: KeyRing, case: RiskCase, *, for_staff: bool) -> list[dict]:
    rows = list(await db.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)))
    names = await accounts.users_by_ids(db, list({e.actor_id for e in rows if e.actor_id}))
    out = []
    for e in rows:
        if not for_staff and e.kind in ("transcript",):
            continue
        note = ""
        if e.body_ct is not None and (for_staff or e.kind in ("whisper", "worry")):
            note = keyring.decrypt(e.key_id, e.body_ct, _note_aad(case.id, e.kind))
        actor = names.get(e.actor_id) if e.actor_id else None
        out.append({
            "id": e.id, "at": e.at.isoformat(), "kind": e.kind, "label": g.EVENT_LABELS.get(e.kind, e.kind),
            "actor": actor.display_name if actor else ("平台" if e.actor_id is None else ""),
            "data": e.data, "note": note,
        })
    return out


async def get_case_view(ctx, db: AsyncSession, user: User, case_id: str) -> dict:
    case = await get_for(db, user, case_id)
    now = ctx.clock.now()
    (s,) = await summaries(db, [case], now)
    s["events"] = await events_of(db, ctx.keyring, case, for_staff=user.role in STAFF)
    return s


# ------------------------------------------------------------- staff actions


def _require_open(case: RiskCase) -> None:
    if case.status == "resolved":
        raise AppError("case_resolved", "这个个案已经结案", "the case is resolved", 409)


def _require_staff(user: User) -> None:
    if user.role not in STAFF:
        raise staff_only()


async def _staff_case(db: AsyncSession, user: User, case_id: str, *, lock: bool = True) -> RiskCase:
    _require_staff(user)
    if not case_id or len(case_id) > 32:
        raise case_not_found()
    if lock:
        await begin_write(db)
    q = select(RiskCase).where(RiskCase.id == case_id)
    case = await db.scalar(q.with_for_update() if lock else q)
    if case is None:
        raise case_not_found()
    return case


async def audit_read(db: AsyncSession, reader: User, conversation_id: str, case_id: str | None, via: str,
                     upto_seq: int, now: datetime) -> None:
    db.add(TranscriptAccess(conversation_id=conversation_id, case_id=case_id, reader_id=reader.id,
                            reader_role=reader.role, at=now, via=via, upto_seq=upto_seq))


async def transcript(ctx, staff: User, case_id: str, *, via: str = "api", limit: int = 200) -> dict:
    """The conversation of a case, for a supervisor.  The access is audited
    (who, when, which conversation, up to which message) and committed
    *before* anything is returned."""
    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        case = await _staff_case(db, staff, case_id)
        msgs = await chat.staff_transcript(db, ctx.keyring, case.conversation_id, limit=limit)
        upto = msgs[-1]["seq"] if msgs else 0
        await audit_read(db, staff, case.conversation_id, case.id, via, upto, now)
        _event(db, case, now, "transcript", staff.id, via=via, upto_seq=upto)
        await db.commit()
    return {"case_id": case.id, "conversation_id": case.conversation_id, "messages": msgs}


async def watch(ctx, staff: User, case_id: str) -> RiskCase:
    """A supervisor's console starts following a case's conversation live
    (every message from now on): audited like a transcript read."""
    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        case = await _staff_case(db, staff, case_id)
        upto = (await chat.last_seqs(db, [case.conversation_id])).get(case.conversation_id, 0)
        await audit_read(db, staff, case.conversation_id, case.id, "live", upto, now)
        _event(db, case, now, "transcript", staff.id, via="live", upto_seq=upto)
        await db.commit()
    return case


async def accesses(db: AsyncSession, conversation_id: str) -> list[TranscriptAccess]:
    return list(await db.scalars(
        select(TranscriptAccess).where(TranscriptAccess.conversation_id == conversation_id)
        .order_by(TranscriptAccess.id)
    ))


async def acknowledge(ctx, staff: User, case_id: str) -> RiskCase:
    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        case = await _staff_case(db, staff, case_id)
        _require_open(case)
        if case.status == "open":
            case.status = "acknowledged"
            case.acknowledged_at, case.acknowledged_by = now, staff.id
            _event(db, case, now, "acknowledged", staff.id)
        await db.commit()
        await _publish(ctx, db, case, alarm=False, reason="acknowledged")
    return case


async def whisper(ctx, staff: User, case_id: str, body: str) -> dict:
    """A private note to the listener: only the listener's sockets get it."""
    body = (body or "").strip()
    if not body:
        raise AppError("empty_body", "内容不能为空", "empty note", 400)
    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        case = await _staff_case(db, staff, case_id)
        _require_open(case)
        ev = _event(db, case, now, "whisper", staff.id, ctx.keyring, body)
        await db.commit()
        frame = {"type": "whisper", "conversation_id": case.conversation_id, "case_id": case.id, "id": ev.id,
                 "from": staff.display_name, "body": body[:MAX_NOTE], "at": now.isoformat()}
    data = dumps(frame)
    ctx.broker.publish_nowait(private_topic(case.conversation_id, case.listener_id), data)
    ctx.broker.publish_nowait(f"user:{case.listener_id}", data)
    return frame


JOIN_NOTICE = "平台督导加入了对话，会和倾听师一起陪着你。"
JOIN_NOTICE_AI = "平台督导（真人）加入了对话，接下来由督导陪你聊，AI 陪伴先不说话。"  # an AI companion conversation
TAKEOVER_NOTICE = "接下来由平台督导陪你聊，倾听师也还在。"
LEAVE_NOTICE = "平台督导已离开对话，倾听师会继续陪着你。"
LEAVE_NOTICE_AI = "平台督导已离开对话，AI 陪伴会继续陪你聊。"


async def join(ctx, staff: User, case_id: str, *, takeover: bool = False) -> RiskCase:
    """The supervisor becomes a participant (role ``supervisor``) and can talk
    in the conversation; taking over also tells the listener to step back.

    A participant reads the whole history through the chat API, so joining is
    audited like a transcript read (``via="join"``, up to the last message
    now), in the same transaction.  The access lasts while the case is open:
    :func:`resolve` takes the supervisor out again."""
    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        case = await _staff_case(db, staff, case_id)
        _require_open(case)
        first_join = await chat.add_participant(db, ctx.clock, case.conversation_id, staff.id, "supervisor")
        with_ai = "companion" in (await chat.participants(db, case.conversation_id)).values()
        upto = (await chat.last_seqs(db, [case.conversation_id])).get(case.conversation_id, 0)
        await audit_read(db, staff, case.conversation_id, case.id, "join", upto, now)
        case.joined_by = case.joined_by or staff.id
        if case.status == "open":
            case.status, case.acknowledged_at, case.acknowledged_by = "acknowledged", now, staff.id
        kind = "taken_over" if takeover else "joined"
        if takeover:
            case.taken_over_by = staff.id
        _event(db, case, now, kind, staff.id, upto_seq=upto)
        await db.commit()
        await _publish(ctx, db, case, alarm=False, reason=kind)
    if takeover:
        await chat.post_system(ctx, case.conversation_id, f"case:{case.id}:takeover", TAKEOVER_NOTICE)
    elif first_join:
        await chat.post_system(ctx, case.conversation_id, f"join:{case.id}:{staff.id[:16]}",
                               JOIN_NOTICE_AI if with_ai else JOIN_NOTICE)
    return case


async def resolve(ctx, staff: User, case_id: str, note: str) -> RiskCase:
    """Close the case with resolution notes.  Guardian mode ends here: the
    orders scheduler is asked to look at the conversation's order now (it ends
    it and pays the listener's time beyond the paid period).  After a
    high-risk case the listener is offered a debrief."""
    note = (note or "").strip()
    if not note:
        raise AppError("note_required", "请填写结案说明", "resolution notes are required", 400)
    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        case = await _staff_case(db, staff, case_id)
        _require_open(case)
        case.status, case.open_key = "resolved", None
        case.resolved_at, case.resolved_by = now, staff.id
        _event(db, case, now, "resolved", staff.id, ctx.keyring, note)
        left, with_ai = await _supervisors_leave(db, case, now)
        if case.rank >= g.ALARM_RANK:
            case.debrief = "offered"
            _event(db, case, now, "debrief_offered")
        await db.commit()
        await _publish(ctx, db, case, alarm=False, reason="resolved")
    # After the commit: a socket a supervisor who left still holds is closed (4403), in every process.
    chat.announce_left(ctx.broker, case.conversation_id, left)
    # A blocked seeker could still write while the case was open: now their open socket cannot either.
    await chat.refresh_send_refusal(ctx, case.conversation_id, case.seeker_id)
    if case.debrief == "offered":
        data = dumps({"type": "debrief", "conversation_id": case.conversation_id, "case_id": case.id,
                      **g.DEBRIEF_OFFER})
        ctx.broker.publish_nowait(f"user:{case.listener_id}", data)
        ctx.broker.publish_nowait(private_topic(case.conversation_id, case.listener_id), data)
    recheck = getattr(getattr(ctx, "orders", None), "recheck_conversation", None)
    if recheck is not None:
        recheck(case.conversation_id)
    if left:  # the notice is the last step: the resolution above stands whatever happens to it
        try:
            await chat.post_system(ctx, case.conversation_id, f"case:{case.id}:left",
                                   LEAVE_NOTICE_AI if with_ai else LEAVE_NOTICE)
        except Exception:
            log.exception("could not post the supervisor's leave notice (case %s)", case.id)
    return case


async def _supervisors_leave(db: AsyncSession, case: RiskCase, now: datetime) -> tuple[list[str], bool]:
    """A closing case takes every supervisor out of its conversation (in the
    caller's transaction, which holds the case's lock, so no join slips in
    between): joining gave them a participant's access for the case, not for
    every later session of the pair (one conversation per seeker–listener
    pair).  Reads after this are audited transcript reads again.  Returns who
    left and whether the AI companion is the other side."""
    left = await chat.remove_participants(db, case.conversation_id, "supervisor")
    for uid in left:
        _event(db, case, now, "left", uid)
    with_ai = bool(left) and "companion" in (await chat.participants(db, case.conversation_id)).values()
    return left, with_ai


async def answer_debrief(ctx, listener: User, case_id: str, accept: bool) -> RiskCase:
    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        await begin_write(db)
        case = await db.scalar(select(RiskCase).where(RiskCase.id == case_id, RiskCase.listener_id == listener.id)
                               .with_for_update())
        if case is None:
            raise case_not_found()
        if case.debrief != "offered":
            raise AppError("no_debrief", "没有待回复的复盘邀请", "no debrief offer to answer", 409)
        case.debrief = "accepted" if accept else "declined"
        _event(db, case, now, "debrief_accepted" if accept else "debrief_declined", listener.id)
        await db.commit()
        await _publish(ctx, db, case, alarm=False, reason="debrief")
    return case


# ----------------------------------------------------------- guardian mode


@dataclass(frozen=True)
class Guard:
    """What guardian mode says about ending an order now."""

    case_id: str
    holding: bool  # an open case at ideation or above: do not end, no "time's up"
    held_seq: int | None = None  # conversation seq when the order was first held
    resolved_at: datetime | None = None  # released: the case that held the order was resolved


async def guardian_case(db: AsyncSession, conversation_id: str) -> str | None:
    """Id of the open guardian case of the conversation, if any."""
    return await db.scalar(
        select(RiskCase.id).where(RiskCase.open_key == conversation_id, RiskCase.rank >= g.GUARDIAN_RANK)
    )


async def guardian_for_order(db: AsyncSession, conversation_id: str, order_id: str, now: datetime,
                             last_seq: int) -> Guard | None:
    """Called by the orders scheduler, inside its transaction, before it
    ends an order or posts a time notice.  Holding: the order must stay
    open (the first hold is logged).  Released: the case that held it was
    resolved and the platform has not paid the extra time yet.  None: no
    guardian involvement."""
    case = await db.scalar(
        select(RiskCase).where(RiskCase.open_key == conversation_id, RiskCase.rank >= g.GUARDIAN_RANK)
    )
    if case is not None:
        if case.held_order_id != order_id:
            case.held_order_id, case.held_since, case.held_seq = order_id, now, last_seq
            case.overtime_paid_at = None
            _event(db, case, now, "guardian_hold", order_id=order_id)
        return Guard(case.id, True, case.held_seq)
    released = await db.scalar(
        select(RiskCase).where(RiskCase.held_order_id == order_id, RiskCase.status == "resolved",
                               RiskCase.overtime_paid_at.is_(None))
        .order_by(RiskCase.resolved_at.desc()).limit(1)
    )
    if released is not None:
        return Guard(released.id, False, released.held_seq, released.resolved_at)
    return None


async def guardian_paid(db: AsyncSession, case_id: str, *, order_id: str, seconds: int, fen: int,
                        now: datetime) -> None:
    """The orders scheduler ended a held order and the platform paid the
    listener ``fen`` for ``seconds`` beyond the paid period (same transaction)."""
    case = await db.get(RiskCase, case_id)
    if case is None:
        return
    case.overtime_seconds += seconds
    case.overtime_fen += fen
    case.overtime_paid_at = now
    _event(db, case, now, "guardian_paid", order_id=order_id, seconds=seconds, amount_fen=fen)


async def refused_end(db: AsyncSession, case_id: str, actor_id: str, order_id: str, now: datetime) -> None:
    case = await db.get(RiskCase, case_id)
    if case is not None:
        _event(db, case, now, "refused_end", actor_id, order_id=order_id)


# -------------------------------------------------------------- page state


async def chat_state(ctx, db: AsyncSession, user: User, conversation_id: str, role: str) -> dict:
    """What a participant's chat page shows at load (and after a reconnect):
    the seeker only the hotline card (plan / imminent); the listener the open
    case with guidance, whispers and a debrief offer; a supervisor the case."""
    case = await db.scalar(select(RiskCase).where(RiskCase.open_key == conversation_id))
    out: dict = {}
    now = ctx.clock.now()
    if role == "seeker":
        if case is not None and case.rank >= g.ALARM_RANK:
            out["hotline"] = g.hotline_card(ctx.settings)
        return out
    if role == "listener":
        if case is not None and case.listener_id == user.id:
            (out["case"],) = await summaries(db, [case], now)
            if case.rank >= g.GUARDIAN_RANK:
                out["guidance"] = g.guidance(case.tier if g.TIER_RANK[case.tier] >= g.GUARDIAN_RANK else "ideation")
            events = await events_of(db, ctx.keyring, case, for_staff=False)
            out["whispers"] = [{"id": e["id"], "from": e["actor"], "body": e["note"], "at": e["at"]}
                               for e in events if e["kind"] == "whisper"]
        offered = await db.scalar(
            select(RiskCase).where(RiskCase.conversation_id == conversation_id, RiskCase.listener_id == user.id,
                                   RiskCase.debrief == "offered").limit(1)
        )
        if offered is not None:
            out["debrief"] = {"case_id": offered.id, **g.DEBRIEF_OFFER}
        return out
    if role == "supervisor" and case is not None:
        (out["case"],) = await summaries(db, [case], now)
    return out


async def listener_state(ctx, db: AsyncSession, listener: User) -> dict:
    """The listener console's safety section: their open cases and debrief offers."""
    rows = list(await db.scalars(
        select(RiskCase).where(RiskCase.listener_id == listener.id,
                               or_(RiskCase.status.in_(OPEN), RiskCase.debrief == "offered"))
        .order_by(RiskCase.rank.desc(), RiskCase.opened_at).limit(50)
    ))
    return {"cases": await summaries(db, rows, ctx.clock.now()), "debrief": g.DEBRIEF_OFFER}


async def recent_risk_rank(db: AsyncSession, seeker_id: str, since: datetime) -> int:
    """The highest rank (0–4, as tiers) of the seeker's cases seen since
    ``since``: matching requires a verified professional at ideation (2) or more."""
    return await db.scalar(
        select(func.max(RiskCase.rank)).where(RiskCase.seeker_id == seeker_id, RiskCase.last_seen_at >= since)
    ) or 0


# ------------------------------------------------------------------ events


async def _publish(ctx, db: AsyncSession, case: RiskCase, *, alarm: bool, reason: str) -> None:
    (s,) = await summaries(db, [case], ctx.clock.now())
    _publish_summary(ctx, case, s, alarm=alarm, reason=reason)


def _publish_summary(ctx, case: RiskCase, s: dict, *, alarm: bool, reason: str) -> None:
    data = dumps({"type": "case", "reason": reason, "alarm": alarm, "case": s})
    ctx.broker.publish_nowait(SUPERVISION_TOPIC, data)
    ctx.broker.publish_nowait(private_topic(case.conversation_id, case.listener_id), data)
    ctx.broker.publish_nowait(f"user:{case.listener_id}", data)
    if case.joined_by:
        ctx.broker.publish_nowait(private_topic(case.conversation_id, case.joined_by), data)


def encrypted_stores() -> list:
    """Supervisors' notes on case events, for key rotation."""
    from miaohui.core.rekey import EncryptedColumns

    return [EncryptedColumns("case_events", CaseEvent.__table__, ("body_ct",),
                             lambda r, _: _note_aad(r["case_id"], r["kind"]))]
