"""What the police bridge writes down: the incident (who pressed, when, why), the incident
packet stored and sent by webhook, the duty officer's alert, and every later step of the
room on the incident's timeline. The bridge (crisis/police.py) calls this after the call
has been moved, so the database never holds up the police."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crisis.incidents import Incidents
from crisis.police import PoliceRequest
from hotline.alerts.services import Alerts
from hotline.clock import Clock
from hotline.db.models import Call, Incident, IncidentState

log = structlog.get_logger(__name__)


class PacketSender(Protocol):
    def send(self, event_type: str, payload: Mapping[str, Any]) -> str | None: ...


class PoliceRecords:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 incidents: Incidents, alerts: Alerts, webhook: PacketSender,
                 default_site: str) -> None:
        self._sessions = sessions
        self._clock = clock
        self._incidents = incidents
        self._alerts = alerts
        self._webhook = webhook
        self._default_site = default_site

    async def police_requested(self, request: PoliceRequest) -> int:
        async with self._sessions() as session:
            call = await session.scalar(select(Call).where(Call.linkedid == request.linkedid)
                                        .order_by(Call.started_at.desc()).limit(1))
        site = request.site or (call.site_code if call else None) or self._default_site
        how = "按键" if request.via in ("feature_code", "dialplan_fallback") else "系统"
        incident = await self._incidents.signal(
            source="police", site=site, linkedid=request.linkedid,
            call_id=call.id if call else None,
            caller_number=request.caller_number or (call.caller_number if call else None),
            caller_name=request.caller_name or (call.caller_name if call else None),
            call_started_at=call.started_at if call else None, actor=request.requested_by,
            summary=f"{request.requested_by} {how}一键报警，110加入通话",
            details={"via": request.via, "reason": request.reason, "room": request.room})
        async with self._sessions() as session:
            row = await session.get_one(Incident, incident.id)
            row.police_requested_at = request.requested_at
            row.police_requested_by = request.requested_by
            row.police_reason = request.reason
            row.police_state = "dialing"
            row.conference = request.room
            row.recording_path = request.recording_path
            if call is not None and call.answered_by and not row.counsellor_name:
                row.counsellor_name = call.answered_by
                row.counsellor_id = call.answered_by_counsellor_id
            row.packet = packet = _packet(row, request)
            await session.commit()
        delivery = self._webhook.send("incident", packet)
        await self._incidents.add_event(
            incident.id, kind="police.packet", summary="事件资料已保存并推送",
            details={"webhook_delivery": delivery})
        await self._alerts.raise_alert(
            key=f"police:{incident.id}", kind="police", severity="critical", site=site,
            summary=f"一键报警：来电号码 {request.caller_number or '未知'}，"
                    f"咨询员 {request.requested_by}",
            details={"incident_id": incident.id, "caller_number": request.caller_number,
                     "room": request.room},
            incident_id=incident.id)
        return incident.id

    async def high_risk_key(self, linkedid: str, *, by: str) -> None:
        """The counsellor's high-risk feature code during a call: an incident for it."""
        async with self._sessions() as session:
            call = await session.scalar(select(Call).where(Call.linkedid == linkedid)
                                        .order_by(Call.started_at.desc()).limit(1))
        await self._incidents.signal(
            source="marked_high_risk",
            site=(call.site_code if call else None) or self._default_site,
            summary=f"{by} 按键将来电标记为高危", linkedid=linkedid,
            call_id=call.id if call else None,
            caller_number=call.caller_number if call else None,
            caller_name=call.caller_name if call else None,
            call_started_at=call.started_at if call else None, actor=by,
            details={"via": "feature_code"})

    async def police_event(self, linkedid: str, *, kind: str, summary: str,
                           details: Mapping[str, Any] | None = None,
                           callback_needed: bool = False) -> int | None:
        async with self._sessions() as session:
            row = await session.scalar(select(Incident).where(
                Incident.linkedid == linkedid, Incident.state == IncidentState.OPEN)
                .order_by(Incident.id.desc()).limit(1))
            if row is None:
                log.warning("police event without an incident", linkedid=linkedid, kind=kind)
                return None
            incident_id, site, number = row.id, row.site_code, row.caller_number
            if kind.startswith("police."):
                row.police_state = kind.removeprefix("police.")
                await session.commit()
        await self._incidents.add_event(incident_id, kind=kind, summary=summary,
                                        details=dict(details or {}))
        if callback_needed:
            await self._incidents.flag_callback(incident_id, summary)
        if kind in ("police.busy", "police.failed", "police.gave_up", "police.bridge_failed",
                    "supervisor.none", "supervisor.failed", "supervisor.no_answer"):
            # The duty officer must know at once: a new alert rings the duty chain.
            await self._alerts.raise_alert(
                key=f"police-trouble:{incident_id}", kind="police", severity="critical",
                site=site, summary=f"报警通话异常：{summary}，来电号码 {number or '未知'}",
                details={"incident_id": incident_id, "caller_number": number, "step": kind},
                incident_id=incident_id)
        return incident_id


def _packet(row: Incident, request: PoliceRequest) -> dict[str, Any]:
    """The incident packet: what the police and the duty officer need, in one document."""
    return {
        "incident_id": row.id,
        "site": row.site_code,
        "caller_number": row.caller_number,
        "caller_name": row.caller_name,
        "call_started_at": row.call_started_at.isoformat() if row.call_started_at else None,
        "counsellor": row.counsellor_name or request.requested_by,
        "notes": row.notes,
        "location": row.location,
        "requested_by": request.requested_by,
        "requested_at": request.requested_at.isoformat(),
        "reason": request.reason,
        "via": request.via,
        "conference": request.room,
        "recording": request.recording_path,
    }
