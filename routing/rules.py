"""A site's routing rules as data: menus as a tree of nodes, service hours, off-hours mode.

Administrators edit this document (as JSON through the admin API); `routing.validation`
checks it before it is published; `routing.menu` walks it for each call. The models are
frozen pydantic models so the same definition parses the API body, the database copy and
the snapshot the classic AGI fallback reads.

Node kinds:
- `menu`: play a prompt and collect one digit; options map digits to nodes; after
  `attempts` silent or invalid tries the caller goes to `no_input` / `invalid`.
- `play`: play a prompt, then `next` (a digit pressed during it counts for a following menu).
- `hours`: branch on the site's (or a queue's) service hours: `open` or `closed`.
- `queue`: wait for a counsellor in a queue (`closed` is taken outside the queue's hours).
- `crisis`: the crisis route — counsellors when anyone on duty can take it, otherwise the
  site's on-call numbers; top priority.
- `voicemail`: leave a message (next-day callback).
- `forward`: dial an external number (e.g. a provincial 24-hour line).
- `selfhelp`: a self-help audio programme, after which the caller returns to a menu.
- `listen`: the night attendant asks the caller to say what is happening and listens
  (speech to the backend's recognizer); a crisis keyword leads to `crisis`, otherwise the
  caller returns to the menu `next`. Where nothing can listen (no speech model, the classic
  AGI fallback) the caller goes to `unavailable` instead: a menu offering crisis by key.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DIGITS = "0123456789*#"

NodeId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Digit = Annotated[str, Field(pattern=r"^[0-9*#]$")]
# A sound name as Asterisk knows it (no extension), e.g. "hotline/welcome".
PromptName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_/-]{0,199}$")]
QueueName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

_CLOCK = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])$")


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Interval(Frozen):
    """Opening hours within a day, "HH:MM"–"HH:MM"; an end at or before the start crosses
    midnight (19:00–02:00 is open until 02:00 the next morning); "24:00" ends at midnight."""

    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        match = _CLOCK.match(value)
        if not match or (match.group(1) == "24" and match.group(2) != "00"):
            raise ValueError(f"{value!r} is not a time of day HH:MM (00:00 to 24:00)")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Interval:
        if self.start == "24:00":
            raise ValueError("an interval cannot start at 24:00")
        if self.start_minute == self.end_minute:
            raise ValueError(f"{self.start}–{self.end} is empty; use 00:00–24:00 for all day")
        return self

    @property
    def start_minute(self) -> int:
        hours, minutes = self.start.split(":")
        return int(hours) * 60 + int(minutes)

    @property
    def end_minute(self) -> int:
        hours, minutes = self.end.split(":")
        return int(hours) * 60 + int(minutes)

    @property
    def crosses_midnight(self) -> bool:
        return self.end_minute < self.start_minute or (
            self.end_minute == 0 and self.start_minute > 0)


Intervals = tuple[Interval, ...]
ALL_DAY: Intervals = (Interval(start="00:00", end="24:00"),)


class WeeklyHours(Frozen):
    """Open intervals per weekday, on public holidays, and on make-up workdays (调休)."""

    mon: Intervals = ()
    tue: Intervals = ()
    wed: Intervals = ()
    thu: Intervals = ()
    fri: Intervals = ()
    sat: Intervals = ()
    sun: Intervals = ()
    # Public holidays are closed unless hours are given here.
    holiday: Intervals = ()
    # A make-up workday (a weekend day worked instead of a holiday) keeps this weekday's hours.
    makeup_workday_as: Literal["mon", "tue", "wed", "thu", "fri"] = "mon"

    @classmethod
    def every_day(cls, *intervals: Interval, holidays_too: bool = False) -> WeeklyHours:
        days = {day: tuple(intervals) for day in WEEKDAYS}
        return cls(**days, holiday=tuple(intervals) if holidays_too else ())

    def for_weekday(self, weekday: int) -> Intervals:
        result: Intervals = getattr(self, WEEKDAYS[weekday])
        return result


ALWAYS = WeeklyHours.every_day(*ALL_DAY, holidays_too=True)


# Dates an override may name (near date.min/date.max, validation's date arithmetic overflows).
FIRST_OVERRIDE_DATE = date(2000, 1, 1)
LAST_OVERRIDE_DATE = date(2199, 12, 31)
OverrideDate = Annotated[date, Field(ge=FIRST_OVERRIDE_DATE, le=LAST_OVERRIDE_DATE)]


class DateOverride(Frozen):
    """A site's own exception for one date: closed all day, or these hours instead."""

    date: OverrideDate
    closed: bool = False
    hours: Intervals = ()
    note: str = Field(default="", max_length=200)


class Hours(Frozen):
    site: WeeklyHours = ALWAYS
    # Queues with their own hours (e.g. the high-risk desk 19:00–02:00); others follow none.
    queues: dict[QueueName, WeeklyHours] = Field(default_factory=dict)
    overrides: tuple[DateOverride, ...] = ()

    @model_validator(mode="after")
    def _one_override_per_date(self) -> Hours:
        dates = [override.date for override in self.overrides]
        duplicates = sorted({d for d in dates if dates.count(d) > 1})
        if duplicates:
            raise ValueError(f"more than one override for {', '.join(map(str, duplicates))}")
        return self


