from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from miaohui.core.db import Base, UTCDateTime


class Budget(Base):
    """A seeker's own monthly spending limit (natural month, platform time zone)."""

    __tablename__ = "budgets"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    monthly_limit_fen: Mapped[int] = mapped_column(Integer)
    hard_cap: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
