"""API shapes of routing rules, the calendar and caller flags."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ProblemOut(BaseModel):
    node: str = Field(description="the node at fault, or (rules) for the rule set as a whole")
    reason: str


class RulesVersionOut(BaseModel):
    site: str
    version: int
    status: Literal["draft", "published", "superseded"]
    note: str
    created_by: str
    created_at: datetime
    published_by: str | None
    published_at: datetime | None
    prompt_versions: dict[str, Any] = Field(
        description="site prompts pinned at publish time: name → version")
    problems: list[ProblemOut] = Field(
        default_factory=list, description="what would stop this draft from being published")
    document: dict[str, Any] = Field(description="the rule set (see RuleSet)")


class RulesStateOut(BaseModel):
    site: str
    published: RulesVersionOut | None
    draft: RulesVersionOut | None
    serving_version: int = Field(description="the version this node routes calls with now "
                                             "(0: the built-in default rules)")


class RulesVersionList(BaseModel):
    items: list[RulesVersionOut]


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, description="a draft version; the site's draft "
                                                          "when omitted")
    note: str = Field(default="", max_length=500)


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    note: str = Field(default="", max_length=500)


class CheckOut(BaseModel):
    problems: list[ProblemOut]


class HolidayIn(BaseModel):
    date: date
    name: str = Field(default="", max_length=100)


class CalendarYearIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    holidays: list[HolidayIn] = Field(description="every day off of the official holidays")
    workdays: list[date] = Field(default_factory=list,
                                 description="weekend days worked instead (调休)")
    source: str = Field(default="", max_length=500,
                        description="e.g. the State Council notice it comes from")


class CalendarYearOut(BaseModel):
    year: int
    source: str
    holidays: list[dict[str, str]]
    workdays: list[str]
    entered_by: str | None
    entered_at: str | None


class CalendarCoverageOut(BaseModel):
    today: str
    package_years: list[int]
    entered_years: list[int]
    covered_years: list[int]
    days_ahead: int
    uncovered_from: str | None
    uncovered_days: int


class FlagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(min_length=1, max_length=64)
    kind: Literal["high_risk", "abusive"]
    reason: str = Field(default="", max_length=1000)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
    call_id: str | None = Field(default=None, max_length=32)


class FlagOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    number: str
    kind: str
    reason: str
    call_id: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_by: str | None
    revoked_at: datetime | None


class FlagList(BaseModel):
    items: list[FlagOut]
