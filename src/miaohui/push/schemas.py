from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class SubscriptionKeys(BaseModel):
    p256dh: str = Field(min_length=80, max_length=100)  # 65 bytes, base64url
    auth: str = Field(min_length=16, max_length=32)  # 16 bytes, base64url


class SubscriptionIn(BaseModel):
    """What ``PushSubscription.toJSON()`` gives in the browser."""

    endpoint: str = Field(min_length=12, max_length=1024)
    keys: SubscriptionKeys
    expirationTime: int | None = None  # noqa: N815 (the browser's own name; unused: the service says 410 instead)


class EndpointIn(BaseModel):
    endpoint: str = Field(min_length=12, max_length=1024)


class PushKeyOut(BaseModel):
    enabled: bool
    public_key: str | None  # the application-server key (base64url) to subscribe with


class DeviceOut(BaseModel):
    id: str
    service: str
    label: str  # the browser, as a person would name it
    created_at: datetime
    last_sent_at: datetime | None
    this_sign_in: bool
