"""Supervisor monitoring: listen to, whisper into or barge into a live call with Asterisk's
ChanSpy, from the supervisor's softphone or any phone through the carrier.

How: Asterisk is asked (AMI Originate, on the dialler's own AMI user: `write=originate`
and nothing else) to ring `PJSIP/<endpoint>` or `PJSIP/<number>@carrier`; when that phone
answers it runs `ChanSpy(<the counsellor's channel>,<options>)`. Asterisk refuses an
Originate of System, Exec, AGI and the like to a user without the `system` class; ChanSpy
is not one of them (checked on Asterisk 22 by tests/integration/test_monitoring.py).

Which channel is spied: the counsellor's, bridged with the caller. Listening to either
channel hears both sides, but a whisper goes to the spied channel only: the counsellor is
coached, the caller hears nothing. Barge (B) talks to both. Every mode is quiet (q: no
beep, no English channel name read out) and ends when the spied channel hangs up (E).
Channel names are not kept anywhere: they are read from Asterisk at the moment of the
request (CoreShowChannels, on the backend's own AMI user, `reporting` class), as for
transfers, so a call that was transferred is spied where it is now.

Only the supervisor role monitors (see monitoring_http.py). Every request, refused or
sent, leaves an audit entry (`call.monitor`: who, which call, mode, to which phone, the
outcome); one that reached Asterisk is also a `monitor` event in the call's journal.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import structlog
from panoramisk.message import Message
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotline.ami_protocols import Actions, EventSource
from hotline.audit import Actor, record_audit
from hotline.calls.storage import CallJournal
from hotline.calls.transfers import CallChannel, NotTransferable, endpoint_of, transferer
from hotline.clock import Clock
from hotline.db.models import Call, Counsellor, call_id_for

log = structlog.get_logger(__name__)

Mode = Literal["listen", "whisper", "barge"]

#: ChanSpy's options per mode: q quiet, E end with the spied channel, w whisper, B barge.
SPY_OPTIONS: Mapping[str, str] = {"listen": "qE", "whisper": "qEw", "barge": "qEB"}
#: What the supervisor's phone shows before the call id.
LABELS: Mapping[str, str] = {"listen": "监听", "whisper": "密语", "barge": "强插"}
#: The carrier trunk's PJSIP endpoint (asterisk_conf/pjsip.conf.j2).
CARRIER = "carrier"
ACTION_PREFIX = "hotline-monitor-"
AUDIT_ACTION = "call.monitor"

_ENDPOINT = r"^[A-Za-z0-9_.\-]{1,64}$"
_NUMBER = r"^\+?[0-9]{3,20}$"


# -- the API shapes -----------------------------------------------------------------------

class MonitorIn(BaseModel):
    """POST /api/calls/{call_id}/monitor: a mode, and exactly one phone to ring."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode = Field(description="listen: hear both sides, nobody hears you; whisper: the "
                                   "counsellor hears you, the caller does not; barge: both "
                                   "hear you")
    endpoint: str | None = Field(default=None, pattern=_ENDPOINT,
                                 description="the supervisor's softphone: a PJSIP endpoint "
                                             "(a counsellor or supervisor SIP username)")
    number: str | None = Field(default=None, pattern=_NUMBER,
                               description="or a phone number, dialled through the carrier")

    @model_validator(mode="after")
    def _one_phone(self) -> MonitorIn:
        if (self.endpoint is None) == (self.number is None):
            raise ValueError("give exactly one of endpoint (a softphone) or number (a phone "
                             "through the carrier)")
        return self

    @property
    def where(self) -> dict[str, str]:
        return ({"endpoint": self.endpoint} if self.endpoint is not None
                else {"number": self.number or ""})


class MonitorOut(BaseModel):
    call_id: str
    mode: Mode
    dial: str = Field(description="what Asterisk rings: PJSIP/<endpoint> or "
                                  "PJSIP/<number>@carrier")
    spied_channel: str = Field(description="the counsellor's channel ChanSpy listens to")
    counsellor: str = Field(description="the counsellor in the call (their SIP username)")
    action_id: str
    status: Literal["ringing"] = "ringing"


