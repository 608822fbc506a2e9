"""The duty alert chain: who is on the duty roster at an instant, where the roster has holes,
and what to do next for an alert nobody has acknowledged yet. Pure: roster, alert state and
an instant in; actions out. The adapter dials, records what it did, and asks again.

A roster is an ordered list of entries (person, phone number, window); windows may overlap
and cross midnight, and the order is the escalation order. A crisis alert (a keyword, the
crisis option, a missed deadline) rings one phone at a time:

- the first person on duty is called at once, and again every `repeat_every` (2 min)
  until someone acknowledges (press 1 on the call, or the API);
- unacknowledged `escalate_after` (5 min) after their first call, the next person on duty
  who has not been called in this round is called, and the previous one no longer is: one
  phone ringing per alert, and an acknowledgement from anyone called stops it all;
- a person whose duty window ended is not rung again: the chain moves on at once;
- after the last person the chain wraps to the first and keeps going (a crisis must
  reach a human), and says so (Exhausted) so the adapter can raise it further;
- with nobody on duty there is nobody to ring: NobodyOnDuty, repeated every
  `repeat_every`, and the adapter falls back to the site's on-call numbers.

A person is called in at most one step per round, so a step is (lap, person). Each call
moves the chain one step at most: a late tick never skips a person.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from routing.hours import require_aware

# Digits with an optional "+": the number ends up in an AMI Originate, where CR/LF or a
# separator would inject headers or another dial string.
_NUMBER = re.compile(r"\+?[0-9]{3,20}")


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


# -- the roster --------------------------------------------------------------------------

@dataclass(frozen=True)
class RosterEntry:
    person_id: int
    number: str
    starts_at: datetime
    ends_at: datetime

    def __post_init__(self) -> None:
        require_aware(self.starts_at, "starts_at")
        require_aware(self.ends_at, "ends_at")
        if self.ends_at <= self.starts_at:
            raise ValueError("a duty window ends after it starts")
        if not _NUMBER.fullmatch(self.number):
            raise ValueError(f"a duty phone number is digits with an optional +, "
                             f"not {self.number!r}")

    def covers(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


def on_duty(roster: Iterable[RosterEntry], at: datetime) -> list[RosterEntry]:
    """The entries covering `at`, in escalation order, one per person (their first)."""
    require_aware(at, "at")
    seen: set[int] = set()
    found = []
    for entry in roster:
        if entry.covers(at) and entry.person_id not in seen:
            seen.add(entry.person_id)
            found.append(entry)
    return found


@dataclass(frozen=True)
class Gap:
    starts_at: datetime
    ends_at: datetime

    @property
    def summary(self) -> str:
        return f"{self.starts_at:%Y-%m-%d %H:%M} 至 {self.ends_at:%Y-%m-%d %H:%M} 值班表无人值班"


def roster_gaps(roster: Iterable[RosterEntry], start: datetime, end: datetime) -> list[Gap]:
    """The stretches of [start, end) nobody on the roster covers, in order."""
    require_aware(start, "start")
    require_aware(end, "end")
    if end <= start:
        raise ValueError("a period ends after it starts")
    spans = sorted((max(e.starts_at, start), min(e.ends_at, end))
                   for e in roster if e.starts_at < end and e.ends_at > start)
    gaps = []
    covered_until = start
    for begins, ends in spans:
        if begins > covered_until:
            gaps.append(Gap(covered_until, begins))
        covered_until = max(covered_until, ends)
    if covered_until < end:
        gaps.append(Gap(covered_until, end))
    return gaps


# -- the alert ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ChainPolicy:
    repeat_every: timedelta = timedelta(minutes=2)
    escalate_after: timedelta = timedelta(minutes=5)  # from the step's first call

    def __post_init__(self) -> None:
        if self.repeat_every <= timedelta(0) or self.escalate_after <= timedelta(0):
            raise ValueError("repeat_every and escalate_after are positive durations")


@dataclass(frozen=True)
class Delivery:
    """A call the adapter placed for this alert."""

    person_id: int
    number: str
    at: datetime
    lap: int = 1  # the round of the chain: 2 once it has wrapped

    def __post_init__(self) -> None:
        require_aware(self.at, "at")


@dataclass(frozen=True)
class Call:
    person_id: int
    number: str
    attempt: int  # the n-th call to this person in this step
    lap: int


class EscalationReason(StrEnum):
    UNACKNOWLEDGED = "unacknowledged"
    OFF_DUTY = "off_duty"  # the person being rung is no longer on the roster


@dataclass(frozen=True)
class Escalate:
    from_person_id: int
    to_person_id: int  # the same person when a chain of one wraps
    lap: int           # of the step it starts
    reason: EscalationReason


@dataclass(frozen=True)
class Exhausted:
    """Everyone on duty was called in round `lap` and nobody acknowledged; the chain
    starts again from the first person on duty."""

    lap: int


@dataclass(frozen=True)
class NobodyOnDuty:
    """Nobody on the roster to ring now: the adapter alerts some other way."""


Action = Call | Escalate | Exhausted | NobodyOnDuty


@dataclass(frozen=True)
class AlertState:
    raised_at: datetime
    acknowledged_at: datetime | None = None
    deliveries: tuple[Delivery, ...] = ()
    unstaffed_reported_at: datetime | None = None  # the last NobodyOnDuty acted on

    def __post_init__(self) -> None:
        require_aware(self.raised_at, "raised_at")
        if self.acknowledged_at is not None:
            require_aware(self.acknowledged_at, "acknowledged_at")
        if self.unstaffed_reported_at is not None:
            require_aware(self.unstaffed_reported_at, "unstaffed_reported_at")

    def recorded(self, actions: Iterable[Action], at: datetime) -> AlertState:
        """This state after the adapter carried out `actions` at `at`."""
        require_aware(at, "at")
        state = self
        for action in actions:
            if isinstance(action, Call):
                delivery = Delivery(action.person_id, action.number, at, action.lap)
                state = replace(state, deliveries=(*state.deliveries, delivery))
            elif isinstance(action, NobodyOnDuty):
                state = replace(state, unstaffed_reported_at=at)
        return state


@dataclass(frozen=True)
class _Step:
    last: Delivery
    started_at: datetime
    calls: int
    called_in_lap: frozenset[int]


def _current_step(deliveries: Sequence[Delivery]) -> _Step | None:
    if not deliveries:
        return None
    # Stable: deliveries at one instant keep the order they were recorded in.
    ordered = sorted(deliveries, key=lambda d: _utc(d.at))
    last = ordered[-1]
    step = [d for d in ordered if d.lap == last.lap and d.person_id == last.person_id]
    return _Step(last, step[0].at, len(step),
                 frozenset(d.person_id for d in ordered if d.lap == last.lap))


def next_actions(state: AlertState, roster: Sequence[RosterEntry], now: datetime,
                 policy: ChainPolicy) -> list[Action]:
    """What to do for this alert at `now`; [] when nothing is due (or it is acknowledged).

    At most one Call, so at most one phone rings per alert; an escalation comes as
    [Exhausted?, Escalate, Call]. Record the Calls and NobodyOnDuty with
    AlertState.recorded (or the same rows in storage) before asking again."""
    require_aware(now, "now")
    if state.acknowledged_at is not None:
        return []
    chain = on_duty(roster, now)
    if not chain:
        reported = state.unstaffed_reported_at
        if reported is None or _utc(now) >= _utc(reported) + policy.repeat_every:
            return [NobodyOnDuty()]
        return []
    step = _current_step(state.deliveries)
    if step is None:
        first = chain[0]
        return [Call(first.person_id, first.number, attempt=1, lap=1)]
    target = next((e for e in chain if e.person_id == step.last.person_id), None)
    if target is not None and _utc(now) < _utc(step.started_at) + policy.escalate_after:
        if _utc(now) >= _utc(step.last.at) + policy.repeat_every:
            return [Call(target.person_id, target.number, step.calls + 1, step.last.lap)]
        return []
    reason = (EscalationReason.UNACKNOWLEDGED if target is not None
              else EscalationReason.OFF_DUTY)
    actions: list[Action] = []
    lap = step.last.lap
    following = next((e for e in chain if e.person_id not in step.called_in_lap), None)
    if following is None:
        actions.append(Exhausted(lap))
        lap += 1
        following = chain[0]
    actions += [Escalate(step.last.person_id, following.person_id, lap, reason),
                Call(following.person_id, following.number, attempt=1, lap=lap)]
    return actions


def next_check_at(state: AlertState, roster: Sequence[RosterEntry], now: datetime,
                  policy: ChainPolicy) -> datetime | None:
    """The earliest instant at which next_actions may have something to do: `now` when it
    has, else the next repeat, escalation or roster change; None once acknowledged. Ask
    with the state that already records what was done at `now`."""
    require_aware(now, "now")
    if state.acknowledged_at is not None:
        return None
    if next_actions(state, roster, now, policy):
        return now
    candidates = [edge for entry in roster for edge in (entry.starts_at, entry.ends_at)]
    step = _current_step(state.deliveries)
    if step is not None:
        candidates += [_utc(step.last.at) + policy.repeat_every,
                       _utc(step.started_at) + policy.escalate_after]
    if state.unstaffed_reported_at is not None:
        candidates.append(_utc(state.unstaffed_reported_at) + policy.repeat_every)
    ahead = [_utc(c) for c in candidates if c > now]
    return min(ahead).astimezone(now.tzinfo) if ahead else None
