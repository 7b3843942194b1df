"""Money pages: the seeker's wallet (top-up), the listener's earnings
(withdraw) and the admin's withdrawal queue.  Plain HTML forms with the
double-submit CSRF field, post/redirect/get; they work without JavaScript."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from jinja2 import pass_context

from miaohui.accounts.deps import DB, Ctx
from miaohui.core.errors import AppError
from miaohui.ledger import service as ledger
from miaohui.ledger.service import parse_yuan, yuan
from miaohui.payments import service as payments
from miaohui.payments.routes import notify_url
from miaohui.web.routes import MaybeUser, _field, error_page, gate, posted_form, render, templates

router = APIRouter(include_in_schema=False)

TOPUP_PRESETS = (5000, 10000, 20000)


@pass_context
def when(context, dt: datetime | None) -> str:
    """A time as the platform's clock reads it (``tz`` from ``render``)."""
    return dt.astimezone(ZoneInfo(context.get("tz") or "Asia/Shanghai")).strftime("%m-%d %H:%M") if dt else "—"


templates.env.filters["money"] = yuan
templates.env.filters["when"] = when


async def _undo(db, user) -> None:
    """Roll back a refused action; the signed-in user stays usable for the page."""
    await db.rollback()
    await db.refresh(user)


def _amount(form, preset_field: str | None, custom_field: str) -> int | None:
    custom = _field(form, custom_field, 20).strip()
    if custom:
        return parse_yuan(custom)
    if preset_field and (preset := _field(form, preset_field, 12)).isdigit():
        return int(preset)
    return None


# ------------------------------------------------------------------- wallet


async def _wallet_page(request: Request, ctx, db, user, status_code: int = 200, error: str | None = None,
                       custom: str = "", refund_error: str | None = None) -> Response:
    payment = None
    if pid := request.query_params.get("payment", "")[:32]:
        try:
            payment = payments.payment_dict(await payments.get_payment(db, user.id, pid))
        except AppError:
            payment = None
    return render(
        request, ctx, "wallet.html", user, status_code=status_code, private=True,
        view=await ledger.wallet(db, user.id),
        lines=await ledger.statement(db, user.id, "wallet", limit=50),
        topups=[payments.payment_dict(p) for p in await payments.recent_payments(db, user.id, 5)],
        payment=payment, presets=TOPUP_PRESETS, error=error, custom=custom,
        min_fen=ctx.settings.topup_min_fen, max_fen=ctx.settings.topup_max_fen,
        refunds=[payments.withdrawal_dict(w) for w in await payments.my_withdrawals(db, user.id, 5)],
        refund_error=refund_error, refund_done=request.query_params.get("refund") == "1",
    )


