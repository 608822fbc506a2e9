"""Follow each call through the queue from AMI events and keep its journal.

Events (filtered at the source by manager.conf): the caller's channel appears, joins a
queue, counsellors ring, one answers (or the caller abandons), the on-call phones are
dialled through the carrier, a counsellor transfers the caller (blind or attended; the
legs dialled from the transfer contexts), the caller hangs up. A call is one record however
many people it meets: the first answer sets who answered and the wait; later legs are
events. After every (re)connect the handler reconciles with Asterisk's live channels, so
calls that ended or started while the listener was away are closed or opened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from panoramisk.message import Message

from ami_listener.connection import AmiConnection
from hotline.calls.storage import CallJournal
from hotline.calls.transfers import (
    TRANSFER_CONTEXT_PREFIX,
    describe,
    endpoint_of,
    exten_of_local_channel,
)
from hotline.clock import Clock
from hotline.live import LiveState

log = structlog.get_logger(__name__)

CALLER_CONTEXT_PREFIX = "hotline-"
# Legs the backend starts itself (a duty officer's phone, the 110 leg, a supervisor called
# into the police room): each has a linkedid of its own and is not a caller's call. Their
# events count only for a call already known (the caller moved into the police room).
BACKEND_LEG_CONTEXTS = ("hotline-duty-alert", "hotline-police-")
# Dials made by the dialplan of a transfer (a colleague, an outside line), not the on-call.
TRANSFER_CONTEXT = TRANSFER_CONTEXT_PREFIX.rstrip("-")


class Outcome:
    ANSWERED = "answered"
    ANSWERED_ONCALL = "answered_oncall"
    ABANDONED = "abandoned"
    # Left the queue with 1 to be called back in their turn (voicemail/queue_callbacks.py).
    CALLBACK_REQUESTED = "callback_requested"
    IVR_HANGUP = "ivr_hangup"
    LOST = "lost"


@dataclass
class _LiveCall:
    linkedid: str
    queue: str | None = None
    joined_at: datetime | None = None
    answered: bool = False
    outcome: str | None = None
    # On-call leg being dialled: destination channel → number dialled.
    dialling: dict[str, str] = field(default_factory=dict)
    # The code last dialled in a transfer context (an attended transfer's destination).
    transfer_exten: str = ""


class CounsellorDirectory(Protocol):
    def counsellor_for_interface(self, interface: str) -> tuple[int, str] | None: ...


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    return value if isinstance(value, str) else ""


def _cid(value: str) -> str | None:
    return None if value in ("", "<unknown>") else value


class CallTracker:
    def __init__(self, *, journal: CallJournal, clock: Clock, live: LiveState,
                 directory: CounsellorDirectory,
                 on_reconciled: Callable[[int, int], None] | None = None) -> None:
        self._journal = journal
        self._clock = clock
        self._live = live
        self._directory = directory
        self._calls: dict[str, _LiveCall] = {}
        self._on_reconciled = on_reconciled
        self.reconciliations = 0

    def subscribe(self, ami: AmiConnection) -> None:
        """Every event binding of the call journal, in one place."""
        ami.subscribe("Newchannel", self.on_new_channel)
        ami.subscribe("QueueCallerJoin", self.on_queue_join)
        ami.subscribe("AgentCalled", self.on_agent_called)
        ami.subscribe("AgentRingNoAnswer", self.on_agent_ring_no_answer)
        ami.subscribe("AgentConnect", self.on_agent_connect)
        ami.subscribe("AgentComplete", self.on_agent_complete)
        ami.subscribe("QueueCallerAbandon", self.on_queue_abandon)
        ami.subscribe("QueueCallerLeave", self.on_queue_leave)
        ami.subscribe("DialBegin", self.on_dial_begin)
        ami.subscribe("DialEnd", self.on_dial_end)
        ami.subscribe("BlindTransfer", self.on_blind_transfer)
        ami.subscribe("AttendedTransfer", self.on_attended_transfer)
        ami.subscribe("UserEvent", self.on_user_event)
        ami.subscribe("Hangup", self.on_hangup)
        ami.on_connected.append(lambda: self.reconcile(ami))

    # -- helpers ---------------------------------------------------------------------------

    def _state(self, linkedid: str) -> _LiveCall:
        state = self._calls.get(linkedid)
        if state is None:
            state = self._calls[linkedid] = _LiveCall(linkedid)
        return state

    def _record(self, linkedid: str, event: str, data: dict[str, Any],
                fill: dict[str, Any] | None = None, **fields: Any) -> None:
        now = self._clock.now()
        call_id = self._journal.record(linkedid, now, event=event, source="ami", data=data,
                                       fill=fill, **fields)
        if linkedid not in self._calls:
            return  # ended already (AgentComplete follows the hang-up): no ghost live call
        self._live.call_changed(call_id, {"linkedid": linkedid, "event": event, **fields,
                                          "at": now.isoformat()})

    @staticmethod
    def _is_caller(message: Message) -> bool:
        linkedid = _text(message, "Linkedid")
        return bool(linkedid) and _text(message, "Uniqueid") == linkedid

    def _backend_leg(self, message: Message) -> bool:
        return (_text(message, "Context").startswith(BACKEND_LEG_CONTEXTS)
                and _text(message, "Linkedid") not in self._calls)

    @staticmethod
    def _is_transfer_leg(message: Message) -> bool:
        return _text(message, "Context").startswith(TRANSFER_CONTEXT)

    def _counsellor_of_channel(self, channel: str) -> str | None:
        endpoint = endpoint_of(channel)
        found = self._directory.counsellor_for_interface(f"PJSIP/{endpoint}") if endpoint else None
        return found[1] if found else None

    # -- handlers --------------------------------------------------------------------------

    async def on_new_channel(self, message: Message) -> None:
        if not self._is_caller(message):
            return
        linkedid = _text(message, "Linkedid")
        self._state(linkedid)
        self._record(linkedid, "channel_created", {"channel": _text(message, "Channel")},
                     fill={"dialed_number": _text(message, "Exten") or None,
                           "caller_number": _cid(_text(message, "CallerIDNum")),
                           "caller_name": _cid(_text(message, "CallerIDName"))})

    async def on_queue_join(self, message: Message) -> None:
        linkedid = _text(message, "Linkedid")
        state = self._state(linkedid)
        if state.answered:
            # transferred to a queue, or a consultation leg waiting in one: a later leg
            self._record(linkedid, "queue_join", {"queue": _text(message, "Queue"),
                                                  "position": _text(message, "Position"),
                                                  "transfer": True})
            return
        state.queue = _text(message, "Queue")
        state.joined_at = self._clock.now()
        self._record(linkedid, "queue_join",
                     {"queue": state.queue, "position": _text(message, "Position"),
                      "count": _text(message, "Count")}, queue=state.queue)

    async def on_agent_called(self, message: Message) -> None:
        self._record(_text(message, "Linkedid"), "ring", {
            "queue": _text(message, "Queue"), "member": _text(message, "MemberName"),
            "interface": _text(message, "Interface"),
        })

    async def on_agent_ring_no_answer(self, message: Message) -> None:
        self._record(_text(message, "Linkedid"), "ring_no_answer", {
            "queue": _text(message, "Queue"), "member": _text(message, "MemberName"),
            "interface": _text(message, "Interface"),
            "ring_seconds": _number(message.get("RingTime")),
        })

    async def on_agent_connect(self, message: Message) -> None:
        linkedid = _text(message, "Linkedid")
        state = self._state(linkedid)
        interface = _text(message, "Interface")
        counsellor = self._directory.counsellor_for_interface(interface)
        wait = _number(message.get("HoldTime"))
        if state.answered:
            # a later leg (after a transfer): the call keeps who answered first, and its wait
            self._record(linkedid, "connect", {
                "queue": _text(message, "Queue"), "member": _text(message, "MemberName"),
                "interface": interface, "wait_seconds": wait,
                "counsellor": counsellor[1] if counsellor else None, "transfer": True})
            return
        state.answered = True
        state.outcome = Outcome.ANSWERED
        self._record(
            linkedid, "connect",
            {"queue": _text(message, "Queue"), "member": _text(message, "MemberName"),
             "interface": interface, "wait_seconds": wait,
             "ring_seconds": _number(message.get("RingTime"))},
            outcome=Outcome.ANSWERED, answered_at=self._clock.now(), wait_seconds=wait,
            answered_by=counsellor[1] if counsellor else _text(message, "MemberName") or interface,
            answered_by_counsellor_id=counsellor[0] if counsellor else None,
            queue=_text(message, "Queue") or state.queue,
        )

    async def on_agent_complete(self, message: Message) -> None:
        self._record(_text(message, "Linkedid"), "complete", {
            "queue": _text(message, "Queue"), "member": _text(message, "MemberName"),
            "talk_seconds": _number(message.get("TalkTime")),
            "reason": _text(message, "Reason"),
        })

    async def on_queue_abandon(self, message: Message) -> None:
        linkedid = _text(message, "Linkedid")
        state = self._state(linkedid)
        wait = _number(message.get("HoldTime"))
        fields: dict[str, Any] = {}
        if not state.answered:
            state.outcome = Outcome.ABANDONED
            fields["wait_seconds"] = wait
        self._record(linkedid, "abandon", {"queue": _text(message, "Queue"), "wait_seconds": wait,
                                           "position": _text(message, "Position")},
                     outcome=state.outcome, **fields)

    async def on_queue_leave(self, message: Message) -> None:
        linkedid = _text(message, "Linkedid")
        state = self._state(linkedid)
        fields: dict[str, Any] = {}
        if not state.answered and state.joined_at is not None:
            fields["wait_seconds"] = round((self._clock.now() - state.joined_at).total_seconds(), 3)
        self._record(linkedid, "queue_leave", {"queue": _text(message, "Queue")}, **fields)

    async def on_dial_begin(self, message: Message) -> None:
        if self._backend_leg(message):
            return
        dial_string = _text(message, "DialString")
        self._state(_text(message, "Linkedid")).dialling[_text(message, "DestChannel")] = (
            dial_string.split("@", 1)[0])
        if self._is_transfer_leg(message):
            destination = _text(message, "DestChannel")
            outside = destination.startswith("PJSIP/carrier-")
            self._state(_text(message, "Linkedid")).transfer_exten = _text(message, "Exten")
            self._record(_text(message, "Linkedid"), "transfer_dial", {
                "exten": _text(message, "Exten"), "dial_string": dial_string,
                "number": dial_string.split("@", 1)[0] if outside else None,
                "channel": destination,
                "counsellor": None if outside else self._counsellor_of_channel(destination),
                "consultation": _text(message, "Channel").startswith("Local/")})
            return
        self._record(_text(message, "Linkedid"), "oncall_dial",
                     {"dial_string": _text(message, "DialString"),
                      "channel": _text(message, "DestChannel")})

    async def on_dial_end(self, message: Message) -> None:
        if self._backend_leg(message):
            return
        linkedid = _text(message, "Linkedid")
        status = _text(message, "DialStatus")
        fields: dict[str, Any] = {}
        # Not _state(): an event after the caller's hang-up must not bring the call back.
        state = self._calls.get(linkedid) or _LiveCall(linkedid)
        number = state.dialling.pop(_text(message, "DestChannel"), "")
        if self._is_transfer_leg(message):
            destination = _text(message, "DestChannel")
            outside = destination.startswith("PJSIP/carrier-")
            self._record(linkedid, "transfer_result", {
                "status": status, "exten": _text(message, "Exten"),
                "number": number if outside else None, "channel": destination,
                "counsellor": None if outside else self._counsellor_of_channel(destination)})
            return
        if status == "ANSWER":
            state.answered = True
            state.outcome = Outcome.ANSWERED_ONCALL
            fields = {"outcome": Outcome.ANSWERED_ONCALL, "answered_at": self._clock.now(),
                      "answered_by": number or None}
        self._record(linkedid, "oncall_result",
                     {"status": status, "number": number,
                      "channel": _text(message, "DestChannel")}, **fields)

    async def on_blind_transfer(self, message: Message) -> None:
        """A blind transfer (## on the phone, or BlindTransfer by the API): the caller went on
        to the transfer context's code. Result is Success even when nobody answers there: the
        legs that follow (transfer_dial, queue_join, transfer_result) tell."""
        linkedid = _text(message, "TransfereeLinkedid") or _text(message, "TransfererLinkedid")
        exten = _text(message, "Extension")
        destination = describe(exten)
        transferer = _text(message, "TransfererChannel")
        self._record(linkedid, "transfer", {
            "mode": "blind", "result": _text(message, "Result"), "exten": exten,
            "context": _text(message, "Context"),
            "to": destination.as_dict() if destination else None,
            "transferer": transferer, "by": self._counsellor_of_channel(transferer),
            "transferee": _text(message, "TransfereeChannel"),
            "external": _text(message, "IsExternal").lower() == "yes"})

    async def on_attended_transfer(self, message: Message) -> None:
        """An attended transfer completed (or failed): the counsellor talked to the target
        and hung up; the caller is now with the target."""
        linkedid = (_text(message, "TransfereeLinkedid")
                    or _text(message, "OrigTransfererLinkedid"))
        target = _text(message, "TransferTargetChannel")
        # The consultation leg is Local/<code>@<transfer context>; when it is already gone
        # the event may name no target: the code its dial was made from tells.
        state = self._calls.get(linkedid)
        exten = (exten_of_local_channel(target)
                 or exten_of_local_channel(_text(message, "LocalOneChannel"))
                 or (_text(message, "TransferTargetExten")
                     if _text(message, "TransferTargetContext").startswith(TRANSFER_CONTEXT)
                     else "")
                 or (state.transfer_exten if state else ""))
        destination = describe(exten)
        transferer = _text(message, "OrigTransfererChannel")
        self._record(linkedid, "transfer", {
            "mode": "attended", "result": _text(message, "Result"), "exten": exten or None,
            "to": destination.as_dict() if destination else None,
            "dest_type": _text(message, "DestType"), "target_channel": target,
            "transferer": transferer, "by": self._counsellor_of_channel(transferer),
            "transferee": _text(message, "TransfereeChannel")})

    async def on_user_event(self, message: Message) -> None:
        kind = _text(message, "UserEvent")
        linkedid = _text(message, "Linkedid")
        if kind == "HotlineCallbackRequested":
            state = self._calls.get(linkedid)
            if state is not None:
                state.outcome = Outcome.CALLBACK_REQUESTED
            self._record(linkedid, "callback_confirmed", {"task": _text(message, "Task")},
                         outcome=Outcome.CALLBACK_REQUESTED)
        elif kind == "HotlineFallback":
            self._record(linkedid, "fallback", {"agi_status": _text(message, "AgiStatus")},
                         route="fallback", fallback=True,
                         site_code=_text(message, "Site") or None)
        elif kind == "HotlineRoute":
            # The classic AGI script routed the call (the FastAGI server was unreachable):
            # it cannot write the record, so the dialplan announces the route here.
            priority = _text(message, "Priority")
            version = _text(message, "RulesVersion")
            digits = _text(message, "Digits")[-64:]
            self._record(linkedid, "route", {
                "via": _text(message, "Via"), "route": _text(message, "Route"),
                "queue": _text(message, "Queue"), "reason": _text(message, "Reason"),
                "node": _text(message, "Node")},
                route=_text(message, "Route") or None, queue=_text(message, "Queue") or None,
                priority=int(priority) if priority.isdigit() else None,
                rules_version=int(version) if version.isdigit() else None,
                digits=digits or None, fallback=True)

    async def on_hangup(self, message: Message) -> None:
        if not self._is_caller(message) or self._backend_leg(message):
            return
        linkedid = _text(message, "Linkedid")
        state = self._calls.pop(linkedid, None) or _LiveCall(linkedid)
        outcome = state.outcome
        if outcome is None:
            outcome = Outcome.ABANDONED if state.queue else Outcome.IVR_HANGUP
        fields: dict[str, Any] = {"ended_at": self._clock.now(), "outcome": outcome}
        if not state.answered and state.joined_at is not None and state.outcome is None:
            fields["wait_seconds"] = round((self._clock.now() - state.joined_at).total_seconds(), 3)
        self._record(linkedid, "hangup", {"cause": _text(message, "Cause"),
                                          "cause_text": _text(message, "Cause-txt")}, **fields)
        self._live.call_ended(self._journal.call_id(linkedid))

    # -- reconciliation --------------------------------------------------------------------

    async def reconcile(self, ami: AmiConnection) -> None:
        """After a (re)connect: close calls that ended unseen, open calls that started unseen."""
        try:
            reply = await ami.action({"Action": "CoreShowChannels"}, as_list=True, timeout=10)
        except Exception as error:  # reconciliation is best effort; the journal goes on
            log.warning("reconcile: CoreShowChannels failed", error=repr(error))
            return
        messages = reply if isinstance(reply, list) else [reply]
        live: dict[str, Message] = {}
        for message in messages:
            if _text(message, "Event") != "CoreShowChannel":
                continue
            if self._is_caller(message) and _text(message, "Context").startswith(
                    CALLER_CONTEXT_PREFIX):
                live[_text(message, "Linkedid")] = message
        open_calls = await self._journal.known_open_calls()
        now = self._clock.now()
        closed = 0
        for call_id, linkedid, outcome in open_calls:
            if linkedid in live:
                continue
            self._live.call_ended(call_id)
            state = self._calls.pop(linkedid, None)
            self._journal.record(linkedid, now, event="reconciled_end", source="ami",
                                 data={"reason": "not among Asterisk's live channels"},
                                 ended_at=now,
                                 outcome=outcome or (state.outcome if state else None)
                                 or Outcome.LOST)
            closed += 1
        known = {linkedid for _id, linkedid, _outcome in open_calls}
        opened = 0
        for linkedid, message in live.items():
            self._state(linkedid)
            if linkedid in known:
                continue
            duration = _number(message.get("Duration")) or 0.0
            self._journal.record(
                linkedid, now - timedelta(seconds=duration), event="reconciled_start",
                source="ami", data={"channel": _text(message, "Channel"),
                                    "context": _text(message, "Context")},
                fill={"caller_number": _cid(_text(message, "CallerIDNum")),
                      "caller_name": _cid(_text(message, "CallerIDName"))},
            )
            opened += 1
        self.reconciliations += 1
        log.info("reconciled with Asterisk", live=len(live), closed=closed, opened=opened)
        if self._on_reconciled:
            self._on_reconciled(closed, opened)

