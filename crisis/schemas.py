"""Request and response bodies of the incidents API (also the OpenAPI document's source)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- queries and bodies -------------------------------------------------------------------

class IncidentQuery(_In):
    state: Literal["open", "closed"] | None = Field(default=None,
                                                     description="open or closed; both if "
                                                                 "not given")
    site: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,32}$",
                             description="a site's code")
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0)


class IncidentCreate(_In):
    site: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$", description="the site's code")
    summary: str = Field(min_length=1, max_length=2000, description="what happened")
    caller_number: str | None = Field(default=None, pattern=r"^\+?[0-9*#]{1,32}$",
                                      description="the person's number, if known")


class IncidentPatch(_In):
    notes: str | None = Field(default=None, max_length=20000)
    location: str | None = Field(default=None, max_length=2000,
                                 description="where the person is, as far as known")


class IncidentCloseIn(_In):
    outcome: str = Field(min_length=1, max_length=4000,
                         description="how it ended (safe, handed to the police, …)")


class HighRiskIn(_In):
    reason: str = Field(min_length=1, max_length=2000,
                        description="why the counsellor judges the caller at risk")


# -- answers --------------------------------------------------------------------------------

class TimelineEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    kind: str = Field(description="signal.<source>, alert.raised, alert.acknowledged, "
                                  "intervention.started, deadline.near, deadline.missed, "
                                  "incident.updated, incident.closed, callback.flagged, …")
    actor: str | None
    summary: str
    details: dict[str, Any]


class IncidentAlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    key: str
    kind: str
    severity: str
    summary: str
    state: str
    raised_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None


class IncidentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    site: str
    state: str
    severity: str
    source: str = Field(description="what raised it first: crisis_option, keyword, "
                                    "voicemail_keyword, marked_high_risk, police, manual")
    summary: str
    call_id: str | None
    message_id: int | None
    caller_number: str | None
    caller_name: str | None
    call_started_at: datetime | None
    counsellor_id: int | None
    counsellor_name: str | None
    notes: str
    location: str
    opened_at: datetime
    deadline_at: datetime = Field(description="crisis intervention must start by then")
    deadline_state: str = Field(description="ok, near or missed while nobody intervened; "
                                            "then met (in time) or missed (late)")
    intervention_at: datetime | None
    warned_at: datetime | None
    escalated_at: datetime | None
    callback_needed: bool
    police_requested_at: datetime | None
    police_requested_by: str | None
    police_reason: str
    police_state: str | None
    conference: str | None
    recording_path: str | None
    packet: dict[str, Any] | None
    closed_at: datetime | None
    closed_by: str | None
    outcome: str
    timeline: list[TimelineEventOut] | None = Field(
        default=None, description="in the detail only: oldest first")
    alerts: list[IncidentAlertOut] | None = Field(default=None,
                                                  description="in the detail only")


class IncidentList(BaseModel):
    items: list[IncidentOut]
    total: int
    limit: int
    offset: int
