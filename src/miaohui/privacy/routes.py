"""下载我的数据 / 注销账号: the API (JSON) and the page (plain HTML forms)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from miaohui.accounts.deps import DB, SESSION_COOKIE, Ctx, CurrentUser, client_ip, request_session_hash
from miaohui.core.errors import AppError
from miaohui.privacy import service
from miaohui.push import service as push
from miaohui.web.routes import MaybeUser, _field, gate, posted_form, render

router = APIRouter(tags=["privacy"])
pages = APIRouter(include_in_schema=False)

EXPORT_HEADERS = {"Content-Disposition": 'attachment; filename="miaohui-my-data.json"', "Cache-Control": "no-store"}


class CloseIn(BaseModel):
    password: str = Field(min_length=1, max_length=256)
    confirm: str = Field(max_length=16)


@router.get("/api/account/export")
async def export(ctx: Ctx, user: CurrentUser) -> Response:
    """Everything the platform holds about you, as one JSON file."""
    return JSONResponse(jsonable_encoder(await service.export(ctx, user)), headers=EXPORT_HEADERS)


@router.get("/api/account/closing")
async def closing(ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    """What has to finish before the account can close (empty: it can)."""
    return {"blocking": await service.blockers(db, ctx, user)}


@router.post("/api/account/close", status_code=204)
async def close(body: CloseIn, request: Request, ctx: Ctx, user: CurrentUser) -> Response:
    await service.close(ctx, user, body.password, body.confirm, client_ip(request))
    resp = Response(status_code=204)
    resp.delete_cookie(SESSION_COOKIE)
    return resp


async def _page(request: Request, ctx, db, user, status_code: int = 200, error: str = "") -> Response:
    return render(request, ctx, "account.html", user, status_code=status_code, private=True, error=error,
                  blocking=await service.blockers(db, ctx, user), confirm_word=service.CONFIRM_WORD,
                  push_devices=await push.devices(db, user.id, request_session_hash(request)))


@pages.get("/account")
async def account_page(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (refused := gate(request, ctx, user)) is not None:
        return refused
    return await _page(request, ctx, db, user)


@pages.post("/account/close")
async def close_form(request: Request, ctx: Ctx, db: DB) -> Response:
    form, user, refused = await posted_form(request, ctx, db)
    if refused is not None:
        return refused
    try:
        await service.close(ctx, user, _field(form, "password", 256), _field(form, "confirm", 16), client_ip(request))
    except AppError as e:  # the service wrote nothing (its own sessions); show the page again with why
        return await _page(request, ctx, db, user, status_code=e.status_code, error=e.message)
    resp = render(request, ctx, "account_closed.html", None, account_closed=True)  # signout.js clears the device
    resp.delete_cookie(SESSION_COOKIE)
    return resp
