"""Answer-rate arithmetic. Pure: calls and their queue legs in, figures out; no I/O.

The definitions (what is offered, answered, a short abandon, a shift slot…) are written
down in docs/statistics.md; this module is their one implementation.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from zoneinfo import ZoneInfo

# The journal's outcomes (ami_listener/call_tracking.py `Outcome`).
ANSWERED = "answered"
ANSWERED_ONCALL = "answered_oncall"
ABANDONED = "abandoned"
CALLBACK_REQUESTED = "callback_requested"
IVR_HANGUP = "ivr_hangup"
CRISIS = "crisis"

SERVICE_LEVEL_SECONDS = (15.0, 20.0)
DEFAULT_SLOT_HOURS = 3


class Result(enum.StrEnum):
    """What became of one offered call."""

    ANSWERED = "answered"  # a counsellor took it from the queue
    ANSWERED_ONCALL = "answered_oncall"  # a person on the site's on-call phone took it
    ABANDONED = "abandoned"  # the caller hung up before anyone answered
    SHORT_ABANDONED = "short_abandoned"  # … within the site's short-abandon threshold
    # Left the queue with 1 to be called back in their turn: answered by the callback.
    CALLBACK_REQUESTED = "callback_requested"
    LOST = "lost"  # anything else: the listener lost track of it, an unknown outcome


@dataclass(frozen=True)
class OfferedCall:
    """A call that was sent to a queue, once its outcome is known."""

    call_id: str
    started_at: datetime
    queue: str
    outcome: str
    route: str | None = None
    wait_seconds: float | None = None  # as journaled (Asterisk's HoldTime, or the clock)
    entered_at: datetime | None = None  # first queue join, else when routed to the queue
    answered_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True)
class LegEvent:
    """A queue member's part in a call: rung, ring unanswered, connected, completed."""

    call_id: str
    kind: str  # ring, ring_no_answer, connect, complete
    at: datetime
    interface: str = ""  # PJSIP/c1002; a `complete` event names only the member
    member: str = ""
    talk_seconds: float | None = None


@dataclass(frozen=True)
class JourneyEvent:
    """A step of a call's way to a person: `route`/`fallback` (a routing decision),
    `queue_join`, `connect`."""

    kind: str
    at: datetime
    queue: str = ""
    wait_seconds: float | None = None


def from_journey(call: OfferedCall, journey: Sequence[JourneyEvent]) -> OfferedCall:
    """The call as the statistics see it, from its record and its journey (in order).

    The queue is the first one the call was sent to (its routing decision's, or the first
    it joined): an overflow to the duty queue or a transfer into another queue does not move
    it. It entered at the first queue join, else at the last routing decision. An answered
    call's wait is its first answer's (a transfer does not restart it)."""
    decisions = [step for step in journey if step.kind in ("route", "fallback")]
    joins = [step for step in journey if step.kind == "queue_join"]
    sent = next((step.queue for step in journey
                 if step.kind in ("route", "queue_join") and step.queue), call.queue)
    entered = joins[0].at if joins else (decisions[-1].at if decisions else call.entered_at)
    wait = call.wait_seconds
    if call.outcome == ANSWERED:
        connect = next((step for step in journey if step.kind == "connect"), None)
        if connect is not None and connect.wait_seconds is not None:
            wait = connect.wait_seconds
    return replace(call, queue=sent, entered_at=entered, wait_seconds=wait)


def ratio(part: float, whole: float) -> float | None:
    """part / whole, or None when there is nothing to divide by."""
    return None if whole <= 0 else part / whole


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def wait_of(call: OfferedCall) -> float | None:
    """Seconds the caller waited for a person: from entering the queue to the answer or the
    hang-up. None when the journal cannot tell."""
    entered = call.entered_at or call.started_at
    if call.outcome == ANSWERED_ONCALL:
        # wait_seconds is the queue part only; the on-call phones were dialled after it.
        return _seconds(entered, call.answered_at)
    if call.wait_seconds is not None:
        return max(call.wait_seconds, 0.0)
    end = call.answered_at if call.outcome == ANSWERED else call.ended_at
    return _seconds(entered, end)


def result_of(call: OfferedCall, short_abandon_seconds: float) -> Result:
    if call.outcome == ANSWERED:
        return Result.ANSWERED
    if call.outcome == ANSWERED_ONCALL:
        return Result.ANSWERED_ONCALL
    if call.outcome == CALLBACK_REQUESTED:
        return Result.CALLBACK_REQUESTED
    if call.outcome in (ABANDONED, IVR_HANGUP):
        # ivr_hangup on a call routed to a queue: the caller left between the routing
        # decision and a person (the "connecting" prompt, the on-call dial).
        wait = wait_of(call)
        if wait is not None and wait < short_abandon_seconds:
            return Result.SHORT_ABANDONED
        return Result.ABANDONED
    return Result.LOST


