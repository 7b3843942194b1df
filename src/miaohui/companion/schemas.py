from __future__ import annotations

from pydantic import BaseModel, Field

from miaohui.companion.memory import MAX_TEXT


class SettingsIn(BaseModel):
    session_minutes: int | None = Field(default=None, ge=0, le=600)  # 0 / null: no session length
    set_session: bool = False  # change the session length (and start its clock now)
    memory_enabled: bool | None = None


class MemoryIn(BaseModel):
    kind: str = Field(default="fact", pattern="^(name|fact|preference)$")
    text: str = Field(min_length=1, max_length=MAX_TEXT)


class MemoryEditIn(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_TEXT)


class HumanIn(BaseModel):
    conversation_id: str = Field(min_length=1, max_length=32)


class HandoffIn(BaseModel):
    listener_id: str = Field(min_length=1, max_length=32)
    summary: str | None = Field(default=None, max_length=1500)  # what the seeker reviewed; null: send nothing
