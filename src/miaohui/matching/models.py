"""What the matcher remembers: the topics of each served order (labels
from :func:`miaohui.nlp.topics.detect_topics` over the seeker's messages
during the service — never the text), indexed once per order; and each
seeker's 收藏 (favourite listeners), which only that seeker ever sees."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from miaohui.core.db import Base, UTCDateTime


class ServedTopics(Base):
    __tablename__ = "served_topics"

    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True)
    listener_id: Mapped[str] = mapped_column(String(32))
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    indexed_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_served_topics_listener", "listener_id"),)


class Favorite(Base):
    __tablename__ = "favorites"

    seeker_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    listener_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_favorites_listener", "listener_id"),)
