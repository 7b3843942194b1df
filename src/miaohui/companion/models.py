"""Tables of the companion domain.

* ``companion_profiles`` — one row per seeker who opened the AI companion:
  their conversation, the engine's per-conversation state (AES-GCM, it holds
  tool answers such as a thought record), the daily usage count for the
  platform's soft limit, the session length they chose and the clocks for
  the wrap-up and the two-hour pause suggestion.
* ``companion_memories`` — what the companion keeps about a person (facts
  they shared, preferences), each item AES-GCM encrypted; the seeker sees,
  edits and deletes every row on the memory page.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from miaohui.core.db import Base, UTCDateTime, new_id


class CompanionProfile(Base):
    __tablename__ = "companion_profiles"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    state_key: Mapped[str | None] = mapped_column(String(16), nullable=True)
    state_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    day: Mapped[str] = mapped_column(String(10), default="")  # local date of turns_today
    turns_today: Mapped[int] = mapped_column(Integer, default=0)
    session_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    session_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    wrapped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    continuous_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_turn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    pause_suggested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    memory_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CompanionMemory(Base):
    __tablename__ = "companion_memories"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # name | fact | preference
    key_id: Mapped[str] = mapped_column(String(16))
    body_ct: Mapped[bytes] = mapped_column(LargeBinary)
    source: Mapped[str] = mapped_column(String(8), default="auto")  # auto | manual
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_companion_memories_user", "user_id", "created_at"),)
