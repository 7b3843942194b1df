"""Conversation business logic (no HTTP, no sockets).

Authorization lives in the queries: every read goes through
:func:`readable_conversations`, which only ever selects conversations the
caller takes part in.  A conversation that exists but is not yours and one
that does not exist look exactly the same (403), so ids leak nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from miaohui.accounts import service as accounts
from miaohui.accounts.models import User
from miaohui.chat.models import Conversation, Message, Participant
from miaohui.chat.writer import PendingMessage, Stored
from miaohui.clock import Clock
from miaohui.core.crypto import KeyRing, message_aad
from miaohui.core.errors import AppError
from miaohui.listeners import service as listeners
from miaohui.orders import blocks


def conversation_forbidden() -> AppError:
    return AppError("conversation_forbidden", "无权访问该会话", "you are not part of this conversation", 403)


def listener_suspended() -> AppError:
    return AppError(
        "listener_suspended",
        "你的倾听师资格已被平台暂停，暂时不能在会话中发消息。原因见「认证」页面；如有异议，请联系平台。",
        "your listener account is suspended: you cannot message clients",
        403,
    )


def readable_conversations(user_id: str) -> Select:
    """Conversations ``user_id`` may read — the one gate for every read."""
    return (
        select(Conversation)
        .join(Participant, Participant.conversation_id == Conversation.id)
        .where(Participant.user_id == user_id)
    )


@dataclass
class ConversationView:
    conversation: Conversation
    me: Participant
    peer: Participant
    peer_user: User
    roles: dict[str, str] | None = None  # every participant (a supervisor may have joined)
    # Why this person may read but not send here (a suspended listener, a seeker the
    # listener blocked), or None: every send path raises it (REST, WebSocket).
    send_refusal: AppError | None = None


def receipt_state(view: ConversationView, p: Participant) -> dict[str, int]:
    """A participant's delivery and read watermarks as clients see them
    (``Participant.watermarks``: sending counts as having read)."""
    delivered, read = p.watermarks(view.conversation)
    return {"delivered_seq": delivered, "read_seq": read}


async def get_view(db: AsyncSession, user_id: str, conversation_id: str) -> ConversationView:
    if not conversation_id or len(conversation_id) > 32:
        raise conversation_forbidden()
    conv = await db.scalar(readable_conversations(user_id).where(Conversation.id == conversation_id))
    if conv is None:
        raise conversation_forbidden()
    parts = list(await db.scalars(select(Participant).where(Participant.conversation_id == conv.id)))
    me = next(p for p in parts if p.user_id == user_id)
    # The peer is the other party of the pair (seeker <-> listener); a
    # supervisor who joined sees the seeker as the peer.
    others = sorted((p for p in parts if p.user_id != user_id), key=lambda p: _PEER_ORDER.get(p.role, 9))
    peer = others[0] if others else me
    refusal = None
    if conv.kind == "listener" and me.role in ("listener", "seeker"):
        refusal = await _contact_refusal(db, conv.id, me, parts)
    peer_user = await accounts.get_user(db, peer.user_id)
    return ConversationView(conv, me, peer, peer_user, {p.user_id: p.role for p in parts}, refusal)


async def _contact_refusal(db: AsyncSession, conversation_id: str, me: Participant,
                           parts: list[Participant]) -> AppError | None:
    """The two sides of a listener conversation may stop being allowed to
    talk: a suspended listener may not reach their clients, and a seeker the
    listener blocked may not reach that listener.  They still read what was
    said (it is theirs too); every send is refused with a 403 that says why
    (:attr:`ConversationView.send_refusal`)."""
    if me.role == "listener":
        profile = await listeners.get_profile(db, me.user_id)
        return listener_suspended() if profile is not None and profile.status == "suspended" else None
    listener_id = next((p.user_id for p in parts if p.role == "listener"), None)
    if listener_id is not None and await blocks.is_blocked(db, listener_id, me.user_id):
        return await _blocked_refusal(db, conversation_id)
    return None


async def _blocked_refusal(db: AsyncSession, conversation_id: str) -> AppError | None:
    """A blocked seeker is refused, except while the conversation has an open
    guardian case (a risk case at ideation or above): nothing cuts a person
    in crisis off (docs/architecture.md, guardian mode)."""
    from miaohui.supervision import service as supervision  # here: supervision imports this module

    if await supervision.guardian_case(db, conversation_id) is None:
        return blocks.blocked_error()
    return None


REFUSALS = {"listener_suspended": listener_suspended, "blocked": blocks.blocked_error}


def announce_muted(broker, conversation_id: str, user_id: str, code: str) -> None:
    """After the commit that suspended a listener or blocked a seeker: a socket
    ``user_id`` holds on the conversation refuses their sends from now on (it
    stays open: reading is still theirs), in every process.  ``code`` is a key
    of :data:`REFUSALS`; ``""`` lifts it (a listener reinstated)."""
    broker.publish_nowait(members_topic(conversation_id), f"mute:{user_id}:{code}")


async def refresh_send_refusal(ctx, conversation_id: str, user_id: str) -> None:
    """After a commit that may have changed whether ``user_id`` may send in
    this conversation (a block; a guardian case closing, which ends the
    exception a block makes for a seeker in crisis): read the answer
    :func:`get_view` now gives and :func:`announce_muted` it, so a socket
    already open agrees with a new one."""
    async with ctx.sessionmaker() as db:
        try:
            view = await get_view(db, user_id, conversation_id)
        except AppError:  # no longer a participant: nothing of theirs to mute
            return
    refusal = view.send_refusal
    announce_muted(ctx.broker, conversation_id, user_id, refusal.code if refusal is not None else "")


async def announce_muted_everywhere(ctx, user_id: str, code: str) -> None:
    """:func:`announce_muted` on every listener conversation ``user_id`` takes part in."""
    async with ctx.sessionmaker() as db:
        ids = list(await db.scalars(
            select(Participant.conversation_id).join(Conversation, Conversation.id == Participant.conversation_id)
            .where(Participant.user_id == user_id, Conversation.kind == "listener")
        ))
    for conversation_id in ids:
        announce_muted(ctx.broker, conversation_id, user_id, code)


_PEER_ORDER = {"seeker": 0, "listener": 1, "supervisor": 2}


async def start_with_listener(db: AsyncSession, clock: Clock, seeker: User, listener_id: str) -> tuple[Conversation, bool]:
    """Open (or reopen) the seeker's conversation with a listed listener.
    Returns ``(conversation, created)``."""
    if seeker.role != "seeker":
        raise AppError("seekers_only", "只有倾诉者可以发起会话", "only seekers can start conversations", 403)
    profile = await listeners.get_listed(db, listener_id)
    if profile is None:
        raise AppError("listener_unavailable", "该倾听师暂不可预约", "listener is not available", 404)
    pair_key = f"{seeker.id}:{listener_id}"
    existing = await db.scalar(select(Conversation).where(Conversation.pair_key == pair_key))
    if existing is not None:
        if await blocks.is_blocked(db, listener_id, seeker.id):  # no reopening after a block
            refusal = await _blocked_refusal(db, existing.id)
            if refusal is not None:
                raise refusal
        return existing, False
    now = clock.now()
    conv = Conversation(kind="listener", pair_key=pair_key, last_seq=0, created_at=now, last_activity_at=now)
    db.add(conv)
    try:
        await db.flush()
    except IntegrityError:  # a double click raced us; use the winner
        await db.rollback()
        existing = await db.scalar(select(Conversation).where(Conversation.pair_key == pair_key))
        return existing, False
    db.add_all(
        [
            Participant(conversation_id=conv.id, user_id=seeker.id, role="seeker", joined_at=now),
            Participant(conversation_id=conv.id, user_id=listener_id, role="listener", joined_at=now),
        ]
    )
    await db.flush()
    return conv, True


async def list_for_user(
    db: AsyncSession, keyring: KeyRing, user_id: str, limit: int = 100, only: str | None = None
) -> list[dict]:
    """The caller's conversations (or just ``only``), newest activity first,
    with unread counts."""
    me = aliased(Participant)
    peer = aliased(Participant)
    rows = await db.execute(
        select(Conversation, me, peer, User, Message)
        .join(me, and_(me.conversation_id == Conversation.id, me.user_id == user_id))
        .join(peer, and_(peer.conversation_id == Conversation.id, peer.user_id != user_id,
                         # one row per conversation when a supervisor joined
                         peer.role != "supervisor", or_(me.role != "supervisor", peer.role == "seeker")))
        .join(User, User.id == peer.user_id)
        # The latest message, for the preview: one index probe per row, no N+1.
        .outerjoin(Message, and_(Message.conversation_id == Conversation.id, Message.seq == Conversation.last_seq))
        .where(Conversation.id == only if only else True)
        .order_by(Conversation.last_activity_at.desc())
        .limit(limit)
    )
    out = []
    for conv, mine, theirs, peer_user, last in rows:
        preview = decrypt(keyring, last)[:60] if last is not None else ""
        my_read = mine.watermarks(conv)[1]
        peer_delivered, peer_read = theirs.watermarks(conv)
        out.append(
            {
                "id": conv.id,
                "kind": conv.kind,
                "peer": {"user_id": peer_user.id, "display_name": peer_user.display_name, "role": theirs.role},
                "last_seq": conv.last_seq,
                "unread": max(0, conv.last_seq - my_read),
                "my_read_seq": my_read,
                "peer_read_seq": peer_read,
                "peer_delivered_seq": peer_delivered,
                "last_activity_at": conv.last_activity_at,
                "preview": preview,
            }
        )
    return out


async def list_with_presence(
    db: AsyncSession, keyring: KeyRing, presence, user_id: str, only: str | None = None
) -> list[dict]:
    """:func:`list_for_user` plus each peer's live presence."""
    convs = await list_for_user(db, keyring, user_id, only=only)
    statuses = await presence.statuses([c["peer"]["user_id"] for c in convs])
    for c in convs:
        c["peer"]["presence"] = statuses[c["peer"]["user_id"]]
    return convs


