"""Seeker wellbeing: spending budgets and the late-night confirmations
already used.  (我的倾诉习惯, ``habits``, stores nothing: it is computed when
the seeker looks.)"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
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
