from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, StrictInt

Kind = Field(pattern=r"^(30m|1h|night|day|month)$")


class OfferingIn(BaseModel):
    response_window_s: int = Field(ge=1, le=3600)
    active: bool = True
    daily_start: str = Field(default="21:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    daily_minutes: int = Field(default=60, ge=15, le=480)


class CapacityIn(BaseModel):
    capacity: int = Field(ge=1, le=50)


# The total the buyer was shown, in fen: the order is never charged more
# (409 ``price_changed`` with the new quote instead); required, so that no
# client can buy without having shown a price.
ExpectedTotal = Field(ge=0, le=100_000_000, description="the total shown to the buyer, in fen")


class PurchaseIn(BaseModel):
    listener_id: str = Field(min_length=1, max_length=32)
    kind: str = Kind
    start_at: datetime | None = None
    expected_total_fen: StrictInt = ExpectedTotal
    confirm_token: str | None = Field(default=None, max_length=80)


class ExtendIn(BaseModel):
    kind: str = Field(default="30m", pattern=r"^(30m|1h)$")
    expected_total_fen: StrictInt = ExpectedTotal
    confirm_token: str | None = Field(default=None, max_length=80)


class EndIn(BaseModel):
    reason: str = Field(default="", max_length=500)


class DisputeIn(BaseModel):
    reason: str = Field(min_length=2, max_length=2000)


class ResolveIn(BaseModel):
    refund_fen: int = Field(ge=0, le=100_000_000)
    note: str = Field(default="", max_length=2000)


class GiftIn(BaseModel):
    amount_fen: int = Field(ge=1, le=100_000_000)
    note: str = Field(default="", max_length=100)


class MoodIn(BaseModel):
    phase: str = Field(max_length=8)  # before | after (the service says which, in words, if neither)
    score: int = Field(ge=1, le=5)


class BudgetIn(BaseModel):
    monthly_limit_fen: int | None = Field(default=None, ge=1, le=100_000_000)
    hard_cap: bool = False
