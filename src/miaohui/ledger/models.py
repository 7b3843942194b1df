"""Double-entry ledger tables, after TigerBeetle's accounts and transfers.

Amounts are integer fen.  An account keeps four running totals —
``debits_pending``, ``debits_posted``, ``credits_pending``,
``credits_posted`` — and every account except the ``gateway`` (money from
and to the outside world) is *credit-normal*: its balance is
``credits_posted - debits_posted`` and what it may still spend is that minus
``debits_pending``.  Database CHECK constraints refuse any row that would go
below zero, a second line of defence behind the conditional UPDATEs in
:mod:`miaohui.ledger.service`.

Transfers are immutable, with one exception: a ``pending`` transfer's
``state`` moves once, from ``pending`` to ``posted`` or ``voided``, in the same
transaction that inserts the ``post_pending`` / ``void_pending`` row pointing
at it (``pending_id`` is UNIQUE, so a hold resolves at most once).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from miaohui.core.db import Base, UTCDateTime, new_id

ACCOUNT_KINDS = ("wallet", "earnings", "escrow", "platform_revenue", "gateway", "payouts")
# Single-phase transfers have no flags; the others are TigerBeetle's two-phase flags.
FLAGS = ("", "pending", "post_pending", "void_pending")
STATES = ("posted", "pending", "voided")
CODES = (
    "topup", "hold", "gift", "settle", "commission", "refund", "withdrawal", "payout", "adjustment",
)

Int64 = BigInteger().with_variant(Integer(), "sqlite")


class LedgerAccount(Base):
    """One account per (kind, owner): a user's ``wallet`` or ``earnings``
    (owner = user id), one ``escrow`` per ref (owner = "order:<id>", …), and
    the single system accounts ``platform_revenue``, ``gateway``, ``payouts``
    (owner = "")."""

    __tablename__ = "ledger_accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(80))
    debits_pending: Mapped[int] = mapped_column(Int64, default=0, server_default="0")
    debits_posted: Mapped[int] = mapped_column(Int64, default=0, server_default="0")
    credits_pending: Mapped[int] = mapped_column(Int64, default=0, server_default="0")
    credits_posted: Mapped[int] = mapped_column(Int64, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("kind", "owner", name="uq_ledger_accounts_kind_owner"),
        CheckConstraint(
            "debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0",
            name="totals_non_negative",
        ),
        CheckConstraint(
            "kind = 'gateway' OR credits_posted - debits_posted - debits_pending >= 0",
            name="no_overdraft",
        ),
    )


class Transfer(Base):
    """An immutable movement of ``amount`` fen from ``debit_account_id`` to
    ``credit_account_id``.  ``key`` makes it idempotent: a retry with the same
    key finds this row instead of moving money again."""

    __tablename__ = "ledger_transfers"

    id: Mapped[int] = mapped_column(Int64, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    debit_account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.id"))
    credit_account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(Int64)
    code: Mapped[str] = mapped_column(String(16))
    flags: Mapped[str] = mapped_column(String(16), default="")
    state: Mapped[str] = mapped_column(String(16))
    pending_id: Mapped[int | None] = mapped_column(
        Int64, ForeignKey("ledger_transfers.id"), nullable=True, unique=True
    )
    ref: Mapped[str] = mapped_column(String(80))
    memo: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="distinct_accounts"),
        Index("ix_ledger_transfers_debit", "debit_account_id", "id"),
        Index("ix_ledger_transfers_credit", "credit_account_id", "id"),
        Index("ix_ledger_transfers_ref", "ref"),
    )
