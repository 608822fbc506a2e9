"""Incidents: one crisis episode each, with its timeline. Every crisis signal (the caller
chose the crisis option, a keyword in a voicemail or in the night attendant, a counsellor
marked the call high-risk, the police alert) opens an incident or, when the same call or
message already has an open one, adds to its timeline. A new incident gets its crisis
deadline (the site's own, else the deployment's; routing/deadlines.py) and raises one crisis
alert, which the duty chain rings; acknowledging any of its alerts starts the intervention.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotline.alerts.services import Alerts, AlertView
from hotline.audit import Actor, record_audit
from hotline.clock import Clock
from hotline.config import CrisisSettings
from hotline.db.models import Alert, Call, Incident, IncidentEvent, IncidentState, Site
from routing.deadlines import (
    Deadline,
    DeadlineKind,
    DeadlinePolicy,
    DeadlineState,
    deadline_for,
    deadline_state,
)

log = structlog.get_logger(__name__)

SOURCES = frozenset({"crisis_option", "keyword", "voicemail_keyword", "marked_high_risk",
                     "police", "manual"})
# Alerts that belong to an incident and end with it.
ALERT_KEYS = ("incident:{id}", "deadline-near:{id}", "deadline:{id}")


class IncidentNotFound(Exception):
    pass


class CallNotFound(Exception):
    pass


class IncidentClosed(Exception):
    """The incident is closed: it takes no more changes."""


def deadline_policy(settings: CrisisSettings) -> DeadlinePolicy:
    return DeadlinePolicy(crisis=timedelta(minutes=settings.crisis_deadline_minutes),
                          case=timedelta(hours=settings.case_deadline_hours),
                          consultation=timedelta(hours=settings.consultation_deadline_hours),
                          near_fraction=settings.deadline_near_fraction)


@dataclass(frozen=True)
class EventView:
    id: int
    at: datetime
    kind: str
    actor: str | None
    summary: str
    details: dict[str, Any]

    @classmethod
    def of(cls, row: IncidentEvent) -> EventView:
        return cls(row.id, row.at, row.kind, row.actor, row.summary, dict(row.details or {}))


@dataclass(frozen=True)
class IncidentView:
    id: int
    site: str
    state: str
    severity: str
    source: str
    summary: str
    call_id: str | None
    linkedid: str | None
    message_id: int | None
    caller_number: str | None
    caller_name: str | None
    call_started_at: datetime | None
    counsellor_id: int | None
    counsellor_name: str | None
    notes: str
    location: str
    opened_at: datetime
    deadline_at: datetime
    # ok, near, missed while nobody intervened; then met (in time) or missed (late).
    deadline_state: str
    intervention_at: datetime | None
    warned_at: datetime | None
    escalated_at: datetime | None
    callback_needed: bool
    police_requested_at: datetime | None
    police_requested_by: str | None
    police_reason: str
    police_state: str | None
    conference: str | None
    recording_path: str | None
    packet: dict[str, Any] | None
    closed_at: datetime | None
    closed_by: str | None
    outcome: str
    # In the detail only (None in lists).
    timeline: list[EventView] | None = None
    alerts: list[AlertView] | None = None


class Incidents:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 alerts: Alerts, policy: DeadlinePolicy | None = None,
                 default_site: str = "default") -> None:
        self._sessions = sessions
        self._clock = clock
        self._alerts = alerts
        self._default_site = default_site
        self.policy = policy or DeadlinePolicy()
        # Two signals of one call at the same instant (the crisis option and a keyword)
        # must find one incident, not open two.
        self._opening = asyncio.Lock()
        alerts.on_acknowledged.append(self.alert_acknowledged)

    # -- signals ------------------------------------------------------------------------

    async def signal(self, *, source: str, site: str, summary: str,
                     linkedid: str | None = None, call_id: str | None = None,
                     caller_number: str | None = None, caller_name: str | None = None,
                     call_started_at: datetime | None = None, message_id: int | None = None,
                     actor: str | None = None,
                     details: dict[str, Any] | None = None) -> IncidentView:
        """Open an incident for this call (or message), or add the signal to its open one.
        A new incident raises one crisis alert; later signals only add to the timeline."""
        if source not in SOURCES:
            raise ValueError(f"unknown crisis signal source {source!r}")
        now = self._clock.now()
        async with self._opening, self._sessions() as session:
            row = await self._open_for(session, linkedid=linkedid, call_id=call_id,
                                       message_id=message_id)
            new = row is None
            if row is None:
                policy = await self._site_policy(session, site)
                row = Incident(site_code=site, source=source, summary=summary,
                               opened_at=now,
                               deadline_at=deadline_for(DeadlineKind.CRISIS, now,
                                                        policy).due_at)
                session.add(row)
            # What a later signal knows better fills what is still empty.
            for name, value in (("linkedid", linkedid), ("call_id", call_id),
                                ("message_id", message_id), ("caller_number", caller_number),
                                ("caller_name", caller_name),
                                ("call_started_at", call_started_at)):
                if value is not None and getattr(row, name) is None:
                    setattr(row, name, value)
            await session.flush()
            session.add(IncidentEvent(incident_id=row.id, at=now, kind=f"signal.{source}",
                                      actor=actor, summary=summary, details=details or {}))
            await session.commit()
            incident_id, number = row.id, row.caller_number
        log.warning("crisis signal", incident=incident_id, source=source, new=new)
        if new:
            alert, _ = await self._alerts.raise_alert(
                key=f"incident:{incident_id}", kind="crisis", severity="critical", site=site,
                summary=f"危机事件：{summary}，来电号码 {number or '未知'}",
                details={"incident_id": incident_id, "caller_number": number,
                         "source": source},
                incident_id=incident_id)
            await self.add_event(incident_id, kind="alert.raised", summary="已发出危机警报",
                                 details={"alert_id": alert.id, "kind": alert.kind})
        return await self.get(incident_id)

    async def _site_policy(self, session: AsyncSession, site: str) -> DeadlinePolicy:
        """The deployment's promises with the site's own crisis deadline, if it set one."""
        minutes = await session.scalar(select(Site.crisis_deadline_minutes)
                                       .where(Site.code == site))
        if not minutes:
            return self.policy
        return replace(self.policy, crisis=timedelta(minutes=minutes))

    @staticmethod
    async def _open_for(session: AsyncSession, *, linkedid: str | None, call_id: str | None,
                        message_id: int | None) -> Incident | None:
        # An incident without a call or a message (opened by hand) is never matched.
        for column, value in ((Incident.linkedid, linkedid), (Incident.call_id, call_id),
                              (Incident.message_id, message_id)):
            if value is None:
                continue
            row = await session.scalar(select(Incident).where(
                column == value, Incident.state == IncidentState.OPEN)
                .order_by(Incident.id.desc()).limit(1))
            if row is not None:
                return row
        return None

    # -- the timeline ---------------------------------------------------------------------

    async def add_event(self, incident_id: int, *, kind: str, summary: str = "",
                        actor: str | None = None,
                        details: dict[str, Any] | None = None) -> EventView:
        async with self._sessions() as session:
            await self._row(session, incident_id)
            event = IncidentEvent(incident_id=incident_id, at=self._clock.now(), kind=kind,
                                  actor=actor, summary=summary, details=details or {})
            session.add(event)
            await session.commit()
            return EventView.of(event)

    async def intervention_started(self, incident_id: int, at: datetime | None = None,
                                   by: str | None = None) -> bool:
        """The first time only: the crisis deadline is met if this is in time. True when
        this call set it."""
        at = at or self._clock.now()
        async with self._sessions() as session:
            row = await self._row(session, incident_id)
            if row.intervention_at is not None:
                return False
            row.intervention_at = at
            in_time = at <= row.deadline_at
            session.add(IncidentEvent(
                incident_id=incident_id, at=self._clock.now(), kind="intervention.started",
                actor=by, summary="危机干预已开始" + ("" if in_time else "（已超时）"),
                details={"at": at.isoformat(), "in_time": in_time}))
            await session.commit()
        return True

    async def flag_callback(self, incident_id: int, reason: str) -> None:
        """The caller is gone before the crisis was handled: someone must call back."""
        async with self._sessions() as session:
            row = await self._row(session, incident_id)
            row.callback_needed = True
            session.add(IncidentEvent(incident_id=incident_id, at=self._clock.now(),
                                      kind="callback.flagged", summary=reason,
                                      details={"reason": reason}))
            await session.commit()

    async def alert_acknowledged(self, alert: AlertView, actor: Actor) -> None:
        """Alerts' hook: a person acknowledged one of an incident's alerts."""
        if alert.incident_id is None:
            return
        try:
            await self.add_event(alert.incident_id, kind="alert.acknowledged",
                                 actor=actor.username,
                                 summary=f"{actor.username} 已确认警报",
                                 details={"alert_id": alert.id, "kind": alert.kind})
        except IncidentNotFound:
            return
        await self.intervention_started(alert.incident_id, alert.acknowledged_at,
                                        actor.username)

    # -- reading --------------------------------------------------------------------------

    async def get(self, incident_id: int) -> IncidentView:
        async with self._sessions() as session:
            row = await self._row(session, incident_id)
            events = (await session.scalars(select(IncidentEvent).where(
                IncidentEvent.incident_id == incident_id).order_by(
                IncidentEvent.at, IncidentEvent.id))).all()
            alerts = (await session.scalars(select(Alert).where(
                Alert.incident_id == incident_id).order_by(Alert.id))).all()
            return self._view(row, timeline=[EventView.of(e) for e in events],
                              alerts=[AlertView.of(a) for a in alerts])

    def deadline_state(self, row: Incident) -> str:
        if row.intervention_at is not None:
            return "met" if row.intervention_at <= row.deadline_at else str(DeadlineState.MISSED)
        deadline = Deadline(DeadlineKind.CRISIS, row.opened_at, row.deadline_at)
        return str(deadline_state(deadline, self._clock.now(), self.policy).state)

    def _view(self, row: Incident, *, timeline: list[EventView] | None = None,
              alerts: list[AlertView] | None = None) -> IncidentView:
        return IncidentView(
            id=row.id, site=row.site_code, state=str(row.state), severity=row.severity,
            source=row.source, summary=row.summary, call_id=row.call_id,
            linkedid=row.linkedid, message_id=row.message_id,
            caller_number=row.caller_number, caller_name=row.caller_name,
            call_started_at=row.call_started_at, counsellor_id=row.counsellor_id,
            counsellor_name=row.counsellor_name, notes=row.notes, location=row.location,
            opened_at=row.opened_at, deadline_at=row.deadline_at,
            deadline_state=self.deadline_state(row), intervention_at=row.intervention_at,
            warned_at=row.warned_at, escalated_at=row.escalated_at,
            callback_needed=row.callback_needed, police_requested_at=row.police_requested_at,
            police_requested_by=row.police_requested_by, police_reason=row.police_reason,
            police_state=row.police_state, conference=row.conference,
            recording_path=row.recording_path,
            packet=dict(row.packet) if row.packet is not None else None,
            closed_at=row.closed_at, closed_by=row.closed_by, outcome=row.outcome,
            timeline=timeline, alerts=alerts)

    @staticmethod
    async def _row(session: AsyncSession, incident_id: int) -> Incident:
        row = await session.get(Incident, incident_id)
        if row is None:
            raise IncidentNotFound(f"no incident {incident_id}")
        return row

    # -- people's changes (audited) -------------------------------------------------------

    async def open_by_hand(self, actor: Actor, *, site: str, summary: str,
                           caller_number: str | None = None) -> IncidentView:
        """A duty officer opens an incident (a call on another line, a report)."""
        view = await self.signal(source="manual", site=site, summary=summary,
                                 caller_number=caller_number, actor=actor.username)
        async with self._sessions() as session:
            record_audit(session, actor=actor, at=self._clock.now(), action="incident.open",
                         target=f"incident:{view.id}",
                         after={"site": site, "summary": summary,
                                "caller_number": caller_number})
            await session.commit()
        return view

    async def mark_high_risk(self, actor: Actor, call_id: str, reason: str) -> IncidentView:
        """A counsellor (or anyone watching the call) judges the caller at risk."""
        async with self._sessions() as session:
            call = await session.get(Call, call_id)
            if call is None:
                raise CallNotFound(f"no call {call_id}")
            record_audit(session, actor=actor, at=self._clock.now(),
                         action="call.mark_high_risk", target=f"call:{call_id}",
                         after={"reason": reason})
            await session.commit()
        return await self.signal(
            source="marked_high_risk", site=call.site_code or self._default_site,
            summary=f"{actor.username} 将来电标记为高危：{reason}", linkedid=call.linkedid,
            call_id=call.id, caller_number=call.caller_number, caller_name=call.caller_name,
            call_started_at=call.started_at, actor=actor.username, details={"reason": reason})

    async def update(self, incident_id: int, actor: Actor, *, notes: str | None = None,
                     location: str | None = None) -> IncidentView:
        now = self._clock.now()
        async with self._sessions() as session:
            row = await self._row(session, incident_id)
            if row.state == IncidentState.CLOSED:
                raise IncidentClosed(f"incident {incident_id} is closed")
            before = {"notes": row.notes, "location": row.location}
            changes = {name: value for name, value in (("notes", notes),
                                                       ("location", location))
                       if value is not None and value != before[name]}
            if changes:
                for name, value in changes.items():
                    setattr(row, name, value)
                record_audit(session, actor=actor, at=now, action="incident.update",
                             target=f"incident:{incident_id}",
                             before={name: before[name] for name in changes}, after=changes)
                session.add(IncidentEvent(incident_id=incident_id, at=now,
                                          kind="incident.updated", actor=actor.username,
                                          summary="、".join(
                                              {"notes": "备注", "location": "位置"}[name]
                                              for name in changes) + "已更新",
                                          details={"fields": sorted(changes)}))
            await session.commit()
        return await self.get(incident_id)

    async def close(self, incident_id: int, actor: Actor, outcome: str) -> IncidentView:
        """Closed with its outcome; its alerts are resolved (the duty chain stops)."""
        now = self._clock.now()
        async with self._sessions() as session:
            row = await self._row(session, incident_id)
            if row.state == IncidentState.CLOSED:
                raise IncidentClosed(f"incident {incident_id} is closed already")
            row.state, row.closed_at, row.closed_by = IncidentState.CLOSED, now, actor.username
            row.outcome = outcome
            # Closing is a person handling it: the intervention, if nothing started it before.
            row.intervention_at = row.intervention_at or now
            record_audit(session, actor=actor, at=now, action="incident.close",
                         target=f"incident:{incident_id}", after={"outcome": outcome})
            session.add(IncidentEvent(incident_id=incident_id, at=now, kind="incident.closed",
                                      actor=actor.username, summary=outcome,
                                      details={"outcome": outcome}))
            await session.commit()
        for key in ALERT_KEYS:
            await self._alerts.resolve(key.format(id=incident_id))
        return await self.get(incident_id)

    # Last: the name `list` would shadow the builtin in the annotations that follow it.
    async def list(self, *, state: str | None = None, site: str | None = None,
                   limit: int = 50, offset: int = 0) -> tuple[list[IncidentView], int]:
        """A page of incidents, newest first, and how many match in all."""
        where = []
        if state is not None:
            where.append(Incident.state == IncidentState(state))
        if site is not None:
            where.append(Incident.site_code == site)
        async with self._sessions() as session:
            total = await session.scalar(select(func.count(Incident.id)).where(*where))
            rows = (await session.scalars(select(Incident).where(*where)
                                          .order_by(Incident.id.desc())
                                          .limit(limit).offset(offset))).all()
            return [self._view(row) for row in rows], int(total or 0)
