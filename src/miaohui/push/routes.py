"""关闭页面后也提醒: the key to subscribe with, and this person's devices."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from miaohui.accounts.deps import DB, Ctx, CurrentUser, request_session_hash
from miaohui.core.errors import AppError
from miaohui.push import service
from miaohui.push.schemas import DeviceOut, EndpointIn, PushKeyOut, SubscriptionIn
from miaohui.web.routes import posted_form

router = APIRouter(prefix="/api/push", tags=["push"])
pages = APIRouter(include_in_schema=False)


@router.get("/key", response_model=PushKeyOut)
async def key(ctx: Ctx) -> dict:
    """The application-server key (VAPID) a browser subscribes with."""
    on = ctx.settings.push_enabled
    return {"enabled": on, "public_key": ctx.push.public_key if on else None}


@router.put("/subscription", response_model=DeviceOut)
async def subscribe(body: SubscriptionIn, request: Request, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    """Keep this device's subscription for this sign-in (idempotent)."""
    h = request_session_hash(request)
    sub = await service.subscribe(db, ctx.settings, ctx.keyring, ctx.clock.now(), user_id=user.id, role=user.role,
                                  session_hash=h, endpoint=body.endpoint, p256dh=body.keys.p256dh, auth=body.keys.auth)
    out = service.device(sub, h)
    await db.commit()
    ctx.push.subscribed(user.id, user.role)
    return out


@router.post("/unsubscribe", status_code=204)
async def unsubscribe(body: EndpointIn, ctx: Ctx, db: DB, user: CurrentUser) -> Response:
    """This device stops (idempotent: an endpoint not held is not an error)."""
    await service.unsubscribe(db, user.id, body.endpoint)
    await db.commit()
    return Response(status_code=204)


@router.get("/devices", response_model=list[DeviceOut])
async def devices(request: Request, db: DB, user: CurrentUser) -> list[dict]:
    return await service.devices(db, user.id, request_session_hash(request))


@router.delete("/devices/{device_id}", status_code=204)
async def remove(device_id: str, db: DB, user: CurrentUser) -> Response:
    if len(device_id) > 32 or not await service.remove(db, user.id, device_id):
        raise AppError("device_not_found", "没有这台设备", "no such device", 404)
    await db.commit()
    return Response(status_code=204)


@pages.post("/account/push-devices/{device_id}/remove")
async def remove_form(device_id: str, request: Request, ctx: Ctx, db: DB) -> Response:
    """账户与隐私's 移除 (a lost phone): that device is told nothing more."""
    _, user, refused = await posted_form(request, ctx, db)
    if refused is not None:
        return refused
    if len(device_id) <= 32:
        await service.remove(db, user.id, device_id)
        await db.commit()
    return RedirectResponse("/account#push-devices", status_code=303)
