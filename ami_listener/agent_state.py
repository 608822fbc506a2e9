"""Each counsellor's live state and each queue's waiting callers, published to Redis for
supervisors' screens whenever the queue view changes (and every `refresh_seconds`, so a
wrap-up or a pause that ends by itself shows without an event).

States, in order of precedence: on_call, ringing, paused (with its reason), offline (not
on duty, or the softphone is not registered), wrap_up (the queue's wrap-up time after a
call), available.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ami_listener.queue_view import BUSY_STATES, UNREACHABLE_STATES, MemberView, QueueView
from hotline.clock import Clock
from hotline.live import AGENTS, QUEUES, LiveState
from hotline.staffing.roster import CounsellorInfo, Roster
from hotline.tasks import cancel_and_wait

OFFLINE, AVAILABLE, RINGING, ON_CALL, WRAP_UP, PAUSED = (
    "offline", "available", "ringing", "on_call", "wrap_up", "paused")


@dataclass(frozen=True)
class AgentStatus:
    state: str
    reason: str
    queues: tuple[str, ...]
    device: str


def agent_status(*, memberships: Sequence[MemberView], device: str, ringing: bool,
                 connected: bool, last_complete_at: datetime | None, wrapup_seconds: int,
                 now: datetime) -> AgentStatus:
    """Pure: one counsellor's state from what the queue view knows about them."""
    queues = tuple(sorted(m.queue for m in memberships))
    in_call = connected or device in BUSY_STATES or any(m.in_call for m in memberships)
    if in_call:
        return AgentStatus(ON_CALL, "", queues, device)
    if ringing or device == "RINGING":
        return AgentStatus(RINGING, "", queues, device)
    if not memberships:
        return AgentStatus(OFFLINE, "off_duty", queues, device)
    if device in UNREACHABLE_STATES:
        return AgentStatus(OFFLINE, "unregistered", queues, device)
    # Paused in every queue → paused; paused only in some (crisis cap) → still available.
    if all(m.paused for m in memberships):
        reasons = {m.reason for m in memberships if m.reason}
        return AgentStatus(PAUSED, ",".join(sorted(reasons)), queues, device)
    if last_complete_at is not None and wrapup_seconds > 0 \
            and (now - last_complete_at).total_seconds() < wrapup_seconds:
        return AgentStatus(WRAP_UP, "", queues, device)
    return AgentStatus(AVAILABLE, "", queues, device)


class LiveStaffing:
    def __init__(self, *, view: QueueView, roster: Roster, live: LiveState, clock: Clock,
                 default_wrapup_seconds: int, refresh_seconds: float = 2.0) -> None:
        self._view = view
        self._roster = roster
        self._live = live
        self._clock = clock
        self._default_wrapup = default_wrapup_seconds
        self._refresh = refresh_seconds
        self._published_agents: dict[str, dict[str, Any]] = {}
        self._published_queues: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    def subscribe(self) -> None:
        self._view.on_change.append(self._on_change)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-staffing")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def _on_change(self, kind: str, key: str) -> None:
        if kind == "agent":
            counsellor = self._roster.counsellor(key)
            if counsellor is not None:
                self._publish_agent(counsellor)
        elif kind == "queue":
            self._publish_queue(key)
        elif kind == "rebuilt":
            self.publish_all(reset=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            self.publish_all()

    def _wrapup(self, memberships: Sequence[MemberView], last_queue: str) -> int:
        queue = self._roster.state.queues.get(last_queue)
        if queue is not None and queue.wrapup_seconds is not None:
            return queue.wrapup_seconds
        return self._default_wrapup

    def agent_document(self, counsellor: CounsellorInfo) -> dict[str, Any]:
        interface = counsellor.interface
        memberships = self._view.memberships(interface)
        activity = self._view.activity.get(interface)
        status = agent_status(
            memberships=memberships, device=self._view.device_state(interface),
            ringing=bool(activity and activity.ringing),
            connected=bool(activity and activity.connected),
            last_complete_at=activity.last_complete_at if activity else None,
            wrapup_seconds=self._wrapup(memberships,
                                        activity.last_complete_queue if activity else ""),
            now=self._clock.now())
        return {"counsellor_id": counsellor.id, "name": counsellor.name,
                "site": counsellor.site_code, "tier": counsellor.tier, "seat": counsellor.seat,
                "interface": interface, "state": status.state, "reason": status.reason,
                "queues": list(status.queues), "device": status.device,
                "crisis_calls": self._roster.crisis_calls(counsellor.id)}

    def queue_document(self, queue: str) -> dict[str, Any]:
        now = self._clock.now()
        info = self._roster.state.queues.get(queue)
        callers = self._view.waiting_in(queue)
        members = self._view.members.get(queue, {}).values()
        return {"queue": queue, "site": info.site_code if info else None,
                "kind": info.kind if info else None,
                "waiting": [{"linkedid": c.linkedid, "caller": c.caller, "priority": c.priority,
                             "wait_seconds": round((now - c.joined_at).total_seconds(), 1)}
                            for c in callers],
                "longest_wait_seconds": round(self._view.longest_wait(queue, now), 1),
                "members": len(members),
                "available": sum(1 for m in members if not m.paused and not m.busy
                                 and m.status not in UNREACHABLE_STATES)}

    def _publish_agent(self, counsellor: CounsellorInfo) -> None:
        document = self.agent_document(counsellor)
        key = str(counsellor.id)
        if self._published_agents.get(key) != document:
            self._published_agents[key] = document
            self._live.agent_changed(key, document)

    def _publish_queue(self, queue: str) -> None:
        document = self.queue_document(queue)
        comparable = {**document, "waiting": [{**w, "wait_seconds": 0}
                                              for w in document["waiting"]],
                      "longest_wait_seconds": 0}
        if self._published_queues.get(queue) != comparable or document["waiting"]:
            self._published_queues[queue] = comparable
            self._live.queue_changed(queue, document)

    def publish_all(self, *, reset: bool = False) -> None:
        if reset:
            agents = {str(c.id): self.agent_document(c)
                      for c in self._roster.state.counsellors.values()}
            queues = {name: self.queue_document(name) for name in self._roster.state.queues}
            self._published_agents = dict(agents)
            self._published_queues = {}
            self._live.reset(AGENTS, agents)
            self._live.reset(QUEUES, queues)
            return
        for counsellor in self._roster.state.counsellors.values():
            self._publish_agent(counsellor)
        for queue in self._roster.state.queues:
            self._publish_queue(queue)