@router.get("/wallet")
async def wallet_page(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (refused := gate(request, ctx, user, "seeker", "钱包仅对倾诉者开放。")) is not None:
        return refused
    return await _wallet_page(request, ctx, db, user)


@router.post("/wallet/topup")
async def wallet_topup(request: Request, ctx: Ctx, db: DB) -> Response:
    form, user, refused = await posted_form(request, ctx, db, "seeker")
    if refused is not None:
        return refused
    amount = _amount(form, "preset", "custom_yuan")
    custom = _field(form, "custom_yuan", 20)
    if amount is None:
        return await _wallet_page(request, ctx, db, user, 400, "请输入正确的金额，例如 50 或 88.80", custom)
    try:
        _, pay_url = await payments.start_topup(
            db, ctx.clock, ctx.settings, ctx.gateway, user, amount, notify_url(request, ctx.settings)
        )
    except AppError as e:
        return await _wallet_page(request, ctx, db, user, e.status_code, e.message, custom)
    return RedirectResponse(pay_url, status_code=303)


@router.post("/wallet/refund")
async def wallet_refund(request: Request, ctx: Ctx, db: DB) -> Response:
    """The whole available balance back to where it was paid from (an admin
    approves it, as a payout)."""
    form, user, refused = await posted_form(request, ctx, db, "seeker")
    if refused is not None:
        return refused
    amount = (await ledger.wallet(db, user.id)).available
    if _field(form, "amount_fen", 20) != str(amount):  # the page showed another balance: show the current one
        return await _wallet_page(request, ctx, db, user, 409, refund_error="余额已变化，请确认新的可退金额后再提交")
    try:
        await payments.request_withdrawal(db, ctx.clock, ctx.settings, user, amount)
        await db.commit()
    except AppError as e:
        await _undo(db, user)
        return await _wallet_page(request, ctx, db, user, e.status_code, refund_error=e.message)
    return RedirectResponse("/wallet?refund=1", status_code=303)


# ----------------------------------------------------------------- earnings


async def _earnings_page(request: Request, ctx, db, user, status_code: int = 200, error: str | None = None,
                         amount: str = "") -> Response:
    return render(
        request, ctx, "earnings.html", user, status_code=status_code, private=True,
        view=await ledger.earnings(db, user.id),
        lines=await ledger.statement(db, user.id, "earnings", limit=50),
        withdrawals=[payments.withdrawal_dict(w) for w in await payments.my_withdrawals(db, user.id)],
        error=error, amount=amount, done=request.query_params.get("done") == "1",
        min_fen=ctx.settings.withdrawal_min_fen,
    )


@router.get("/console/earnings")
async def earnings_page(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (refused := gate(request, ctx, user, "listener", "收入页仅对倾听师开放。")) is not None:
        return refused
    return await _earnings_page(request, ctx, db, user)


@router.post("/console/earnings/withdraw")
async def earnings_withdraw(request: Request, ctx: Ctx, db: DB) -> Response:
    form, user, refused = await posted_form(request, ctx, db, "listener")
    if refused is not None:
        return refused
    raw = _field(form, "amount_yuan", 20)
    amount = _amount(form, None, "amount_yuan")
    if amount is None:
        return await _earnings_page(request, ctx, db, user, 400, "请输入正确的金额，例如 100 或 99.50", raw)
    try:
        await payments.request_withdrawal(db, ctx.clock, ctx.settings, user, amount)
        await db.commit()
    except AppError as e:
        await _undo(db, user)
        return await _earnings_page(request, ctx, db, user, e.status_code, e.message, raw)
    return RedirectResponse("/console/earnings?done=1", status_code=303)


# -------------------------------------------------------------------- admin


async def _queue_page(request: Request, ctx, db, user, status_code: int = 200, error: str | None = None,
                      notice: str | None = None) -> Response:
    return render(
        request, ctx, "admin_withdrawals.html", user, status_code=status_code, private=True,
        queue=await payments.withdrawal_queue(db, "requested"),
        recent=[w for w in await payments.withdrawal_queue(db, None, limit=20, newest_first=True)
                if w["status"] != "requested"],
        books=await ledger.check_books(db), error=error, notice=notice,
    )


@router.get("/admin/withdrawals")
async def withdrawals_page(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (refused := gate(request, ctx, user, "admin", "提现审核仅对管理员开放。")) is not None:
        return refused
    notice = {"paid": "已打款（沙箱）。", "rejected": "已驳回，金额已退回倾听师的可提现余额。"}
    return await _queue_page(request, ctx, db, user, notice=notice.get(request.query_params.get("done", "")))


@router.post("/admin/withdrawals/{withdrawal_id}/{action}")
async def withdrawal_decide(withdrawal_id: str, action: str, request: Request, ctx: Ctx, db: DB) -> Response:
    form, user, refused = await posted_form(request, ctx, db, "admin")
    if refused is not None:
        return refused
    if action not in ("approve", "reject"):
        return error_page(request, ctx, user, 404, "页面不存在", "没有这个操作。")
    try:
        if action == "approve":
            await payments.approve_withdrawal(db, ctx.clock, ctx.gateway, user, withdrawal_id)
        else:
            await payments.reject_withdrawal(db, ctx.clock, ctx.keyring, user, withdrawal_id, _field(form, "reason", 200))
        await db.commit()
    except AppError as e:
        await _undo(db, user)
        return await _queue_page(request, ctx, db, user, e.status_code, e.message)
    done = "paid" if action == "approve" else "rejected"
    return RedirectResponse(f"/admin/withdrawals?done={done}", status_code=303)
