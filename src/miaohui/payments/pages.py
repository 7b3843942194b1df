"""The sandbox gateway's checkout page.  It stands for the page a real
gateway would show (Alipay, a card form): clearly labelled 沙箱, it lets the
payer confirm or fail the payment; the gateway then calls the platform back
asynchronously, and the payer returns to the wallet to watch it land."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from miaohui.accounts.deps import DB, Ctx, csrf_ok
from miaohui.core.errors import AppError
from miaohui.ledger.service import yuan
from miaohui.payments import service
from miaohui.web.routes import MaybeUser, _field, error_page, form_user, gate, render, templates

router = APIRouter(include_in_schema=False)

templates.env.filters["money"] = yuan


def _missing(request: Request, ctx, user) -> Response:
    return error_page(request, ctx, user, 404, "支付单不存在", "这笔沙箱支付不存在或链接有误。")


async def _own_intent(db, ctx, user, payment_id: str):
    """The sandbox intent of the signed-in payer's own payment; ``None`` for anyone else's."""
    try:
        await service.get_payment(db, user.id, payment_id)
    except AppError:
        return None
    return await ctx.gateway.intent(payment_id)


@router.get("/sandbox/pay/{payment_id}")
async def checkout(payment_id: str, request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (refused := gate(request, ctx, user)) is not None:
        return refused
    intent = await _own_intent(db, ctx, user, payment_id)
    if intent is None:
        return _missing(request, ctx, user)
    return render(request, ctx, "sandbox_pay.html", user, private=True, intent=intent, error=None)


@router.post("/sandbox/pay/{payment_id}")
async def checkout_submit(payment_id: str, request: Request, ctx: Ctx, db: DB) -> Response:
    form = await request.form()
    user = await form_user(request, ctx, db)
    if (refused := gate(request, ctx, user)) is not None:
        return refused
    intent = await _own_intent(db, ctx, user, payment_id)
    if intent is None:
        return _missing(request, ctx, user)
    if not csrf_ok(request, _field(form, "csrf_token")):
        return render(request, ctx, "sandbox_pay.html", user, 403, private=True, intent=intent,
                      error="页面已过期，请刷新后重试")
    try:
        await ctx.gateway.complete(payment_id, _field(form, "outcome", 10))
    except AppError as e:
        return render(request, ctx, "sandbox_pay.html", user, e.status_code, private=True, intent=intent,
                      error=e.message)
    return RedirectResponse(f"/wallet?payment={payment_id}", status_code=303)