def decrypt(keyring: KeyRing, m: Message) -> str:
    return keyring.decrypt(m.key_id, m.body_ct, message_aad(m.conversation_id, m.sender_id, m.client_id))


async def history(
    db: AsyncSession,
    keyring: KeyRing,
    view: ConversationView,
    *,
    before_seq: int | None = None,
    after_seq: int | None = None,
    limit: int = 50,
) -> tuple[list[dict], bool]:
    """A page of messages.  ``before_seq`` pages backwards (scrolling up),
    ``after_seq`` forwards (catching up).  Returns ``(messages, has_more)``."""
    conv_id = view.conversation.id
    roles = dict(view.roles or {view.me.user_id: view.me.role, view.peer.user_id: view.peer.role})
    q = select(Message).where(Message.conversation_id == conv_id)
    if after_seq is not None:
        q = q.where(Message.seq > after_seq).order_by(Message.seq.asc()).limit(limit + 1)
        rows = list(await db.scalars(q))
        has_more = len(rows) > limit
        rows = rows[:limit]
    else:
        if before_seq is not None:
            q = q.where(Message.seq < before_seq)
        rows = list(await db.scalars(q.order_by(Message.seq.desc()).limit(limit + 1)))
        has_more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
    roles[SYSTEM_SENDER] = SYSTEM_SENDER
    await _former_senders(db, roles, rows)
    return [to_dict(keyring, m, roles.get(m.sender_id, "")) for m in rows], has_more


