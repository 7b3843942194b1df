from __future__ import annotations

from pydantic import BaseModel, Field


class WhisperIn(BaseModel):
    body: str = Field(min_length=1, max_length=2000)


class ResolveIn(BaseModel):
    note: str = Field(min_length=1, max_length=2000)


class WorryIn(BaseModel):
    conversation_id: str = Field(min_length=1, max_length=32)
    note: str = Field(default="", max_length=2000)


class DebriefIn(BaseModel):
    accept: bool
