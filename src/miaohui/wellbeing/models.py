"""Seeker wellbeing: spending budgets, the late-night confirmations already
used, and a seeker's mood before and after a paid sitting.  (我的倾诉习惯,
``habits``, stores nothing: it is computed when the seeker looks.)"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from miaohui.core.db import Base, UTCDateTime


class Budget(Base):
    """A seeker's own monthly spending limit (natural month, platform time zone)."""

    __tablename__ = "budgets"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    monthly_limit_fen: Mapped[int] = mapped_column(Integer)
    hard_cap: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UsedConfirmation(Base):
    """A late-night confirmation token that has paid for an order.  The token
    is single-use: its SHA-256 is the primary key, inserted in the purchase's
    own transaction, so a second purchase with the same token (even at the
    same instant, on another connection) fails on the key and moves nothing."""

    __tablename__ = "used_confirmations"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    order_id: Mapped[str] = mapped_column(String(32))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_used_confirmations_user", "user_id"),)


class MoodCheck(Base):
    """How the seeker felt (1 很低落 … 5 挺好的) before or after one paid order.

    One row per order and phase; answering again replaces the score.  The
    listener is copied from the order when the answer is given, so that the
    outcome of a listener's sittings (:func:`wellbeing.mood.outcomes`) is one
    query of this domain's own table.  A listener never sees a row, only the
    share of sittings after which seekers felt better, once there are enough."""

    __tablename__ = "mood_checks"

    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True)
    phase: Mapped[str] = mapped_column(String(8), primary_key=True)  # before | after
    seeker_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    listener_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    score: Mapped[int] = mapped_column(SmallInteger)
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("score BETWEEN 1 AND 5", name="score_range"),
        CheckConstraint("phase IN ('before', 'after')", name="phase_known"),
        Index("ix_mood_checks_seeker", "seeker_id", "answered_at"),
        Index("ix_mood_checks_listener", "listener_id", "answered_at"),
    )
