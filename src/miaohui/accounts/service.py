"""Account business logic: sign-up, password checks, sessions.  No HTTP here."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.accounts.models import AuthSession, User
from miaohui.clock import Clock
from miaohui.core.errors import AppError

_hasher = PasswordHasher()
# Verifying against this when the username is unknown keeps timing equal, so
# response time does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("miaohui-timing-equaliser")


def set_hasher_params(**params) -> None:
    """Tune argon2 cost (tests use cheap parameters; hashes carry their own
    parameters, so existing ones keep verifying)."""
    global _hasher, _DUMMY_HASH
    _hasher = PasswordHasher(**params)
    _DUMMY_HASH = _hasher.hash("miaohui-timing-equaliser")


# argon2 runs on a few threads of its own, not the loop's default executor:
# each hash costs tens of milliseconds of CPU and (by default) 64 MiB, so a
# flood of logins queues here instead of taking every default thread and the
# memory with it.  Beyond ARGON2_QUEUE_MAX checks waiting, a login is refused
# at once (429) rather than queued behind the flood.  Per process.
ARGON2_THREADS = max(2, min(8, (os.cpu_count() or 2) // 2))
ARGON2_QUEUE_MAX = 64
_argon2_pool = ThreadPoolExecutor(ARGON2_THREADS, thread_name_prefix="argon2")
_verify_slots = threading.BoundedSemaphore(ARGON2_THREADS + ARGON2_QUEUE_MAX)  # any loop, any thread


def too_many_attempts() -> AppError:
    return AppError(
        "too_many_attempts", "登录尝试过于频繁，请几分钟后再试", "too many login attempts; try again later", 429
    )


def _login_busy() -> AppError:
    err = AppError("login_busy", "登录的人太多了，请稍后再试", "too many sign-ins at once; try again shortly", 429)
    err.headers = {"Retry-After": "1"}
    return err


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_argon2_pool, _hasher.hash, password)


async def _verify(hash_: str, password: str) -> bool:
    """Raises :func:`_login_busy` (429) when too many checks already wait."""

    def run() -> bool:
        try:
            return _hasher.verify(hash_, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    if not _verify_slots.acquire(blocking=False):
        raise _login_busy()
    try:
        return await asyncio.get_running_loop().run_in_executor(_argon2_pool, run)
    finally:
        _verify_slots.release()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_user(
    db: AsyncSession, clock: Clock, *, username: str, password: str, display_name: str, role: str
) -> User:
    user = User(
        username=username.lower(),
        password_hash=await hash_password(password),
        display_name=display_name.strip(),
        role=role,
        created_at=clock.now(),
    )
    db.add(user)
    try:
        await db.flush()
    except IntegrityError:
        await db.rollback()
        raise AppError("username_taken", "该用户名已被使用", "username already taken", 409) from None
    return user


async def authenticate(db: AsyncSession, username: str, password: str) -> User | None:
    user = await db.scalar(select(User).where(User.username == username.lower()))
    if db.in_transaction():
        # Hand the connection back to the pool while argon2 runs: many
        # logins at once must not hold every pooled connection idle.
        await db.commit()
    ok = await _verify(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not ok or user.disabled:
        return None
    return user


async def create_session(db: AsyncSession, clock: Clock, user: User, days: int) -> str:
    # Finish what this session read or wrote so far (authentication, sign-up)
    # before the INSERT: on SQLite a transaction that reads and then writes
    # fails at once ("database is locked") when another writer committed in
    # between, while one that starts with a write simply waits its turn.
    if db.in_transaction():
        await db.commit()
    token = secrets.token_urlsafe(32)
    now = clock.now()
    db.add(
        AuthSession(
            token_hash=token_hash(token), user_id=user.id, created_at=now, expires_at=now + timedelta(days=days)
        )
    )
    await db.flush()
    return token


async def user_for_token(db: AsyncSession, clock: Clock, token: str) -> User | None:
    if not token or len(token) > 128:
        return None
    row = await db.execute(
        select(User)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(AuthSession.token_hash == token_hash(token), AuthSession.expires_at > clock.now())
    )
    user = row.scalar_one_or_none()
    if user is None or user.disabled:
        return None
    return user


async def request_user(db: AsyncSession, clock: Clock, token: str) -> User | None:
    """:func:`user_for_token` for a request (API dependency or form post),
    with the lookup's read transaction ended, so the route's own work starts
    a transaction of its own: on SQLite a transaction that read and then
    writes fails at once ("database is locked") if another writer committed
    in between, while one that begins with its write (or with
    ``core.db.begin_write``) waits its turn.  The loaded user stays usable
    (``expire_on_commit=False``)."""
    user = await user_for_token(db, clock, token)
    if db.in_transaction():
        await db.commit()
    return user


# ``session.info`` key of the broker that tells open sockets a session ended
# (set by :func:`miaohui.accounts.deps.get_db`).  Absent (a CLI, a test's own
# session): nothing is announced.
BROKER_INFO = "miaohui.broker"
_PENDING_INFO = "miaohui.ended_sessions"
SESSION_ENDED = '{"type":"session_ended"}'


def session_topic(token_hash_: str) -> str:
    """The broker topic on which a session's end is announced: every socket
    the session authenticated listens on it (chat.gateway) and closes (4401).
    Named by a further hash, so the stored token hash never travels."""
    return "session:" + hashlib.sha256(b"session-topic:" + token_hash_.encode()).hexdigest()[:32]


def _announce_after_commit(db: AsyncSession, topics: list[str]) -> None:
    """Publish "session ended" on ``topics`` once ``db``'s transaction commits
    (not before: a socket closed early could reconnect on the session still
    valid; nothing if it rolls back)."""
    if not topics or db.info.get(BROKER_INFO) is None:
        return
    pending = db.info.get(_PENDING_INFO)
    if pending is None:
        pending = db.info[_PENDING_INFO] = []
        event.listen(db.sync_session, "after_commit", _publish_pending)
        event.listen(db.sync_session, "after_rollback", _drop_pending)
    pending.extend(topics)


def _publish_pending(session) -> None:
    pending = session.info.get(_PENDING_INFO)
    if pending:
        broker = session.info[BROKER_INFO]
        for topic in pending:
            broker.publish_nowait(topic, SESSION_ENDED)
        pending.clear()


def _drop_pending(session) -> None:
    pending = session.info.get(_PENDING_INFO)
    if pending:
        pending.clear()


async def end_session(db: AsyncSession, token: str) -> None:
    """Log out: delete the session; once committed, every socket it opened
    (in any process) is closed."""
    th = token_hash(token)
    await db.execute(delete(AuthSession).where(AuthSession.token_hash == th))
    _announce_after_commit(db, [session_topic(th)])


async def end_user_sessions(db: AsyncSession, user_id: str) -> None:
    """End every session of a person (an account disabled): the same as
    logging each one out, sockets included."""
    hashes = list(await db.scalars(select(AuthSession.token_hash).where(AuthSession.user_id == user_id)))
    await db.execute(delete(AuthSession).where(AuthSession.user_id == user_id))
    _announce_after_commit(db, [session_topic(th) for th in hashes])


async def live_sessions(db: AsyncSession, hashes: set[str], now: datetime) -> set[str]:
    """Which of these session hashes still sign someone in (not ended, not expired)."""
    if not hashes:
        return set()
    rows = await db.scalars(
        select(AuthSession.token_hash).where(AuthSession.token_hash.in_(hashes), AuthSession.expires_at > now)
    )
    return set(rows)


async def get_user(db: AsyncSession, user_id: str) -> User | None:
    return await db.get(User, user_id)


async def users_by_ids(db: AsyncSession, ids: list[str]) -> dict[str, User]:
    if not ids:
        return {}
    rows = await db.scalars(select(User).where(User.id.in_(ids)))
    return {u.id: u for u in rows}


async def login(db: AsyncSession, clock: Clock, limiter, username: str, password: str, ip: str) -> User:
    """Check a password under the login rate limit (per IP and per account).

    The attempt is counted *before* the password is checked (a reservation),
    so attempts sent in parallel are limited like attempts sent one by one;
    one over the limit is answered 429 before the database or argon2 is
    touched.  A wrong password leaves the reservation standing as the
    failure; a right one takes it back and clears the account's count; an
    attempt that could not be checked (busy, an error) takes it back."""
    ip_key, user_key = f"ip:{ip}", f"user:{username.lower()}"
    attempt = await limiter.reserve(ip_key, user_key)
    if attempt is None:
        raise too_many_attempts()
    try:
        user = await authenticate(db, username, password)
    except Exception:
        await limiter.release(attempt, ip_key, user_key)
        raise
    if user is None:
        raise AppError("bad_credentials", "用户名或密码错误", "wrong username or password", 401)
    await limiter.release(attempt, ip_key)
    await limiter.reset(user_key)
    return user


async def signup(db: AsyncSession, clock: Clock, *, username: str, password: str, display_name: str, role: str) -> User:
    """Self-service sign-up is for seekers and listeners; a listener starts
    with a pending profile that an admin must approve before it is listed."""
    from miaohui.listeners import (
        service as listeners,  # listeners depend on accounts, not the reverse at import
    )

    if role not in ("seeker", "listener"):
        raise AppError("bad_role", "只能注册为倾诉者或倾听师", "sign up as seeker or listener", 400)
    user = await create_user(db, clock, username=username, password=password, display_name=display_name, role=role)
    if role == "listener":
        await listeners.create_profile(db, clock, user)
    return user


# ------------------------------------------------------------ closing (注销)

CLOSED_NAME = "已注销用户"


def account_export(user: User) -> dict:
    return {"username": user.username, "display_name": user.display_name, "role": user.role,
            "created_at": user.created_at}


async def close_account(db: AsyncSession, user_id: str) -> bool:
    """Close an account for good, in the caller's transaction: it can no
    longer sign in (disabled, no password), its name and login name are
    gone (others see 已注销用户; the login name is free again), and every
    session ends, sockets included, once committed.  Conditional: ``False``
    when it was already closed or disabled (a double click changes nothing)."""
    done = await db.execute(
        update(User).where(User.id == user_id, ~User.disabled)
        .values(disabled=True, username=f"closed-{user_id}", display_name=CLOSED_NAME, password_hash="!closed"))
    if done.rowcount != 1:
        return False
    await end_user_sessions(db, user_id)
    return True
