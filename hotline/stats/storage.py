"""Queries for the statistics: plain functions on a session, read only.

A site's calls are those with its `site_code`, and those without one (routed by the classic
AGI fallback, which cannot name the site) sent to one of its queues.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.db.models import (
    Call,
    CallbackTask,
    CallEvent,
    Counsellor,
    Incident,
    Queue,
    ShiftTemplate,
    Site,
)
from hotline.stats.figures import JourneyEvent, LegEvent, OfferedCall, from_journey
from routing.deadlines import Deadline, DeadlineKind, DeadlineRecord

LEG_KINDS = ("ring", "ring_no_answer", "connect", "complete")
JOURNEY_KINDS = ("route", "fallback", "queue_join", "connect")


@dataclass(frozen=True)
class SiteFacts:
    id: int
    code: str
    timezone: str
    short_abandon_seconds: int


@dataclass(frozen=True)
class CounsellorFacts:
    id: int
    name: str
    sip_username: str
    site_id: int
    active: bool

    @property
    def interface(self) -> str:
        return f"PJSIP/{self.sip_username}"


async def site_facts(session: AsyncSession, code: str) -> SiteFacts | None:
    row = (await session.execute(
        select(Site.id, Site.code, Site.timezone, Site.short_abandon_seconds)
        .where(Site.code == code))).first()
    return None if row is None else SiteFacts(row[0], row[1], row[2], row[3])


async def site_queues(session: AsyncSession, site_id: int) -> dict[str, str]:
    """Queue name → kind (crisis, psych, legal, duty), by name."""
    rows = await session.execute(
        select(Queue.name, Queue.kind).where(Queue.site_id == site_id).order_by(Queue.name))
    return {name: str(kind) for name, kind in rows}


async def shift_starts(session: AsyncSession, site_id: int, first_day: date,
                       last_day: date) -> list[str]:
    """The distinct "HH:MM" starts of the weekly shift templates of the site's active
    counsellors valid on some day of [first_day, last_day]."""
    rows = await session.scalars(
        select(ShiftTemplate.start).distinct()
        .join(Counsellor, ShiftTemplate.counsellor_id == Counsellor.id)
        .where(Counsellor.site_id == site_id, Counsellor.active.is_(True),
               or_(ShiftTemplate.valid_from.is_(None), ShiftTemplate.valid_from <= last_day),
               or_(ShiftTemplate.valid_until.is_(None), ShiftTemplate.valid_until >= first_day)))
    return sorted(rows.all())


def _offered(site_code: str, queue_names: Sequence[str], start: datetime,
             end: datetime) -> ColumnElement[bool]:
    """Calls sent to a queue of the site, started in [start, end), outcome known."""
    return and_(
        Call.queue.is_not(None), Call.outcome.is_not(None),
        Call.started_at >= start, Call.started_at < end,
        or_(Call.site_code == site_code,
            and_(Call.site_code.is_(None), Call.queue.in_(list(queue_names)))),
    )


async def offered_calls(session: AsyncSession, site_code: str, queue_names: Sequence[str],
                        start: datetime, end: datetime) -> list[OfferedCall]:
    where = _offered(site_code, queue_names, start, end)
    journeys: dict[str, list[JourneyEvent]] = {}
    rows = await session.execute(
        select(CallEvent.call_id, CallEvent.kind, CallEvent.at, CallEvent.data)
        .join(Call, CallEvent.call_id == Call.id)
        .where(where, CallEvent.kind.in_(JOURNEY_KINDS))
        .order_by(CallEvent.id))
    for call_id, kind, at, data in rows:
        data = data if isinstance(data, dict) else {}
        journeys.setdefault(call_id, []).append(JourneyEvent(
            kind=kind, at=at, queue=str(data.get("queue") or ""),
            wait_seconds=_number(data.get("wait_seconds"))))
    calls = await session.execute(
        select(Call.id, Call.started_at, Call.queue, Call.outcome, Call.route, Call.wait_seconds,
               Call.answered_at, Call.ended_at)
        .where(where).order_by(Call.started_at, Call.id))
    return [
        from_journey(OfferedCall(
            call_id=call_id, started_at=started_at, queue=queue or "", outcome=outcome or "",
            route=route, wait_seconds=wait, answered_at=answered_at, ended_at=ended_at),
            journeys.get(call_id, []))
        for call_id, started_at, queue, outcome, route, wait, answered_at, ended_at in calls
    ]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


async def leg_events(session: AsyncSession, site_code: str, queue_names: Sequence[str],
                     start: datetime, end: datetime) -> list[LegEvent]:
    """The queue members' ring/connect/complete events of the site's offered calls."""
    rows = await session.execute(
        select(CallEvent.call_id, CallEvent.kind, CallEvent.at, CallEvent.data)
        .join(Call, CallEvent.call_id == Call.id)
        .where(_offered(site_code, queue_names, start, end), CallEvent.kind.in_(LEG_KINDS))
        .order_by(CallEvent.id))
    events = []
    for call_id, kind, at, data in rows:
        data = data if isinstance(data, dict) else {}
        events.append(LegEvent(
            call_id=call_id, kind=kind, at=at, interface=str(data.get("interface") or ""),
            member=str(data.get("member") or ""), talk_seconds=_number(data.get("talk_seconds"))))
    return events


async def counsellors(session: AsyncSession, site_id: int,
                      interfaces: Sequence[str]) -> list[CounsellorFacts]:
    """The site's active counsellors, and anyone (of any site) behind these interfaces."""
    usernames = [i.split("/", 1)[1] for i in interfaces if i.startswith("PJSIP/")]
    rows = await session.execute(
        select(Counsellor.id, Counsellor.name, Counsellor.sip_username, Counsellor.site_id,
               Counsellor.active)
        .where(or_(and_(Counsellor.site_id == site_id, Counsellor.active.is_(True)),
                   Counsellor.sip_username.in_(usernames)))
        .order_by(Counsellor.name, Counsellor.id))
    return [CounsellorFacts(*row) for row in rows]


async def deadline_records(session: AsyncSession, site_code: str, start: datetime,
                           end: datetime) -> tuple[list[DeadlineRecord], list[DeadlineRecord]]:
    """The site's crisis deadlines (incidents: done when the intervention started) and
    callback reply deadlines (done when the task was closed) falling in [start, end)."""
    incidents = await session.execute(
        select(Incident.opened_at, Incident.deadline_at, Incident.intervention_at)
        .where(Incident.site_code == site_code, Incident.deadline_at >= start,
               Incident.deadline_at < end))
    crisis = [DeadlineRecord(Deadline(DeadlineKind.CRISIS, opened, due), done)
              for opened, due, done in incidents if due > opened]
    tasks = await session.execute(
        select(CallbackTask.requested_at, CallbackTask.deadline_at, CallbackTask.closed_at)
        .where(CallbackTask.site_code == site_code, CallbackTask.deadline_at >= start,
               CallbackTask.deadline_at < end))
    # A callback's reply deadline is the consultation promise (routing/callbacks.py).
    callbacks = [DeadlineRecord(Deadline(DeadlineKind.CONSULTATION, requested, due), done)
                 for requested, due, done in tasks if due is not None and due > requested]
    return crisis, callbacks
