from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class IdentityIn(BaseModel):
    legal_name: str = Field(min_length=1, max_length=40)
    id_number: str = Field(min_length=1, max_length=40)


class QuizIn(BaseModel):
    answers: dict[str, int] = Field(max_length=50)


class ReviewQualificationIn(BaseModel):
    approve: bool
    note: str = Field(default="", max_length=200)
    valid_until: date | None = Field(default=None, description="Local date the qualification stops counting")


class NoteIn(BaseModel):
    note: str = Field(default="", max_length=200)


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class ReportIn(BaseModel):
    target_kind: str = Field(pattern=r"^(review|listener)$")
    target_id: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=1, max_length=500)


class DecideIn(BaseModel):
    action: str = Field(pattern=r"^(hide|suspend|dismiss)$")
    note: str = Field(default="", max_length=200)