class MonitoredCall(BaseModel):
    call_id: str
    caller_number: str | None = Field(description="as in /api/calls (unmasked: supervisors "
                                                  "see callers' numbers there too)")
    caller_name: str | None
    queue: str | None
    counsellor: str | None = Field(description="the counsellor's name")
    counsellor_endpoint: str = Field(description="their SIP username")
    channel: str = Field(description="the counsellor's channel, which a monitor spies on")
    since: datetime | None = Field(description="when the counsellor answered (else when the "
                                               "call began); null before the journal has "
                                               "the call")
    monitored_by: list[str] = Field(description="channels spying on this call now")


class MonitoredCallList(BaseModel):
    items: list[MonitoredCall]


# -- pure helpers -------------------------------------------------------------------------

def dial_string(request: MonitorIn) -> str:
    if request.endpoint is not None:
        return f"PJSIP/{request.endpoint}"
    return f"PJSIP/{request.number}@{CARRIER}"


def spy_data(channel: str, mode: str) -> str:
    """ChanSpy's arguments: the exact channel name as its prefix, then the options."""
    return f"{channel},{SPY_OPTIONS[mode]}"


def caller_id(mode: str, call_id: str, number: str | None) -> str:
    """What the supervisor's phone shows: `"监听 <call id>" <the hotline's number>`."""
    digits = number if number and re.fullmatch(r"\+?[0-9]{1,20}", number) else ""
    return f'"{LABELS[mode]} {call_id}" <{digits}>'


@dataclass(frozen=True)
class LiveChannel:
    """One channel as CoreShowChannels lists it."""

    name: str
    uniqueid: str
    linkedid: str
    bridge_id: str
    application: str
    data: str

    def as_call_channel(self) -> CallChannel:
        return CallChannel(name=self.name, uniqueid=self.uniqueid, linkedid=self.linkedid,
                           bridge_id=self.bridge_id)


def spies_on(channels: Sequence[LiveChannel], target: str) -> list[str]:
    """The channels running ChanSpy on `target` (its exact name is ChanSpy's prefix)."""
    return [c.name for c in channels if c.application.lower() == "chanspy"
            and c.data.split(",", 1)[0] == target]


def talking_calls(channels: Sequence[LiveChannel], counsellors: Collection[str]
                  ) -> dict[str, CallChannel]:
    """linkedid → the counsellor's channel, for each call whose caller talks to one now."""
    by_call = [c.as_call_channel() for c in channels]
    found: dict[str, CallChannel] = {}
    for channel in by_call:
        if channel.uniqueid != channel.linkedid or not channel.bridge_id:
            continue
        try:
            found[channel.linkedid] = transferer(by_call, channel.linkedid, counsellors)
        except NotTransferable:
            continue
    return found


# -- Asterisk -------------------------------------------------------------------------------

