"""Who answers which queue, at which penalty, and who is on duty now. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

HIGH_RISK = "high_risk"
CONSULTATION = "consultation"
SUPERVISOR = "supervisor"

# Penalties: app_queue rings the lowest penalty first; a queue rule raises the ceiling over time.
FIRST = 0
WIDER = 5
LAST = 10


@dataclass(frozen=True)
class CounsellorOnDuty:
    counsellor_id: int
    sip_username: str
    name: str
    tier: str
    skills: frozenset[str]
    # How the queue reaches them: their SIP endpoint, or for a mobile seat the Local
    # channel that dials their mobile through the carrier.
    mobile: bool = False

    @property
    def interface(self) -> str:
        return mobile_interface(self.sip_username) if self.mobile else f"PJSIP/{self.sip_username}"


def mobile_interface(sip_username: str) -> str:
    return f"Local/{sip_username}@hotline-mobile-seat"


@dataclass(frozen=True)
class ShiftWindow:
    counsellor_id: int
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class QueueMember:
    counsellor_id: int
    interface: str
    name: str
    penalty: int


def on_duty_ids(shifts: Iterable[ShiftWindow], now: datetime) -> set[int]:
    return {shift.counsellor_id for shift in shifts if shift.starts_at <= now < shift.ends_at}


def _penalty(kind: str, counsellor: CounsellorOnDuty) -> int | None:
    """The counsellor's penalty in a queue of this kind, or None when they are not in it."""
    if kind == "duty":
        return FIRST
    if kind == "crisis":
        # High-risk specialists first; the crisis queue's rule widens to everyone after N s.
        return {HIGH_RISK: FIRST, CONSULTATION: WIDER}.get(counsellor.tier, LAST)
    if counsellor.tier == SUPERVISOR:
        return None
    if kind in counsellor.skills and counsellor.tier == CONSULTATION:
        return FIRST
    if counsellor.tier == CONSULTATION:
        return WIDER
    # Specialists take consultations last, keeping them free for crisis callers.
    return LAST


def queue_members(kind: str, counsellors: Sequence[CounsellorOnDuty]) -> list[QueueMember]:
    members = []
    for counsellor in counsellors:
        penalty = _penalty(kind, counsellor)
        if penalty is None:
            continue
        members.append(QueueMember(counsellor.counsellor_id, counsellor.interface,
                                   counsellor.name, penalty))
    return sorted(members, key=lambda member: (member.penalty, member.interface))


# -- the members each queue should have now, and the changes that get Asterisk there ------

# Pause reasons the backend sets on its own (a counsellor's own are break, debrief, admin).
OFFLINE = "offline"  # the softphone is not registered
CRISIS_CAP = "crisis_cap"  # enough crisis calls this shift: other queues only
RESERVED = "reserved"  # a specialist kept free for a crisis caller who is waiting
SHIFT_END = "shift_end"  # off duty, still in a call: removed after the hang-up


@dataclass(frozen=True)
class Seat:
    """One counsellor at one moment: everything membership depends on."""

    counsellor: CounsellorOnDuty
    on_duty: bool
    pause_reason: str | None = None  # their own pause (break, debrief, admin)
    registered: bool | None = None  # None: not known yet (treated as registered)
    crisis_calls: int = 0  # crisis calls taken in the current shift


@dataclass(frozen=True)
class DesiredMember:
    interface: str
    name: str
    penalty: int
    paused: bool
    reason: str = ""


@dataclass(frozen=True)
class ActualMember:
    interface: str
    penalty: int
    paused: bool
    reason: str = ""
    in_call: bool = False


@dataclass(frozen=True)
class Change:
    action: str  # add | penalty | pause | unpause | remove
    queue: str
    interface: str
    name: str = ""
    penalty: int = 0
    reason: str = ""


def desired_members(kind: str, seats: Sequence[Seat], *, crisis_cap: int | None = None,
                    crisis_waiting: bool = False) -> dict[str, DesiredMember]:
    """Who should be in a queue of this kind, at which penalty, paused or not, and why."""
    members = {}
    for seat in seats:
        if not seat.on_duty:
            continue
        penalty = _penalty(kind, seat.counsellor)
        if penalty is None:
            continue
        reason = seat.pause_reason or ""
        if not reason and seat.registered is False:
            reason = OFFLINE
        if not reason and kind == "crisis" and crisis_cap is not None \
                and seat.crisis_calls >= crisis_cap:
            reason = CRISIS_CAP
        if not reason and crisis_waiting and kind in ("psych", "legal") \
                and seat.counsellor.tier == HIGH_RISK:
            reason = RESERVED
        interface = seat.counsellor.interface
        members[interface] = DesiredMember(interface, seat.counsellor.name, penalty,
                                           bool(reason), reason)
    return members


def plan_changes(desired: dict[str, dict[str, DesiredMember]],
                 actual: dict[str, dict[str, ActualMember]]) -> list[Change]:
    """The AMI changes that make each managed queue's members what they should be.

    Additions come first, so a handover never leaves a queue empty; a member who should
    go but is in a call is paused (no new call reaches them) and removed after the hang-up.
    """
    adds, updates, removes = [], [], []
    for queue, wanted in desired.items():
        present = actual.get(queue, {})
        for interface, member in wanted.items():
            have = present.get(interface)
            if have is None:
                adds.append(Change("add", queue, interface, member.name, member.penalty,
                                   member.reason))
                if member.paused:
                    updates.append(Change("pause", queue, interface, member.name,
                                          member.penalty, member.reason))
                continue
            if have.penalty != member.penalty:
                updates.append(Change("penalty", queue, interface, member.name, member.penalty))
            if member.paused and (not have.paused or have.reason != member.reason):
                updates.append(Change("pause", queue, interface, member.name, member.penalty,
                                      member.reason))
            elif not member.paused and have.paused:
                updates.append(Change("unpause", queue, interface, member.name, member.penalty))
        for interface, have in present.items():
            if interface in wanted:
                continue
            if have.in_call:
                if not have.paused or have.reason != SHIFT_END:
                    updates.append(Change("pause", queue, interface, penalty=have.penalty,
                                          reason=SHIFT_END))
                continue
            removes.append(Change("remove", queue, interface, penalty=have.penalty))
    return adds + updates + removes
