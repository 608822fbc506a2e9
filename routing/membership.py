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
        members.append(QueueMember(counsellor.counsellor_id, f"PJSIP/{counsellor.sip_username}",
                                   counsellor.name, penalty))
    return sorted(members, key=lambda member: (member.penalty, member.interface))