async def _former_senders(db: AsyncSession, roles: dict[str, str], rows: list[Message]) -> None:
    """A supervisor leaves a conversation when their case is resolved
    (:func:`remove_participants`); their messages still say who spoke."""
    gone = list({m.sender_id for m in rows} - roles.keys())
    if gone:
        for uid, u in (await accounts.users_by_ids(db, gone)).items():
            if u.role in ("supervisor", "admin"):
                roles[uid] = "supervisor"


def to_dict(keyring: KeyRing, m: Message, sender_role: str) -> dict:
    return {
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "client_id": m.client_id,
        "sender_id": m.sender_id,
        "sender_role": sender_role,
        "body": decrypt(keyring, m),
        "created_at": m.created_at,
    }


# ------------------------------------------------- services for other domains
# The orders domain runs its contract on top of a conversation through these
# functions; it never touches the chat tables itself.

SYSTEM_SENDER = "system"


async def attach_order(db: AsyncSession, conversation_id: str, order_id: str | None, *, only_if: str | None = None) -> bool:
    """Mark ``order_id`` as the paid order running in the conversation (or
    clear it).  ``only_if`` makes it conditional on the current value, so a
    late clear of an old order never detaches its successor."""
    q = update(Conversation).where(Conversation.id == conversation_id)
    if only_if is not None:
        q = q.where(Conversation.active_order_id == only_if)
    result = await db.execute(q.values(active_order_id=order_id))
    return result.rowcount == 1


