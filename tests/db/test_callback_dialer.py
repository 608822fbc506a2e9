"""The callback dialler on SQLite and PostgreSQL: one dial per attempt across two nodes,
who dials, the outcomes the dialplan reports, retries inside service hours, lost attempts.
Asterisk is a stand-in here (it records Originates); the real calls are in
tests/integration/test_voicemail.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from panoramisk.message import Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ami_listener.queue_view import MemberView, QueueView
from hotline.clock import Clock
from hotline.db.engine import session_factory
from hotline.db.models import CallbackAttempt, CallbackState, CallbackTask, Site
from hotline.demo import seed_demo
from hotline.rules.published import RoutingTable
from hotline.staffing.roster import Roster
from voicemail.dialer import CallbackDialer

# Monday 2026-11-30 10:00 in Shanghai (the default rules: open 08:00–22:00).
NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


class StandInAsterisk:
    """Accepts every Originate (as Asterisk does for an async one) and records it."""

    connected = True

    def __init__(self) -> None:
        self.originates: list[dict[str, Any]] = []

    async def action(self, action: dict[str, Any], *, as_list: bool | None = None) -> Message:
        assert as_list is False  # the dialler's user reads no events: never wait for one
        self.originates.append(dict(action))
        return Message({"Response": "Success", "Message": "Originate successfully queued"})

    def subscribe(self, _pattern: str, _callback: Any) -> None:
        pass


async def setup(engine: AsyncEngine, *, node: str = "node-a", now: datetime = NOW,
                free: tuple[str, ...] = ("c1001", "c1002")
                ) -> tuple[CallbackDialer, StandInAsterisk, QueueView]:
    sessions = session_factory(engine)
    async with sessions() as session:
        if await session.scalar(select(Site.id)) is None:
            await seed_demo(session, site_code="default", now=now)
    clock = Clock(fixed=now)
    roster = Roster(sessions=sessions, clock=clock)
    await roster.load()
    view = QueueView(clock=clock)
    view.ready = True
    for queue in ("crisis", "psych", "legal"):
        for user in free:
            view.set_member(MemberView(queue, f"PJSIP/{user}", user, status="NOT_INUSE"))
    asterisk = StandInAsterisk()
    routing = RoutingTable(sessions=sessions, clock=clock, default_site="default",
                           crisis_priority=10)
    dialer = CallbackDialer(sessions=sessions, clock=clock, ami=asterisk,  # type: ignore[arg-type]
                            view=view, roster=roster, routing=routing, node=node)
    return dialer, asterisk, view


async def add_task(engine: AsyncEngine, *, number: str | None = "13912345678",
                   urgent: bool = False, due: datetime = NOW) -> int:
    async with session_factory(engine)() as session:
        task = CallbackTask(site_code="default", number=number, urgent=urgent,
                            created_at=due, requested_at=due - timedelta(hours=10), due_at=due,
                            next_attempt_at=due if number else None)
        session.add(task)
        await session.commit()
        return task.id


async def task_and_attempts(engine: AsyncEngine,
                            task_id: int) -> tuple[CallbackTask, list[CallbackAttempt]]:
    async with session_factory(engine)() as session:
        task = await session.get_one(CallbackTask, task_id)
        attempts = list(await session.scalars(select(CallbackAttempt).where(
            CallbackAttempt.task_id == task_id).order_by(CallbackAttempt.number)))
        return task, attempts


def user_event(task: int, attempt: int, **headers: str) -> Message:
    return Message({"Event": "UserEvent", "UserEvent": "HotlineCallback", "Task": str(task),
                    "Attempt": str(attempt), **headers})


async def test_a_due_callback_is_dialled_once_from_a_consultation_seat(engine: AsyncEngine) -> None:
    dialer, asterisk, _ = await setup(engine)
    task_id = await add_task(engine)
    assert await dialer.dial_due() == 1
    [originate] = asterisk.originates
    assert originate["Channel"] == "PJSIP/c1002"  # consultation: specialists stay free
    assert originate["Context"] == "hotline-callback" and originate["Async"] == "true"
    assert f"HOTLINE_CALLBACK_TASK={task_id}" in originate["Variable"]
    assert "HOTLINE_CALLBACK_NUMBER=13912345678" in originate["Variable"]
    task, [attempt] = await task_and_attempts(engine, task_id)
    assert task.state == CallbackState.DIALING and attempt.number == 1
    assert attempt.action_id == originate["ActionID"]
    # Dialling already: the next pass sends nothing.
    assert await dialer.dial_due() == 0 and len(asterisk.originates) == 1


async def test_two_nodes_claim_one_attempt_between_them(engine: AsyncEngine) -> None:
    a, asterisk_a, _ = await setup(engine, node="node-a")
    b, asterisk_b, _ = await setup(engine, node="node-b")
    task_id = await add_task(engine)
    import asyncio

    sent = await asyncio.gather(a.dial_due(), b.dial_due())
    assert sorted(sent) == [0, 1]
    assert len(asterisk_a.originates) + len(asterisk_b.originates) == 1
    _, attempts = await task_and_attempts(engine, task_id)
    assert len(attempts) == 1


async def test_reached_closes_the_task_and_the_dial_status_that_follows_is_ignored(
        engine: AsyncEngine) -> None:
    dialer, _, _ = await setup(engine)
    task_id = await add_task(engine)
    await dialer.dial_due()
    await dialer.on_user_event(user_event(task_id, 1, Outcome="reached"))
    await dialer.on_user_event(user_event(task_id, 1, DialStatus="ANSWER", Cause="16"))
    task, [attempt] = await task_and_attempts(engine, task_id)
    assert task.state == CallbackState.DONE and task.outcome == "reached"
    assert attempt.outcome == "reached" and task.attempts_made == 1


async def test_no_answer_is_retried_after_the_spacing_then_closed_after_three(
        engine: AsyncEngine) -> None:
    dialer, _, _ = await setup(engine)
    task_id = await add_task(engine)
    for attempt in (1, 2, 3):
        assert await dialer.dial_due() == 1
        await dialer.on_user_event(user_event(task_id, attempt, DialStatus="NOANSWER"))
        task, _ = await task_and_attempts(engine, task_id)
        if attempt < 3:
            assert task.state == CallbackState.PENDING
            assert task.next_attempt_at == NOW + timedelta(minutes=30)
            async with session_factory(engine)() as session:  # 30 minutes later
                row = await session.get_one(CallbackTask, task_id)
                row.next_attempt_at = NOW
                await session.commit()
    task, attempts = await task_and_attempts(engine, task_id)
    assert task.state == CallbackState.CLOSED and task.attempts_made == 3
    assert [a.outcome for a in attempts] == ["no_answer"] * 3


async def test_a_retry_falls_at_the_next_opening_outside_service_hours(
        engine: AsyncEngine) -> None:
    late = datetime(2026, 11, 30, 13, 50, tzinfo=UTC)  # 21:50 in Shanghai
    dialer, _, _ = await setup(engine, now=late)
    task_id = await add_task(engine, due=late)
    await dialer.dial_due()
    await dialer.on_user_event(user_event(task_id, 1, DialStatus="BUSY"))
    task, _ = await task_and_attempts(engine, task_id)
    assert task.outcome == "busy"
    assert task.next_attempt_at == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # 08:00 Tuesday


async def test_not_safe_and_an_unallocated_number_end_the_task(engine: AsyncEngine) -> None:
    dialer, _, _ = await setup(engine)
    unsafe, invalid = await add_task(engine), await add_task(engine, number="13900000000")
    await dialer.dial_due()
    await dialer.on_user_event(user_event(unsafe, 1, Outcome="not_safe"))
    await dialer.on_user_event(user_event(invalid, 1, DialStatus="CHANUNAVAIL", Cause="1"))
    for task_id, outcome in ((unsafe, "not_safe"), (invalid, "invalid_number")):
        task, _ = await task_and_attempts(engine, task_id)
        assert (task.state, task.outcome) == (CallbackState.CLOSED, outcome)


async def test_a_counsellor_who_does_not_pick_up_costs_the_caller_no_attempt(
        engine: AsyncEngine) -> None:
    dialer, asterisk, _ = await setup(engine)
    task_id = await add_task(engine)
    await dialer.dial_due()
    action_id = asterisk.originates[0]["ActionID"]
    await dialer.on_originate_response(Message({
        "Event": "OriginateResponse", "ActionID": action_id, "Response": "Failure",
        "Reason": "3"}))
    task, [attempt] = await task_and_attempts(engine, task_id)
    assert attempt.outcome == "counsellor_unavailable"
    assert task.state == CallbackState.PENDING and task.attempts_made == 0
    assert task.next_attempt_at == NOW + timedelta(minutes=1)


async def test_routine_callbacks_wait_while_callers_wait_urgent_ones_do_not(
        engine: AsyncEngine) -> None:
    from ami_listener.queue_view import WaitingCaller

    dialer, asterisk, view = await setup(engine)
    routine, urgent = await add_task(engine), await add_task(engine, urgent=True)
    view.waiting["psych"] = {"1.1": WaitingCaller("1.1", "1.1", "psych", NOW)}
    assert await dialer.dial_due() == 1
    [originate] = asterisk.originates
    assert f"HOTLINE_CALLBACK_TASK={urgent}" in originate["Variable"]
    assert originate["Channel"] == "PJSIP/c1001"  # the high-risk specialist
    task, _ = await task_and_attempts(engine, routine)
    assert task.state == CallbackState.PENDING


async def test_nobody_free_nothing_dialled_and_a_task_without_number_never(
        engine: AsyncEngine) -> None:
    dialer, asterisk, _ = await setup(engine, free=())
    await add_task(engine)
    await add_task(engine, number=None)
    assert await dialer.dial_due() == 0 and asterisk.originates == []


async def test_an_attempt_whose_outcome_never_came_is_closed_as_lost_not_redialled(
        engine: AsyncEngine) -> None:
    dialer, asterisk, _ = await setup(engine)
    task_id = await add_task(engine)
    await dialer.dial_due()
    later, _, _ = await setup(engine, now=NOW + timedelta(minutes=11))
    assert await later.close_lost_attempts() == 1
    task, [attempt] = await task_and_attempts(engine, task_id)
    assert attempt.outcome == "lost" and task.attempts_made == 1
    assert task.state == CallbackState.PENDING
    assert task.next_attempt_at == NOW + timedelta(minutes=41)
    assert len(asterisk.originates) == 1


async def test_a_caller_who_left_the_queue_is_called_back_in_their_turn(
        engine: AsyncEngine) -> None:
    from ami_listener.queue_view import WaitingCaller

    dialer, asterisk, view = await setup(engine)
    async with session_factory(engine)() as session:
        task = CallbackTask(site_code="default", source="queue", queue="psych",
                            number="13912345678", created_at=NOW,
                            requested_at=NOW - timedelta(minutes=2), due_at=NOW,
                            next_attempt_at=NOW)
        session.add(task)
        await session.commit()
        task_id = task.id
    # Someone who joined before them still waits: not yet.
    view.waiting["psych"] = {"1.1": WaitingCaller("1.1", "1.1", "psych",
                                                  NOW - timedelta(minutes=3))}
    assert await dialer.dial_due() == 0
    # Only callers who joined after them: their turn.
    view.waiting["psych"] = {"1.2": WaitingCaller("1.2", "1.2", "psych",
                                                  NOW - timedelta(minutes=1))}
    assert await dialer.dial_due() == 1
    assert f"HOTLINE_CALLBACK_TASK={task_id}" in asterisk.originates[0]["Variable"]


async def test_a_counsellor_in_wrap_up_is_left_alone(engine: AsyncEngine) -> None:
    from ami_listener.queue_view import AgentActivity

    dialer, _asterisk, view = await setup(engine, free=("c1002",))
    await add_task(engine)
    view.activity["PJSIP/c1002"] = AgentActivity(last_complete_at=NOW - timedelta(seconds=4))
    assert await dialer.dial_due() == 0
    view.activity["PJSIP/c1002"] = AgentActivity(last_complete_at=NOW - timedelta(seconds=11))
    assert await dialer.dial_due() == 1