class MenuNode(Frozen):
    type: Literal["menu"] = "menu"
    prompt: PromptName
    options: dict[Digit, NodeId] = Field(default_factory=dict)
    timeout_seconds: int = Field(default=5, ge=1, le=30)
    # Invalid digits allowed: each replays the menu after the "invalid" prompt, until then.
    attempts: int = Field(default=2, ge=1, le=5)
    # Silent tries before `no_input`: 1 sends a caller who presses nothing to a human at once.
    no_input_attempts: int = Field(default=1, ge=1, le=5)
    invalid_prompt: PromptName = "hotline/invalid"
    no_input: NodeId
    # Where too many invalid digits lead; the `no_input` node when not given.
    invalid: NodeId | None = None
    label: str = Field(default="", max_length=200)


class PlayNode(Frozen):
    type: Literal["play"] = "play"
    prompt: PromptName
    next: NodeId
    label: str = Field(default="", max_length=200)


class HoursNode(Frozen):
    type: Literal["hours"] = "hours"
    # The hours of this queue, or the site's when empty.
    queue: QueueName | None = None
    open: NodeId
    closed: NodeId
    label: str = Field(default="", max_length=200)


class QueueNode(Frozen):
    type: Literal["queue"] = "queue"
    queue: QueueName
    priority: int = Field(default=0, ge=0, le=10)
    # Taken outside the queue's own hours (required when the queue has hours).
    closed: NodeId | None = None
    label: str = Field(default="", max_length=200)


class CrisisNode(Frozen):
    type: Literal["crisis"] = "crisis"
    queue: QueueName = "crisis"
    label: str = Field(default="", max_length=200)


class VoicemailNode(Frozen):
    type: Literal["voicemail"] = "voicemail"
    prompt: PromptName = "hotline/voicemail-greeting"
    label: str = Field(default="", max_length=200)


class ForwardNode(Frozen):
    type: Literal["forward"] = "forward"
    number: str = Field(pattern=r"^\+?[0-9]{3,20}$")
    ring_seconds: int = Field(default=30, ge=5, le=120)
    prompt: PromptName = "hotline/forwarding"
    label: str = Field(default="", max_length=200)


class SelfHelpNode(Frozen):
    type: Literal["selfhelp"] = "selfhelp"
    programme: PromptName
    # The menu the caller returns to afterwards: never a hang-up.
    next: NodeId
    label: str = Field(default="", max_length=200)


class ListenNode(Frozen):
    type: Literal["listen"] = "listen"
    prompt: PromptName = "hotline/attendant-listen"
    # After listening without a crisis keyword: back to a menu.
    next: NodeId
    # Where a crisis keyword leads (a crisis node).
    crisis: NodeId
    # Where the caller goes when nothing can listen: a menu that offers crisis by key.
    unavailable: NodeId
    label: str = Field(default="", max_length=200)


Node = Annotated[
    MenuNode | PlayNode | HoursNode | QueueNode | CrisisNode | VoicemailNode | ForwardNode
    | SelfHelpNode | ListenNode,
    Field(discriminator="type"),
]
AnyNode = (MenuNode | PlayNode | HoursNode | QueueNode | CrisisNode | VoicemailNode
           | ForwardNode | SelfHelpNode | ListenNode)
TERMINAL_TYPES = frozenset({"queue", "crisis", "voicemail", "forward"})


class OffHours(Frozen):
    """What a caller gets outside the site's service hours."""

    mode: Literal["attendant", "voicemail", "forward"] = "attendant"
    entry: NodeId


class Survey(Frozen):
    enabled: bool = False
    prompt: PromptName = "hotline/survey-ask"
    thanks_prompt: PromptName = "hotline/survey-thanks"
    invalid_prompt: PromptName = "hotline/survey-invalid"


class CallerRules(Frozen):
    # A caller flagged high-risk within this many days skips the menu to the crisis tier.
    high_risk_days: int = Field(default=30, ge=0, le=3650)
    # Where a caller flagged abusive starts (a menu that still offers the crisis option);
    # the normal entry when empty.
    abusive_entry: NodeId | None = None


class RuleSet(Frozen):
    schema_version: Literal[1] = 1
    timezone: str = "Asia/Shanghai"
    entry: NodeId
    off_hours: OffHours
    crisis_priority: int = Field(default=10, ge=1, le=100)
    hours: Hours = Hours()
    callers: CallerRules = CallerRules()
    survey: Survey = Survey()
    nodes: dict[NodeId, Node]

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value


def node_targets(node: AnyNode) -> dict[str, str]:
    """Every edge out of a node, labelled ("option 1", "no_input", "next", ...)."""
    match node:
        case MenuNode():
            edges = {f"option {digit}": target for digit, target in node.options.items()}
            edges["no_input"] = node.no_input
            if node.invalid:
                edges["invalid"] = node.invalid
            return edges
        case PlayNode() | SelfHelpNode():
            return {"next": node.next}
        case ListenNode():
            return {"next": node.next, "crisis": node.crisis, "unavailable": node.unavailable}
        case HoursNode():
            return {"open": node.open, "closed": node.closed}
        case QueueNode():
            return {"closed": node.closed} if node.closed else {}
        case _:
            return {}


def default_edges(node: AnyNode) -> list[str]:
    """Where a caller who presses nothing can go from this node."""
    match node:
        case MenuNode():
            return [node.no_input] + ([node.invalid] if node.invalid else [])
        case _:
            return [t for label, t in node_targets(node).items() if not label.startswith("option")]


def node_prompts(node: AnyNode) -> list[str]:
    match node:
        case MenuNode():
            return [node.prompt, node.invalid_prompt]
        case PlayNode() | VoicemailNode() | ForwardNode() | ListenNode():
            return [node.prompt]
        case SelfHelpNode():
            return [node.programme]
        case _:
            return []