def is_crisis(call: OfferedCall, crisis_queues: frozenset[str]) -> bool:
    return call.route == CRISIS or call.queue in crisis_queues


@dataclass(frozen=True)
class Figures:
    offered: int
    answered: int
    answered_by_counsellor: int
    answered_oncall: int
    abandoned: int
    short_abandoned: int
    callback_requested: int
    lost: int
    # The denominator of every rate: offered − short abandons − callbacks requested.
    counted: int
    answer_rate: float | None
    counsellor_answer_rate: float | None
    abandon_rate: float | None
    average_speed_of_answer_seconds: float | None
    answered_within_15s: int
    answered_within_20s: int
    service_level_15s: float | None
    service_level_20s: float | None


@dataclass
class Tally:
    """Adds up offered calls into Figures."""

    short_abandon_seconds: float
    results: dict[Result, int] = field(default_factory=lambda: dict.fromkeys(Result, 0))
    answer_waits: list[float] = field(default_factory=list)
    within: dict[float, int] = field(
        default_factory=lambda: dict.fromkeys(SERVICE_LEVEL_SECONDS, 0))

    def add(self, call: OfferedCall) -> Result:
        result = result_of(call, self.short_abandon_seconds)
        self.results[result] += 1
        if result in (Result.ANSWERED, Result.ANSWERED_ONCALL):
            wait = wait_of(call)
            if wait is not None:  # unknown: answered, but neither fast nor slow
                self.answer_waits.append(wait)
                for limit in SERVICE_LEVEL_SECONDS:
                    if wait <= limit:
                        self.within[limit] += 1
        return result

    def figures(self) -> Figures:
        r = self.results
        offered = sum(r.values())
        answered = r[Result.ANSWERED] + r[Result.ANSWERED_ONCALL]
        abandoned = r[Result.ABANDONED] + r[Result.SHORT_ABANDONED]
        counted = offered - r[Result.SHORT_ABANDONED] - r[Result.CALLBACK_REQUESTED]
        waits = self.answer_waits
        within_15, within_20 = (self.within[limit] for limit in SERVICE_LEVEL_SECONDS)
        return Figures(
            offered=offered, answered=answered,
            answered_by_counsellor=r[Result.ANSWERED], answered_oncall=r[Result.ANSWERED_ONCALL],
            abandoned=abandoned, short_abandoned=r[Result.SHORT_ABANDONED],
            callback_requested=r[Result.CALLBACK_REQUESTED], lost=r[Result.LOST],
            counted=counted,
            answer_rate=ratio(answered, counted),
            counsellor_answer_rate=ratio(r[Result.ANSWERED], counted),
            abandon_rate=ratio(r[Result.ABANDONED], counted),
            average_speed_of_answer_seconds=(round(sum(waits) / len(waits), 3) if waits
                                             else None),
            answered_within_15s=within_15, answered_within_20s=within_20,
            service_level_15s=ratio(within_15, counted),
            service_level_20s=ratio(within_20, counted),
        )


def figures(calls: Iterable[OfferedCall], short_abandon_seconds: float) -> Figures:
    tally = Tally(short_abandon_seconds)
    for call in calls:
        tally.add(call)
    return tally.figures()


def by_queue(calls: Iterable[OfferedCall], queues: Sequence[str],
             short_abandon_seconds: float) -> list[tuple[str, Figures]]:
    """Figures per queue: every queue named (even with no call), then any other queue the
    calls went to, by name."""
    tallies = {queue: Tally(short_abandon_seconds) for queue in queues}
    for call in calls:
        tallies.setdefault(call.queue, Tally(short_abandon_seconds)).add(call)
    order = [*queues, *sorted(set(tallies) - set(queues))]
    return [(queue, tallies[queue].figures()) for queue in order]


# -- shift slots ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShiftSlot:
    """A part of the site's day, from `start` to the next slot's start (maybe past midnight)."""

    start: time
    end: time

    @property
    def label(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M}"


def parse_slot_start(text: str) -> time | None:
    """A shift template's "HH:MM" start, or None when it is not one."""
    hours, _, minutes = text.strip().partition(":")
    if not (len(hours) == 2 and len(minutes) == 2 and hours.isdigit() and minutes.isdigit()):
        return None
    if int(hours) > 23 or int(minutes) > 59:
        return None
    return time(int(hours), int(minutes))


