"""What Asterisk's queues look like right now, kept from AMI events: each queue's members
(penalty, paused and why, in a call or not), each device's state (a softphone that is not
registered is UNAVAILABLE), and the callers waiting in each queue.

Rebuilt from QueueStatus and DeviceStateList after every (re)connect; between those, each
event updates it in place. Listeners (`on_change`) hear which counsellor interface or which
queue changed: queue membership sync and the live state in Redis.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from panoramisk.message import Message

from ami_listener.connection import AmiConnection, AmiError
from hotline.clock import Clock

log = structlog.get_logger(__name__)

# app_queue's member Status is an ast_device_state number.
DEVICE_STATES = {0: "UNKNOWN", 1: "NOT_INUSE", 2: "INUSE", 3: "BUSY", 4: "INVALID",
                 5: "UNAVAILABLE", 6: "RINGING", 7: "RINGINUSE", 8: "ONHOLD"}
BUSY_STATES = frozenset({"INUSE", "BUSY", "ONHOLD", "RINGINUSE"})
UNREACHABLE_STATES = frozenset({"UNAVAILABLE", "INVALID"})

ChangeCallback = Callable[[str, str], Awaitable[None] | None]


@dataclass(frozen=True)
class MemberView:
    queue: str
    interface: str
    name: str = ""
    penalty: int = 0
    paused: bool = False
    reason: str = ""
    status: str = "UNKNOWN"
    in_call: bool = False
    calls_taken: int = 0
    dynamic: bool = True

    @property
    def busy(self) -> bool:
        return self.in_call or self.status in BUSY_STATES


@dataclass(frozen=True)
class WaitingCaller:
    uniqueid: str
    linkedid: str
    queue: str
    joined_at: datetime
    priority: int = 0
    caller: str = ""


@dataclass
class AgentActivity:
    """What AMI said about one counsellor interface lately (ringing, connected, done)."""

    ringing: set[str] = field(default_factory=set)  # linkedids ringing this interface
    connected: set[str] = field(default_factory=set)
    last_complete_at: datetime | None = None
    last_complete_queue: str = ""


def _text(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    return value if isinstance(value, str) else ""


def _int(message: Mapping[str, Any], key: str, default: int = 0) -> int:
    try:
        return int(_text(message, key))
    except ValueError:
        return default


def _flag(message: Mapping[str, Any], key: str) -> bool:
    return _text(message, key).lower() in ("1", "yes", "true")


def _member(message: Mapping[str, Any], interface_key: str) -> MemberView:
    status = _int(message, "Status")
    return MemberView(
        queue=_text(message, "Queue"), interface=_text(message, interface_key),
        name=_text(message, "MemberName") or _text(message, "Name"),
        penalty=_int(message, "Penalty"), paused=_flag(message, "Paused"),
        reason=_text(message, "PausedReason"), status=DEVICE_STATES.get(status, "UNKNOWN"),
        in_call=_flag(message, "InCall"), calls_taken=_int(message, "CallsTaken"),
        dynamic=_text(message, "Membership").lower() != "static")


class QueueView:
    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock
        self.members: dict[str, dict[str, MemberView]] = {}
        self.devices: dict[str, str] = {}
        self.waiting: dict[str, dict[str, WaitingCaller]] = {}
        self.activity: dict[str, AgentActivity] = {}
        self.on_change: list[ChangeCallback] = []
        self.ready = False  # rebuilt at least once since the last connect
        self.rebuilds = 0

    def subscribe(self, ami: AmiConnection) -> None:
        """Every event binding of the queue view, in one place."""
        ami.subscribe("QueueMemberAdded", self.on_member)
        ami.subscribe("QueueMemberStatus", self.on_member)
        ami.subscribe("QueueMemberPause", self.on_member)
        ami.subscribe("QueueMemberPenalty", self.on_member)
        ami.subscribe("QueueMemberRemoved", self.on_member_removed)
        ami.subscribe("DeviceStateChange", self.on_device_state)
        ami.subscribe("QueueCallerJoin", self.on_caller_join)
        ami.subscribe("QueueCallerLeave", self.on_caller_leave)
        ami.subscribe("QueueCallerAbandon", self.on_caller_leave)
        ami.subscribe("AgentCalled", self.on_agent_called)
        ami.subscribe("AgentRingNoAnswer", self.on_agent_ring_ended)
        ami.subscribe("AgentConnect", self.on_agent_connect)
        ami.subscribe("AgentComplete", self.on_agent_complete)
        ami.on_connected.append(lambda: self._rebuild_on_connect(ami))
        ami.on_disconnected.append(self._forget)

    # -- reads ------------------------------------------------------------------------------

    def registered(self, interface: str) -> bool | None:
        """False when the device is unreachable (softphone not registered), None if unknown."""
        state = self.devices.get(interface)
        if state is None:
            return None
        return state not in UNREACHABLE_STATES

    def device_state(self, interface: str) -> str:
        return self.devices.get(interface, "UNKNOWN")

    def memberships(self, interface: str) -> list[MemberView]:
        return [members[interface] for members in self.members.values() if interface in members]

    def in_call(self, interface: str) -> bool:
        if self.devices.get(interface) in BUSY_STATES:
            return True
        return any(member.busy for member in self.memberships(interface))

    def waiting_in(self, queue: str) -> list[WaitingCaller]:
        return sorted(self.waiting.get(queue, {}).values(), key=lambda w: w.joined_at)

    def longest_wait(self, queue: str, now: datetime) -> float:
        callers = self.waiting_in(queue)
        return (now - callers[0].joined_at).total_seconds() if callers else 0.0

    # -- events -----------------------------------------------------------------------------

    async def _changed(self, kind: str, key: str) -> None:
        for callback in list(self.on_change):
            try:
                result = callback(kind, key)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("queue view listener failed", kind=kind, key=key)

    async def on_member(self, message: Message) -> None:
        member = _member(message, "Interface")
        if not member.queue or not member.interface:
            return
        self.members.setdefault(member.queue, {})[member.interface] = member
        self.devices[member.interface] = member.status if member.status != "UNKNOWN" else (
            self.devices.get(member.interface, "UNKNOWN"))
        await self._changed("agent", member.interface)

    async def on_member_removed(self, message: Message) -> None:
        queue, interface = _text(message, "Queue"), _text(message, "Interface")
        self.members.get(queue, {}).pop(interface, None)
        await self._changed("agent", interface)

    async def on_device_state(self, message: Message) -> None:
        device, state = _text(message, "Device"), _text(message, "State")
        if not device.startswith("PJSIP/") or not state:
            return
        if self.devices.get(device) == state:
            return
        self.devices[device] = state
        await self._changed("agent", device)

    async def on_caller_join(self, message: Message) -> None:
        queue = _text(message, "Queue")
        caller = WaitingCaller(
            uniqueid=_text(message, "Uniqueid"), linkedid=_text(message, "Linkedid"),
            queue=queue, joined_at=self._clock.now(), priority=_int(message, "Priority"),
            caller=_text(message, "CallerIDNum"))
        self.waiting.setdefault(queue, {})[caller.uniqueid] = caller
        await self._changed("queue", queue)

    async def on_caller_leave(self, message: Message) -> None:
        queue = _text(message, "Queue")
        if self.waiting.get(queue, {}).pop(_text(message, "Uniqueid"), None) is not None:
            await self._changed("queue", queue)

    def _activity(self, interface: str) -> AgentActivity:
        return self.activity.setdefault(interface, AgentActivity())

    async def on_agent_called(self, message: Message) -> None:
        interface = _text(message, "Interface")
        self._activity(interface).ringing.add(_text(message, "Linkedid"))
        await self._changed("agent", interface)

    async def on_agent_ring_ended(self, message: Message) -> None:
        interface = _text(message, "Interface")
        self._activity(interface).ringing.discard(_text(message, "Linkedid"))
        await self._changed("agent", interface)

    async def on_agent_connect(self, message: Message) -> None:
        interface = _text(message, "Interface")
        activity = self._activity(interface)
        linkedid = _text(message, "Linkedid")
        activity.ringing.discard(linkedid)
        activity.connected.add(linkedid)
        await self._changed("agent", interface)

    async def on_agent_complete(self, message: Message) -> None:
        interface = _text(message, "Interface")
        activity = self._activity(interface)
        activity.connected.discard(_text(message, "Linkedid"))
        activity.last_complete_at = self._clock.now()
        activity.last_complete_queue = _text(message, "Queue")
        await self._changed("complete", interface)
        await self._changed("agent", interface)

    # -- rebuild ----------------------------------------------------------------------------

    async def _forget(self) -> None:
        self.ready = False

    async def _rebuild_on_connect(self, ami: AmiConnection) -> None:
        await self.rebuild_quietly(ami)

    async def rebuild_quietly(self, ami: AmiConnection) -> bool:
        """Rebuild; when Asterisk cannot answer yet (still booting, the link dropped again)
        the view stays not ready and the membership sync tries again within a tick."""
        try:
            await self.rebuild(ami)
        except AmiError as error:
            log.warning("queue view not rebuilt yet", error=repr(error))
            return False
        return True

    async def rebuild(self, ami: AmiConnection) -> None:
        """Replace the view with Asterisk's own account of it (after every (re)connect)."""
        reply = await ami.action({"Action": "QueueStatus"}, as_list=True, timeout=10)
        devices_reply = await ami.action({"Action": "DeviceStateList"}, as_list=True, timeout=10)
        now = self._clock.now()
        members: dict[str, dict[str, MemberView]] = {}
        waiting: dict[str, dict[str, WaitingCaller]] = {}
        devices: dict[str, str] = {}
        for message in reply if isinstance(reply, list) else [reply]:
            event = _text(message, "Event")
            if event == "QueueMember":
                member = _member(message, "Location")
                members.setdefault(member.queue, {})[member.interface] = member
                devices[member.interface] = member.status
            elif event == "QueueEntry":
                queue = _text(message, "Queue")
                wait = _int(message, "Wait")
                caller = WaitingCaller(
                    uniqueid=_text(message, "Uniqueid"), linkedid=_text(message, "Linkedid")
                    or _text(message, "Uniqueid"), queue=queue,
                    joined_at=now - timedelta(seconds=wait), priority=_int(message, "Priority"),
                    caller=_text(message, "CallerIDNum"))
                waiting.setdefault(queue, {})[caller.uniqueid] = caller
            elif event == "QueueParams":
                members.setdefault(_text(message, "Queue"), {})
        for message in devices_reply if isinstance(devices_reply, list) else [devices_reply]:
            device, state = _text(message, "Device"), _text(message, "State")
            if device.startswith("PJSIP/") and state:
                devices[device] = state
        self.members, self.waiting, self.devices = members, waiting, devices
        # Ringing and connected calls are not in QueueStatus: keep only what is still busy.
        for interface, activity in self.activity.items():
            if devices.get(interface) not in BUSY_STATES | {"RINGING"}:
                activity.ringing.clear()
                activity.connected.clear()
        self.ready = True
        self.rebuilds += 1
        log.info("queue view rebuilt", queues=len(members),
                 members=sum(len(m) for m in members.values()),
                 waiting=sum(len(w) for w in waiting.values()))
        await self._changed("rebuilt", "")

    def set_member(self, member: MemberView) -> None:
        """Record the effect of an action this process sent (its event follows)."""
        self.members.setdefault(member.queue, {})[member.interface] = member

    def drop_member(self, queue: str, interface: str) -> None:
        self.members.get(queue, {}).pop(interface, None)

    def updated(self, queue: str, interface: str, **changes: Any) -> None:
        member = self.members.get(queue, {}).get(interface)
        if member is not None:
            self.members[queue][interface] = replace(member, **changes)
