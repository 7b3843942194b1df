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
    # The last sequence number each side sent (see ``SENT_SIDE``): written by
    # the UPDATE that advances ``last_seq`` anyway, so a message costs no
    # write to its sender's participant row (see ``Participant``).
    seeker_sent_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    listener_sent_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    def sent_seq(self, role: str) -> int:
        """The last sequence number sent by the participant with ``role`` (0
        for a role not in ``SENT_SIDE``)."""
        side = SENT_SIDE.get(role)
        if side is None:
            return 0
        return (self.seeker_sent_seq if side == "seeker" else self.listener_sent_seq) or 0


# Roles whose sent messages are counted on the conversation row, by side: a
# conversation has one seeker and one listener, or one seeker and the AI
# companion in the listener's place.  Anyone else who sends (a supervisor who
# joined, the system) has their watermarks written to their participant row.
SENT_SIDE: dict[str, str] = {"seeker": "seeker", "listener": "listener", "companion": "listener"}


class Participant(Base):
    """Membership plus per-person watermarks.  Delivery and read state are
    watermarks (``seq`` up to which everything was received / read), not a row
    per message, which keeps receipts O(1) however long the conversation.

    Receipts move these columns.  Sending also means having received and read
    everything up to one's own message, but for the two sides that is kept on
    the conversation row (``Conversation.seeker_sent_seq`` /
    ``listener_sent_seq``), which every message rewrites anyway: writing this
    row too cost about a quarter of SQLite's CPU per message (docs/performance.md,
    session 13).  So read the watermarks through :meth:`watermarks`, never
    the columns alone."""

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

    def watermarks(self, conv: Conversation) -> tuple[int, int]:
        """``(delivered_seq, read_seq)``: this row's receipts, raised to the
        last message this participant sent in ``conv``."""
        sent = conv.sent_seq(self.role)
        read = max(self.last_read_seq or 0, sent)
        return max(self.last_delivered_seq or 0, read), read


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
