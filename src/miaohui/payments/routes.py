from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request

from miaohui.accounts.deps import DB, AdminUser, Ctx, CurrentUser, ListenerUser, SeekerUser
from miaohui.core.errors import AppError
from miaohui.payments import service
from miaohui.payments.schemas import (
    PaymentOut,
    RejectIn,
    SandboxCompleteIn,
    SandboxCompleteOut,
    TopupIn,
    TopupOut,
    WebhookOut,
    WithdrawalIn,
    WithdrawalOut,
)

router = APIRouter(tags=["payments"])

MAX_CALLBACK_BYTES = 64 * 1024


def notify_url(request: Request, settings) -> str:
    """Where the gateway calls back: the configured public address, else the
    address this server listens on.  Never the request's ``Host`` header: a
    forged one would have the gateway post signed payment events to a server of
    the sender's choosing (SSRF), and the payment would never land here."""
    path = request.app.url_path_for("sandbox_webhook")
    if settings.public_url:
        return settings.public_url.rstrip("/") + path
    host, port = request.scope.get("server") or ("127.0.0.1", 8000)
    host = f"[{host}]" if ":" in host else host
    return f"{request.url.scheme}://{host}:{port}{path}"


@router.post("/api/wallet/topups", response_model=TopupOut, status_code=201)
async def create_topup(body: TopupIn, request: Request, ctx: Ctx, db: DB, user: SeekerUser) -> dict:
    """Start a top-up: returns the gateway's checkout URL.  The wallet is
    credited when the gateway's signed callback arrives."""
    payment, pay_url = await service.start_topup(
        db, ctx.clock, ctx.settings, ctx.gateway, user, body.amount_fen, notify_url(request, ctx.settings)
    )
    return {**service.payment_dict(payment), "pay_url": pay_url}


@router.get("/api/wallet/topups/{payment_id}", response_model=PaymentOut)
async def topup_status(payment_id: str, db: DB, user: CurrentUser) -> dict:
    return service.payment_dict(await service.get_payment(db, user.id, payment_id))


@router.post("/api/payments/sandbox/webhook", name="sandbox_webhook", response_model=WebhookOut)
async def sandbox_webhook(request: Request, ctx: Ctx, db: DB) -> dict:
    """The gateway's callback.  Signature-checked (``Miaohui-Signature``),
    idempotent; 200 only after the result is committed."""
    raw = await request.body()
    if len(raw) > MAX_CALLBACK_BYTES:
        raise AppError("payload_too_large", "内容过大", "payload too large", 413)
    event = ctx.gateway.verify_callback(request.headers, raw)
    payment = await service.handle_event(db, ctx.clock, event)
    await db.commit()
    return {"received": True, "status": payment.status}


@router.post("/api/sandbox/payments/{payment_id}", response_model=SandboxCompleteOut, status_code=202)
async def sandbox_complete(payment_id: str, body: SandboxCompleteIn, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    """Drive the sandbox checkout without a browser (what 确认支付 / 模拟失败
    do): the sandbox then calls the webhook asynchronously.  Only the payer's
    own payment; anyone else's looks missing."""
    await service.get_payment(db, user.id, payment_id)
    intent = await ctx.gateway.complete(payment_id, body.outcome)
    return {"payment_id": intent.payment_id, "status": intent.status}


async def _request_payout(body: WithdrawalIn, ctx, db, user) -> dict:
    """A listener's withdrawal or a seeker's refund (the service picks the
    account by role); the amount is reserved until an admin decides."""
    w = await service.request_withdrawal(db, ctx.clock, ctx.settings, user, body.amount_fen)
    await db.commit()
    return service.withdrawal_dict(w)


@router.post("/api/listener/withdrawals", response_model=WithdrawalOut, status_code=201)
async def request_withdrawal(body: WithdrawalIn, ctx: Ctx, db: DB, user: ListenerUser) -> dict:
    """Ask to withdraw earnings; the amount is reserved until an admin decides."""
    return await _request_payout(body, ctx, db, user)


@router.get("/api/listener/withdrawals", response_model=list[WithdrawalOut])
async def my_withdrawals(db: DB, user: ListenerUser) -> list[dict]:
    return [service.withdrawal_dict(w) for w in await service.my_withdrawals(db, user.id)]


@router.post("/api/wallet/refunds", response_model=WithdrawalOut, status_code=201)
async def request_refund(body: WithdrawalIn, ctx: Ctx, db: DB, user: SeekerUser) -> dict:
    """Ask for unused wallet balance back, to where it was paid from; the
    amount is reserved until an admin decides (the same queue as payouts)."""
    return await _request_payout(body, ctx, db, user)


@router.get("/api/wallet/refunds", response_model=list[WithdrawalOut])
async def my_refunds(db: DB, user: SeekerUser) -> list[dict]:
    return [service.withdrawal_dict(w) for w in await service.my_withdrawals(db, user.id)]


@router.get("/api/admin/withdrawals", response_model=list[WithdrawalOut])
async def withdrawal_queue(
    db: DB, user: AdminUser, status: Literal["requested", "paid", "rejected", "all"] = Query(default="requested")
) -> list[dict]:
    return await service.withdrawal_queue(db, None if status == "all" else status)


@router.post("/api/admin/withdrawals/{withdrawal_id}/approve", response_model=WithdrawalOut)
async def approve_withdrawal(withdrawal_id: str, ctx: Ctx, db: DB, user: AdminUser) -> dict:
    """Pay out (sandbox).  Approving twice is 409 and pays nothing."""
    w = await service.approve_withdrawal(db, ctx.clock, ctx.gateway, user, withdrawal_id)
    await db.commit()
    return service.withdrawal_dict(w)


@router.post("/api/admin/withdrawals/{withdrawal_id}/reject", response_model=WithdrawalOut)
async def reject_withdrawal(withdrawal_id: str, body: RejectIn, ctx: Ctx, db: DB, user: AdminUser) -> dict:
    w = await service.reject_withdrawal(db, ctx.clock, ctx.keyring, user, withdrawal_id, body.reason)
    await db.commit()
    return service.withdrawal_dict(w)
