from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from miaohui.core.db import Base, UTCDateTime, new_id
from miaohui.core.sealed import Sealed, SealedText

# Order life cycle.  ``scheduled`` (paid, not started) → ``active`` → ``ended``
# (service over, money still held for the dispute window) → ``settled``; or
# ``refunded`` (hold voided: no-show, dispute with a full refund); ``disputed``
# pauses settlement until a supervisor decides.
STATUSES = ("scheduled", "active", "ended", "disputed", "settled", "refunded")
LIVE = ("scheduled", "active")
END_REASONS = ("completed", "disappeared", "no_show", "listener_ended", "blocked", "seeker_ended", "suspended")


class Offering(Base):
    """A package a listener sells, with the response window they commit to."""

    __tablename__ = "offerings"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    listener_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    response_window_s: Mapped[int] = mapped_column(Integer)
    # 包月 only: the daily hours the listener is on duty (local time).
    daily_start: Mapped[str] = mapped_column(String(5), default="21:00")
    daily_minutes: Mapped[int] = mapped_column(Integer, default=60)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("listener_id", "kind", name="uq_offerings_listener_kind"),)


class Order(Base):
    """A bought service and its contract.

    ``contract`` is the immutable copy of every term and threshold in force
    at purchase (hash in ``contract_hash``).  The SLA fields are the live
    state of the reply clock: ``pending_since``/``pending_seq`` mark the
    oldest unanswered seeker message of the current turn; ``sla_seq`` is the
    last conversation sequence number applied, which makes processing
    idempotent and lets a restarted server catch up from the message log.
    ``next_due_at`` is the earliest moment something can happen without a
    message (breach, notice, disappearance, no-show, end, settlement), so
    the scheduler only ever looks at due rows.
    """

    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    seeker_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    listener_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"))
    offering_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    kind: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12))
    end_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    price_fen: Mapped[int] = mapped_column(Integer)
    response_window_s: Mapped[int] = mapped_column(Integer)
    windows: Mapped[list] = mapped_column(JSON)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    contract: Mapped[dict] = mapped_column(JSON)
    contract_hash: Mapped[str] = mapped_column(String(64))
    extends_order_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    listener_arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # SLA state.
    sla_seq: Mapped[int] = mapped_column(Integer, default=0)
    pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    pending_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    turns: Mapped[int] = mapped_column(Integer, default=0)
    breaches: Mapped[int] = mapped_column(Integer, default=0)
    notice_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    # The turn (its pending_seq) whose listener was warned at 70 % of the window.
    clock_warned_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    settle_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Outcome (filled at settlement; estimates are computed live before).
    compensation_fen: Mapped[int] = mapped_column(Integer, default=0)
    unserved_fen: Mapped[int] = mapped_column(Integer, default=0)
    refund_fen: Mapped[int] = mapped_column(Integer, default=0)
    commission_fen: Mapped[int] = mapped_column(Integer, default=0)
    listener_net_fen: Mapped[int] = mapped_column(Integer, default=0)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_orders_due", "status", "next_due_at"),
        Index("ix_orders_listener", "listener_id", "status"),
        Index("ix_orders_seeker", "seeker_id", "created_at"),
        Index("ix_orders_conversation", "conversation_id"),
    )


class Turn(Base):
    """One answered (or expired) stretch of seeker messages: the reply clock
    started at ``first_seq`` and stopped at the listener's ``reply_seq``."""

    __tablename__ = "order_turns"

    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True)
    first_seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    reply_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    latency_ms: Mapped[int] = mapped_column(Integer)
    breached: Mapped[bool] = mapped_column(Boolean)
    listener_id: Mapped[str] = mapped_column(String(32))

    __table_args__ = (Index("ix_order_turns_listener", "listener_id"),)


class Dispute(Sealed, Base):
    """A seeker's dispute of an order and the supervisor's decision; the
    seeker's reason and the decision's note are encrypted (``core.sealed``)."""

    __tablename__ = "disputes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    seeker_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(12), default="open")  # open | resolved
    refund_fen: Mapped[int | None] = mapped_column(Integer, nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    note_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    reason = SealedText()
    note = SealedText()
    decided_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Gift(Sealed, Base):
    """A tip after a session: held like an order and settled with it, so it
    stays refundable within the dispute window.  The seeker's note with it
    is encrypted (``core.sealed``)."""

    __tablename__ = "gifts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    seeker_id: Mapped[str] = mapped_column(String(32))
    listener_id: Mapped[str] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column(Integer)
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    note_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    note = SealedText()
    status: Mapped[str] = mapped_column(String(12), default="held")  # held | settled | refunded
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    settle_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_gifts_due", "status", "settle_at"),)


class Block(Sealed, Base):
    """A listener blocked a seeker: no new orders between them, and no more
    messages from the seeker in their conversation (``orders.blocks``).
    The listener's reason is encrypted (``core.sealed``)."""

    __tablename__ = "blocks"
    SEALED_KEY = ("listener_id", "seeker_id")

    listener_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seeker_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    reason = SealedText()