async def message_meta(db: AsyncSession, conversation_id: str, after_seq: int, upto_seq: int | None = None) -> list[tuple]:
    """``(seq, sender_id, created_at)`` of messages after ``after_seq`` — no
    bodies: what the reply clock needs."""
    q = select(Message.seq, Message.sender_id, Message.created_at).where(
        Message.conversation_id == conversation_id, Message.seq > after_seq
    )
    if upto_seq is not None:
        q = q.where(Message.seq <= upto_seq)
    return [tuple(r) for r in await db.execute(q.order_by(Message.seq))]


async def last_seqs(db: AsyncSession, conversation_ids) -> dict[str, int]:
    ids = list(conversation_ids)
    if not ids:
        return {}
    rows = await db.execute(select(Conversation.id, Conversation.last_seq).where(Conversation.id.in_(ids)))
    return dict(tuple(r) for r in rows)


async def participants(db: AsyncSession, conversation_id: str) -> dict[str, str]:
    """user id → role."""
    rows = await db.execute(
        select(Participant.user_id, Participant.role).where(Participant.conversation_id == conversation_id)
    )
    return dict(tuple(r) for r in rows)


async def add_participant(db: AsyncSession, clock: Clock, conversation_id: str, user_id: str, role: str) -> bool:
    """Add someone to a conversation (a supervisor joining a case).  Returns
    False if they already take part.  The caller commits."""
    if await db.get(Participant, (conversation_id, user_id)) is not None:
        return False
    last = (await last_seqs(db, [conversation_id])).get(conversation_id, 0)
    db.add(Participant(conversation_id=conversation_id, user_id=user_id, role=role, joined_at=clock.now(),
                       last_delivered_seq=last, last_read_seq=last))
    await db.flush()
    return True


async def remove_participants(db: AsyncSession, conversation_id: str, role: str) -> list[str]:
    """Take everyone with ``role`` out of a conversation (the supervisors who
    joined a case, when it is resolved): :func:`readable_conversations` no
    longer selects it for them.  Returns their ids.  The caller commits."""
    ids = list(await db.scalars(
        select(Participant.user_id).where(Participant.conversation_id == conversation_id, Participant.role == role)
    ))
    if ids:
        await db.execute(delete(Participant).where(Participant.conversation_id == conversation_id,
                                                   Participant.user_id.in_(ids)))
    return ids


def members_topic(conversation_id: str) -> str:
    """Broker topic of a conversation's membership changes: ``left:<user id>``
    (:func:`announce_left`) and ``mute:<user id>:<code>`` (:func:`announce_muted`).
    Chat sockets listen on it beside the conversation's own topic, so the
    message path never looks at membership."""
    return f"members:{conversation_id}"