def _text(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    return value if isinstance(value, str) else ""


async def live_channels(ami: Actions) -> list[LiveChannel]:
    reply = await ami.action({"Action": "CoreShowChannels"}, as_list=True)
    messages = reply if isinstance(reply, list) else [reply]
    return [LiveChannel(name=_text(m, "Channel"), uniqueid=_text(m, "Uniqueid"),
                        linkedid=_text(m, "Linkedid"), bridge_id=_text(m, "BridgeId"),
                        application=_text(m, "Application"), data=_text(m, "ApplicationData"))
            for m in messages if _text(m, "Event") == "CoreShowChannel"]


# -- the use case ---------------------------------------------------------------------------

class MonitorRefused(Exception):
    """Not sent to Asterisk, or Asterisk refused it; `status` is the HTTP status."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail


@dataclass
class Monitoring:
    sessions: async_sessionmaker[AsyncSession]
    ami: Actions  # the backend's own AMI user: lists channels
    originate: Actions  # the dialler's AMI user: Originate only
    journal: CallJournal
    clock: Clock
    node: str
    ring_seconds: int = 30

    async def monitor(self, actor: Actor, call_id: str, request: MonitorIn) -> MonitorOut:
        trace: dict[str, Any] = {"mode": request.mode, **request.where}
        try:
            return await self._monitor(actor, call_id, request, trace)
        except MonitorRefused as refused:
            await self.refused(actor, call_id, refused, trace)
            raise

    async def refused(self, actor: Actor, call_id: str, refused: MonitorRefused,
                      trace: Mapping[str, Any] | None = None) -> None:
        """An audit entry for a request that did not reach Asterisk (or was refused)."""
        detail = {"detail": refused.detail} if refused.detail is not None else {}
        await self._audit(actor, call_id, {**(trace or {}), "accepted": False,
                                           "status": refused.status,
                                           "reason": refused.message, **detail})

    async def _monitor(self, actor: Actor, call_id: str, request: MonitorIn,
                       trace: dict[str, Any]) -> MonitorOut:
        call, counsellors = await self._call(call_id, request)
        if not self.originate.connected:
            raise MonitorRefused(503, "Asterisk cannot be reached now (the dialler's AMI "
                                      "link is down)")
        try:
            channels = [c.as_call_channel() for c in await live_channels(self.ami)]
        except Exception as error:  # AMI down, a timeout
            raise MonitorRefused(503, "Asterisk cannot be reached now", repr(error)) from error
        try:
            spied = transferer(channels, call.linkedid, counsellors)
        except NotTransferable as error:
            raise MonitorRefused(409, f"nothing to monitor: {error}") from error
        counsellor = endpoint_of(spied.name) or ""
        if request.endpoint is not None and request.endpoint == counsellor:
            raise MonitorRefused(422, "that endpoint is the counsellor in this call")
        dial = dial_string(request)
        # The call id in it: the OriginateResponse finds its call (MonitorOutcomes).
        action_id = f"{ACTION_PREFIX}{call.id}-{uuid.uuid4().hex[:8]}"
        action: dict[str, str | list[str]] = {
            "Action": "Originate", "ActionID": action_id, "Channel": dial,
            "Application": "ChanSpy", "Data": spy_data(spied.name, request.mode),
            "CallerID": caller_id(request.mode, call.id, call.dialed_number),
            "Timeout": str(self.ring_seconds * 1000), "Async": "true",
            "Variable": [f"HOTLINE_MONITOR_CALL={call.id}",
                         f"HOTLINE_MONITOR_MODE={request.mode}"]}
        trace.update(dial=dial, spied_channel=spied.name, counsellor=counsellor,
                     action_id=action_id)
        try:
            # Never re-sent (the AMI adapter does not replay actions after a reconnect).
            reply = await self.originate.action(action, as_list=False)
        except Exception as error:
            raise MonitorRefused(502, "Asterisk did not confirm the request: the phone may "
                                      "still ring", repr(error)) from error
        message = "" if isinstance(reply, list) else str(reply.get("Message", "") or "")
        ok = (not isinstance(reply, list)
              and str(reply.get("Response", "")).lower() == "success")
        if not ok:
            raise MonitorRefused(409, "Asterisk refused to ring the phone", message)
        now = self.clock.now()
        await self._audit(actor, call.id, {**trace, "accepted": True, "asterisk": message})
        self.journal.record(call.linkedid, now, event="monitor", source="api",
                            data={"mode": request.mode, **request.where,
                                  "spied_channel": spied.name, "by_user": actor.username})
        log.info("monitor requested", call_id=call.id, actor=actor.username, **trace)
        return MonitorOut(call_id=call.id, mode=request.mode, dial=dial,
                          spied_channel=spied.name, counsellor=counsellor, action_id=action_id)

    async def _call(self, call_id: str, request: MonitorIn) -> tuple[Call, frozenset[str]]:
        async with self.sessions() as session:
            call = await session.get(Call, call_id)
            if call is None:
                raise MonitorRefused(404, "no such call", {"id": call_id})
            if call.ended_at is not None:
                raise MonitorRefused(404, "the call has ended", {"id": call_id})
            if call.node != self.node:
                raise MonitorRefused(409, f"the call is on node {call.node}: ask that node")
            rows = (await session.execute(select(Counsellor.sip_username,
                                                 Counsellor.active))).all()
        if request.endpoint is not None and (request.endpoint, True) not in {
                (name, bool(active)) for name, active in rows}:
            # Anything else would ring nobody (Asterisk only knows the rendered endpoints).
            raise MonitorRefused(422, f"no active softphone has the endpoint "
                                      f"{request.endpoint!r}")
        return call, frozenset(name for name, _active in rows)

    async def calls(self) -> list[MonitoredCall]:
        """The calls on this node where a caller talks to a counsellor now."""
        try:
            channels = await live_channels(self.ami)
        except Exception as error:
            raise MonitorRefused(503, "Asterisk cannot be reached now", repr(error)) from error
        async with self.sessions() as session:
            counsellors = {row.sip_username: row.name
                           for row in (await session.scalars(select(Counsellor))).all()}
            talking = talking_calls(channels, counsellors)
            ids = {call_id_for(self.node, linkedid): linkedid for linkedid in talking}
            known = {call.id: call for call in (await session.scalars(
                select(Call).where(Call.id.in_(list(ids))))).all()} if ids else {}
        items = []
        for call_id, linkedid in ids.items():
            channel = talking[linkedid]
            endpoint = endpoint_of(channel.name) or ""
            call = known.get(call_id)
            items.append(MonitoredCall(
                call_id=call_id, caller_number=call.caller_number if call else None,
                caller_name=call.caller_name if call else None,
                queue=call.queue if call else None, counsellor=counsellors.get(endpoint),
                counsellor_endpoint=endpoint, channel=channel.name,
                since=(call.answered_at or call.started_at) if call else None,
                monitored_by=spies_on(channels, channel.name)))
        items.sort(key=lambda item: (item.since is None, item.since or datetime.min,
                                     item.call_id))
        return items

    async def _audit(self, actor: Actor, call_id: str, after: dict[str, Any]) -> None:
        async with self.sessions() as session:
            record_audit(session, actor=actor, at=self.clock.now(), action=AUDIT_ACTION,
                         # an unknown id comes from the URL: bounded
                         target=f"call:{call_id[:100]}", after=after)
            await session.commit()


class MonitorOutcomes:
    """Whether the supervisor's phone answered: each monitor request's OriginateResponse
    (on the backend's reading connection; the dialler's user reads no events) becomes a
    `monitor_result` event of the call (manager.conf lets `hotline-monitor-` through)."""

    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], journal: CallJournal,
                 clock: Clock) -> None:
        self._sessions = sessions
        self._journal = journal
        self._clock = clock

    def subscribe(self, events: EventSource) -> None:
        events.subscribe("OriginateResponse", self.on_originate_response)

    async def on_originate_response(self, message: Message) -> None:
        action_id = _text(message, "ActionID")
        if not action_id.startswith(ACTION_PREFIX):
            return
        call_id = action_id.removeprefix(ACTION_PREFIX).split("-", 1)[0]
        async with self._sessions() as session:
            linkedid = await session.scalar(select(Call.linkedid).where(Call.id == call_id))
        if linkedid is None:
            return
        answered = _text(message, "Response").lower() == "success"
        # Reason: Asterisk's outgoing-call result (4 answered, 3 no answer, 5 busy, 0/8
        # failed or congested).
        self._journal.record(linkedid, self._clock.now(), event="monitor_result",
                             source="ami", data={"action_id": action_id, "answered": answered,
                                                 "reason": _text(message, "Reason"),
                                                 "channel": _text(message, "Channel")})
        log.info("monitor phone", call_id=call_id, answered=answered,
                 reason=_text(message, "Reason"))
