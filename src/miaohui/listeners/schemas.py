from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

Tag = Field(min_length=1, max_length=20)


class ProfileIn(BaseModel):
    headline: str = Field(default="", max_length=80)
    bio: str = Field(default="", max_length=2000)
    topics: list[str] = Field(default_factory=list, max_length=12)
    languages: list[str] = Field(default_factory=lambda: ["普通话"], max_length=6)
    qualifications: list[str] = Field(default_factory=list, max_length=8)
    price_per_hour_fen: int = Field(ge=0, le=10_000_000, description="Daytime price per hour, in fen")


class AvailabilityIn(BaseModel):
    accepting: bool


class ListenerCard(BaseModel):
    """A photo-less directory card.  Qualifications are as declared by the
    listener (not yet verified)."""

    user_id: str
    display_name: str
    headline: str
    topics: list[str]
    languages: list[str]
    qualifications_declared: list[str]
    price_per_hour_fen: int
    accepting: bool
    presence: str
    online_now: bool


class ListenerProfileOut(ListenerCard):
    bio: str
    status: str
    approved_at: datetime | None = None
