"""The AI companion in the product (one per process: ``ctx.companion``).

A seeker's companion conversation is an ordinary conversation of kind
``companion`` whose other participant is the platform's AI user (role
``companion``): the same gateway, history, resume and encryption as human
chats.  Human conversations pay nothing for it — the gateway asks the
companion only when the conversation's kind says so.

When a seeker's message in that conversation is durable (after the ack),
:meth:`Companion.on_seeker_message` starts a reply task:

1. **Safety first, outside every engine.**  The message was already assessed
   on the message path (``supervision.monitor``; the case and guardian mode
   come from there).  At ideation or above the reply is a vetted crisis
   response (``companion.crisis``), the seeker gets the hotline card and the
   offer of a human supervisor now; no limit, wrap-up or pause applies while
   the conversation has an open guardian case (``supervision.guardian_case``).
2. Otherwise the configured engine writes the reply, streamed to the seeker's
   sockets as ``companion_delta`` frames, sentence by sentence, each released
   only after the text so far passed ``companion.guard``.  A refused, failed or
   timed-out engine is retracted (``companion_retract``) and the skills engine
   answers — never silence.
3. The final text is persisted through the message writer (client id
   ``ai-<seq>``: a retried seeker message never gets two replies), so history
   and resume work as for any message; then the state is saved (encrypted).

A new seeker message while a reply is being written cancels it (closing the
model's HTTP stream) and the next reply reads both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.accounts import service as accounts
from miaohui.accounts.models import User
from miaohui.chat import service as chat
from miaohui.chat.models import Conversation, Participant
from miaohui.chat.writer import PendingMessage
from miaohui.companion import crisis, guard, memory, summary
from miaohui.companion import tools as toolbox
from miaohui.companion.engine import Engine, EngineError, Turn
from miaohui.companion.models import CompanionMemory, CompanionProfile
from miaohui.companion.skills import NUDGES, SkillsEngine, asks_identity
from miaohui.core.crypto import KeyRing, message_aad
from miaohui.core.db import begin_write
from miaohui.core.errors import AppError
from miaohui.supervision import guidance as g
from miaohui.supervision import service as supervision
from miaohui.supervision.monitor import dumps, private_topic

log = logging.getLogger("miaohui.companion")

AI_USER_ID = "companion-ai"
AI_USERNAME = "__companion__"
AI_NAME = "AI 陪伴"
KIND = "companion"
ROLE = "companion"
HISTORY = 12
GREETING = ("你好，我是秒回的 AI 陪伴。我是 AI，不是真人——但随时都在，不评判，也不会累。"
            "想说什么都可以；也可以点下面的小工具。想和真人聊的时候，点「找真人倾听师」。")
SOFT_LIMIT = (
    "今天我们已经聊了很多了。平台给 AI 陪伴设了每天的建议上限，想让你也有时间休息、见见身边的人。"
    "如果还想说，可以点「找真人倾听师」，或者明天再来，我都在。",
    "今天的 AI 陪伴次数已经超过建议的上限啦。歇一歇吧——真人倾听师随时可以接着陪你聊。",
)
WRAP_UP = ("我们约定的 {m} 分钟差不多到了。今天你愿意说这么多，辛苦了。"
           "我们可以在这里停下，想再聊的时候随时回来；如果还想继续，也可以接着说。")
PAUSE = ("我们已经连续聊了两个多小时了。要不要先停一停，喝口水、起来走动一下，让眼睛和脑子都歇一会儿？"
         "休息好了再回来，我还在这里。")


def forbidden() -> AppError:
    return AppError("companion_seekers_only", "AI 陪伴仅对倾诉者开放", "the AI companion is for seekers", 403)


def not_found() -> AppError:
    return AppError("memory_not_found", "找不到这条记忆", "memory item not found", 404)


def build_engine(settings) -> Engine:
    """The configured engine; the skills engine if it cannot be built."""
    kind = settings.companion_engine
    try:
        if kind == "openai":
            from miaohui.companion.openai_compat import OpenAICompatEngine

            return OpenAICompatEngine(
                settings.companion_openai_base_url, settings.companion_openai_model, settings.companion_openai_api_key,
                connect_timeout=settings.companion_connect_timeout, first_token_timeout=settings.companion_first_token_timeout,
                idle_timeout=settings.companion_idle_timeout, total_timeout=settings.companion_total_timeout,
                retries=settings.companion_retries, max_tokens=settings.companion_max_tokens)
        if kind == "gguf":
            from miaohui.companion.gguf import GGUFEngine

            return GGUFEngine(settings.companion_gguf_path, max_tokens=settings.companion_max_tokens)
    except EngineError as e:
        log.warning("companion engine %r unavailable (%s); using the skills engine", kind, e)
    return SkillsEngine(settings.companion_stream_delay_ms / 1000)


class Blocked(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Companion:
    def __init__(self, ctx, engine: Engine | None = None) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.skills = SkillsEngine(ctx.settings.companion_stream_delay_ms / 1000)
        self.engine: Engine = engine or build_engine(ctx.settings)
        self.tz = ZoneInfo(ctx.settings.timezone)
        self._tasks: dict[str, asyncio.Task] = {}
        self._finishing: dict[str, asyncio.Future] = {}  # the last reply's bookkeeping, per conversation
        self._crisis: set[asyncio.Task] = set()  # replies to crisis turns: never cancelled by a newer message
        self._ready = False
        self.stats: Counter[str] = Counter()

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.ensure_ai_user()

    async def stop(self) -> None:
        tasks = [t for t in self._tasks.values() if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for e in {id(self.engine): self.engine, id(self.skills): self.skills}.values():
            with contextlib.suppress(Exception):
                await e.aclose()

    async def ensure_ai_user(self) -> None:
        if self._ready:
            return
        async with self.ctx.sessionmaker() as db:
            if await db.get(User, AI_USER_ID) is None:
                db.add(User(id=AI_USER_ID, username=AI_USERNAME, display_name=AI_NAME, role=ROLE, disabled=True,
                            password_hash=await accounts.hash_password(secrets.token_urlsafe(32)),
                            created_at=self.ctx.clock.now()))
                try:
                    await db.commit()
                except IntegrityError:  # another process made it
                    await db.rollback()
        self._ready = True

    # ---------------------------------------------------------- conversation
    async def open(self, db: AsyncSession, seeker: User) -> tuple[str, bool]:
        """The seeker's companion conversation (created on first use, with a greeting that says it is AI)."""
        if seeker.role != "seeker":
            raise forbidden()
        await self.ensure_ai_user()
        await db.commit()  # the sign-in read is done
        await begin_write(db)
        pair_key = f"{seeker.id}:{KIND}"
        conv = await db.scalar(select(Conversation).where(Conversation.pair_key == pair_key))
        created = False
        if conv is None:
            now = self.ctx.clock.now()
            conv = Conversation(kind=KIND, pair_key=pair_key, last_seq=0, created_at=now, last_activity_at=now)
            db.add(conv)
            try:
                await db.flush()
                db.add_all([Participant(conversation_id=conv.id, user_id=seeker.id, role="seeker", joined_at=now),
                            Participant(conversation_id=conv.id, user_id=AI_USER_ID, role=ROLE, joined_at=now)])
                await db.flush()
                created = True
            except IntegrityError:  # a double click raced us
                await db.rollback()
                conv = await db.scalar(select(Conversation).where(Conversation.pair_key == pair_key))
        prof = await self._profile(db, seeker.id, lock=False)
        if prof.conversation_id != conv.id:
            prof.conversation_id = conv.id
        conv_id = conv.id
        await db.commit()
        if created:
            await self._post(conv_id, seeker.id, "ai-hello", GREETING)
        return conv_id, created

    async def _profile(self, db: AsyncSession, user_id: str, *, lock: bool = True) -> CompanionProfile:
        q = select(CompanionProfile).where(CompanionProfile.user_id == user_id)
        if lock:
            q = q.with_for_update()
        prof = await db.scalar(q)
        if prof is None:
            now = self.ctx.clock.now()
            prof = CompanionProfile(user_id=user_id, day="", turns_today=0, memory_enabled=True, created_at=now,
                                    updated_at=now)
            db.add(prof)
            try:
                await db.flush()
            except IntegrityError:
                await db.rollback()
                prof = await db.scalar(q)
        return prof

    def _state(self, prof: CompanionProfile) -> dict:
        if not prof.state_ct:
            return {}
        try:
            return orjson.loads(self.ctx.keyring.decrypt(prof.state_key, prof.state_ct, _state_aad(prof.user_id)))
        except Exception:  # a rotated-out key or a damaged row: start afresh rather than fail the reply
            log.warning("companion state unreadable for a profile; starting afresh")
            return {}

    def _save_state(self, prof: CompanionProfile, state: dict) -> None:
        prof.state_key, prof.state_ct = self.ctx.keyring.encrypt(orjson.dumps(state).decode(), _state_aad(prof.user_id))

    # ---------------------------------------------------------- message path
    def on_seeker_message(self, conversation_id: str, seeker_id: str, body: str, seq: int, duplicate: bool,
                          tier: str = "none") -> None:
        """Called on the event loop once a seeker message in a companion
        conversation is durable; never blocks.  A retry (``duplicate``) does nothing."""
        if duplicate:
            return
        prev = self._tasks.get(conversation_id)
        if prev is not None and not prev.done():
            if prev in self._crisis:
                pass  # a crisis reply is never cancelled: the new one waits for it (see _respond)
            else:
                prev.cancel()
        task = asyncio.get_running_loop().create_task(
            self._respond(conversation_id, seeker_id, body, seq, tier, prev), name=f"companion-{conversation_id[:8]}")
        if g.TIER_RANK.get(tier, 0) >= g.GUARDIAN_RANK:
            self._crisis.add(task)
            task.add_done_callback(self._crisis.discard)
        self._tasks[conversation_id] = task
        task.add_done_callback(lambda t, c=conversation_id: self._done(c, t))

    def after_send(self, conversation_id: str, seeker_id: str, body: str, verdict=None):
        """A done-callback for the writer's future (REST sends): reply once stored."""
        tier = verdict.tier if verdict is not None else "none"

        def done(fut: asyncio.Future) -> None:
            if not fut.cancelled() and fut.exception() is None:
                st = fut.result()
                self.on_seeker_message(conversation_id, seeker_id, body, st.seq, st.duplicate, tier)

        return done

    def _done(self, conversation_id: str, task: asyncio.Task) -> None:
        if self._tasks.get(conversation_id) is task:
            del self._tasks[conversation_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("companion reply failed", exc_info=task.exception())

    def _pub(self, conversation_id: str, frame: dict) -> None:
        self.ctx.broker.publish_nowait(f"conv:{conversation_id}", dumps({"conversation_id": conversation_id, **frame}))

    def _pub_seeker(self, conversation_id: str, seeker_id: str, frame: dict) -> None:
        self.ctx.broker.publish_nowait(private_topic(conversation_id, seeker_id),
                                       dumps({"conversation_id": conversation_id, **frame}))

    async def _respond(self, conv_id: str, seeker_id: str, body: str, seq: int, tier: str,
                       prev: asyncio.Task | None = None) -> None:
        ctx = self.ctx
        client_id = f"ai-{seq}"
        if prev is not None and prev in self._crisis and not prev.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(prev)
        pending = self._finishing.get(conv_id)
        if pending is not None and not pending.done():  # the previous reply's state and counts first
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)
        now = ctx.clock.now()
        async with ctx.sessionmaker() as db:
            roles = await chat.participants(db, conv_id)
            if roles.get(seeker_id) != "seeker" or roles.get(AI_USER_ID) != ROLE:
                return
            guardian = await supervision.guardian_case(db, conv_id)
            if guardian and "supervisor" in roles.values():
                return  # a supervisor has joined: the human speaks, the AI steps back
            prof = await self._profile(db, seeker_id, lock=False)
            state = self._state(prof)
            snap = {c: getattr(prof, c) for c in _SNAPSHOT}  # plain values: the row expires with the session
            mem = await self._memories(db, seeker_id) if prof.memory_enabled else []
            seeker = await accounts.get_user(db, seeker_id)
            name = seeker.display_name if seeker else ""
            history = await self._history(db, conv_id, seq)
            await db.commit()
        rank = g.TIER_RANK.get(tier, 0)
        in_crisis = rank >= g.GUARDIAN_RANK or guardian is not None
        self._pub(conv_id, {"type": "typing", "user_id": AI_USER_ID, "state": "start"})
        extra: list[str] = []
        cards: list[dict] = []
        local_day = now.astimezone(self.tz).date().isoformat()
        turns_today = snap["turns_today"] if snap["day"] == local_day else 0
        if rank >= g.GUARDIAN_RANK:
            text = self._crisis_reply(state, tier)
            card = {"type": "companion_card", "kind": "crisis", "tier": tier, "human": crisis.HUMAN_OFFER}
            if rank < g.ALARM_RANK:  # at plan / imminent the safety step already sent the card
                self._pub_seeker(conv_id, seeker_id,
                                 {"type": "hotline", **g.hotline_card(self.settings)})
            cards.append(card)
            self.stats["crisis"] += 1
            engine_used = "crisis"
            await self._stream_text(conv_id, client_id, text, seq)
        elif not in_crisis and turns_today >= self.settings.companion_daily_turns:
            text = SOFT_LIMIT[turns_today % len(SOFT_LIMIT)]
            cards.append({"type": "companion_card", "kind": "limit"})
            engine_used = "limit"
            await self._stream_text(conv_id, client_id, text, seq)
        else:
            if guardian is None:
                state.pop("crisis", None)
            turn = Turn(body, history, state, mem, tier, nudge=self._nudge_due(state, in_crisis), display_name=name)
            text, engine_used = await self._generate(conv_id, client_id, seq, turn)
            if not in_crisis:
                extra += self._boundaries(snap, state, now)
            offers = state.pop("_offers", [])
            if offers:
                cards.append({"type": "companion_card", "kind": "offer",
                              "tools": [{"key": k, "name": toolbox.BY_KEY[k].name} for k in offers]})
            if turn.nudge and engine_used != "skills" and not any(n in text for n in NUDGES):
                extra.append(NUDGES[state.get("turn", 0) % len(NUDGES)])
            if turn.nudge:
                state["nudged_at"] = state.get("turn", 0)
        if extra:
            more = "\n\n" + "\n".join(extra)
            self._pub(conv_id, {"type": "companion_delta", "client_id": client_id, "text": more})
            text += more
        for card in cards:
            self._pub_seeker(conv_id, seeker_id, card)
        fin = asyncio.ensure_future(self._finish(conv_id, seeker_id, client_id, text, state, now, local_day,
                                                 turns_today, body, snap["memory_enabled"], engine_used, in_crisis))
        self._finishing[conv_id] = fin
        fin.add_done_callback(lambda f, c=conv_id: self._finishing.pop(c, None) if self._finishing.get(c) is f else None)
        await asyncio.shield(fin)

    async def _finish(self, conv_id, seeker_id, client_id, text, state, now, local_day, turns_today, body,
                      memory_on, engine_used, in_crisis) -> None:
        st = await self._post(conv_id, seeker_id, client_id, text)
        self._pub(conv_id, {"type": "typing", "user_id": AI_USER_ID, "state": "stop"})
        self._pub(conv_id, {"type": "companion_end", "client_id": client_id, "seq": st.seq, "engine": engine_used})
        async with self.ctx.sessionmaker() as db:
            await begin_write(db)
            prof = await self._profile(db, seeker_id)
            prof.day, prof.turns_today = local_day, turns_today + 1
            gap = timedelta(minutes=self.settings.companion_break_minutes)
            if prof.continuous_since is None or prof.last_turn_at is None or now - prof.last_turn_at > gap:
                prof.continuous_since = now
                prof.pause_suggested_at = None
            if prof.session_minutes and prof.session_started_at is None:
                prof.session_started_at = now
            prof.last_turn_at = now
            if state.pop("_pause", False):
                prof.pause_suggested_at = now
            if state.pop("_wrapped", False):
                prof.wrapped_at = now
            self._save_state(prof, state)
            prof.updated_at = now
            if memory_on and not in_crisis:
                await self._remember(db, seeker_id, body, now)
            await db.commit()

    async def _post(self, conv_id: str, seeker_id: str, client_id: str, text: str):
        key_id, ct = self.ctx.keyring.encrypt(text, message_aad(conv_id, AI_USER_ID, client_id))
        async with self.ctx.sessionmaker() as db:
            recipients = tuple(u for u in await chat.participants(db, conv_id) if u != AI_USER_ID)
        return await self.ctx.writer.submit(
            PendingMessage(conv_id, AI_USER_ID, ROLE, client_id, key_id, ct, text, recipients or (seeker_id,)))

    async def _history(self, db: AsyncSession, conv_id: str, upto_seq: int) -> list[tuple[str, str]]:
        from miaohui.chat.models import Message

        rows = list(await db.scalars(
            select(Message).where(Message.conversation_id == conv_id, Message.seq < upto_seq)
            .order_by(Message.seq.desc()).limit(HISTORY)))
        out = []
        for m in reversed(rows):
            if m.sender_id == chat.SYSTEM_SENDER:
                continue
            out.append(("companion" if m.sender_id == AI_USER_ID else "seeker", chat.decrypt(self.ctx.keyring, m)))
        return out

    # ---------------------------------------------------------------- replies
    def _crisis_reply(self, state: dict, tier: str) -> str:
        used = state.setdefault("crisis_used", [])
        prev = state.get("crisis")
        follow = prev is not None and g.TIER_RANK.get(tier, 0) <= g.TIER_RANK.get(prev, 0)
        text, rid = crisis.response(tier, used, follow_up=follow)
        used.append(rid)
        del used[:-30]
        if not follow or g.TIER_RANK.get(tier, 0) > g.TIER_RANK.get(prev or "none", 0):
            state["crisis"] = tier
        state.pop("tool", None)  # an exercise is not what matters now
        return text

    def _nudge_due(self, state: dict, in_crisis: bool) -> bool:
        every = self.settings.companion_nudge_every
        turn = state.get("turn", 0) + 1
        return (not in_crisis and every > 0 and turn >= every and turn - state.get("nudged_at", 0) >= every
                and not state.get("tool"))

    def _boundaries(self, p: dict, state: dict, now: datetime) -> list[str]:
        """The session-length wrap-up and the two-hour pause suggestion (never during a crisis)."""
        out = []
        minutes, started = p["session_minutes"], p["session_started_at"]
        if minutes and started is not None and p["wrapped_at"] is None and now - started >= timedelta(minutes=minutes):
            out.append(WRAP_UP.format(m=minutes))
            state["_wrapped"] = True
        pause_after = timedelta(minutes=self.settings.companion_pause_after_minutes)
        gap = timedelta(minutes=self.settings.companion_break_minutes)
        last, since = p["last_turn_at"], p["continuous_since"]
        if (last is not None and now - last <= gap and since is not None and now - since >= pause_after
                and p["pause_suggested_at"] is None):
            out.append(PAUSE)
            state["_pause"] = True
        return out

    async def _generate(self, conv_id: str, client_id: str, seq: int, turn: Turn) -> tuple[str, str]:
        """Engine reply with sentence-gated streaming; the skills engine on any failure.
        A tool (running, or asked for now) is always run by the skills engine's step
        machine, whichever engine holds the open conversation, and "are you a real
        person?" always gets its fixed honest answer: no model is trusted with that one."""
        scripted = (bool(turn.state.get("tool")) or toolbox.wanted_tool(turn.text) is not None
                    or asks_identity(turn.text))
        first = self.skills if scripted else self.engine
        engines = [first] if first is self.skills else [first, self.skills]
        for engine in engines:
            state_before = orjson.dumps(turn.state)
            shown = 0
            try:
                async with asyncio.timeout(self.settings.companion_total_timeout + 5):
                    text, shown = await self._stream_engine(engine, conv_id, client_id, seq, turn)
                return text, engine.name
            except (EngineError, Blocked, TimeoutError) as e:
                reason = e.reason if isinstance(e, Blocked) else type(e).__name__
                self.stats[f"fallback:{reason}"] += 1
                log.info("companion engine %s gave no usable reply (%s); falling back", engine.name, reason)
                turn.state.clear()
                turn.state.update(orjson.loads(state_before))
                self._pub(conv_id, {"type": "companion_retract", "client_id": client_id, "reason": "fallback"})
        # Even the skills engine's text was refused (it quoted words it must not repeat): a plain safe line.
        self.stats["fallback:plain"] += 1
        text = "我在听。能再多说一点吗？你现在最需要的是什么？"
        await self._stream_text(conv_id, client_id, text, seq)
        return text, "skills"

    async def _stream_engine(self, engine: Engine, conv_id: str, client_id: str, seq: int, turn: Turn):
        self._pub(conv_id, {"type": "companion_start", "client_id": client_id, "reply_to": seq, "engine": engine.name})
        buf = ""
        shown = 0
        limit = self.settings.companion_max_reply_chars
        async for chunk in engine.stream(turn):
            buf += chunk
            cut = guard.release_point(buf)
            if cut > shown:
                problem = guard.check(buf[:cut])
                if problem:
                    raise Blocked(problem)
                self._pub(conv_id, {"type": "companion_delta", "client_id": client_id, "text": buf[shown:cut]})
                shown = cut
            if len(buf) >= limit:
                break
        text = buf[:limit].strip()
        if not text:
            raise EngineError("empty reply")
        problem = guard.check(text)
        if problem:
            raise Blocked(problem)
        if len(text) > shown:
            self._pub(conv_id, {"type": "companion_delta", "client_id": client_id, "text": text[shown:]})
        return text, shown

    async def _stream_text(self, conv_id: str, client_id: str, text: str, seq: int) -> None:
        self._pub(conv_id, {"type": "companion_start", "client_id": client_id, "reply_to": seq, "engine": "vetted"})
        self._pub(conv_id, {"type": "companion_delta", "client_id": client_id, "text": text})

    # ---------------------------------------------------------------- memory
    async def _memories(self, db: AsyncSession, user_id: str) -> list[dict]:
        rows = await db.scalars(select(CompanionMemory).where(CompanionMemory.user_id == user_id)
                                .order_by(CompanionMemory.created_at))
        return [self._mem_dict(m) for m in rows]

    def _mem_dict(self, m: CompanionMemory) -> dict:
        return {"id": m.id, "kind": m.kind, "kind_label": memory.KINDS.get(m.kind, m.kind),
                "text": self.ctx.keyring.decrypt(m.key_id, m.body_ct, _mem_aad(m.user_id, m.id)),
                "source": m.source, "created_at": m.created_at, "updated_at": m.updated_at}

    async def _remember(self, db: AsyncSession, user_id: str, body: str, now: datetime) -> None:
        found = memory.extract(body)
        if not found:
            return
        have = {(m["kind"], m["text"]) for m in await self._memories(db, user_id)}
        names = [m for m in await db.scalars(select(CompanionMemory).where(
            CompanionMemory.user_id == user_id, CompanionMemory.kind == "name"))]
        for f in found:
            if (f.kind, f.text) in have:
                continue
            if f.kind == "name":
                for old in names:  # one name: the latest wins
                    await db.delete(old)
            self._add_memory(db, user_id, f.kind, f.text, "auto", now)

    def _add_memory(self, db: AsyncSession, user_id: str, kind: str, text: str, source: str,
                    now: datetime) -> CompanionMemory:
        m = CompanionMemory(id=secrets.token_hex(16), user_id=user_id, kind=kind, source=source, created_at=now,
                            updated_at=now, key_id="", body_ct=b"")
        m.key_id, m.body_ct = self.ctx.keyring.encrypt(text, _mem_aad(user_id, m.id))
        db.add(m)
        return m

    async def memories(self, db: AsyncSession, user: User) -> list[dict]:
        _seeker(user)
        return await self._memories(db, user.id)

    async def add_memory(self, db: AsyncSession, user: User, kind: str, text: str) -> dict:
        _seeker(user)
        await db.commit()
        m = self._add_memory(db, user.id, kind, text, "manual", self.ctx.clock.now())
        await db.commit()
        return self._mem_dict(m)

    async def edit_memory(self, db: AsyncSession, user: User, memory_id: str, text: str) -> dict:
        _seeker(user)
        await db.commit()
        await begin_write(db)
        m = await db.scalar(select(CompanionMemory).where(CompanionMemory.id == memory_id,
                                                          CompanionMemory.user_id == user.id))
        if m is None:
            raise not_found()
        m.key_id, m.body_ct = self.ctx.keyring.encrypt(text, _mem_aad(user.id, m.id))
        m.updated_at = self.ctx.clock.now()
        await db.commit()
        return self._mem_dict(m)

    async def delete_memory(self, db: AsyncSession, user: User, memory_id: str | None) -> int:
        """Delete one item, or every item (``memory_id=None``)."""
        _seeker(user)
        await db.commit()
        await begin_write(db)
        q = select(CompanionMemory).where(CompanionMemory.user_id == user.id)
        if memory_id is not None:
            q = q.where(CompanionMemory.id == memory_id)
        rows = list(await db.scalars(q))
        if memory_id is not None and not rows:
            raise not_found()
        for m in rows:
            await db.delete(m)
        await db.commit()
        return len(rows)

    # -------------------------------------------------------------- settings
    async def settings_of(self, db: AsyncSession, user: User) -> dict:
        _seeker(user)
        prof = await db.scalar(select(CompanionProfile).where(CompanionProfile.user_id == user.id))
        now = self.ctx.clock.now()
        day = now.astimezone(self.tz).date().isoformat()
        used = prof.turns_today if prof is not None and prof.day == day else 0
        crisis_on = bool(prof and prof.conversation_id and await supervision.guardian_case(db, prof.conversation_id))
        return {
            "conversation_id": prof.conversation_id if prof else None,
            "crisis": crisis_on,
            "human": crisis.HUMAN_OFFER if crisis_on else None,
            "hotline": g.hotline_card(self.settings) if crisis_on else None,
            "session_minutes": prof.session_minutes if prof else None,
            "session_started_at": prof.session_started_at if prof else None,
            "memory_enabled": prof.memory_enabled if prof else True,
            "turns_today": used,
            "daily_soft_limit": self.settings.companion_daily_turns,
            "engine": self.engine.name,
            "tools": [{"key": t.key, "name": t.name, "desc": t.desc} for t in toolbox.TOOLS],
        }

    async def update_settings(self, db: AsyncSession, user: User, *, session_minutes: int | None = None,
                              memory_enabled: bool | None = None, set_session: bool = False) -> dict:
        _seeker(user)
        await db.commit()
        await begin_write(db)
        prof = await self._profile(db, user.id)
        if set_session:
            prof.session_minutes = session_minutes or None
            prof.session_started_at = self.ctx.clock.now() if session_minutes else None
            prof.wrapped_at = None
        if memory_enabled is not None:
            prof.memory_enabled = memory_enabled
        prof.updated_at = self.ctx.clock.now()
        await db.commit()
        return await self.settings_of(db, user)

    # ------------------------------------------------------ people, handoff
    async def request_human(self, user: User, conversation_id: str) -> dict:
        """"现在请真人督导来": the seeker asks for a platform supervisor at once."""
        _seeker(user)
        case = await supervision.seeker_asks_human(self.ctx, user, conversation_id, AI_USER_ID)
        return {"case_id": case.id, "text": "已经通知平台的真人督导，TA 会尽快加入这段对话。在那之前，我会一直在这里。"}

    async def draft_summary(self, db: AsyncSession, user: User) -> str:
        _seeker(user)
        prof = await db.scalar(select(CompanionProfile).where(CompanionProfile.user_id == user.id))
        if prof is None or not prof.conversation_id:
            return ""
        view = await chat.get_view(db, user.id, prof.conversation_id)
        msgs, _ = await chat.history(db, self.ctx.keyring, view, limit=60)
        mine = [m["body"] for m in msgs if m["sender_id"] == user.id]
        return summary.draft(mine, self._state(prof))

    async def handoff(self, db: AsyncSession, user: User, listener_id: str, text: str | None) -> str:
        """Open a conversation with a listener and, if the seeker chose to, send
        them the summary they reviewed (as the seeker's own first message)."""
        _seeker(user)
        conv, _ = await chat.start_with_listener(db, self.ctx.clock, user, listener_id)
        conv_id = conv.id
        await db.commit()
        body = (text or "").strip()
        if body:
            body = summary.HEADER + body[: self.settings.max_message_chars - len(summary.HEADER)]
            v = self.ctx.safety.check(conv_id, user.id, "seeker", listener_id, body)
            if v is not None:
                body = v.body
            client_id = "handoff-" + secrets.token_hex(8)
            key_id, ct = self.ctx.keyring.encrypt(body, message_aad(conv_id, user.id, client_id))
            fut = self.ctx.writer.submit(
                PendingMessage(conv_id, user.id, "seeker", client_id, key_id, ct, body, (listener_id,)))
            if v is not None:
                fut.add_done_callback(self.ctx.safety.after(v))
            await fut
        return conv_id


