from __future__ import annotations

from pydantic import BaseModel, Field


class ReviewIn(BaseModel):
    stars: int = Field(ge=1, le=5)
    tags: list[str] = Field(default_factory=list, max_length=6)
    text: str = Field(default="", max_length=2000)


class ReplyIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000)
