"""The duty alert chain, carried out: the duty officer's phone rings through the carrier for
every open crisis alert until someone presses 1 (or acknowledges in the API), and the next
person on the duty roster is rung when nobody does (routing/duty_chain.py decides; this
dials, records and listens).

One phone call is one `AlertDelivery` row, inserted before the Originate is sent, with an
action id unique per alert and step: two nodes that decide the same call at once insert the
same id and only the one whose insert wins dials. The Originate goes through the dialler's
own AMI user (write=originate, reads no events); what happened on the call comes back as
events on the backend's reading connection: `HotlineDutyAck` / `HotlineDutyCall`
UserEvents from `[hotline-duty-alert]`, and the OriginateResponse when the phone was not
answered.

With nobody on the roster the chain says NobodyOnDuty every `repeat_every`: the site's
on-call numbers are rung instead, one per turn, in their order.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from panoramisk.message import Message
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from crisis.roster import DutyRoster
from hotline.alerts.services import AlertNotFound, AlertView
from hotline.ami_protocols import Actions, EventSource
from hotline.audit import Actor
from hotline.clock import Clock
from hotline.config import CrisisSettings
from hotline.db.models import Alert, AlertDelivery, AlertState, DutyOfficer, Site, SiteNumber
from hotline.tasks import cancel_and_wait, woken_or_timeout
from routing.duty_chain import AlertState as ChainState
from routing.duty_chain import (
    Call,
    ChainPolicy,
    Delivery,
    Escalate,
    Exhausted,
    NobodyOnDuty,
    next_actions,
)

log = structlog.get_logger(__name__)

# Alerts a human must take over at once: the duty phone rings for these.
DUTY_KINDS = ("crisis", "crisis_keyword", "deadline_missed", "police")
ACTION_PREFIX = "hotline-duty-"
CONTEXT = "hotline-duty-alert"
_DIGITS = re.compile(r"[^0-9]")
# The OriginateResponse's Reason (the control frame that ended the ringing): 3 ringing
# until the timeout, 1 hung up before answering, 5 busy; anything else failed.
_REASONS = {"3": "no_answer", "1": "no_answer", "5": "busy"}
OUTCOMES = ("answered", "acknowledged", "no_answer", "busy", "failed")


def chain_policy(settings: CrisisSettings) -> ChainPolicy:
    return ChainPolicy(repeat_every=timedelta(seconds=settings.repeat_seconds),
                       escalate_after=timedelta(seconds=settings.escalate_seconds))


class Timeline(Protocol):
    """An incident's timeline (crisis/incidents.Incidents)."""

    async def add_event(self, incident_id: int, *, kind: str, summary: str = "",
                        actor: str | None = None,
                        details: dict[str, Any] | None = None) -> object: ...


class Acknowledger(Protocol):
    async def acknowledge(self, actor: Actor, alert_id: int) -> AlertView: ...


@dataclass(frozen=True)
class DeliveryView:
    id: int
    officer_id: int | None
    officer_name: str | None
    number: str
    lap: int
    at: datetime
    outcome: str | None
    ended_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class _OpenAlert:
    id: int
    site: str
    raised_at: datetime
    incident_id: int | None
    caller: str  # digits only, may be empty


@dataclass(frozen=True)
class _Ring:
    """A call to place: an officer of the roster, or an on-call number (officer None)."""

    officer_id: int | None
    number: str
    lap: int
    attempt: int


def caller_digits(details: dict[str, Any] | None) -> str:
    """The caller's number as the duty phone hears it: digits only (the value travels in a
    channel variable and is spoken by SayDigits)."""
    return _DIGITS.sub("", str((details or {}).get("caller_number") or ""))[:20]


