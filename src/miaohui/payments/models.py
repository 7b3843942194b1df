"""Payments (top-ups through a gateway), the embedded sandbox gateway's own
records, and listener withdrawals.  Money itself lives in the ledger; these
rows are the business side: who asked for what, and where it stands."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from miaohui.core.db import Base, UTCDateTime, new_id
from miaohui.core.sealed import Sealed, SealedText
from miaohui.ledger.models import Int64

PAYMENT_STATUSES = ("pending", "succeeded", "failed")
WITHDRAWAL_STATUSES = ("requested", "paid", "rejected")


class Payment(Base):
    """A top-up: created ``pending`` when the seeker starts paying; the
    gateway's signed callback moves it to ``succeeded`` (and credits the
    wallet, ledger key ``topup:<id>``) or ``failed``."""

    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    amount_fen: Mapped[int] = mapped_column(Int64)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    gateway: Mapped[str] = mapped_column(String(16), default="sandbox")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_payments_user_id", "user_id", "created_at"),)


class SandboxIntent(Base):
    """What the sandbox gateway knows about a payment — what a real gateway
    would keep on its side: the amount, where to send the callback, and the
    payer's decision."""

    __tablename__ = "sandbox_intents"

    payment_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    amount_fen: Mapped[int] = mapped_column(Int64)
    notify_url: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | succeeded | failed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Withdrawal(Sealed, Base):
    """Money paid out of the platform: a listener's earnings (``account =
    earnings``) or a seeker's unused wallet balance refunded to where it came
    from (``wallet``).  ``requested`` (pending transfer account → payouts,
    ref ``withdrawal:<id>``), then ``paid`` by an admin's approval or
    ``rejected`` (the pending transfer is voided).  The admin's reason for a
    rejection is encrypted (``core.sealed``)."""

    __tablename__ = "withdrawals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    amount_fen: Mapped[int] = mapped_column(Int64)
    account: Mapped[str] = mapped_column(String(8), default="earnings", server_default="earnings")
    status: Mapped[str] = mapped_column(String(16), default="requested")
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    reason = SealedText()
    payout_ref: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(32), nullable=True)

    __table_args__ = (
        Index("ix_withdrawals_user_id", "user_id", "created_at"),
        Index("ix_withdrawals_status", "status", "created_at"),
    )
