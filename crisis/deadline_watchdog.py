"""The deadline watchdog: every few seconds, which promises are close or broken?

Open incidents whose crisis intervention has not started (routing/deadlines.py decides):
near → a `deadline.near` line on the timeline and a warning alert; missed → a
`deadline.missed` line, `escalated_at`, and a critical `deadline_missed` alert, which the
duty chain rings like any crisis alert. Each level once per incident: the level is claimed
with a conditional UPDATE (`warned_at` / `escalated_at` still empty), so two nodes never
both act. Callback tasks past their reply deadline (CallbackTask.deadline_at) and not done
get one alert each (`callback:<id>:deadline`; any alert row with that key means done).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crisis.incidents import Incidents
from hotline.alerts.services import Alerts
from hotline.clock import Clock
from hotline.db.models import Alert, CallbackState, CallbackTask, Incident, IncidentState
from hotline.tasks import cancel_and_wait
from routing.deadlines import (
    Deadline,
    DeadlineKind,
    DueEscalation,
    EscalationLevel,
    OpenItem,
    due_escalations,
)

log = structlog.get_logger(__name__)


def _minutes(escalation: DueEscalation) -> int:
    return abs(int(escalation.left.total_seconds() // 60))


class DeadlineWatchdog:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 alerts: Alerts, incidents: Incidents, interval_seconds: float = 5.0) -> None:
        self._sessions = sessions
        self._clock = clock
        self._alerts = alerts
        self._incidents = incidents
        self._interval = interval_seconds
        self._callbacks_alerted: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self.checks = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="deadline-watchdog")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check_once()
            except (SQLAlchemyError, OSError) as error:
                log.warning("deadline watchdog could not check", error=repr(error))

    async def check_once(self) -> None:
        now = self._clock.now()
        await self._incident_deadlines(now)
        await self._callback_deadlines(now)
        self.checks += 1

    # -- incidents ----------------------------------------------------------------------

    async def _incident_deadlines(self, now: datetime) -> None:
        async with self._sessions() as session:
            rows = (await session.execute(
                select(Incident.id, Incident.opened_at, Incident.deadline_at,
                       Incident.warned_at)
                .where(Incident.state == IncidentState.OPEN,
                       Incident.intervention_at.is_(None),
                       Incident.escalated_at.is_(None)))).all()
        items = [OpenItem(incident_id, Deadline(DeadlineKind.CRISIS, opened, due),
                          frozenset({EscalationLevel.WARN}) if warned else frozenset())
                 for incident_id, opened, due, warned in rows if due > opened]
        policy = self._incidents.policy
        for escalation in due_escalations(items, now, policy):
            incident_id = int(escalation.item_id)
            if escalation.level is EscalationLevel.ESCALATE:
                await self._escalate(incident_id, escalation, now)
            else:
                await self._warn(incident_id, escalation, now)

    async def _claim(self, incident_id: int, column: str, now: datetime) -> Incident | None:
        """Set `column` if still empty and the incident still waits; the row when this node
        claimed it."""
        async with self._sessions() as session:
            result = await session.execute(
                update(Incident)
                .where(Incident.id == incident_id, getattr(Incident, column).is_(None),
                       Incident.intervention_at.is_(None),
                       Incident.state == IncidentState.OPEN)
                .values({column: now}))
            await session.commit()
            if not getattr(result, "rowcount", 0):
                return None
            return await session.get(Incident, incident_id)

    async def _warn(self, incident_id: int, escalation: DueEscalation, now: datetime) -> None:
        row = await self._claim(incident_id, "warned_at", now)
        if row is None:
            return
        minutes = _minutes(escalation)
        summary = (f"危机事件 #{incident_id} 距干预时限还剩约 {minutes} 分钟，尚无人开始干预，"
                   f"来电号码 {row.caller_number or '未知'}")
        await self._incidents.add_event(
            incident_id, kind="deadline.near", summary=summary,
            details={"deadline_at": escalation.due_at.isoformat(),
                     "left_seconds": round(escalation.left.total_seconds())})
        await self._alerts.raise_alert(
            key=f"deadline-near:{incident_id}", kind="deadline_near", severity="warning",
            site=row.site_code, summary=summary, incident_id=incident_id,
            details={"incident_id": incident_id, "caller_number": row.caller_number,
                     "deadline_at": escalation.due_at.isoformat()})

    async def _escalate(self, incident_id: int, escalation: DueEscalation,
                        now: datetime) -> None:
        row = await self._claim(incident_id, "escalated_at", now)
        if row is None:
            return
        minutes = _minutes(escalation)
        summary = (f"危机事件 #{incident_id} 已超过干预时限 {minutes} 分钟，仍无人开始干预，"
                   f"来电号码 {row.caller_number or '未知'}")
        await self._incidents.add_event(
            incident_id, kind="deadline.missed", summary=summary,
            details={"deadline_at": escalation.due_at.isoformat(),
                     "late_seconds": round(-escalation.left.total_seconds())})
        await self._alerts.raise_alert(
            key=f"deadline:{incident_id}", kind="deadline_missed", severity="critical",
            site=row.site_code, summary=summary, incident_id=incident_id,
            details={"incident_id": incident_id, "caller_number": row.caller_number,
                     "deadline_at": escalation.due_at.isoformat()})
        log.warning("crisis deadline missed", incident=incident_id)

    # -- callbacks ----------------------------------------------------------------------

    async def _callback_deadlines(self, now: datetime) -> None:
        async with self._sessions() as session:
            tasks = (await session.execute(
                select(CallbackTask.id, CallbackTask.site_code, CallbackTask.number,
                       CallbackTask.deadline_at)
                .where(CallbackTask.deadline_at < now,
                       CallbackTask.state.in_([CallbackState.PENDING, CallbackState.DIALING]))
                .order_by(CallbackTask.deadline_at))).all()
            fresh = [task for task in tasks if task[0] not in self._callbacks_alerted]
            if not fresh:
                return
            keys = {_callback_key(task[0]): task for task in fresh}
            known = set((await session.scalars(select(Alert.key).where(
                Alert.key.in_(list(keys))))).all())
        for key, (task_id, site, number, deadline_at) in keys.items():
            self._callbacks_alerted.add(task_id)
            if key in known or deadline_at is None:
                continue
            local = deadline_at.astimezone(self._clock.zone).strftime("%m-%d %H:%M")
            await self._alerts.raise_alert(
                key=key, kind="callback_deadline_missed", severity="warning", site=site,
                summary=f"回电任务 #{task_id} 已超过回复时限（{local}），来电号码 "
                        f"{number or '未知'}",
                details={"callback_task_id": task_id, "caller_number": number,
                         "deadline_at": deadline_at.isoformat()})


def _callback_key(task_id: int) -> str:
    return f"callback:{task_id}:deadline"
