"""Reviews of served orders: one per order, by its seeker; the listener may
reply once; a report can hide it (reports live in the trust domain)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from miaohui.core.db import Base, UTCDateTime, new_id


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # UNIQUE: the database, not a read-then-write check, makes it "once per order".
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    seeker_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    listener_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    stars: Mapped[int] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_reviews_listener", "listener_id", "created_at"),)
