"""Tables of the supervision domain: one open risk case per conversation,
its event log (every step, for review) and the audit of transcript reads.

No message text is ever stored here: cases carry tiers, levels, signal names
and sequence numbers.  Supervisors' own words (whispers, resolution notes,
a listener's "我担心对方" note) are AES-GCM ciphertext like message bodies.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from miaohui.core.db import Base, UTCDateTime, new_id

BigIntId = BigInteger().with_variant(Integer, "sqlite")

STATUSES = ("open", "acknowledged", "resolved")
OPEN = ("open", "acknowledged")


class RiskCase(Base):
    """A conversation that needs a supervisor's eyes.

    ``open_key`` equals ``conversation_id`` while the case is not resolved and
    is NULL afterwards: a UNIQUE column that allows many NULLs, so there is at
    most one open case per conversation, across processes, without a partial
    index.  ``rank`` is the queue priority (the highest tier seen, 0–4, raised
    to at least ideation when a listener asked for help); the queue is ordered
    by rank, level, then waiting time since ``opened_at`` — never FIFO.
    ``rank ≥ 2`` while open is guardian mode: nothing cuts the conversation off.
    """

    __tablename__ = "risk_cases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    open_key: Mapped[str | None] = mapped_column(String(32), unique=True, nullable=True)
    seeker_id: Mapped[str] = mapped_column(String(32))
    listener_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")
    source: Mapped[str] = mapped_column(String(16))  # model | worry | boundary
    tier: Mapped[str] = mapped_column(String(16), default="none")
    level: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    rank: Mapped[int] = mapped_column(Integer, default=0)
    signals: Mapped[list] = mapped_column(JSON, default=list)
    flags: Mapped[dict] = mapped_column(JSON, default=dict)  # {"attachment": [...], "off_platform": [...]}
    worried: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    guardian_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    joined_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    taken_over_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Guardian mode and money: the paid order kept open past its end, and what
    # the platform paid the listener for the time beyond it.
    held_order_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    held_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    held_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    overtime_seconds: Mapped[int] = mapped_column(Integer, default=0)
    overtime_fen: Mapped[int] = mapped_column(Integer, default=0)
    overtime_paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    debrief: Mapped[str | None] = mapped_column(String(12), nullable=True)  # offered | accepted | declined

    __table_args__ = (
        Index("ix_risk_cases_queue", "status", "rank", "opened_at"),
        Index("ix_risk_cases_conversation", "conversation_id"),
        Index("ix_risk_cases_listener", "listener_id", "opened_at"),
    )


class CaseEvent(Base):
    """One step of a case, for review: what the model saw (tier, level,
    signals, seq — never text), flags, a listener's call, a supervisor's
    action, guardian mode holding an order, the platform's payment."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("risk_cases.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # None: the platform
    kind: Mapped[str] = mapped_column(String(24))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    body_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)

    __table_args__ = (Index("ix_case_events_case", "case_id", "id"),)


class TranscriptAccess(Base):
    """Every time a supervisor or admin reads a conversation they are not
    part of, or joins one (and so can read its history): who, when, which
    conversation, up to which message.  No foreign key: the audit outlives
    the conversation."""

    __tablename__ = "transcript_access"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reader_id: Mapped[str] = mapped_column(String(32))
    reader_role: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    via: Mapped[str] = mapped_column(String(16))  # api | page | live | join (a participant until resolved)
    upto_seq: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_transcript_access_conversation", "conversation_id", "at"),
        Index("ix_transcript_access_reader", "reader_id", "at"),
    )
