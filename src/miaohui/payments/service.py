"""Top-ups through a payment gateway, and listener withdrawals.  No HTTP here.

Money moves only through :mod:`miaohui.ledger.service`; this module keeps the
business records (``payments``, ``withdrawals``) and their status machines,
each step a conditional UPDATE (``… WHERE status = 'pending'``) so a replayed
callback or a double click acts once.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.accounts import service as accounts
from miaohui.accounts.models import User
from miaohui.clock import Clock
from miaohui.config import Settings
from miaohui.core.crypto import KeyRing
from miaohui.core.db import begin_write, new_id
from miaohui.core.errors import AppError, not_found
from miaohui.ledger import service as ledger
from miaohui.ledger.service import yuan
from miaohui.payments.gateway import GatewayEvent, PaymentGateway
from miaohui.payments.models import Payment, Withdrawal

log = logging.getLogger("miaohui.payments")

PAYMENT_LABELS = {"pending": "待支付", "succeeded": "已到账", "failed": "支付失败"}
WITHDRAWAL_LABELS = {"requested": "审核中", "paid": "已打款", "rejected": "已驳回"}
REFUND_LABELS = {"requested": "审核中", "paid": "已退回原支付账户", "rejected": "已驳回"}
KIND_LABELS = {"earnings": "提现", "wallet": "余额退款"}


def withdrawal_ref(withdrawal_id: str) -> str:
    return f"withdrawal:{withdrawal_id}"


# ------------------------------------------------------------------ top-ups


def check_topup_amount(settings: Settings, amount: int) -> None:
    lo, hi = settings.topup_min_fen, settings.topup_max_fen
    if isinstance(amount, bool) or not isinstance(amount, int) or not lo <= amount <= hi:
        raise AppError(
            "amount_out_of_range",
            f"充值金额需在 {yuan(lo)} 至 {yuan(hi)} 之间",
            f"top-up amount must be between {lo} and {hi} fen",
            400,
        )


async def start_topup(
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    gateway: PaymentGateway,
    user: User,
    amount: int,
    notify_url: str,
) -> tuple[Payment, str]:
    """Record a pending payment, then ask the gateway for a checkout URL.

    Commits: the payment is persisted before the gateway hears of it, so a
    callback can never arrive for a payment the platform does not know."""
    if user.role != "seeker":
        raise AppError("forbidden_role", "只有倾诉者可以充值", "only seekers can top up", 403)
    check_topup_amount(settings, amount)
    gateway.check_open()
    payment = Payment(
        id=new_id(), user_id=user.id, amount_fen=amount, status="pending", gateway=gateway.name,
        created_at=clock.now(),
    )
    db.add(payment)
    await db.commit()
    pay_url = await gateway.create_intent(amount, payment.id, notify_url)
    log.info("top-up %s started amount=%d", payment.id, amount)
    return payment, pay_url


async def get_payment(db: AsyncSession, user_id: str, payment_id: str) -> Payment:
    """The caller's own payment; someone else's looks like a missing one."""
    p = await db.get(Payment, payment_id) if 0 < len(payment_id) <= 32 else None
    if p is None or p.user_id != user_id:
        raise not_found("支付单", "payment")
    return p


async def recent_payments(db: AsyncSession, user_id: str, limit: int = 10) -> list[Payment]:
    rows = await db.scalars(
        select(Payment).where(Payment.user_id == user_id).order_by(Payment.created_at.desc()).limit(limit)
    )
    return list(rows)


async def handle_event(db: AsyncSession, clock: Clock, event: GatewayEvent) -> Payment:
    """Apply a verified gateway event.  ``payment.succeeded`` moves the
    payment from pending to succeeded and credits the wallet (ledger key
    ``topup:<payment_id>``); ``payment.failed`` marks it failed and moves
    nothing.  Replays act once.  The caller commits, then acknowledges."""
    await begin_write(db)
    p = await db.get(Payment, event.payment_id) if 0 < len(event.payment_id) <= 32 else None
    if p is None:
        raise AppError("unknown_payment", "支付单不存在", "unknown payment", 400)
    if event.amount_fen != p.amount_fen:
        raise AppError("amount_mismatch", "回调金额与支付单不符", "amount does not match the payment", 400)
    status = "succeeded" if event.type == "payment.succeeded" else "failed"
    moved = await db.execute(
        update(Payment)
        .where(Payment.id == p.id, Payment.status == "pending")
        .values(status=status, completed_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    await db.refresh(p)
    if moved.rowcount == 0 and p.status != status:
        # A final status does not change (the sandbox never sends both).
        log.warning("payment %s is %s; ignoring %s", p.id, p.status, event.type)
        return p
    if status == "succeeded":
        await ledger.topup(db, payment_id=p.id, user_id=p.user_id, amount=p.amount_fen, clock=clock)
    log.info("payment %s %s (event %s)", p.id, status, "applied" if moved.rowcount else "replayed")
    return p


async def record_completed_topup(db: AsyncSession, clock: Clock, user_id: str, amount: int, payment_id: str) -> None:
    """A top-up that the gateway already confirmed (demo data): the same
    payment row and the same ledger transfer as the callback path; idempotent."""
    if await db.get(Payment, payment_id) is None:
        db.add(Payment(id=payment_id, user_id=user_id, amount_fen=amount, status="pending", gateway="sandbox",
                       created_at=clock.now()))
        await db.flush()
    event = GatewayEvent(id=f"evt_{payment_id}", type="payment.succeeded", payment_id=payment_id,
                         amount_fen=amount, created=int(clock.now().timestamp()))
    await handle_event(db, clock, event)


# -------------------------------------------------------------- withdrawals


async def request_withdrawal(db: AsyncSession, clock: Clock, settings: Settings, user: User, amount: int) -> Withdrawal:
    """A listener asks to be paid ``amount`` fen of their earnings, or a
    seeker asks for ``amount`` fen of their unused wallet balance back (to
    where it was paid from; no minimum: all of it may go back).  The money
    is reserved at once (pending transfer → payouts), so it cannot be asked
    for twice or spent meanwhile.  Caller commits."""
    account = "wallet" if user.role == "seeker" else "earnings"
    least = 1 if account == "wallet" else settings.withdrawal_min_fen
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < least:
        what = "退款" if account == "wallet" else "提现"
        raise AppError("amount_too_small", f"单笔{what}至少 {yuan(least)}", f"the amount must be at least {least} fen",
                       400)
    await begin_write(db)
    w = Withdrawal(id=new_id(), user_id=user.id, amount_fen=amount, account=account, status="requested",
                   created_at=clock.now())
    # Reserve first: when the money is short, nothing at all is written.
    await ledger.request_withdrawal(db, ref=withdrawal_ref(w.id), user_id=user.id, amount=amount, clock=clock,
                                    account=account)
    db.add(w)
    await db.flush()
    log.info("withdrawal %s requested amount=%d", w.id, amount)
    return w


async def _decide(db: AsyncSession, clock: Clock, admin: User, withdrawal_id: str, status: str, **values) -> Withdrawal:
    await begin_write(db)
    moved = await db.execute(
        update(Withdrawal)
        .where(Withdrawal.id == withdrawal_id, Withdrawal.status == "requested")
        .values(status=status, decided_at=clock.now(), decided_by=admin.id, **values)
        .execution_options(synchronize_session=False)
    )
    w = await db.get(Withdrawal, withdrawal_id, populate_existing=True) if len(withdrawal_id) <= 32 else None
    if w is None:
        raise not_found("提现申请", "withdrawal")
    if moved.rowcount == 0:
        raise AppError(
            "withdrawal_closed",
            f"该提现申请已处理（{WITHDRAWAL_LABELS.get(w.status, w.status)}）",
            f"this withdrawal is already {w.status}",
            409,
        )
    return w


async def approve_withdrawal(
    db: AsyncSession, clock: Clock, gateway: PaymentGateway, admin: User, withdrawal_id: str
) -> Withdrawal:
    """requested → paid: post the reserved transfer and pay it out through
    the gateway (payouts → gateway).  A second approval is 409 and pays
    nothing.  Caller commits."""
    gateway.check_open()
    w = await _decide(db, clock, admin, withdrawal_id, "paid")
    await ledger.complete_withdrawal(db, ref=withdrawal_ref(w.id), clock=clock)
    w.payout_ref = await gateway.payout(w.amount_fen, w.id)
    await db.flush()
    log.info("withdrawal %s paid", w.id)
    return w


async def reject_withdrawal(
    db: AsyncSession, clock: Clock, keyring: KeyRing, admin: User, withdrawal_id: str, reason: str
) -> Withdrawal:
    """requested → rejected: void the reserved transfer; the reason is
    stored encrypted (``core.sealed``).  Caller commits."""
    sealed = Withdrawal.sealed_values(keyring, withdrawal_id, reason=reason.strip()[:200])
    w = await _decide(db, clock, admin, withdrawal_id, "rejected", **sealed)
    await ledger.cancel_withdrawal(db, ref=withdrawal_ref(w.id), memo="rejected", clock=clock)
    log.info("withdrawal %s rejected", w.id)
    return w


async def my_withdrawals(db: AsyncSession, user_id: str, limit: int = 20) -> list[Withdrawal]:
    rows = await db.scalars(
        select(Withdrawal).where(Withdrawal.user_id == user_id).order_by(Withdrawal.created_at.desc()).limit(limit)
    )
    return list(rows)


async def withdrawal_queue(
    db: AsyncSession, status: str | None = "requested", limit: int = 100, newest_first: bool = False
) -> list[dict]:
    """Withdrawals for the admin (oldest first: a queue), with who asked."""
    order = Withdrawal.created_at.desc() if newest_first else Withdrawal.created_at.asc()
    q = select(Withdrawal).order_by(order, Withdrawal.id).limit(limit)
    if status:
        q = q.where(Withdrawal.status == status)
    rows = list(await db.scalars(q))
    users = await accounts.users_by_ids(db, list({w.user_id for w in rows}))
    return [withdrawal_dict(w, users.get(w.user_id)) for w in rows]


def withdrawal_dict(w: Withdrawal, user: User | None = None) -> dict:
    out = {
        "id": w.id,
        "amount_fen": w.amount_fen,
        "status": w.status,
        "status_label": (REFUND_LABELS if w.account == "wallet" else WITHDRAWAL_LABELS).get(w.status, w.status),
        "kind": w.account,
        "kind_label": KIND_LABELS.get(w.account, w.account),
        "reason": w.reason,
        "payout_ref": w.payout_ref,
        "created_at": w.created_at,
        "decided_at": w.decided_at,
    }
    if user is not None:
        out["user"] = {"id": user.id, "username": user.username, "display_name": user.display_name}
    return out


def payment_dict(p: Payment) -> dict:
    return {
        "payment_id": p.id,
        "amount_fen": p.amount_fen,
        "status": p.status,
        "status_label": PAYMENT_LABELS.get(p.status, p.status),
        "created_at": p.created_at,
        "completed_at": p.completed_at,
    }


def encrypted_stores() -> list:
    """Why a withdrawal was refused, for key rotation."""
    from miaohui.core.sealed import sealed_columns

    return [sealed_columns(Withdrawal)]


async def closing_blockers(db: AsyncSession, user_id: str, now) -> list[str]:
    """A top-up started in the last day may still be paid: wait for it.
    (Older pending ones were abandoned at the checkout; a withdrawal in
    flight is money in the earnings account, which the ledger's check sees.)"""
    pay = await db.scalar(select(Payment.id).where(Payment.user_id == user_id, Payment.status == "pending",
                                                   Payment.created_at > now - timedelta(days=1)).limit(1))
    return ["有一笔充值还在处理中，请等它完成或失败后再试"] if pay else []
