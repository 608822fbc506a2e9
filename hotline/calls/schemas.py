"""API shapes of calls (also the source of the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CallEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    kind: str = Field(description="ivr_start, digit, route, queue_join, ring, connect, abandon, "
                                  "hangup, fallback, oncall_dial, oncall_result, transfer, "
                                  "transfer_dial, transfer_result, transfer_request, "
                                  "monitor, monitor_result, attendant_listened, "
                                  "reconciled_end…")
    source: str = Field(description="agi, ami, api, attendant or reconcile")
    data: dict[str, Any]


class CallSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    linkedid: str
    site_code: str | None
    dialed_number: str | None
    caller_number: str | None
    caller_name: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    route: str | None = Field(description="queue, crisis, oncall, voicemail, forward, "
                                          "selfhelp or fallback")
    digits: str | None = Field(description="menu digits pressed, in order")
    queue: str | None
    priority: int | None
    wait_seconds: float | None = Field(description="seconds in the queue before an answer or "
                                                   "the caller left")
    answered_by: str | None
    answered_by_counsellor_id: int | None
    outcome: str | None = Field(description="answered, answered_oncall, abandoned, ivr_hangup, "
                                            "lost; null while the call is live")
    fallback: bool
    caller_kind: str | None = Field(default=None, description="mobile, landline, service, "
                                    "international, withheld or unknown")
    rules_version: int | None = Field(default=None, description="the site's rules version "
                                      "that routed the call (0: built-in defaults)")
    survey_score: int | None = Field(default=None, description="the caller's 1–5 rating "
                                     "after the call, when the site asks for one")


class CallDetail(CallSummary):
    events: list[CallEventOut]
    recording: str | None = Field(default=None, description="recordings come with a later issue")


class CallList(BaseModel):
    items: list[CallSummary]
    total: int
    limit: int
    offset: int


class ErrorOut(BaseModel):
    error: str
    detail: Any = None