def shift_slots(starts: Iterable[time]) -> list[ShiftSlot]:
    """Slots bounded by the distinct shift start times (site-local), in the order of the
    day; 3-hour slots from 00:00 when there is none. One start: one 24-hour slot."""
    bounds = sorted({start.replace(second=0, microsecond=0) for start in starts})
    if not bounds:
        bounds = [time(hour) for hour in range(0, 24, DEFAULT_SLOT_HOURS)]
    return [ShiftSlot(start, bounds[(index + 1) % len(bounds)])
            for index, start in enumerate(bounds)]


def slot_of(slots: Sequence[ShiftSlot], at: time) -> ShiftSlot:
    """The slot containing a time of day; before the first start is the last slot (it
    runs past midnight)."""
    index = bisect.bisect_right([slot.start for slot in slots], at) - 1
    return slots[index]  # index -1: the last slot


def by_shift(calls: Iterable[OfferedCall], slots: Sequence[ShiftSlot], zone: ZoneInfo,
             short_abandon_seconds: float) -> list[tuple[ShiftSlot, Figures]]:
    """Figures per slot, over every day of the calls: a call belongs to the slot its
    `started_at` (site-local) falls in."""
    tallies = {slot: Tally(short_abandon_seconds) for slot in slots}
    for call in calls:
        local = call.started_at.astimezone(zone).time()
        tallies[slot_of(slots, local)].add(call)
    return [(slot, tallies[slot].figures()) for slot in slots]


# -- counsellors ------------------------------------------------------------------------------

@dataclass(frozen=True)
class CounsellorFigures:
    interface: str
    offered: int  # calls that rang this counsellor (or were connected to them)
    rings: int  # times their phone rang (a call may ring them more than once)
    answered: int  # calls they were connected to
    missed_rings: int  # rings that timed out unanswered (not those the caller ended)
    talk_seconds: float
    crisis_answered: int
    answer_rate: float | None  # answered / offered


@dataclass
class _Counsellor:
    offered: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)
    rings: int = 0
    missed_rings: int = 0
    talk_seconds: float = 0.0
    crisis_answered: int = 0


def counsellor_figures(calls: Iterable[OfferedCall], events: Iterable[LegEvent],
                       crisis_queues: frozenset[str] = frozenset()
                       ) -> dict[str, CounsellorFigures]:
    """Figures per member interface, from the legs of the given calls (events of other
    calls are ignored).

    Talk time is AgentComplete's TalkTime, given to the member connected under that name
    in the same call; a connection without it counts from the connect to the caller's
    hang-up, and not at all while the call goes on.
    """
    by_id = {call.call_id: call for call in calls}
    people: dict[str, _Counsellor] = {}
    connects: dict[str, list[LegEvent]] = {}
    completes: dict[str, list[LegEvent]] = {}
    for event in events:
        call = by_id.get(event.call_id)
        if call is None:
            continue
        if event.kind == "complete":
            completes.setdefault(event.call_id, []).append(event)
            continue
        if not event.interface:
            continue
        person = people.setdefault(event.interface, _Counsellor())
        if event.kind == "ring":
            person.rings += 1
            person.offered.add(event.call_id)
        elif event.kind == "ring_no_answer":
            person.missed_rings += 1
        elif event.kind == "connect":
            person.offered.add(event.call_id)
            if event.call_id not in person.answered:
                person.answered.add(event.call_id)
                if is_crisis(call, crisis_queues):
                    person.crisis_answered += 1
                connects.setdefault(event.call_id, []).append(event)
    for call_id, legs in connects.items():
        call = by_id[call_id]
        unmatched = list(legs)
        for complete in completes.get(call_id, []):
            leg = next((c for c in unmatched if c.member and c.member == complete.member),
                       unmatched[0] if len(legs) == 1 and unmatched else None)
            if leg is None:
                continue
            unmatched.remove(leg)
            people[leg.interface].talk_seconds += max(complete.talk_seconds or 0.0, 0.0)
        for leg in unmatched:
            people[leg.interface].talk_seconds += _seconds(leg.at, call.ended_at) or 0.0
    return {
        interface: CounsellorFigures(
            interface=interface, offered=len(p.offered), rings=p.rings,
            answered=len(p.answered), missed_rings=p.missed_rings,
            talk_seconds=round(p.talk_seconds, 3), crisis_answered=p.crisis_answered,
            answer_rate=ratio(len(p.answered), len(p.offered)))
        for interface, p in people.items()
    }
