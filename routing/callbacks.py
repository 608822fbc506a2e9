"""Voicemail callbacks: when one is due, by when it must be answered, when to try again,
and the order of the worklist. Pure: hours, calendar and instants in, instants out.

A message left outside service hours is called back at the next opening ("the next
morning"), never on a public holiday the site is closed, and on a make-up workday (调休)
when the site works it. Every instant is an aware datetime in the site's zone (see
routing.hours.local_time); intervals are read with routing.hours, so a desk open
19:00–02:00 and dated overrides behave here exactly as they do for calls.

Urgent messages (a crisis keyword) do not wait for any of this: they go to crisis duty
at once. What is decided here is the ordinary, next-service-day flow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol

from routing.hours import HolidayCalendar, day_intervals, is_open, require_aware
from routing.rules import DateOverride, Interval, WeeklyHours

# How far ahead to look for an opening: longer than any holiday (Spring Festival is 9
# days) plus a site's own closures; a site closed longer has no answer (None).
HORIZON_DAYS = 60

Overrides = Mapping[date, DateOverride] | None


def _wall(day: date, minute: int, like: datetime) -> datetime:
    # Minute 1440 ("24:00") is the next midnight.
    return datetime.combine(day, time(), tzinfo=like.tzinfo) + timedelta(minutes=minute)


def _start(day: date, interval: Interval, like: datetime) -> datetime:
    return _wall(day, interval.start_minute, like)


def _end(day: date, interval: Interval, like: datetime) -> datetime:
    if interval.crosses_midnight:
        return _wall(day + timedelta(days=1), interval.end_minute, like)
    return _wall(day, interval.end_minute, like)


def _later(at: datetime, delta: timedelta) -> datetime:
    """`at` + `delta` of real time, shown in `at`'s zone (not wall-clock arithmetic)."""
    return (at.astimezone(UTC) + delta).astimezone(at.tzinfo)


def next_service_start(weekly: WeeklyHours, calendar: HolidayCalendar, after_local: datetime,
                       overrides: Overrides = None, *,
                       horizon_days: int = HORIZON_DAYS) -> datetime | None:
    """The first instant ≥ `after_local` at which the site is open: `after_local` itself
    when it is open then, else the start of the next interval; None when the site does not
    open within `horizon_days`."""
    require_aware(after_local, "after_local")
    if is_open(weekly, calendar, after_local, overrides):
        return after_local
    # Closed now, so any interval that started earlier has ended: the answer is the
    # earliest start still ahead, and days are visited in order.
    for offset in range(horizon_days + 1):
        day = after_local.date() + timedelta(days=offset)
        starts = [start for interval in day_intervals(weekly, calendar, day, overrides)
                  if (start := _start(day, interval, after_local)) >= after_local]
        if starts:
            return min(starts)
    return None


def reply_deadline(weekly: WeeklyHours, calendar: HolidayCalendar, message_local: datetime,
                   overrides: Overrides = None, *, within_hours: int | None = None,
                   horizon_days: int = HORIZON_DAYS) -> datetime | None:
    """By when a message must have been answered.

    With `within_hours` (a site promising "a reply within 24 hours"): the message's
    time plus that many hours, open or not.

    Otherwise "the end of the first service day after the message". A service day is a
    date on which at least one interval starts; it begins at its earliest start and
    ends at the latest end of those intervals (the next morning for 19:00–02:00). The
    first service day after the message is the first one that begins strictly after
    it. So a message left before the day's opening (Monday 03:00) is due that day and
    must be answered by its close; one left during a service day — while open, in a
    lunch break, or after hours the same evening — by the close of the next service day;
    Friday 23:00 before a holiday, by the close of the first open day after the holiday
    (a make-up Saturday when the site works it). None when the site does not open
    within `horizon_days`."""
    require_aware(message_local, "message_local")
    if within_hours is not None:
        if within_hours <= 0:
            raise ValueError(f"a reply promise is a positive number of hours, not {within_hours}")
        return _later(message_local, timedelta(hours=within_hours))
    for offset in range(horizon_days + 1):
        day = message_local.date() + timedelta(days=offset)
        intervals = day_intervals(weekly, calendar, day, overrides)
        if not intervals:
            continue
        if min(_start(day, i, message_local) for i in intervals) > message_local:
            return max(_end(day, i, message_local) for i in intervals)
    return None


class Outcome(StrEnum):
    REACHED = "reached"                # the caller confirmed and talked to a counsellor
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    INVALID_NUMBER = "invalid_number"  # the carrier says the number does not exist
    NOT_SAFE = "not_safe"              # whoever answered did not confirm they can talk
    FAILED = "failed"                  # ours: Originate refused, no counsellor leg, …
    # Closed by a person, no call needed: a duplicate, or the caller was helped meanwhile.
    CANCELLED = "cancelled"


