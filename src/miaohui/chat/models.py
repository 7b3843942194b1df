from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from miaohui.core.db import Base, UTCDateTime, new_id

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigIntId = BigInteger().with_variant(Integer, "sqlite")


class Conversation(Base):
    """A conversation and its sequence counter.

    ``last_seq`` is the highest sequence number handed out; the message writer
    advances it by each batch's count inside the batch's transaction, so two server processes
    writing to the same conversation can never hand out the same number.
    """

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16), default="listener")
    # One open direct conversation per (seeker, listener) pair.
    pair_key: Mapped[str | None] = mapped_column(String(80), unique=True, nullable=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Head of the evidence hash chain (see chat/evidence.py), advanced with
    # ``last_seq`` in the same statement batch.
    chain_head: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # The paid order currently running here (set by the orders domain through
    # chat.service.attach_order).  The writer reads it with the sequence
    # counter, so only messages under contract are handed to the SLA hook.
    active_order_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Participant(Base):
    """Membership plus per-person watermarks.  Delivery and read state are
    watermarks (``seq`` up to which everything was received / read), not a row
    per message, which keeps receipts O(1) however long the conversation."""

    __tablename__ = "participants"

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    last_delivered_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_read_seq: Mapped[int] = mapped_column(Integer, default=0)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_participants_user_id", "user_id"),)


class Message(Base):
    """A persisted message.  The body is AES-GCM ciphertext (``body_ct``) made
    with key ``key_id``; ``client_id`` makes a client's retries idempotent."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    sender_id: Mapped[str] = mapped_column(String(32))
    client_id: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    body_ct: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # sha256(previous chain || seq || sender || server time || sha256(body)).
    chain: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)

    __table_args__ = (
        UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),
        # client_id leads so the writer's idempotency lookup is an index probe.
        UniqueConstraint("client_id", "sender_id", "conversation_id", name="uq_messages_client"),
    )