def announce_left(broker, conversation_id: str, user_ids: list[str]) -> None:
    """After the commit that removed them: a socket such a person still holds on
    the conversation is closed (4403), in every process; the others' sockets stop
    counting them among the recipients of activity."""
    for uid in user_ids:
        broker.publish_nowait(members_topic(conversation_id), f"left:{uid}")


async def staff_transcript(db: AsyncSession, keyring: KeyRing, conversation_id: str, limit: int = 200) -> list[dict]:
    """The latest ``limit`` messages of a conversation for a supervisor who is
    not a participant.  This bypasses :func:`readable_conversations` on
    purpose: the caller (``supervision.service.transcript``) checks the role
    and writes the access audit record in the same transaction."""
    roles = await participants(db, conversation_id)
    roles[SYSTEM_SENDER] = SYSTEM_SENDER
    rows = list(await db.scalars(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.seq.desc()).limit(limit)
    ))
    await _former_senders(db, roles, rows)
    return [to_dict(keyring, m, roles.get(m.sender_id, "")) for m in reversed(rows)]


async def evidence_rows(db: AsyncSession, keyring: KeyRing, conversation_id: str, upto_seq: int | None = None):
    """Rows for :func:`miaohui.chat.evidence.verify`, in seq order."""
    q = select(Message).where(Message.conversation_id == conversation_id)
    if upto_seq is not None:
        q = q.where(Message.seq <= upto_seq)
    return [
        (m.seq, m.sender_id, m.created_at, decrypt(keyring, m), m.chain)
        for m in await db.scalars(q.order_by(Message.seq))
    ]


async def post_system(ctx, conversation_id: str, client_id: str, body: str) -> Stored:
    """Persist and deliver a platform notice in the conversation ("时间到了哦…").
    Idempotent by ``client_id`` like any message, so a retried scheduler tick
    never posts the same notice twice."""
    async with ctx.sessionmaker() as db:
        recipients = tuple(await participants(db, conversation_id))
    key_id, ct = ctx.keyring.encrypt(body, message_aad(conversation_id, SYSTEM_SENDER, client_id))
    fut = ctx.writer.submit(
        PendingMessage(conversation_id, SYSTEM_SENDER, SYSTEM_SENDER, client_id, key_id, ct, body, recipients)
    )
    return await fut


def encrypted_stores() -> list:
    """Message bodies (human and AI conversations alike), for key rotation."""
    from miaohui.core.rekey import EncryptedColumns

    return [EncryptedColumns("messages", Message.__table__, ("body_ct",),
                             lambda r, _: message_aad(r["conversation_id"], r["sender_id"], r["client_id"]))]


async def export_for(db: AsyncSession, keyring: KeyRing, user_id: str) -> list[dict]:
    """Every conversation the person is in, with every message (theirs and
    the other side's, as they saw them): for 下载我的数据."""
    convs = (await db.execute(
        select(Conversation, Participant).join(Participant, Participant.conversation_id == Conversation.id)
        .where(Participant.user_id == user_id).order_by(Conversation.created_at))).all()
    out = []
    for conv, _me in convs:
        roles = await participants(db, conv.id)
        names = {u.id: u.display_name for u in (await accounts.users_by_ids(db, list(roles))).values()}
        rows = await db.scalars(select(Message).where(Message.conversation_id == conv.id).order_by(Message.seq))
        out.append({
            "id": conv.id, "kind": conv.kind, "created_at": conv.created_at,
            "with": [names.get(uid, "") for uid, role in roles.items() if uid != user_id and role != "supervisor"],
            "messages": [{"seq": m.seq, "at": m.created_at, "mine": m.sender_id == user_id,
                          "from": "我" if m.sender_id == user_id else names.get(m.sender_id, "系统"),
                          "text": decrypt(keyring, m)} for m in rows],
        })
    return out


async def forget_messages(db: AsyncSession, conversation_id: str) -> int:
    """Delete a conversation's messages (an AI companion conversation whose
    only person closed their account); the conversation row stays for the
    records that point at it."""
    return (await db.execute(delete(Message).where(Message.conversation_id == conversation_id))).rowcount
