"""Request and response bodies of the staffing API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


Skill = Literal["psych", "legal"]


class CounsellorCreate(_In):
    site: str = Field(default="default", max_length=32)
    name: str = Field(min_length=1, max_length=100)
    tier: Literal["high_risk", "consultation", "supervisor"]
    seat: Literal["on_site", "cloud", "mobile"] = "cloud"
    skills: list[Skill] = Field(default_factory=list, max_length=8)
    sip_username: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{1,31}$")
    extension: str | None = Field(default=None, pattern=r"^[0-9]{2,8}$")
    mobile_number: str | None = Field(default=None, pattern=r"^\+?[0-9]{5,20}$")
    user_id: int | None = None


class CounsellorPatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    tier: Literal["high_risk", "consultation", "supervisor"] | None = None
    seat: Literal["on_site", "cloud", "mobile"] | None = None
    skills: list[Skill] | None = Field(default=None, max_length=8)
    extension: str | None = Field(default=None, pattern=r"^[0-9]{2,8}$")
    mobile_number: str | None = Field(default=None, pattern=r"^\+?[0-9]{5,20}$")
    user_id: int | None = None
    active: bool | None = None


class CounsellorCreated(BaseModel):
    id: int
    sip_username: str
    # Shown once: the softphone's password. Asterisk knows it after `hotline asterisk render`
    # and a PJSIP reload (the sandbox: `hotline asterisk up`).
    sip_secret: str
    asterisk_render_needed: bool = True


class PauseIn(_In):
    reason: Literal["break", "debrief", "admin"] = "break"
    # A pause that ends by itself after this many seconds; none: until resumed.
    seconds: int | None = Field(default=None, ge=1, le=24 * 3600)


class TemplateIn(_In):
    counsellor_id: int
    weekday: int = Field(ge=0, le=6, description="0 Monday … 6 Sunday")
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="site time, HH:MM")
    minutes: int = Field(ge=1, le=24 * 60)
    valid_from: date | None = None
    valid_until: date | None = None


class OverrideIn(_In):
    counsellor_id: int
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    kind: Literal["work", "off"] = "work"
    note: str = Field(default="", max_length=500)


class SiteStaffingPatch(_In):
    debrief_seconds: int | None = Field(default=None, ge=0, le=3600)
    crisis_cap_per_shift: int | None = Field(default=None, ge=1, le=100)
    short_abandon_seconds: int | None = Field(default=None, ge=0, le=120)
    backup_number: str | None = Field(default=None, pattern=r"^\+?[0-9]{3,20}$")
    unstaffed_alert_seconds: int | None = Field(default=None, ge=10, le=24 * 3600)
    # Callbacks of messages: the neutral number shown to whoever picks up (null: the
    # carrier's default), the reply deadline in hours (null: the end of the first service
    # day after the message), attempts and their spacing.
    callback_caller_id: str | None = Field(default=None, pattern=r"^\+?[0-9]{3,20}$")
    callback_reply_hours: int | None = Field(default=None, ge=1, le=24 * 14)
    callback_max_attempts: int | None = Field(default=None, ge=1, le=10)
    callback_retry_minutes: int | None = Field(default=None, ge=1, le=24 * 60)
    # Crisis intervention deadline in minutes for this site's new incidents (null: the
    # deployment's default, 30).
    crisis_deadline_minutes: int | None = Field(default=None, ge=5, le=24 * 60)


class SiteStaffingOut(BaseModel):
    site: str
    debrief_seconds: int
    crisis_cap_per_shift: int | None
    short_abandon_seconds: int
    backup_number: str | None
    unstaffed_alert_seconds: int
    callback_caller_id: str | None
    callback_reply_hours: int | None
    callback_max_attempts: int
    callback_retry_minutes: int
    crisis_deadline_minutes: int | None


class RosterQuery(_In):
    site: str | None = Field(default=None, max_length=32)
    start: AwareDatetime | None = Field(default=None, alias="from")
    end: AwareDatetime | None = Field(default=None, alias="to")


class PresenceOut(BaseModel):
    counsellor_id: int
    presence: str
    presence_until: datetime | None
    pause_reason: str | None
    pause_until: datetime | None
    on_shift: bool


class CounsellorOut(BaseModel):
    id: int
    site: str
    name: str
    tier: str
    seat: str
    skills: list[str]
    sip_username: str
    extension: str | None
    on_duty: bool
    presence: PresenceOut | None = None
    live: dict[str, Any] | None = None


class CounsellorList(BaseModel):
    items: list[CounsellorOut]


class TemplateOut(BaseModel):
    id: int
    counsellor_id: int
    weekday: int
    start: str
    minutes: int
    valid_from: date | None
    valid_until: date | None


class TemplateList(BaseModel):
    items: list[TemplateOut]


class OverrideOut(BaseModel):
    id: int
    counsellor_id: int
    starts_at: datetime
    ends_at: datetime
    kind: str
    note: str


class OverrideList(BaseModel):
    items: list[OverrideOut]


class DutyWindowOut(BaseModel):
    counsellor_id: int
    name: str
    site: str
    tier: str
    starts_at: datetime
    ends_at: datetime


class RosterOut(BaseModel):
    start: datetime
    end: datetime
    windows: list[DutyWindowOut]


class LiveOut(BaseModel):
    source: Literal["redis", "memory"]
    items: list[dict[str, Any]]