# Outcomes after which nothing is dialled automatically. NOT_SAFE is one of them: the
# person who answered may be the parent the message is about, and ringing again on a
# timer could put the caller at risk. The task goes back to a counsellor, who decides
# whether and when to try again (a manual attempt) or to close it.
FINAL_OUTCOMES = frozenset({Outcome.REACHED, Outcome.INVALID_NUMBER, Outcome.NOT_SAFE,
                            Outcome.CANCELLED})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    spacing: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"at least one attempt, not {self.max_attempts}")
        if self.spacing <= timedelta(0):
            raise ValueError("attempts must be spaced by a positive duration")


def next_attempt_at(policy: RetryPolicy, attempts_so_far: int, last_attempt_at: datetime,
                    outcome: Outcome, *, weekly: WeeklyHours, calendar: HolidayCalendar,
                    overrides: Overrides = None,
                    horizon_days: int = HORIZON_DAYS) -> datetime | None:
    """When to dial again after attempt number `attempts_so_far` (counting the one that
    just ended at `last_attempt_at` with `outcome`); None when no further automatic
    attempt is made: the outcome ends the task (FINAL_OUTCOMES), the attempts are used
    up, or the site does not open within `horizon_days`. A retry is `spacing` after the
    last attempt, moved to the next opening when that falls outside service hours.
    Every outcome but the final ones is retried alike; FAILED counts as an attempt, so a
    fault on our side can never dial without end."""
    require_aware(last_attempt_at, "last_attempt_at")
    if attempts_so_far < 1:
        raise ValueError(f"attempts_so_far counts the attempt just made, not {attempts_so_far}")
    if Outcome(outcome) in FINAL_OUTCOMES or attempts_so_far >= policy.max_attempts:
        return None
    return next_service_start(weekly, calendar, _later(last_attempt_at, policy.spacing),
                              overrides, horizon_days=horizon_days)


# -- worklist ------------------------------------------------------------------------------

class Worklisted(Protocol):
    """What the worklist order reads from a callback task (ORM row or WorklistTask)."""

    @property
    def left_at(self) -> datetime: ...
    @property
    def urgent(self) -> bool: ...
    @property
    def scanned(self) -> bool: ...


@dataclass(frozen=True)
class WorklistTask:
    message_id: int
    left_at: datetime  # when the message was left (aware)
    urgent: bool       # a keyword hit, or marked urgent by a person
    # A keyword scan has run on a non-empty transcript. An untranscribed message, a
    # failed transcription or an empty transcript (silence, or words vosk missed) has
    # been cleared by nothing, so it is heard before every other non-urgent message.
    scanned: bool


URGENT, UNSCANNED, ROUTINE = 0, 1, 2


def worklist_rank(task: Worklisted) -> int:
    if task.urgent:
        return URGENT
    return ROUTINE if task.scanned else UNSCANNED


def worklist_key(task: Worklisted) -> tuple[int, datetime]:
    """sorted(tasks, key=worklist_key): urgent first, then messages no keyword scan has
    cleared, then the rest; oldest first within each. Aware instants compare across
    zones, and sorting is stable for messages left at the same instant."""
    return (worklist_rank(task), task.left_at)


# -- who calls back ----------------------------------------------------------------------------

@dataclass(frozen=True)
class CallbackSeat:
    """A counsellor who could make a callback now: on duty, in one of the site's queues,
    not paused, not in a call, their phone idle."""

    counsellor_id: int
    interface: str
    tier: str  # high_risk, consultation, supervisor


def callback_counsellor(seats: Sequence[CallbackSeat], *, urgent: bool,
                        assigned: int | None = None,
                        callers_waiting: bool = False) -> CallbackSeat | None:
    """Who dials this callback, or None (try again later).

    The counsellor a supervisor assigned, when free. An urgent message goes to a high-risk
    specialist first (anyone free if none is), also while callers wait: it is a crisis.
    A routine callback never takes a counsellor from callers waiting in the queues, and
    goes to consultation seats first, keeping specialists free for crisis calls."""
    by_id = {seat.counsellor_id: seat for seat in seats}
    if assigned is not None and assigned in by_id:
        return by_id[assigned]
    if not urgent and callers_waiting:
        return None
    preferred = "high_risk" if urgent else "consultation"
    ordered = sorted(seats, key=lambda seat: (seat.tier != preferred, seat.counsellor_id))
    return ordered[0] if ordered else None
