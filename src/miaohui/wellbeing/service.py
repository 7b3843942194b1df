"""Spending protection: a seeker's own monthly budget.

Spending is what the ledger says the seeker committed this natural month
(platform time zone): holds for orders and gifts, minus what came back.  At
``budget_warn_pct`` the purchase goes through with a warning; with a hard
cap, a purchase or a gift that would cross the limit is refused before any
money moves.

The check that counts is the one made inside the purchase's (or gift's) own
write transaction, with ``lock=True``: the budget row is locked ``FOR UPDATE``
on PostgreSQL (SQLite's BEGIN IMMEDIATE already serializes writers), so two
purchases by the same seeker are checked one after the other, the second
seeing the first's hold.  Without a budget row there is no cap and nothing to
lock.  Lock order: the listener's profile (a purchase) or the order (a gift)
first, then this row, then the ledger's accounts.

Late-night confirmations already used are recorded here too
(:func:`confirmation_used`, :func:`use_confirmation`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.core.errors import AppError
from miaohui.ledger import service as ledger
from miaohui.wellbeing.models import Budget, UsedConfirmation

MAX_LIMIT_FEN = 100_000_000


def month_start(now: datetime, tz: str) -> datetime:
    local = now.astimezone(ZoneInfo(tz))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


async def get_budget(db: AsyncSession, user_id: str) -> Budget | None:
    return await db.get(Budget, user_id)


async def set_budget(db: AsyncSession, ctx, user_id: str, monthly_limit_fen: int | None, hard_cap: bool) -> Budget | None:
    budget = await db.get(Budget, user_id)
    if monthly_limit_fen is None:
        if budget is not None:
            await db.delete(budget)
        return None
    if not 0 < monthly_limit_fen <= MAX_LIMIT_FEN:
        raise AppError("bad_budget", "预算金额无效", "invalid budget amount", 400)
    if budget is None:
        budget = Budget(user_id=user_id)
        db.add(budget)
    budget.monthly_limit_fen = monthly_limit_fen
    budget.hard_cap = hard_cap
    budget.updated_at = ctx.clock.now()
    await db.flush()
    return budget


async def status(db: AsyncSession, ctx, user_id: str) -> dict:
    budget = await db.get(Budget, user_id)
    spent = await ledger.spent_since(db, user_id, month_start(ctx.clock.now(), ctx.settings.timezone))
    out = {"spent_this_month_fen": spent, "limit_fen": None, "hard_cap": False, "used_pct": None, "warning": False}
    if budget is not None:
        pct = spent * 100 // budget.monthly_limit_fen
        out.update(limit_fen=budget.monthly_limit_fen, hard_cap=budget.hard_cap, used_pct=pct,
                   warning=pct >= ctx.settings.budget_warn_pct)
    return out


async def check_purchase(db: AsyncSession, ctx, user_id: str, amount_fen: int, *, lock: bool = False) -> dict:
    """Raise if a hard cap would be crossed; otherwise return notes for the
    client (a warning at 80 % of the budget).  ``lock``: inside the spending
    transaction (after ``begin_write``), lock the budget row first so that
    concurrent spending by the same seeker is checked one at a time."""
    q = select(Budget).where(Budget.user_id == user_id)
    if lock:
        q = q.with_for_update().execution_options(populate_existing=True)
    budget = await db.scalar(q)
    if budget is None:
        return {}
    spent = await ledger.spent_since(db, user_id, month_start(ctx.clock.now(), ctx.settings.timezone))
    after = spent + amount_fen
    if budget.hard_cap and after > budget.monthly_limit_fen:
        left = max(0, budget.monthly_limit_fen - spent)
        raise AppError(
            "budget_exceeded",
            f"超出你设定的本月预算（剩余 ¥{left / 100:.2f}）。预算是你给自己的保护，可以在钱包里调整。",
            f"this purchase would exceed your monthly budget ({left} fen left)",
            409,
        )
    pct = after * 100 // budget.monthly_limit_fen
    if pct >= ctx.settings.budget_warn_pct:
        return {"budget_warning": f"本月已用预算的 {pct}%，留意一下自己的开销哦。", "budget_used_pct": pct}
    return {}


async def confirmation_used(db: AsyncSession, token_hash: str) -> bool:
    return await db.get(UsedConfirmation, token_hash) is not None


async def use_confirmation(db: AsyncSession, token_hash: str, user_id: str, order_id: str, now: datetime) -> None:
    """Spend a late-night confirmation on ``order_id`` (in the purchase's
    transaction).  A concurrent purchase with the same token fails on the
    primary key at flush (``IntegrityError``; PostgreSQL makes it wait for
    this transaction first) — the caller turns that into a 409."""
    db.add(UsedConfirmation(token_hash=token_hash, user_id=user_id, order_id=order_id, used_at=now))
    await db.flush()


async def export_for(db: AsyncSession, user_id: str) -> dict | None:
    b = await db.get(Budget, user_id)
    return None if b is None else {"monthly_limit_fen": b.monthly_limit_fen, "hard_cap": b.hard_cap}


async def forget(db: AsyncSession, user_id: str) -> None:
    await db.execute(delete(Budget).where(Budget.user_id == user_id))
    await db.execute(delete(UsedConfirmation).where(UsedConfirmation.user_id == user_id))
