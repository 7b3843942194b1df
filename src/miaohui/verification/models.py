"""Tables of the trust domain: what the platform *checked* about a person
(identity, qualifications, training) and what admins did about listeners
(reports, suspensions).  The listeners domain keeps what a listener
*declares*; nothing here is self-declared.

Personal data is stored as little and as protected as the checks allow:
the legal name and the ID number are AES-GCM ciphertext (the app's key
ring, associated data binding them to the user), ``id_hash`` is a keyed
HMAC (so one ID cannot run two listener accounts, and cannot be brute-forced
from the table without the key), and ``adult_on`` — the day the person turns
18 — is the only thing the age rules need in the clear.  Proof files are
encrypted on disk under the data directory and never served publicly.
What admins and reporters write (review notes, report reasons and
decisions, suspension reasons) is encrypted too (``core.sealed``); a
qualification's title is not: it is shown publicly as a badge.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from miaohui.core.db import Base, UTCDateTime, new_id
from miaohui.core.sealed import Sealed, SealedText


class IdentityCheck(Base):
    """The latest successful real-name check of a user (one row per user;
    failed attempts are counted, not stored)."""

    __tablename__ = "identity_checks"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16))
    name_ct: Mapped[bytes] = mapped_column(LargeBinary)
    number_ct: Mapped[bytes] = mapped_column(LargeBinary)
    id_hash: Mapped[str] = mapped_column(String(64))
    adult_on: Mapped[date] = mapped_column(Date)
    provider: Mapped[str] = mapped_column(String(32))
    provider_ref: Mapped[str] = mapped_column(String(64))
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_identity_checks_id_hash", "id_hash"),)


class IdentityAttempt(Base):
    """Failed real-name attempts per user (no number, no name): a limit on
    guessing.  Rows older than a day are ignored and pruned on write."""

    __tablename__ = "identity_attempts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_identity_attempts_user", "user_id", "created_at"),)


class Qualification(Sealed, Base):
    """A qualification a listener declared with an uploaded proof.  Only
    ``verified`` and unexpired ones show as badges (``title`` is public text
    there; the admin's ``review_note`` is encrypted)."""

    __tablename__ = "qualifications"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24))
    title: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | verified | rejected | revoked
    proof_type: Mapped[str] = mapped_column(String(40))  # sniffed, never the client's claim
    proof_bytes: Mapped[int] = mapped_column(Integer)
    proof_sha256: Mapped[str] = mapped_column(String(64))
    proof_key_id: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    review_note_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    review_note = SealedText()
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_qualifications_user", "user_id", "status"),
        Index("ix_qualifications_queue", "status", "created_at"),
    )


class TrainingAttempt(Base):
    """One submitted quiz of the built-in course (``course_version``)."""

    __tablename__ = "training_attempts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    course_version: Mapped[str] = mapped_column(String(16))
    correct: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_training_attempts_user", "user_id", "passed", "created_at"),)


class Report(Sealed, Base):
    """Something a user asked an admin to look at: an abusive review, or a
    listener.  One report per reporter and target."""

    __tablename__ = "reports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    target_kind: Mapped[str] = mapped_column(String(12))  # review | listener
    target_id: Mapped[str] = mapped_column(String(32))
    reporter_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(12), default="open")  # open | upheld | dismissed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    decision_note_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    reason = SealedText()
    decision_note = SealedText()

    __table_args__ = (
        UniqueConstraint("target_kind", "target_id", "reporter_id", name="uq_reports_target_reporter"),
        Index("ix_reports_queue", "status", "created_at"),
    )


class ModerationAction(Sealed, Base):
    """Every suspension and reinstatement of a listener, with its reason
    (the profile's status says what is in force; this says why)."""

    __tablename__ = "moderation_actions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    listener_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(12))  # suspend | reinstate
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    reason = SealedText()
    actor_id: Mapped[str] = mapped_column(String(32))
    report_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_moderation_actions_listener", "listener_id", "created_at"),)
