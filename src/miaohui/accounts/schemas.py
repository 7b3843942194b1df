from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class SignupIn(BaseModel):
    username: str = Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.\-]+$")
    password: str = Field(min_length=8, max_length=128)
    display_name: str = Field(min_length=1, max_length=24)
    role: Literal["seeker", "listener"] = "seeker"


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)


class UserOut(BaseModel):
    id: str
    username: str
    display_name: str
    role: str


class SessionOut(BaseModel):
    token: str = Field(description="Bearer token for API clients; browsers use the HttpOnly cookie")
    csrf_token: str
    user: UserOut
