from __future__ import annotations

from pydantic import BaseModel, Field


class MatchRequestIn(BaseModel):
    text: str = Field(default="", max_length=600, description="一两句话说说发生了什么")
    tags: list[str] = Field(default_factory=list, max_length=6)
    budget_fen: int | None = Field(default=None, ge=0, le=10_000_000, description="Per hour, in fen")
    window_s: int | None = Field(default=None, description="Preferred reply window: 10, 30 or 60 seconds")
    limit: int = Field(default=5, ge=1, le=10)
