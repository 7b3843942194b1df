from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query

from miaohui.accounts.deps import DB, AdminUser, CurrentUser, ListenerUser
from miaohui.ledger import service
from miaohui.ledger.schemas import BooksOut, StatementOut, WalletOut

router = APIRouter(prefix="/api", tags=["ledger"])


def wallet_out(view: service.WalletView) -> dict:
    return {"balance_fen": view.balance, "held_fen": view.held, "available_fen": view.available}


async def statement_page(db, user_id: str, account: str, limit: int, before: str | None) -> dict:
    lines = await service.statement(db, user_id, account, limit=limit, before=before)
    return {
        "lines": [{**line.__dict__, "amount_fen": line.amount} for line in lines],
        "next_before": lines[-1].id if len(lines) == limit else None,
    }


Limit = Query(default=50, ge=1, le=200)
Before = Query(default=None, max_length=20)


@router.get("/wallet", response_model=WalletOut)
async def my_wallet(db: DB, user: CurrentUser) -> dict:
    """Your wallet: posted balance, what is held in escrow, what is available."""
    return wallet_out(await service.wallet(db, user.id))


@router.get("/wallet/statement", response_model=StatementOut)
async def my_wallet_statement(db: DB, user: CurrentUser, limit: int = Limit, before: str | None = Before) -> dict:
    """Your wallet's movements, newest first (only ever your own)."""
    return await statement_page(db, user.id, "wallet", limit, before)


@router.get("/listener/earnings", response_model=WalletOut)
async def my_earnings(db: DB, user: ListenerUser) -> dict:
    """Your earnings: balance, withdrawals in flight, available to withdraw."""
    return wallet_out(await service.earnings(db, user.id))


@router.get("/listener/earnings/statement", response_model=StatementOut)
async def my_earnings_statement(db: DB, user: ListenerUser, limit: int = Limit, before: str | None = Before) -> dict:
    return await statement_page(db, user.id, "earnings", limit, before)


@router.get("/admin/ledger/check", response_model=BooksOut)
async def books(db: DB, user: AdminUser) -> dict:
    """Verify the ledger's invariants (balanced, totals match transfers, no overdraft, escrow nets to zero)."""
    return await service.check_books(db)


@router.get("/admin/ledger/users/{user_id}/statement", response_model=StatementOut)
async def user_statement(
    user_id: str,
    db: DB,
    user: AdminUser,
    account: Literal["wallet", "earnings"] = "wallet",
    limit: int = Limit,
    before: str | None = Before,
) -> dict:
    return await statement_page(db, user_id, account, limit, before)