class DutyCalls:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 ami: Actions, roster: DutyRoster, alerts: Acknowledger, policy: ChainPolicy,
                 default_site: str, tick_seconds: float = 1.0, ring_seconds: int = 30,
                 timeline: Timeline | None = None) -> None:
        self._sessions = sessions
        self._clock = clock
        self._ami = ami
        self._roster = roster
        self._alerts = alerts
        self.policy = policy
        self._default_site = default_site
        self._tick = tick_seconds
        self._ring_ms = str(int(ring_seconds * 1000))
        self._timeline = timeline
        # The last NobodyOnDuty acted on per alert when no on-call number could be rung
        # (a rung one is its own record).
        self._unstaffed: dict[int, datetime] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.originated = 0
        # Seconds from an alert being raised to its first Originate (for benchmarks).
        self.first_call_seconds: deque[float] = deque(maxlen=1000)
        self.last_error: str | None = None

    def subscribe(self, events: EventSource) -> None:
        """Outcomes arrive on the connection that reads events (the dialler's user reads
        none)."""
        events.subscribe("UserEvent", self.on_user_event)
        events.subscribe("OriginateResponse", self.on_originate_response)

    async def notify(self, alert: AlertView) -> None:
        """Alerts' DutyNotifier: a new crisis alert rings at once, not at the next tick."""
        if alert.kind in DUTY_KINDS:
            self._wake.set()

    def poke(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="duty-calls")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                if self._ami.connected:
                    await self.run_due()
                self.last_error = None
            except Exception as error:  # the next tick tries again
                self.last_error = repr(error)
                log.exception("duty chain pass failed")
            await woken_or_timeout(self._wake, self._tick)

    # -- the chain -------------------------------------------------------------------------

    async def run_due(self) -> int:
        """One look at every open crisis alert; the number of calls placed."""
        now = self._clock.now()
        async with self._sessions() as session:
            rows = (await session.scalars(select(Alert).where(
                Alert.state == AlertState.OPEN, Alert.kind.in_(DUTY_KINDS))
                .order_by(Alert.id))).all()
            alerts = [_OpenAlert(row.id, row.site_code or self._default_site, row.raised_at,
                                 row.incident_id, caller_digits(row.details))
                      for row in rows]
            deliveries: dict[int, list[AlertDelivery]] = {a.id: [] for a in alerts}
            if alerts:
                for delivery in (await session.scalars(select(AlertDelivery).where(
                        AlertDelivery.alert_id.in_(list(deliveries)))
                        .order_by(AlertDelivery.at, AlertDelivery.id))).all():
                    deliveries[delivery.alert_id].append(delivery)
        self._unstaffed = {k: v for k, v in self._unstaffed.items() if k in deliveries}
        placed = 0
        for alert in alerts:
            placed += await self._advance(alert, deliveries[alert.id], now)
        return placed

    async def _advance(self, alert: _OpenAlert, deliveries: Sequence[AlertDelivery],
                       now: datetime) -> int:
        roster = await self._roster.chain_at(now, alert.site)
        oncall = [d for d in deliveries if d.officer_id is None]
        reported = max([d.at for d in oncall]
                       + ([self._unstaffed[alert.id]] if alert.id in self._unstaffed else []),
                       default=None)
        state = ChainState(
            raised_at=alert.raised_at,
            deliveries=tuple(Delivery(d.officer_id, d.number, d.at, d.lap)
                             for d in deliveries if d.officer_id is not None),
            unstaffed_reported_at=reported)
        actions = next_actions(state, roster, now, self.policy)
        if not actions:
            return 0
        ring: _Ring | None = None
        for action in actions:
            if isinstance(action, Call):
                ring = _Ring(action.person_id, action.number, action.lap, action.attempt)
            elif isinstance(action, NobodyOnDuty):
                numbers = await self._oncall_numbers(alert.site)
                if numbers:
                    ring = _Ring(None, numbers[len(oncall) % len(numbers)], 1, len(oncall) + 1)
        seq = len(deliveries) + 1
        delivery_id = None
        if ring is not None:
            # Claimed first: nothing rings twice, whichever node gets here.
            delivery_id = await self._claim(alert.id, seq, ring, now)
            if delivery_id is None:
                return 0
        else:
            self._unstaffed[alert.id] = now
        for action in actions:
            await self._report(alert, action, ring)
        if ring is None or delivery_id is None:
            return 0
        await self._originate(alert, delivery_id, f"{ACTION_PREFIX}{alert.id}-{seq}", ring,
                              first=not deliveries)
        return 1

    async def _oncall_numbers(self, site_code: str) -> list[str]:
        async with self._sessions() as session:
            site = await session.scalar(select(Site).where(Site.code == site_code)
                                        .options(selectinload(Site.oncall_numbers)))
            if site is None:
                return []
            return [n.number for n in site.oncall_numbers]

    async def _claim(self, alert_id: int, seq: int, ring: _Ring, now: datetime) -> int | None:
        try:
            async with self._sessions() as session:
                state = await session.scalar(select(Alert.state).where(Alert.id == alert_id))
                if state != AlertState.OPEN:
                    return None  # acknowledged (or resolved) since the pass began
                row = AlertDelivery(alert_id=alert_id, officer_id=ring.officer_id,
                                    number=ring.number, lap=ring.lap, at=now,
                                    action_id=f"{ACTION_PREFIX}{alert_id}-{seq}")
                session.add(row)
                await session.commit()
                return row.id
        except IntegrityError:
            return None  # another node placed this call

    async def _report(self, alert: _OpenAlert, action: object, ring: _Ring | None) -> None:
        """The log and the incident's timeline hear about every turn of the chain."""
        if isinstance(action, Call):
            kind, summary = "duty.call", f"呼叫值班电话 {action.number}（第{action.attempt}次）"
            details: dict[str, Any] = {"officer_id": action.person_id, "number": action.number,
                                       "attempt": action.attempt, "lap": action.lap}
        elif isinstance(action, Escalate):
            kind, summary = "duty.escalated", "值班人员未确认，升级至值班表下一位"
            details = {"from_officer_id": action.from_person_id,
                       "to_officer_id": action.to_person_id, "lap": action.lap,
                       "reason": str(action.reason)}
            log.warning("duty alert escalated", alert=alert.id, **details)
        elif isinstance(action, Exhausted):
            kind = "duty.exhausted"
            summary = f"值班表上所有人均未确认（第{action.lap}轮），重新开始"
            details = {"lap": action.lap}
            log.error("duty chain exhausted: nobody acknowledged", alert=alert.id, lap=action.lap)
        elif isinstance(action, NobodyOnDuty):
            number = ring.number if ring is not None else None
            kind = "duty.nobody_on_duty"
            summary = ("值班表无人值班，改呼站点应急电话 " + number if number
                       else "值班表无人值班，且站点没有应急电话")
            details = {"oncall_number": number}
            log.error("duty alert: nobody on duty", alert=alert.id, site=alert.site,
                      oncall_number=number)
        else:
            return
        if self._timeline is not None and alert.incident_id is not None:
            try:
                await self._timeline.add_event(alert.incident_id, kind=kind, summary=summary,
                                               details={"alert_id": alert.id, **details})
            except Exception:  # the call matters more than its line in the timeline
                log.exception("incident timeline not written", incident=alert.incident_id)

    async def _originate(self, alert: _OpenAlert, delivery_id: int, action_id: str,
                         ring: _Ring, *, first: bool) -> None:
        async with self._sessions() as session:
            hotline_number = await _site_number(session, alert.site)
        action: dict[str, str | list[str]] = {
            "Action": "Originate", "ActionID": action_id,
            "Channel": f"PJSIP/{ring.number}@carrier", "Context": CONTEXT, "Exten": "s",
            "Priority": "1", "Async": "true", "Timeout": self._ring_ms,
            # The duty phone shows the hotline, so the officer knows to pick up.
            "CallerID": f'"{hotline_number} 危机警报" <{hotline_number}>',
            "Variable": [f"HOTLINE_ALERT_ID={alert.id}",
                         f"HOTLINE_ALERT_DELIVERY={delivery_id}",
                         f"HOTLINE_ALERT_CALLER={alert.caller}"]}
        since_raised = (self._clock.now() - alert.raised_at).total_seconds()
        try:
            # Only "queued" comes back on this connection (its user reads no events).
            reply = await self._ami.action(action, as_list=False)
            ok = not isinstance(reply, list) and bool(reply.success)
            detail = "" if isinstance(reply, list) else str(reply.get("Message", ""))
        except Exception as error:  # no answer, a timeout, the link lost: it may have run
            log.warning("duty originate unanswered", alert=alert.id, delivery=delivery_id,
                        error=repr(error))
            return
        if not ok:
            log.error("duty originate refused", alert=alert.id, delivery=delivery_id,
                      detail=detail)
            await self.record_outcome(delivery_id, "failed")
            return
        self.originated += 1
        if first:
            self.first_call_seconds.append(since_raised)
        log.info("duty phone rung", alert=alert.id, delivery=delivery_id, number=ring.number,
                 officer=ring.officer_id, attempt=ring.attempt, lap=ring.lap,
                 since_raised_ms=round(since_raised * 1000))

    # -- outcomes --------------------------------------------------------------------------

    async def on_user_event(self, message: Message) -> None:
        name = str(message.get("UserEvent", ""))
        if name not in ("HotlineDutyAck", "HotlineDutyCall"):
            return
        try:
            alert_id, delivery_id = int(message["Alert"]), int(message["Delivery"])
        except (KeyError, TypeError, ValueError):
            return
        if name == "HotlineDutyAck":
            await self.acknowledged_on_phone(alert_id, delivery_id)
        else:  # answered without pressing 1 (no_ack), or hung up before the end
            await self.record_outcome(delivery_id, "answered", alert_id=alert_id)

    async def on_originate_response(self, message: Message) -> None:
        action_id = str(message.get("ActionID", "") or "")
        if not action_id.startswith(ACTION_PREFIX):
            return
        if message.get("Response") == "Success":
            outcome = "answered"
        else:
            outcome = _REASONS.get(str(message.get("Reason", "")), "failed")
        async with self._sessions() as session:
            delivery_id = await session.scalar(select(AlertDelivery.id).where(
                AlertDelivery.action_id == action_id))
        if delivery_id is not None:
            await self.record_outcome(delivery_id, outcome)

    async def record_outcome(self, delivery_id: int, outcome: str, *,
                             alert_id: int | None = None) -> None:
        """The first outcome of a call stays, except that an acknowledgement always wins."""
        async with self._sessions() as session:
            row = await session.get(AlertDelivery, delivery_id)
            if row is None or (alert_id is not None and row.alert_id != alert_id):
                return
            if row.outcome is not None and outcome != "acknowledged":
                return
            row.outcome, row.ended_at = outcome, self._clock.now()
            await session.commit()
            log.info("duty call outcome", alert=row.alert_id, delivery=delivery_id,
                     outcome=outcome)

    async def acknowledged_on_phone(self, alert_id: int, delivery_id: int) -> None:
        """The duty officer pressed 1: the alert is acknowledged in their name."""
        async with self._sessions() as session:
            row = await session.get(AlertDelivery, delivery_id)
            if row is None or row.alert_id != alert_id:
                log.warning("duty acknowledgement for an unknown call", alert=alert_id,
                            delivery=delivery_id)
                return
            officer = (await session.get(DutyOfficer, row.officer_id)
                       if row.officer_id is not None else None)
            number = row.number
        await self.record_outcome(delivery_id, "acknowledged")
        actor = Actor(username=officer.name if officer else f"duty:{number}",
                      role="duty_officer", user_id=officer.user_id if officer else None)
        try:
            alert = await self._alerts.acknowledge(actor, alert_id)
        except AlertNotFound:
            return
        log.info("duty alert acknowledged on the phone", alert=alert_id, by=actor.username,
                 after_seconds=round((self._clock.now() - alert.raised_at).total_seconds(), 1))

    # -- reading ---------------------------------------------------------------------------

    async def alert_with_deliveries(self, alert_id: int
                                    ) -> tuple[AlertView, list[DeliveryView]]:
        async with self._sessions() as session:
            alert = await session.get(Alert, alert_id)
            if alert is None:
                raise AlertNotFound(f"no alert {alert_id}")
            rows = (await session.execute(
                select(AlertDelivery, DutyOfficer.name)
                .outerjoin(DutyOfficer, DutyOfficer.id == AlertDelivery.officer_id)
                .where(AlertDelivery.alert_id == alert_id)
                .order_by(AlertDelivery.at, AlertDelivery.id))).all()
            return AlertView.of(alert), [
                DeliveryView(d.id, d.officer_id, name, d.number, d.lap, d.at, d.outcome,
                             d.ended_at) for d, name in rows]


async def _site_number(session: AsyncSession, site_code: str) -> str:
    """The hotline's number of the site (its first DID), shown on the duty phone."""
    number = await session.scalar(select(SiteNumber.number).join(Site).where(
        Site.code == site_code).order_by(SiteNumber.id).limit(1))
    return _DIGITS.sub("", number or "") or "12355"
