from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from miaohui.core.db import Base, UTCDateTime

STATUSES = ("pending", "approved", "suspended")


class ListenerProfile(Base):
    """What a listener declares about themselves.  Nothing here is listed until
    an admin approves it; qualifications are shown as *declared* (verification
    comes with the trust issue)."""

    __tablename__ = "listener_profiles"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    headline: Mapped[str] = mapped_column(String(80), default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    qualifications: Mapped[list[str]] = mapped_column(JSON, default=list)
    price_per_hour_fen: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    accepting: Mapped[bool] = mapped_column(Boolean, default=True)
    # How many paid orders the listener serves at once (≤ the platform's
    # max_concurrent_orders): 秒回 in 10 s cannot be sold ten times over.
    capacity: Mapped[int] = mapped_column(Integer, default=2, server_default="2")
    # Shown (and filterable) only when the listener chose to fill it in: female | male | other.
    gender: Mapped[str | None] = mapped_column(String(8), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(32), nullable=True)


class DutyHour(Base):
    """The minutes of one UTC hour a listener was on duty (a socket open and
    接单中): bit ``m`` of ``minutes`` is minute ``m``.  Setting a bit is an
    OR, so any number of server processes may record the same minute and it
    still counts once (see :mod:`miaohui.listeners.duty`)."""

    __tablename__ = "listener_duty"
    # The hourly prune deletes by age across all listeners: without this it
    # scanned the whole table (a month of every listener's hours) while
    # holding SQLite's write lock, which chat's message batches wait for.
    __table_args__ = (Index("ix_listener_duty_hour_start", "hour_start"),)

    listener_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    hour_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    minutes: Mapped[int] = mapped_column(BigInteger, default=0)
