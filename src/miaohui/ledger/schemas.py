from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class WalletOut(BaseModel):
    balance_fen: int = Field(description="Posted balance")
    held_fen: int = Field(description="Wallet: in escrow for orders; earnings: withdrawals in flight")
    available_fen: int


class StatementLineOut(BaseModel):
    id: str
    created_at: datetime
    code: str
    label: str
    state: str
    state_label: str
    ref: str
    memo: str
    amount_fen: int = Field(description="Signed: + into the account, - out of it")


class StatementOut(BaseModel):
    lines: list[StatementLineOut]
    next_before: str | None = Field(description="Pass as ?before= for the next (older) page; null at the end")


class BooksOut(BaseModel):
    ok: bool
    problems: list[str]
    accounts: int
    transfers: int
    pending_transfers: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    money_in: int
    money_out: int
    wallets: int
    earnings: int
    platform_revenue: int
    escrow_held: int
    payouts_in_flight: int
