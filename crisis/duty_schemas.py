"""Request and response bodies of the duty roster API and of an alert with its duty calls."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# Digits with an optional "+", as routing/duty_chain.RosterEntry checks: the number goes into
# an AMI Originate.
PHONE = r"^\+?[0-9]{3,20}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OfficerIn(_In):
    name: str = Field(min_length=1, max_length=100)
    number: str = Field(pattern=PHONE, description="the duty phone, dialled through the carrier")
    user_id: int | None = Field(default=None, description="the admin web user, if any")


class OfficerPatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    number: str | None = Field(default=None, pattern=PHONE)
    user_id: int | None = None
    active: bool | None = None


class OfficerOut(BaseModel):
    id: int
    name: str
    number: str
    user_id: int | None
    active: bool


class OfficerList(BaseModel):
    items: list[OfficerOut]


class RosterEntryIn(_In):
    officer_id: int
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    position: int = Field(default=0, ge=0, le=1000,
                          description="escalation order among entries covering an instant: "
                                      "lowest first")
    site: str | None = Field(default=None, max_length=32,
                             description="the site whose alerts this covers; null: every site")


class RosterEntryOut(BaseModel):
    id: int
    officer_id: int
    officer_name: str
    number: str
    site: str | None
    starts_at: datetime
    ends_at: datetime
    position: int


class GapOut(BaseModel):
    starts_at: datetime
    ends_at: datetime
    summary: str


class DutyRosterQuery(_In):
    start: AwareDatetime | None = Field(default=None, alias="from")
    end: AwareDatetime | None = Field(default=None, alias="to")
    site: str | None = Field(default=None, max_length=32)


class DutyRosterOut(BaseModel):
    start: datetime
    end: datetime
    items: list[RosterEntryOut]
    gaps: list[GapOut] = Field(description="stretches nobody on the roster covers")


class OnDutyOut(BaseModel):
    at: datetime
    items: list[RosterEntryOut] = Field(description="who the chain rings, in this order")


class DeliveryOut(BaseModel):
    id: int
    officer_id: int | None = Field(description="null: a site on-call number (nobody on duty)")
    officer_name: str | None
    number: str
    lap: int
    at: datetime
    outcome: str | None = Field(description="answered, acknowledged, no_answer, busy, failed; "
                                            "null while ringing")
    ended_at: datetime | None


class AlertDetailOut(BaseModel):
    id: int
    key: str
    kind: str
    site: str | None
    severity: str
    summary: str
    details: dict[str, Any]
    state: str
    raised_at: datetime
    last_seen_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    incident_id: int | None
    deliveries: list[DeliveryOut] = Field(description="the duty phone calls, oldest first")
