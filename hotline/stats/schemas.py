"""API shapes of the statistics (also the source of the OpenAPI document).

Rates are fractions (0.875, not 87.5 %), null when their denominator is 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hotline.stats.services import Group

_SITE_CODE = r"^[A-Za-z0-9_-]{1,32}$"


class AnswerRateQuery(BaseModel):
    """Query parameters of GET /api/stats/answer-rate (unknown ones are refused)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    site: str | None = Field(default=None, pattern=_SITE_CODE,
                             description="the site's code; the default site if not given")
    group: Literal["site", "queue", "shift", "counsellor"] = Field(
        default="site", description="figures per site, queue, shift slot or counsellor")
    from_: str | None = Field(default=None, alias="from", max_length=64,
                              description="a date (the site-local day's start) or an ISO "
                                          "datetime (naive: site-local); default: the start "
                                          "of the site-local day `to` falls in")
    to: str | None = Field(default=None, max_length=64,
                           description="a date (that day included) or an ISO datetime "
                                       "(excluded); default: now. At most 400 days after "
                                       "`from`")


class FiguresOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    offered: int = Field(description="calls sent to a queue whose outcome is known")
    answered: int = Field(description="answered by a counsellor or on the on-call phone")
    answered_by_counsellor: int
    answered_oncall: int = Field(description="answered by a person on the site's on-call phone")
    abandoned: int = Field(description="the caller hung up before anyone answered "
                                       "(short abandons included)")
    short_abandoned: int = Field(description="abandoned within the site's "
                                             "short_abandon_seconds")
    lost: int = Field(description="neither answered nor abandoned (the listener lost track)")
    callback_requested: int = Field(description="left the queue with 1 to be called back "
                                                "in their turn (voicemail callbacks)")
    counted: int = Field(description="offered − short_abandoned − callback_requested: every "
                                     "rate's denominator")
    answer_rate: float | None = Field(description="answered / counted")
    counsellor_answer_rate: float | None = Field(description="answered_by_counsellor / counted")
    abandon_rate: float | None = Field(description="(abandoned − short_abandoned) / counted")
    average_speed_of_answer_seconds: float | None = Field(
        description="mean wait of the answered calls")
    answered_within_15s: int
    answered_within_20s: int
    service_level_15s: float | None = Field(description="answered_within_15s / counted")
    service_level_20s: float | None = Field(description="answered_within_20s / counted")


class GroupOut(BaseModel):
    key: str = Field(description="the site code, queue name or slot start (HH:MM)")
    label: str
    figures: FiguresOut


class CounsellorFiguresOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    interface: str
    offered: int = Field(description="calls that rang this counsellor")
    rings: int = Field(description="times their phone rang")
    answered: int = Field(description="calls they were connected to")
    missed_rings: int = Field(description="rings that timed out unanswered")
    talk_seconds: float
    crisis_answered: int = Field(description="crisis calls they were connected to")
    answer_rate: float | None = Field(description="answered / offered")


class CounsellorOut(BaseModel):
    counsellor_id: int | None = Field(description="null for a member we cannot name")
    name: str
    figures: CounsellorFiguresOut


class BreachOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    met: int = Field(description="done by the deadline")
    missed: int = Field(description="done late, or not done and the deadline passed")
    open: int = Field(validation_alias="pending",
                      description="not done yet, the deadline still ahead")


class DeadlinesOut(BaseModel):
    """Promises whose deadline falls in the period."""

    model_config = ConfigDict(from_attributes=True)

    crisis: BreachOut = Field(description="crisis intervention started within the crisis "
                                          "deadline (30 minutes by default) of an incident")
    callbacks: BreachOut = Field(description="callbacks closed within their reply deadline")


class AnswerRateOut(BaseModel):
    site: str
    timezone: str
    from_: datetime = Field(alias="from", description="start of the period (site-local)")
    to: datetime = Field(description="end of the period, excluded (site-local)")
    group: Group
    short_abandon_seconds: int
    generated_at: datetime
    total: FiguresOut = Field(description="the whole site over the period")
    groups: list[GroupOut] = Field(description="per site, queue or shift slot (empty for "
                                               "group=counsellor)")
    counsellors: list[CounsellorOut] = Field(description="per counsellor (group=counsellor)")
    deadlines: DeadlinesOut

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
