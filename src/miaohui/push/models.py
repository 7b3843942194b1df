"""A browser's Web Push subscription, tied to the sign-in that made it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from miaohui.core.db import Base, UTCDateTime, new_id
from miaohui.core.sealed import Sealed, SealedText


class PushSubscription(Sealed, Base):
    """One device of one person that asked for 关闭页面后也提醒.

    The endpoint is a capability URL at the browser vendor's push service and
    the keys let anyone holding them write to that device: both are sealed
    like other personal text, and found again by a SHA-256 of the endpoint.
    The row hangs off the session (``auth_sessions``, ON DELETE CASCADE): a
    logout, a password change that ends sessions, or closing the account
    deletes it in the same statement, so a shared phone stops getting a
    person's notices the moment they sign out."""

    __tablename__ = "push_subscriptions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    session_hash: Mapped[str] = mapped_column(ForeignKey("auth_sessions.token_hash", ondelete="CASCADE"))
    endpoint_hash: Mapped[str] = mapped_column(String(64), unique=True)
    service: Mapped[str] = mapped_column(String(64))  # the push service's host, shown in 账户与隐私
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    endpoint_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    keys_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    endpoint = SealedText()
    keys = SealedText()  # "p256dh.auth", base64url
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_push_subscriptions_user", "user_id"),
        Index("ix_push_subscriptions_role", "role"),
    )
