from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Tag = Field(min_length=1, max_length=20)


class ProfileIn(BaseModel):
    headline: str = Field(default="", max_length=80)
    bio: str = Field(default="", max_length=2000)
    topics: list[str] = Field(default_factory=list, max_length=12)
    languages: list[str] = Field(default_factory=lambda: ["普通话"], max_length=6)
    qualifications: list[str] = Field(default_factory=list, max_length=8)
    price_per_hour_fen: int = Field(ge=0, le=10_000_000, description="Daytime price per hour, in fen")
    gender: Literal["female", "male", "other", ""] | None = Field(
        default=None, description="Shown only when set; empty or null hides it")


class AvailabilityIn(BaseModel):
    accepting: bool


class ListenerCard(BaseModel):
    """A photo-less directory card.  Everything below ``online_now`` is
    computed by the platform (matching.profiles), not declared: verified
    badges, readiness to take orders, measured reply stats, ratings, load."""

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
    gender: str | None = None
    badges: list[dict] = Field(default_factory=list)
    ready: bool | None = None
    stats: dict | None = None
    rating: float | None = None
    review_count: int = 0
    full: bool | None = None
    response_window_s: int | None = None
    night_price_per_hour_fen: int | None = None
    served_topics: dict[str, int] = Field(default_factory=dict)
    usual_now: bool | None = Field(default=None, description="Usually on duty at this hour of the day (measured)")
    favorite: bool | None = Field(default=None, description="Whether the signed-in seeker keeps this listener (收藏)")


class UsualHours(BaseModel):
    """Measured on-duty hours (listeners.duty): the shape over the last days, never one day's trail."""

    days: int = Field(description="Days the figures cover (fewer for a new listing)")
    by_hour: list[float] = Field(description="For each hour of the day (platform time), the share of its minutes on duty")
    usual: list[str] = Field(description="Ranges usually on duty, e.g. 22:00–02:00; empty until there is enough data")
    enough: bool
    hours_7d: float = Field(description="Hours on duty in the last seven days")


class Outcome(BaseModel):
    """心情 (wellbeing.mood): sittings in the last 90 days where the seeker
    answered before and after, and after how many they felt better."""

    pairs: int
    better: int
    better_pct: int
    shown: bool = Field(description="Enough sittings (5) for the share to be shown")


class ListenerProfileOut(ListenerCard):
    bio: str
    status: str
    approved_at: datetime | None = None
    record: dict | None = None  # the public verification record (public profile only)
    reviews: list[dict] | None = None
    duty: UsualHours | None = None  # public profile only
    outcome: Outcome | None = None  # public profile only; None until a sitting has both answers


class FavoriteCard(ListenerCard):
    duty: UsualHours


class FavoriteOut(BaseModel):
    favorite: bool
    count: int = Field(description="How many listeners the seeker now keeps")
