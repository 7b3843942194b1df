from __future__ import annotations

import secrets

from fastapi import APIRouter, Request, Response

from miaohui.accounts import service
from miaohui.accounts.deps import (
    CSRF_COOKIE,
    DB,
    SESSION_COOKIE,
    Ctx,
    CurrentUser,
    client_ip,
    request_token,
)
from miaohui.accounts.schemas import LoginIn, SessionOut, SignupIn, UserOut
from miaohui.config import Settings

router = APIRouter(prefix="/api/auth", tags=["accounts"])


def user_out(user) -> UserOut:
    return UserOut(id=user.id, username=user.username, display_name=user.display_name, role=user.role)


def ensure_csrf_cookie(request: Request, response: Response, settings: Settings, rotate: bool = False) -> str:
    """Double-submit token.  Lax (not Strict) so arriving from another site
    does not silently replace the token under forms open in other tabs."""
    token = (None if rotate else request.cookies.get(CSRF_COOKIE)) or secrets.token_urlsafe(24)
    response.set_cookie(
        CSRF_COOKIE, token, max_age=86400 * 30, samesite="lax", secure=settings.secure_cookies, httponly=False
    )
    return token


def set_session_cookie(response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_days * 86400,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


async def start_session(request: Request, response: Response, ctx, db, user) -> SessionOut:
    token = await service.create_session(db, ctx.clock, user, ctx.settings.session_days)
    await db.commit()
    set_session_cookie(response, token, ctx.settings)
    csrf = ensure_csrf_cookie(request, response, ctx.settings, rotate=True)  # fresh token per session
    return SessionOut(token=token, csrf_token=csrf, user=user_out(user))


@router.post("/signup", response_model=SessionOut, status_code=201)
async def signup(body: SignupIn, request: Request, response: Response, ctx: Ctx, db: DB) -> SessionOut:
    """Create an account (seeker or listener) and sign in."""
    user = await service.signup(db, ctx.clock, **body.model_dump())
    return await start_session(request, response, ctx, db, user)


@router.post("/login", response_model=SessionOut)
async def login(body: LoginIn, request: Request, response: Response, ctx: Ctx, db: DB) -> SessionOut:
    """Sign in.  At most ``login_max_failures`` failures per IP and per account
    in ``login_window_seconds``; then 429."""
    user = await service.login(db, ctx.clock, ctx.login_limiter, body.username, body.password, client_ip(request))
    return await start_session(request, response, ctx, db, user)


@router.post("/logout", status_code=204)
async def logout(request: Request, response: Response, user: CurrentUser, db: DB) -> Response:
    token, _ = request_token(request)
    await service.end_session(db, token)
    await db.commit()
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/me", response_model=UserOut)
async def me(user: CurrentUser) -> UserOut:
    return user_out(user)
