from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class StartConversationIn(BaseModel):
    listener_id: str = Field(min_length=1, max_length=32)


class PeerOut(BaseModel):
    user_id: str
    display_name: str
    role: str
    presence: str = "offline"


class ConversationOut(BaseModel):
    id: str
    kind: str
    peer: PeerOut
    last_seq: int
    unread: int
    my_read_seq: int
    peer_read_seq: int
    peer_delivered_seq: int
    last_activity_at: datetime
    preview: str = ""


class MessageOut(BaseModel):
    conversation_id: str
    seq: int
    client_id: str
    sender_id: str
    sender_role: str
    body: str
    created_at: datetime


class MessagePage(BaseModel):
    messages: list[MessageOut]
    has_more: bool = Field(description="More older messages exist before the first one returned")


class SendIn(BaseModel):
    client_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_\-:.]+$")
    body: str = Field(min_length=1, max_length=4000)


class SendOut(BaseModel):
    conversation_id: str
    client_id: str
    seq: int
    created_at: datetime
    duplicate: bool


class ReadIn(BaseModel):
    seq: int = Field(ge=0)
