"""API shapes of people, sign-in and tokens (also the source of the OpenAPI document).

Inputs forbid unknown fields; passwords and tokens never appear in an error's detail.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from hotline.db.models import Role
from hotline.people.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from hotline.people.services import LANGUAGE_PATTERN, USERNAME_PATTERN


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(_In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    token_name: str | None = Field(default=None, min_length=1, max_length=100,
                                   description="a label for the token, e.g. the device")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    display_name: str
    role: Role
    language: str
    active: bool
    created_at: datetime
    last_login_at: datetime | None


class UserList(BaseModel):
    items: list[UserOut]


class LoginOut(BaseModel):
    token: str = Field(description="the bearer token; shown once, keep it secret")
    token_id: int
    expires_at: datetime | None
    user: UserOut


class UserCreate(_In):
    username: str = Field(pattern=f"^{USERNAME_PATTERN}$")
    display_name: str = Field(default="", max_length=200)
    role: Role
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
    language: str = Field(default="zh", pattern=f"^{LANGUAGE_PATTERN}$")


class UserPatch(_In):
    """Only the fields given change; deactivating revokes every token of the user."""

    display_name: str | None = Field(default=None, max_length=200)
    role: Role | None = None
    active: bool | None = None
    password: str | None = Field(default=None, min_length=MIN_PASSWORD_LENGTH,
                                 max_length=MAX_PASSWORD_LENGTH)
    language: str | None = Field(default=None, pattern=f"^{LANGUAGE_PATTERN}$")


class TokenCreate(_In):
    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650,
                                        description="no expiry when absent")


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None = Field(description="updated at most once a minute")
    expires_at: datetime | None
    revoked_at: datetime | None


class IssuedTokenOut(TokenOut):
    token: str = Field(description="the bearer token; shown once, keep it secret")


class TokenList(BaseModel):
    items: list[TokenOut]
