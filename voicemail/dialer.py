"""Callbacks dialled by the backend: the counsellor's phone first; when they answer, the
dialplan (`[hotline-callback]`) calls the caller with the site's neutral caller ID and
connects them only after the person who picked up pressed 1 (they left the message and can
talk safely now).

Exactly one dial per attempt, also with several backend nodes: an attempt is a row
(task, number) inserted before the Originate is sent, and the task moves from pending to
dialing in the same transaction only if nobody else moved it. An Originate is sent once:
the AMI adapter never re-sends an action after a reconnect, and an attempt whose outcome
never arrives is closed as `lost` after `lost_after_seconds` (it counts as a try; the next
one follows the retry spacing).

Outcomes arrive as `HotlineCallback` UserEvents from the dialplan (reached, not_safe, or
Dial's status) and as the OriginateResponse when the counsellor did not answer — which
does not use up one of the caller's attempts.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Any

import structlog
from panoramisk.message import Message
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotline.clock import Clock
from hotline.db.models import CallbackAttempt, CallbackState, CallbackTask, Site
from hotline.rules.published import RoutingTable
from hotline.staffing.roster import Roster
from hotline.tasks import cancel_and_wait, woken_or_timeout
from routing.callbacks import (
    FINAL_OUTCOMES,
    CallbackSeat,
    Outcome,
    RetryPolicy,
    callback_counsellor,
    next_attempt_at,
)
from routing.hours import local_time, overrides_by_date
from voicemail.asterisk import Actions, EventSource, QueueState

log = structlog.get_logger(__name__)

ACTION_PREFIX = "hotline-callback-"
PHONE_NUMBER = re.compile(r"^\+?[0-9]{3,20}$")
# The counsellor did not pick up: try again with someone else this soon, without using up
# one of the caller's attempts.
COUNSELLOR_RETRY = timedelta(minutes=1)
# Dial's status → the attempt's outcome (HANGUPCAUSE 1: unallocated number).
_DIAL_OUTCOMES = {"NOANSWER": Outcome.NO_ANSWER, "BUSY": Outcome.BUSY,
                  "CONGESTION": Outcome.FAILED, "CHANUNAVAIL": Outcome.FAILED,
                  "CANCEL": Outcome.FAILED}
_OUTCOME_VALUES = frozenset(outcome.value for outcome in Outcome)


class CallbackDialer:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 ami: Actions, view: QueueState, roster: Roster, routing: RoutingTable,
                 node: str, tick_seconds: float = 5.0, counsellor_ring_seconds: int = 30,
                 lost_after_seconds: float = 600.0, max_dialing_per_site: int = 2,
                 wrapup_seconds: int = 10) -> None:
        self._sessions = sessions
        self._clock = clock
        self._ami = ami
        self._view = view
        self._roster = roster
        self._routing = routing
        self._node = node
        self._tick = tick_seconds
        self._ring_ms = str(counsellor_ring_seconds * 1000)
        self._lost_after = timedelta(seconds=lost_after_seconds)
        self._max_dialing = max_dialing_per_site
        self._wrapup = wrapup_seconds
        # Counsellors this node has sent a callback to, until its outcome (their phone is
        # not busy yet while it rings): interface → (task, attempt, when).
        self._reserved: dict[str, tuple[int, int, datetime]] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.dialled = 0
        self.last_error: str | None = None

    def subscribe(self, events: EventSource) -> None:
        """Outcomes arrive on the connection that reads events (the dialler's own user
        reads none)."""
        events.subscribe("UserEvent", self.on_user_event)
        events.subscribe("OriginateResponse", self.on_originate_response)

    def poke(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="callback-dialer")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await woken_or_timeout(self._wake, self._tick)
            try:
                await self.close_lost_attempts()
                if self._ami.connected and self._roster.state.loaded and self._view.ready:
                    await self.dial_due()
                self.last_error = None
            except Exception as error:  # the next tick tries again
                self.last_error = repr(error)
                log.exception("callback dialer pass failed")

    # -- dialling ------------------------------------------------------------------------------

    async def dial_due(self) -> int:
        now = self._clock.now()
        self._reserved = {interface: held for interface, held in self._reserved.items()
                          if now - held[2] < self._lost_after}
        async with self._sessions() as session:
            due = list(await session.scalars(
                select(CallbackTask).where(CallbackTask.state == CallbackState.PENDING,
                                           CallbackTask.number.is_not(None),
                                           CallbackTask.next_attempt_at <= now)
                .order_by(CallbackTask.urgent.desc(), CallbackTask.untranscribed.desc(),
                          CallbackTask.requested_at)))
            dialing: dict[str, int] = {site: count for site, count in (await session.execute(
                select(CallbackTask.site_code, func.count()).where(
                    CallbackTask.state == CallbackState.DIALING)
                .group_by(CallbackTask.site_code))).all()}
        sent = 0
        for task in due:
            if dialing.get(task.site_code, 0) >= self._max_dialing and not task.urgent:
                continue
            queue = task.queue if task.source == "queue" else None
            seat = callback_counsellor(self.free_seats(task.site_code, queue),
                                       urgent=task.urgent,
                                       assigned=task.assigned_counsellor_id,
                                       callers_waiting=self._callers_ahead(task))
            if seat is None:
                continue
            attempt = await self._claim(task.id, task.attempts_made, seat, now)
            if attempt is None:
                continue
            dialing[task.site_code] = dialing.get(task.site_code, 0) + 1
            self._reserved[seat.interface] = (task.id, attempt.number, now)
            await self._originate(task, attempt, seat)
            sent += 1
        return sent

    def free_seats(self, site_code: str, queue_name: str | None = None) -> list[CallbackSeat]:
        """Counsellors free for a callback: in one of the site's queues (in that queue, for a
        caller who left it), not paused, not in a call, their phone idle."""
        seats: dict[int, CallbackSeat] = {}
        now = self._clock.now()
        for queue in self._roster.state.queues.values():
            if queue.site_code != site_code or queue_name not in (None, queue.name):
                continue
            for interface, member in self._view.members.get(queue.name, {}).items():
                counsellor = self._roster.counsellor(interface)
                if (counsellor is None or member.paused or member.busy
                        or member.status != "NOT_INUSE" or interface in self._reserved
                        or self._view.in_call(interface)
                        or self._in_wrapup(interface, queue.wrapup_seconds, now)):
                    continue
                seats[counsellor.id] = CallbackSeat(counsellor.id, interface, counsellor.tier)
        return list(seats.values())

    def _in_wrapup(self, interface: str, queue_wrapup: int | None, now: datetime) -> bool:
        """Their last call ended less than the wrap-up time ago: app_queue leaves them
        alone, and so does the dialler."""
        activity = self._view.activity.get(interface)
        finished = activity.last_complete_at if activity is not None else None
        wrapup = self._wrapup if queue_wrapup is None else queue_wrapup
        return finished is not None and (now - finished).total_seconds() < wrapup

    def _callers_ahead(self, task: CallbackTask) -> bool:
        """Live callers go first — for a caller who left a queue to be called back, only
        those who joined it before them (they keep their place)."""
        if task.source == "queue" and task.queue:
            return any(waiting.joined_at < task.requested_at
                       for waiting in self._view.waiting.get(task.queue, {}).values())
        return any(self._view.waiting.get(queue.name)
                   for queue in self._roster.state.queues.values()
                   if queue.site_code == task.site_code)

    async def _claim(self, task_id: int, attempts_made: int, seat: CallbackSeat,
                     now: datetime) -> CallbackAttempt | None:
        """Insert the attempt and move the task to dialing, or nothing (another node did)."""
        try:
            async with self._sessions() as session:
                moved = await session.execute(
                    update(CallbackTask)
                    .where(CallbackTask.id == task_id, CallbackTask.state == CallbackState.PENDING,
                           CallbackTask.attempts_made == attempts_made)
                    .values(state=CallbackState.DIALING))
                if not getattr(moved, "rowcount", 0):
                    await session.rollback()
                    return None
                number = 1 + int(await session.scalar(select(func.count()).where(
                    CallbackAttempt.task_id == task_id)) or 0)
                task = await session.get_one(CallbackTask, task_id)
                attempt = CallbackAttempt(
                    task_id=task_id, number=number, node=self._node, claimed_at=now,
                    counsellor_id=seat.counsellor_id, dialed_number=task.number,
                    action_id=f"{ACTION_PREFIX}{task_id}-{number}")
                session.add(attempt)
                await session.commit()
                return attempt
        except IntegrityError:
            return None

    async def _originate(self, task: CallbackTask, attempt: CallbackAttempt,
                         seat: CallbackSeat) -> None:
        number = task.number or ""
        async with self._sessions() as session:
            caller_id = await session.scalar(select(Site.callback_caller_id).where(
                Site.code == task.site_code))
        if not PHONE_NUMBER.match(number):
            await self.finish(task.id, attempt.number, Outcome.INVALID_NUMBER,
                              f"not a phone number: {number!r}")
            return
        variables = [f"HOTLINE_CALLBACK_TASK={task.id}",
                     f"HOTLINE_CALLBACK_ATTEMPT={attempt.number}",
                     f"HOTLINE_CALLBACK_NUMBER={number}",
                     f"HOTLINE_CALLBACK_CALLERID={caller_id or ''}",
                     f"HOTLINE_SITE={task.site_code}"]
        action: dict[str, str | list[str]] = {
            "Action": "Originate", "ActionID": attempt.action_id or "",
            "Channel": seat.interface, "Context": "hotline-callback", "Exten": "s",
            "Priority": "1", "Timeout": self._ring_ms, "Async": "true",
            # The counsellor's phone shows whom they are calling back.
            "CallerID": f'"回拨留言" <{number}>', "Variable": variables}
        try:
            # The first answer ("queued") is all this connection gets: its user reads no
            # events; the OriginateResponse reaches the backend's own connection.
            reply = await self._ami.action(action, as_list=False)
            ok = not isinstance(reply, list) and bool(reply.success)
            detail = "" if isinstance(reply, list) else str(reply.get("Message", ""))
        except Exception as error:  # no answer, a timeout, the connection lost
            # It may have run: never re-sent; its outcome or the lost timeout closes it.
            log.warning("callback originate unanswered", task=task.id, error=repr(error))
            return
        if not ok:
            await self.finish(task.id, attempt.number, "counsellor_unavailable",
                              f"Originate refused: {detail}")
            return
        self.dialled += 1
        log.info("callback dialling", task=task.id, attempt=attempt.number,
                 counsellor=seat.counsellor_id, urgent=task.urgent)

    # -- outcomes ------------------------------------------------------------------------------

    async def on_user_event(self, message: Message) -> None:
        if str(message.get("UserEvent", "")) != "HotlineCallback":
            return
        try:
            task_id, number = int(message["Task"]), int(message["Attempt"])
        except (KeyError, TypeError, ValueError):
            return
        outcome = str(message.get("Outcome", "") or "")
        status = str(message.get("DialStatus", "") or "")
        cause = str(message.get("Cause", "") or "")
        if not outcome:
            if status == "ANSWER":
                return  # the safety check already said reached or not_safe
            outcome = (Outcome.INVALID_NUMBER if status == "CHANUNAVAIL" and cause == "1"
                       else _DIAL_OUTCOMES.get(status, Outcome.FAILED))
        await self.finish(task_id, number, outcome, f"{status} {cause}".strip())

    async def on_originate_response(self, message: Message) -> None:
        action_id = str(message.get("ActionID", "") or "")
        if not action_id.startswith(ACTION_PREFIX) or message.get("Response") == "Success":
            return
        try:
            task_id, number = (int(part) for part in
                               action_id.removeprefix(ACTION_PREFIX).split("-", 1))
        except ValueError:
            return
        await self.finish(task_id, number, "counsellor_unavailable",
                          f"the counsellor's phone did not answer ({message.get('Reason')})")

    async def finish(self, task_id: int, number: int, outcome: str, detail: str = "") -> None:
        """Close an attempt (once) and decide the task's next step."""
        now = self._clock.now()
        async with self._sessions() as session:
            attempt = await session.scalar(select(CallbackAttempt).where(
                CallbackAttempt.task_id == task_id, CallbackAttempt.number == number))
            if attempt is None or attempt.outcome is not None:
                return
            attempt.outcome, attempt.detail, attempt.ended_at = str(outcome), detail, now
            task = await session.get_one(CallbackTask, task_id)
            await self._next_step(session, task, str(outcome), now)
            await session.commit()
            state, next_at = task.state, task.next_attempt_at
        self._reserved = {interface: held for interface, held in self._reserved.items()
                          if held[:2] != (task_id, number)}
        log.info("callback attempt ended", task=task_id, attempt=number, outcome=str(outcome),
                 state=str(state), next_attempt_at=next_at)
        self.poke()

    async def _next_step(self, session: AsyncSession, task: CallbackTask, outcome: str,
                         now: datetime) -> None:
        if outcome == "counsellor_unavailable":
            # Not the caller's attempt: someone else soon.
            task.state, task.next_attempt_at = CallbackState.PENDING, now + COUNSELLOR_RETRY
            return
        task.attempts_made += 1
        task.outcome = outcome
        if outcome == Outcome.REACHED:
            task.state, task.closed_at, task.next_attempt_at = CallbackState.DONE, now, None
            return
        site = await session.scalar(select(Site).where(Site.code == task.site_code))
        policy = RetryPolicy(max_attempts=site.callback_max_attempts if site else 3,
                             spacing=timedelta(minutes=site.callback_retry_minutes
                                               if site else 30))
        rules = self._routing.site(task.site_code).rules
        following = None
        if outcome not in FINAL_OUTCOMES:
            # lost, or anything else unknown, is retried as a failure of ours
            known = Outcome(outcome) if outcome in _OUTCOME_VALUES else Outcome.FAILED
            following = next_attempt_at(
                policy, task.attempts_made, local_time(now, rules.timezone), known,
                weekly=rules.hours.site, calendar=self._routing.state.calendar,
                overrides=overrides_by_date(rules.hours.overrides))
        if following is None:
            task.state, task.closed_at, task.next_attempt_at = CallbackState.CLOSED, now, None
        else:
            task.state, task.next_attempt_at = CallbackState.PENDING, following

    async def close_lost_attempts(self) -> int:
        """Attempts whose outcome never came (a node died, an event was lost)."""
        cutoff = self._clock.now() - self._lost_after
        async with self._sessions() as session:
            lost = [(task_id, number) for task_id, number in (await session.execute(
                select(CallbackAttempt.task_id, CallbackAttempt.number).where(
                    CallbackAttempt.outcome.is_(None), CallbackAttempt.claimed_at < cutoff)
            )).all()]
        for task_id, number in lost:
            await self.finish(task_id, number, "lost", "no outcome reached the backend")
        return len(lost)


def attempt_json(row: CallbackAttempt) -> dict[str, Any]:
    return {"number": row.number, "node": row.node, "claimed_at": row.claimed_at.isoformat(),
            "counsellor_id": row.counsellor_id, "dialed_number": row.dialed_number,
            "outcome": row.outcome, "detail": row.detail,
            "ended_at": row.ended_at.isoformat() if row.ended_at else None}
