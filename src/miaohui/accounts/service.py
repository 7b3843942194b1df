"""Account business logic: sign-up, password checks, sessions.  No HTTP here."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
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


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def _verify(hash_: str, password: str) -> bool:
    def run() -> bool:
        try:
            return _hasher.verify(hash_, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(run)


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


async def end_session(db: AsyncSession, token: str) -> None:
    await db.execute(delete(AuthSession).where(AuthSession.token_hash == token_hash(token)))


async def get_user(db: AsyncSession, user_id: str) -> User | None:
    return await db.get(User, user_id)


async def users_by_ids(db: AsyncSession, ids: list[str]) -> dict[str, User]:
    if not ids:
        return {}
    rows = await db.scalars(select(User).where(User.id.in_(ids)))
    return {u.id: u for u in rows}


async def login(db: AsyncSession, clock: Clock, limiter, username: str, password: str, ip: str) -> User:
    """Check a password under the login rate limit (per IP and per account)."""
    keys = (f"ip:{ip}", f"user:{username.lower()}")
    if await limiter.blocked(*keys):
        raise AppError(
            "too_many_attempts", "登录尝试过于频繁，请几分钟后再试", "too many login attempts; try again later", 429
        )
    user = await authenticate(db, username, password)
    if user is None:
        await limiter.fail(*keys)
        raise AppError("bad_credentials", "用户名或密码错误", "wrong username or password", 401)
    await limiter.reset(f"user:{username.lower()}")
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
