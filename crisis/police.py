"""The one-key police alert: the counsellor presses the feature code (or a person calls the
API) and 110 joins the call while the counsellor stays on the line.

How it runs (the dialplan does the calls, this adapter decides and records):

1. The counsellor's feature code runs a Gosub on their channel ([hotline-police-key]) that
   sends the `HotlinePoliceKey` UserEvent: their channel, the caller's (BRIDGEPEER), the
   linkedid. The API finds the same two channels with CoreShowChannels.
2. Here: the caller's number is read from the caller's channel, set on the counsellor's
   (HOTLINE_POLICE_CALLER), and one AMI Redirect with ExtraChannel moves both out of their
   bridge into the conference room `police-<linkedid>` together ([hotline-police-conf]):
   the caller is never hung up, and never alone in a bridge that dissolves.
3. The counsellor's leg, entering the room, starts the 110 leg with Originate() in the
   dialplan ([hotline-police-dial]): 110 through the carrier, tried
   `crisis.police_attempts` times; the police alone hear the announcement with the caller's
   number before they join; the room hears a busy or failed 110 leg. The room is recorded.
4. Here, after the Redirect (the move does not wait for the database): the incident
   (source police: who pressed, when, the reason), the incident packet stored and sent by
   webhook, the duty officer alerted (an alert of kind `police`).
5. Then the room's events: each 110 attempt (`HotlinePolice` UserEvents) on the timeline, a
   failed attempt alerts the duty officer; the counsellor's leg leaving while the caller
   is still there calls a supervisor into the room (an Originate on the dialler's AMI
   user); the caller leaving flags the incident for a callback.

The room state lives in this process's memory; the events of a room this process did not
start (after a restart) are still recorded on the incident found by the linkedid.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog
from panoramisk.message import Message

from hotline.ami_protocols import Actions, EventSource
from hotline.clock import Clock

log = structlog.get_logger(__name__)

ROOM_PREFIX = "police-"
ACTION_PREFIX = "hotline-police-"
CONFERENCE_CONTEXT = "hotline-police-conf"
# The conference extensions: the first digit says who joins (see [hotline-police-conf]).
CALLER, COUNSELLOR, SUPERVISOR = "1", "2", "4"
# A linkedid is "<epoch>.<sequence>"; anything else is not ours to put in an extension.
_LINKEDID = re.compile(r"[0-9]{1,20}(\.[0-9]{1,10})?")
# A channel name as Asterisk writes it ("PJSIP/c1001-0000002a"), nothing that could break
# an AMI header.
_CHANNEL = re.compile(r"[A-Za-z0-9_/@;:.+#*-]{1,120}")
_DIGITS = re.compile(r"[^0-9]")

class IncidentLog(Protocol):
    """What the bridge needs of the incidents service (crisis/incidents.py)."""

    async def police_requested(self, request: PoliceRequest) -> int: ...
    async def police_event(self, linkedid: str, *, kind: str, summary: str,
                           details: Mapping[str, Any] | None = None,
                           callback_needed: bool = False) -> int | None: ...
    async def high_risk_key(self, linkedid: str, *, by: str) -> None: ...


class PoliceBridgeError(Exception):
    """The bridge could not be started; the message says why (for the counsellor's API)."""


class CallNotLive(PoliceBridgeError):
    pass


@dataclass(frozen=True)
class PoliceRequest:
    """Who asked for the police, for which call, and what the incident packet holds."""

    linkedid: str
    room: str
    site: str | None
    requested_by: str
    requested_at: datetime
    reason: str
    via: str  # "feature_code", "api" or "dialplan_fallback" (crisis/police_fallback.py)
    caller_channel: str
    counsellor_channel: str
    caller_number: str
    caller_name: str
    recording_path: str


@dataclass
class Room:
    request: PoliceRequest
    started: float  # time.monotonic() of the request, for the benchmark
    members: dict[str, str] = field(default_factory=dict)  # channel → role
    police_answered: bool = False
    counsellor_left: bool = False
    caller_left: bool = False
    supervisor_called: bool = False


@dataclass(frozen=True)
class Channels:
    caller: str
    counsellor: str


def header(message: Message, name: str) -> str:
    """One header's value; the first when Asterisk repeated it (a UserEvent's own field of
    the same name as one of the channel's)."""
    value = message.get(name, "")
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value or "")


def room_for(linkedid: str) -> str:
    return f"{ROOM_PREFIX}{linkedid}"


def valid_linkedid(value: str) -> bool:
    return bool(_LINKEDID.fullmatch(value))


