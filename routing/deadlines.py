"""Deadlines of incidents and cases: when each is due, whether it is close or missed, which
escalations are due now, and how many were met or missed. Pure: instants in, answers out.

The practices this hotline follows (Heilongjiang) set three promises: crisis intervention
starts within 30 minutes of the first crisis signal, a case gets a reply within 48 hours,
a consultation an answer within 24 hours. A site may set other durations (DeadlinePolicy).
They are hours of real time, not service hours: the duty officer is there around the
clock, so a case opened on Friday evening is due on Sunday evening.

The deadline is the last instant still in time: done at 02:40:00 for a deadline of 02:40
is met, and the deadline is missed only after it. A deadline is "near" once a share of its
time has passed (80 % by default: 6 minutes before a 30-minute crisis deadline, 9.6 hours
before a 48-hour case), measured on the item's own span, so one setting suits half an hour
and two days alike, and an item keeps its span when a site changes its durations later.

A watchdog asks `due_escalations` on every tick: near → warn the assignee and the duty
officer; missed → alert through the duty chain (routing.duty_chain), which repeats and
escalates from there on. Each level happens once per item.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from routing.hours import require_aware


class DeadlineKind(StrEnum):
    CRISIS = "crisis"              # intervention starts, from the first crisis signal
    CASE = "case"                  # a case (工单) gets a reply
    CONSULTATION = "consultation"  # a consultation gets an answer


class DeadlineState(StrEnum):
    OK = "ok"
    NEAR = "near"
    MISSED = "missed"


class EscalationLevel(StrEnum):
    WARN = "warn"          # near: tell the assignee and the duty officer
    ESCALATE = "escalate"  # missed: alert through the duty chain


def _utc(at: datetime) -> datetime:
    # Aware datetimes sharing a tzinfo subtract by wall clock; UTC makes it real time.
    return at.astimezone(UTC)


@dataclass(frozen=True)
class DeadlinePolicy:
    """A site's promises. `near_fraction`: the share of an item's time after which its
    deadline is near (0.8: the last fifth is the warning period)."""

    crisis: timedelta = timedelta(minutes=30)
    case: timedelta = timedelta(hours=48)
    consultation: timedelta = timedelta(hours=24)
    near_fraction: float = 0.8

    def __post_init__(self) -> None:
        for kind in DeadlineKind:
            if self.allowed(kind) <= timedelta(0):
                raise ValueError(f"the {kind} deadline must be a positive duration")
        if not 0 < self.near_fraction < 1:
            raise ValueError(f"near_fraction is between 0 and 1 (exclusive), "
                             f"not {self.near_fraction}")

    def allowed(self, kind: DeadlineKind) -> timedelta:
        return {DeadlineKind.CRISIS: self.crisis, DeadlineKind.CASE: self.case,
                DeadlineKind.CONSULTATION: self.consultation}[DeadlineKind(kind)]


@dataclass(frozen=True)
class Deadline:
    kind: DeadlineKind
    opened_at: datetime  # for a crisis, the first crisis signal; later ones do not move it
    due_at: datetime

    def __post_init__(self) -> None:
        require_aware(self.opened_at, "opened_at")
        require_aware(self.due_at, "due_at")
        if self.due_at <= self.opened_at:
            raise ValueError("a deadline falls after the item was opened")

    def near_at(self, policy: DeadlinePolicy) -> datetime:
        span = _utc(self.due_at) - _utc(self.opened_at)
        return (_utc(self.opened_at) + span * policy.near_fraction).astimezone(
            self.due_at.tzinfo)


@dataclass(frozen=True)
class DeadlineStatus:
    state: DeadlineState
    left: timedelta  # until the deadline; negative once missed (how late it is)


def deadline_for(kind: DeadlineKind, opened_at: datetime, policy: DeadlinePolicy) -> Deadline:
    """The deadline of an item of `kind` opened at `opened_at`, shown in its zone."""
    require_aware(opened_at, "opened_at")
    due = (_utc(opened_at) + policy.allowed(kind)).astimezone(opened_at.tzinfo)
    return Deadline(DeadlineKind(kind), opened_at, due)


def deadline_state(deadline: Deadline, now: datetime, policy: DeadlinePolicy) -> DeadlineStatus:
    """ok before the near point, near from it up to and including the deadline, missed
    after it."""
    require_aware(now, "now")
    left = _utc(deadline.due_at) - _utc(now)
    if left < timedelta(0):
        return DeadlineStatus(DeadlineState.MISSED, left)
    if now >= deadline.near_at(policy):
        return DeadlineStatus(DeadlineState.NEAR, left)
    return DeadlineStatus(DeadlineState.OK, left)


# -- the watchdog ------------------------------------------------------------------------

@dataclass(frozen=True)
class OpenItem:
    """An incident or case not yet done, with the escalations already made for it."""

    item_id: int | str
    deadline: Deadline
    escalated: frozenset[EscalationLevel] = field(default_factory=frozenset)


@dataclass(frozen=True)
class DueEscalation:
    item_id: int | str
    kind: DeadlineKind
    level: EscalationLevel
    due_at: datetime
    left: timedelta  # negative: how late


_LEVEL = {DeadlineState.NEAR: EscalationLevel.WARN, DeadlineState.MISSED: EscalationLevel.ESCALATE}


def due_escalations(items: Iterable[OpenItem], now: datetime,
                    policy: DeadlinePolicy) -> list[DueEscalation]:
    """The escalations to make now, missed deadlines first, then by deadline.

    An item gets each level once: the caller records the level it acted on in
    `escalated`, and a level recorded there (or a higher one) is never due again. An item
    first seen already missed (opened late, the watchdog was down) is escalated without a
    warning: a warning after the fact is noise. After the escalation the duty chain keeps
    ringing until someone acknowledges, so nothing more is due here."""
    require_aware(now, "now")
    due = []
    for item in items:
        status = deadline_state(item.deadline, now, policy)
        level = _LEVEL.get(status.state)
        if level is None or level in item.escalated:
            continue
        if level is EscalationLevel.WARN and EscalationLevel.ESCALATE in item.escalated:
            continue
        due.append(DueEscalation(item.item_id, item.deadline.kind, level,
                                 item.deadline.due_at, status.left))
    due.sort(key=lambda e: (e.level is not EscalationLevel.ESCALATE, _utc(e.due_at)))
    return due


# -- statistics --------------------------------------------------------------------------

@dataclass(frozen=True)
class DeadlineRecord:
    deadline: Deadline
    done_at: datetime | None = None  # intervention started / reply given; None while open

    def __post_init__(self) -> None:
        if self.done_at is not None:
            require_aware(self.done_at, "done_at")


@dataclass(frozen=True)
class BreachCount:
    met: int = 0
    missed: int = 0
    pending: int = 0  # not done, deadline not yet passed


def breach_counts(records: Iterable[DeadlineRecord], *, start: datetime, end: datetime,
                  now: datetime) -> Mapping[DeadlineKind, BreachCount]:
    """Met / missed / pending per kind for the deadlines falling in [start, end), every kind
    present. An item counts in the period its deadline falls in, so consecutive periods
    count each once. Done late or not done by `now` after its deadline is missed for good."""
    for at, name in ((start, "start"), (end, "end"), (now, "now")):
        require_aware(at, name)
    if end <= start:
        raise ValueError("a period ends after it starts")
    tally: Counter[tuple[DeadlineKind, str]] = Counter()
    for record in records:
        due = record.deadline.due_at
        if not start <= due < end:
            continue
        if record.done_at is not None:
            outcome = "met" if record.done_at <= due else "missed"
        else:
            outcome = "missed" if now > due else "pending"
        tally[record.deadline.kind, outcome] += 1
    return {kind: BreachCount(met=tally[kind, "met"], missed=tally[kind, "missed"],
                              pending=tally[kind, "pending"]) for kind in DeadlineKind}
