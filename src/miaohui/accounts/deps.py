"""Request dependencies: the app context, a DB session, the current user.

Browsers authenticate with the HttpOnly ``mh_session`` cookie; API clients
with ``Authorization: Bearer``.  Cookie-authenticated unsafe requests must
carry the CSRF token (double-submit: the ``mh_csrf`` cookie, echoed in the
``X-CSRF-Token`` header or a ``csrf_token`` form field), because browsers
attach cookies to cross-site requests and bearer tokens they do not.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.accounts import service
from miaohui.accounts.models import User
from miaohui.context import AppContext
from miaohui.core.errors import AppError, unauthenticated

SESSION_COOKIE = "mh_session"
CSRF_COOKIE = "mh_csrf"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


async def get_db(ctx: Ctx) -> AsyncIterator[AsyncSession]:
    async with ctx.sessionmaker() as session:
        # What a request's service calls announce after COMMIT go through it
        # (a logout closes the session's sockets: service.end_session).
        session.info[service.BROKER_INFO] = ctx.broker
        yield session


DB = Annotated[AsyncSession, Depends(get_db)]


def request_token(request) -> tuple[str, str]:
    """``(token, via)`` from the Authorization header or the session cookie."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), "bearer"
    return request.cookies.get(SESSION_COOKIE, ""), "cookie"


def request_session_hash(request) -> str:
    """The stored hash of the session this request signed in with (what a
    row tied to one sign-in, such as a push subscription, names)."""
    return service.token_hash(request_token(request)[0])


def csrf_ok(request: Request, supplied: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return bool(cookie) and bool(supplied) and secrets.compare_digest(cookie, supplied)


def csrf_failed() -> AppError:
    return AppError("csrf_failed", "页面已过期，请刷新后重试", "CSRF check failed; reload the page", 403)


async def optional_user(request: Request, ctx: Ctx, db: DB) -> User | None:
    token, via = request_token(request)
    if not token:
        return None
    user = await service.request_user(db, ctx.clock, token)
    if user is not None and via == "cookie" and request.method not in SAFE_METHODS:
        if not csrf_ok(request, request.headers.get("x-csrf-token")):
            raise csrf_failed()
    return user


MaybeUser = Annotated[User | None, Depends(optional_user)]


async def current_user(user: MaybeUser) -> User:
    if user is None:
        raise unauthenticated()
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_role(*roles: str):
    """``Annotated[User, ...]`` that only lets the given roles through."""

    async def dep(user: CurrentUser) -> User:
        if user.role not in roles:
            raise AppError("forbidden_role", "当前身份无权进行此操作", "your role cannot do this", 403)
        return user

    return Annotated[User, Depends(dep)]


SeekerUser = require_role("seeker")
ListenerUser = require_role("listener")
AdminUser = require_role("admin")


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