def valid_channel(value: str) -> bool:
    return bool(_CHANNEL.fullmatch(value))


def bridged_channels(listing: list[Message], linkedid: str) -> Channels | None:
    """The caller's channel (its uniqueid is the linkedid) and the channel bridged with it,
    from a CoreShowChannels listing."""
    by_bridge: dict[str, list[Message]] = {}
    caller = None
    for item in listing:
        if item.get("Event") != "CoreShowChannel" or item.get("Linkedid") != linkedid:
            continue
        if item.get("Uniqueid") == linkedid:
            caller = item
        bridge = str(item.get("BridgeId") or "")
        if bridge:
            by_bridge.setdefault(bridge, []).append(item)
    if caller is None or not caller.get("BridgeId"):
        return None
    peers = [item for item in by_bridge.get(str(caller["BridgeId"]), [])
             if item.get("Channel") != caller.get("Channel")]
    if len(peers) != 1:
        return None
    return Channels(str(caller["Channel"]), str(peers[0]["Channel"]))


class PoliceBridge:
    def __init__(self, *, ami: Actions, dialer: Actions, incidents: IncidentLog,
                 clock: Clock, recording_dir: str, supervisor_number: Callable[[], Awaitable[str]],
                 ring_seconds: int = 30) -> None:
        self._ami = ami
        self._dialer = dialer
        self._incidents = incidents
        self._clock = clock
        self._recording_dir = recording_dir.rstrip("/")
        self._supervisor_number = supervisor_number
        self._ring_ms = str(ring_seconds * 1000)
        self.rooms: dict[str, Room] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # The benchmark's figures: seconds from the request to the 110 leg dialling.
        self.dial_latencies: list[float] = []

    def subscribe(self, events: EventSource) -> None:
        events.subscribe("UserEvent", self.on_user_event)
        events.subscribe("ConfbridgeJoin", self.on_join)
        events.subscribe("ConfbridgeLeave", self.on_leave)
        events.subscribe("ConfbridgeEnd", self.on_end)
        events.subscribe("OriginateResponse", self.on_originate_response)

    async def close(self) -> None:
        tasks, self._tasks = set(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        # The AMI consumer runs callbacks one at a time: a request's round trips and database
        # writes run beside it, owned here, so the room's own events are not held up.
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("police bridge task failed", task=name)

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- starting the bridge ---------------------------------------------------------------

    async def request(self, *, linkedid: str, requested_by: str, reason: str, via: str,
                      site: str | None = None, channels: Channels | None = None) -> PoliceRequest:
        """Move the call into the police room and record it; raises PoliceBridgeError when
        the call cannot be moved (it is then left as it was)."""
        if not valid_linkedid(linkedid):
            raise CallNotLive(f"not a call's linkedid: {linkedid!r}")
        room_name = room_for(linkedid)
        existing = self.rooms.get(room_name)
        if existing is not None:
            return existing.request  # pressed twice: one bridge
        started = time.monotonic()
        if channels is None:
            channels = await self._find_channels(linkedid)
        if not (valid_channel(channels.caller) and valid_channel(channels.counsellor)):
            raise CallNotLive("the call's channels have unexpected names")
        number, name = await self._caller_id(channels.caller)
        request = PoliceRequest(
            linkedid=linkedid, room=room_name, site=site, requested_by=requested_by,
            requested_at=self._clock.now(), reason=reason, via=via,
            caller_channel=channels.caller, counsellor_channel=channels.counsellor,
            caller_number=number, caller_name=name,
            recording_path=f"{self._recording_dir}/{room_name}.wav")
        room = Room(request, started, {channels.caller: "caller",
                                       channels.counsellor: "counsellor"})
        self.rooms[room_name] = room
        try:
            await self._move(request)
        except PoliceBridgeError:
            self.rooms.pop(room_name, None)
            raise
        log.warning("POLICE BRIDGE", room=room_name, by=requested_by, via=via,
                    caller=number, seconds=round(time.monotonic() - started, 3))
        self._spawn(self._record_request(request), f"police-record-{linkedid}")
        return request

    async def _find_channels(self, linkedid: str) -> Channels:
        try:
            listing = await self._ami.action({"Action": "CoreShowChannels"}, as_list=True)
        except Exception as error:
            raise PoliceBridgeError(f"Asterisk did not list its channels: {error!r}") from None
        channels = bridged_channels(list(listing), linkedid)
        if channels is None:
            raise CallNotLive("the call is not connected to a counsellor now")
        return channels

    async def _caller_id(self, channel: str) -> tuple[str, str]:
        values = []
        for variable in ("CALLERID(num)", "CALLERID(name)"):
            try:
                reply = await self._ami.action({"Action": "Getvar", "Channel": channel,
                                                "Variable": variable}, as_list=False)
                values.append(str(reply.get("Value") or "") if reply.success else "")
            except Exception:  # the number is for the announcement; the bridge goes on
                values.append("")
        return _DIGITS.sub("", values[0])[:32], values[1][:200]

    async def _move(self, request: PoliceRequest) -> None:
        digits = _DIGITS.sub("", request.caller_number)
        try:
            reply = await self._ami.action({
                "Action": "Setvar", "Channel": request.counsellor_channel,
                "Variable": "HOTLINE_POLICE_CALLER", "Value": digits}, as_list=False)
            if not reply.success:
                raise CallNotLive(f"the counsellor's channel is gone: {reply.get('Message')}")
            reply = await self._ami.action({
                "Action": "Redirect", "Channel": request.caller_channel,
                "Context": CONFERENCE_CONTEXT, "Exten": CALLER + request.linkedid,
                "Priority": "1", "ExtraChannel": request.counsellor_channel,
                "ExtraContext": CONFERENCE_CONTEXT,
                "ExtraExten": COUNSELLOR + request.linkedid, "ExtraPriority": "1"},
                as_list=False)
        except PoliceBridgeError:
            raise
        except Exception as error:  # AMI down or no answer
            raise PoliceBridgeError(f"Asterisk could not be asked to move the call: "
                                    f"{error!r}") from None
        if not reply.success:
            raise CallNotLive(f"Asterisk refused to move the call: {reply.get('Message')}")

    async def _record_request(self, request: PoliceRequest) -> None:
        await self._incidents.police_requested(request)

    # -- events of the room ----------------------------------------------------------------

    async def on_user_event(self, message: Message) -> None:
        name = header(message, "UserEvent")
        if name == "HotlinePoliceKey":
            self._spawn(self._on_key(message), "police-key")
        elif name == "HotlinePolice":
            await self._on_police_leg(message)
        elif name == "HotlineHighRisk":
            linkedid = header(message, "Linkedid")
            if valid_linkedid(linkedid):
                by = header(message, "Endpoint") or header(message, "Channel")
                self._spawn(self._incidents.high_risk_key(linkedid, by=by), "high-risk-key")

    async def _on_key(self, message: Message) -> None:
        linkedid = header(message, "Linkedid")
        endpoint = header(message, "Endpoint")
        channels = Channels(header(message, "Peer"), header(message, "Channel"))
        try:
            await self.request(linkedid=linkedid, requested_by=endpoint or channels.counsellor,
                               reason="", via="feature_code",
                               site=header(message, "Site") or None,
                               channels=channels)
        except PoliceBridgeError as error:
            log.error("police bridge not started", linkedid=linkedid, error=str(error))
            await self._incidents.police_event(
                linkedid, kind="police.bridge_failed", summary=f"报警三方通话未能建立：{error}",
                details={"error": str(error)})

    async def _on_police_leg(self, message: Message) -> None:
        room_name = header(message, "Room")
        if not room_name.startswith(ROOM_PREFIX):
            return
        linkedid = room_name.removeprefix(ROOM_PREFIX)
        state = header(message, "State")
        attempt = header(message, "Attempt")
        room = self.rooms.get(room_name)
        if state == "dialing":
            if room is not None and attempt == "1":
                self.dial_latencies.append(time.monotonic() - room.started)
            kind, summary = "police.dialing", f"正在拨打110（第{attempt}次）"
        elif state == "ANSWER":
            if room is not None:
                room.police_answered = True
            kind, summary = "police.answered", "110已接通，三方通话建立"
        elif state == "gave_up":
            kind, summary = "police.gave_up", f"110拨打{attempt}次均未接通，请立即手动报警"
        else:
            kind = "police.busy" if state in ("BUSY", "CONGESTION") else "police.failed"
            summary = f"110第{attempt}次未接通（{state}）"
        await self._incidents.police_event(
            linkedid, kind=kind, summary=summary,
            details={"attempt": attempt, "state": state, "cause": header(message, "Cause")})

    async def on_join(self, message: Message) -> None:
        room = self.rooms.get(header(message, "Conference"))
        channel = header(message, "Channel")
        if room is not None and channel not in room.members:
            room.members[channel] = "police" if "carrier" in channel else "other"

    async def on_leave(self, message: Message) -> None:
        room_name = header(message, "Conference")
        if not room_name.startswith(ROOM_PREFIX):
            return
        linkedid = room_name.removeprefix(ROOM_PREFIX)
        channel = header(message, "Channel")
        room = self.rooms.get(room_name)
        if room is None:
            return
        role = room.members.pop(channel, None)
        # Everyone else gone (110 hung up or given up, no supervisor): the caller alone.
        alone = not room.caller_left and set(room.members) == {room.request.caller_channel}
        if role == "counsellor" and not room.counsellor_left:
            room.counsellor_left = True
            summary = ("咨询员一方已断开" if room.caller_left
                       else "咨询员一方已断开，来电者独自在会议中，转接值班人员" if alone
                       else "咨询员一方已断开，来电者仍在会议中，正在呼叫督导")
            await self._incidents.police_event(
                linkedid, kind="bridge.counsellor_left", summary=summary,
                details={"channel": channel})
            # A supervisor joins the caller and the police; a caller alone is not left in
            # an empty room while a supervisor's phone rings: the rescue below instead.
            if not room.caller_left and not room.supervisor_called and not alone:
                room.supervisor_called = True
                self._spawn(self._call_supervisor(room), f"police-supervisor-{linkedid}")
        elif role == "caller" and not room.caller_left:
            room.caller_left = True
            await self._incidents.police_event(
                linkedid, kind="bridge.caller_left", summary="来电者已挂断，需要回访",
                details={"channel": channel}, callback_needed=True)
        if alone:
            # Everyone else is gone (110 hung up, no supervisor answered): a person now.
            room.caller_left = True  # moved on: nothing more to do for them in this room
            self._spawn(self._rescue_caller(room), f"police-rescue-{linkedid}")

    async def _rescue_caller(self, room: Room) -> None:
        """The caller alone in the room: the site's fallback route (the duty queue, then
        the on-call phones), never a silent room."""
        request = room.request
        try:
            reply = await self._ami.action({
                "Action": "Redirect", "Channel": request.caller_channel,
                "Context": "hotline-fallback", "Exten": request.site or "i", "Priority": "1"},
                as_list=False)
            ok, detail = bool(reply.success), str(reply.get("Message", ""))
        except Exception as error:
            ok, detail = False, repr(error)
        await self._incidents.police_event(
            request.linkedid, kind="bridge.caller_alone",
            summary="来电者独自留在会议中，已转接值班人员" if ok
            else f"来电者独自留在会议中，转接失败：{detail}",
            details={"moved": ok, "detail": detail})

    async def on_end(self, message: Message) -> None:
        room_name = header(message, "Conference")
        if not room_name.startswith(ROOM_PREFIX):
            return
        self.rooms.pop(room_name, None)
        await self._incidents.police_event(room_name.removeprefix(ROOM_PREFIX),
                                           kind="bridge.ended", summary="报警三方通话结束")

    async def _call_supervisor(self, room: Room) -> None:
        number = _DIGITS.sub("", await self._supervisor_number())
        linkedid = room.request.linkedid
        if not number:
            await self._incidents.police_event(
                linkedid, kind="supervisor.none", summary="没有可呼叫的督导或值班人员号码")
            return
        try:
            reply = await self._dialer.action({
                "Action": "Originate", "ActionID": f"{ACTION_PREFIX}{linkedid}",
                "Channel": f"PJSIP/{number}@carrier", "Context": CONFERENCE_CONTEXT,
                "Exten": SUPERVISOR + linkedid, "Priority": "1", "Timeout": self._ring_ms,
                "Async": "true", "CallerID": f'"12355报警" <{room.request.caller_number}>'},
                as_list=False)
            ok, detail = bool(reply.success), str(reply.get("Message", ""))
        except Exception as error:
            ok, detail = False, repr(error)
        await self._incidents.police_event(
            linkedid, kind="supervisor.called" if ok else "supervisor.failed",
            summary=f"呼叫督导 {number} 加入通话" if ok else f"督导未能呼叫：{detail}",
            details={"number": number})

    async def on_originate_response(self, message: Message) -> None:
        action_id = str(message.get("ActionID", "") or "")
        if not action_id.startswith(ACTION_PREFIX) or message.get("Response") == "Success":
            return
        await self._incidents.police_event(
            action_id.removeprefix(ACTION_PREFIX), kind="supervisor.no_answer",
            summary=f"督导电话未接通（{message.get('Reason')}）")
