"""Keep each queue's members equal to the roster: QueueAdd at shift start (with the tier's
penalty), QueueRemove at shift end (after the current call, never during it), QueuePause
with the reason (the counsellor's own, a debrief, an unregistered softphone, the crisis
cap) — sent only for what differs from Asterisk's queues as the QueueView sees them.

One owned task runs a pass every `tick_seconds` (shift boundaries and pause ends are
seen within a tick) and at once when poked (a log-in, a hang-up, a registration) — or,
with `min_pass_interval`, no sooner than that after the previous pass: a pass recomputes
the whole roster's membership, and under load nearly every read of AMI events pokes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from ami_listener.connection import AmiConnection, AmiError
from ami_listener.queue_view import MemberView, QueueView
from hotline.clock import Clock
from hotline.staffing.roster import Roster
from routing.membership import ActualMember, Change, plan_changes

log = structlog.get_logger(__name__)

CrisisCallDone = Callable[[int, str], Coroutine[Any, Any, Any]]

# A change Asterisk refused is not tried again for this long.
RETRY_AFTER_SECONDS = 10.0


class QueueMemberSync:
    def __init__(self, *, ami: AmiConnection, view: QueueView, roster: Roster, clock: Clock,
                 tick_seconds: float = 1.0,
                 on_crisis_call_done: CrisisCallDone | None = None,
                 min_pass_interval: float = 0.0) -> None:
        self._ami = ami
        self._view = view
        self._roster = roster
        self._clock = clock
        self._tick = tick_seconds
        self._min_pass_interval = min_pass_interval
        self._on_crisis_call_done = on_crisis_call_done
        self._poke = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._refused: dict[Change, float] = {}
        self._pending: set[asyncio.Task[Any]] = set()
        self.passes = 0
        self.actions_sent = 0
        self.last_error: str | None = None
        # A pass has brought the queues in line with the roster since the last (re)connect.
        self.synced_since_connect = False

    def subscribe(self) -> None:
        self._view.on_change.append(self._on_view_change)
        self._ami.on_disconnected.append(self._forget)

    def _forget(self) -> None:
        self.synced_since_connect = False

    def poke(self) -> None:
        self._poke.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="queue-member-sync")

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._pending) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._pending.clear()

    async def _on_view_change(self, kind: str, key: str) -> None:
        if kind == "complete":
            self._after_call(key)
        if kind in ("rebuilt", "complete", "queue") or (
                kind == "agent" and self._roster.counsellor(key) is not None):
            self.poke()

    def _after_call(self, interface: str) -> None:
        counsellor = self._roster.counsellor(interface)
        activity = self._view.activity.get(interface)
        if counsellor is None or activity is None or self._on_crisis_call_done is None:
            return
        queue = self._roster.state.queues.get(activity.last_complete_queue)
        if queue is None or queue.kind != "crisis":
            return
        # Not awaited here: the event consumer must not wait on the database.
        debrief = self._on_crisis_call_done(counsellor.id, queue.name)
        task: asyncio.Task[Any] = asyncio.create_task(debrief, name="debrief")
        self._pending.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("debrief pause not started", error=repr(task.exception()))

    async def _run(self) -> None:
        last_pass = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick):
                    await self._poke.wait()
            if self._min_pass_interval > 0:
                # pokes meanwhile coalesce into this pass
                await asyncio.sleep(last_pass + self._min_pass_interval - time.monotonic())
            self._poke.clear()
            if not (self._ami.connected and self._roster.state.loaded):
                continue
            # The rebuild after a (re)connect failed (Asterisk still booting): again now.
            if not self._view.ready and not await self._view.rebuild_quietly(self._ami):
                continue
            last_pass = time.monotonic()
            try:
                await self.sync_once()
                self.last_error = None
                self.synced_since_connect = True
            except AmiError as error:
                self.last_error = repr(error)
                log.warning("queue member sync pass failed", error=repr(error))

    def _crisis_waiting(self, site_code: str) -> bool:
        return any(self._view.waiting.get(queue.name)
                   for queue in self._roster.state.queues.values()
                   if queue.site_code == site_code and queue.kind == "crisis")

    def plan(self) -> list[Change]:
        now = self._clock.now()
        desired = self._roster.desired(now, self._view.registered, self._crisis_waiting)
        actual: dict[str, dict[str, ActualMember]] = {}
        for queue in desired:
            members = self._view.members.get(queue, {})
            # Static members (queues.conf) are the operator's: never touched.
            actual[queue] = {interface: ActualMember(interface, m.penalty, m.paused, m.reason,
                                                     m.busy)
                             for interface, m in members.items() if m.dynamic}
        return plan_changes(desired, actual)

    async def sync_once(self) -> int:
        self.passes += 1
        sent = 0
        monotonic = time.monotonic()
        self._refused = {c: t for c, t in self._refused.items() if t > monotonic}
        for change in self.plan():
            if change in self._refused:
                continue
            if await self._apply(change):
                sent += 1
            else:
                self._refused[change] = monotonic + RETRY_AFTER_SECONDS
        return sent

    async def _apply(self, change: Change) -> bool:
        action = _action(change)
        reply = await self._ami.action(action)
        self.actions_sent += 1
        ok = not isinstance(reply, list) and bool(reply.success)
        message = "" if isinstance(reply, list) else str(reply.get("Message", ""))
        if not ok and change.action == "remove" and "not there" in message.lower():
            ok = True  # gone already
        if not ok:
            log.warning("queue member change refused", change=change.action, queue=change.queue,
                        interface=change.interface, message=message)
            return False
        log.info("queue member changed", change=change.action, queue=change.queue,
                 interface=change.interface, penalty=change.penalty, reason=change.reason)
        # The view follows at once, so the next pass doesn't send it again; the
        # QueueMember* event that follows confirms it.
        if change.action == "add":
            self._view.set_member(MemberView(change.queue, change.interface, change.name,
                                             change.penalty, paused=bool(change.reason),
                                             reason=change.reason,
                                             status=self._view.device_state(change.interface)))
        elif change.action == "remove":
            self._view.drop_member(change.queue, change.interface)
        elif change.action == "pause":
            self._view.updated(change.queue, change.interface, paused=True, reason=change.reason)
        elif change.action == "unpause":
            self._view.updated(change.queue, change.interface, paused=False, reason="")
        elif change.action == "penalty":
            self._view.updated(change.queue, change.interface, penalty=change.penalty)
        return True


def _action(change: Change) -> dict[str, str]:
    if change.action == "add":
        action = {"Action": "QueueAdd", "Queue": change.queue, "Interface": change.interface,
                  "Penalty": str(change.penalty), "MemberName": change.name,
                  "StateInterface": change.interface,
                  "Paused": "true" if change.reason else "false"}
        if change.reason:
            action["Reason"] = change.reason
        return action
    if change.action == "remove":
        return {"Action": "QueueRemove", "Queue": change.queue, "Interface": change.interface}
    if change.action == "penalty":
        return {"Action": "QueuePenalty", "Queue": change.queue, "Interface": change.interface,
                "Penalty": str(change.penalty)}
    return {"Action": "QueuePause", "Queue": change.queue, "Interface": change.interface,
            "Paused": "true" if change.action == "pause" else "false",
            "Reason": change.reason}