_SNAPSHOT = ("day", "turns_today", "memory_enabled", "session_minutes", "session_started_at", "wrapped_at",
             "continuous_since", "last_turn_at", "pause_suggested_at")


def _seeker(user: User) -> None:
    if user.role != "seeker":
        raise forbidden()


def _state_aad(user_id: str) -> bytes:
    return f"companion-state|{user_id}".encode()


def _mem_aad(user_id: str, memory_id: str) -> bytes:
    return f"companion-memory|{user_id}|{memory_id}".encode()


def encrypted_stores() -> list:
    """The companion's memories and per-person state, for key rotation (its
    messages are chat's)."""
    from miaohui.core.rekey import EncryptedColumns

    return [EncryptedColumns("companion_memories", CompanionMemory.__table__, ("body_ct",),
                             lambda r, _: _mem_aad(r["user_id"], r["id"])),
            EncryptedColumns("companion_profiles", CompanionProfile.__table__, ("state_ct",),
                             lambda r, _: _state_aad(r["user_id"]), key="state_key")]


async def export_for(db: AsyncSession, keyring: KeyRing, user_id: str) -> dict:
    rows = await db.scalars(select(CompanionMemory).where(CompanionMemory.user_id == user_id)
                            .order_by(CompanionMemory.created_at))
    return {"memories": [{"kind": memory.KINDS.get(m.kind, m.kind), "created_at": m.created_at,
                          "text": keyring.decrypt(m.key_id, m.body_ct, _mem_aad(m.user_id, m.id))} for m in rows]}


async def forget(db: AsyncSession, user_id: str) -> None:
    """Closing an account: the companion's memories and state go, and the
    AI conversation's messages (nobody else is in it)."""
    prof = await db.get(CompanionProfile, user_id)
    if prof is not None and prof.conversation_id:
        await chat.forget_messages(db, prof.conversation_id)
    await db.execute(delete(CompanionMemory).where(CompanionMemory.user_id == user_id))
    await db.execute(delete(CompanionProfile).where(CompanionProfile.user_id == user_id))
