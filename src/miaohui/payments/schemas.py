from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, StrictInt


class TopupIn(BaseModel):
    amount_fen: StrictInt = Field(description="Whole fen (¥1 = 100); bounds are settings topup_min_fen..topup_max_fen")


class PaymentOut(BaseModel):
    payment_id: str
    amount_fen: int
    status: Literal["pending", "succeeded", "failed"]
    status_label: str
    created_at: datetime
    completed_at: datetime | None = None


class TopupOut(PaymentOut):
    pay_url: str = Field(description="Checkout page of the gateway (the sandbox's, by default)")


class SandboxCompleteIn(BaseModel):
    outcome: Literal["succeed", "fail"]


class SandboxCompleteOut(BaseModel):
    payment_id: str
    status: str


class WebhookOut(BaseModel):
    received: bool
    status: str


class WithdrawalIn(BaseModel):
    amount_fen: StrictInt = Field(description="Whole fen; at least settings withdrawal_min_fen")


class RejectIn(BaseModel):
    reason: str = Field(default="", max_length=200)


class WithdrawalUser(BaseModel):
    id: str
    username: str
    display_name: str


class WithdrawalOut(BaseModel):
    id: str
    amount_fen: int
    status: Literal["requested", "paid", "rejected"]
    status_label: str
    kind: Literal["earnings", "wallet"] = "earnings"  # a listener's payout, or a seeker's refund
    kind_label: str = "提现"
    reason: str = ""
    payout_ref: str = ""
    created_at: datetime
    decided_at: datetime | None = None
    user: WithdrawalUser | None = None
