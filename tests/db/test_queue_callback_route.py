"""The `queue-callback` FastAGI route: a caller in a consultation queue pressed 1. Never in
the crisis queue, never for a withheld number; otherwise a task dated from the queue join."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from agi.queue_callback import QueueCallbackRoute
from hotline.calls.storage import CallJournal
from hotline.clock import Clock
from hotline.db.engine import session_factory
from hotline.db.models import CallbackTask
from hotline.demo import seed_demo
from hotline.rules.published import RoutingTable
from voicemail.queue_callbacks import QueueCallbacks

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


class Channel:
    """What the route reads and writes of a FastAGI session."""

    def __init__(self, *args: str) -> None:
        self.args = list(args)
        self.headers: dict[str, str] = {}
        self.variables: dict[str, str] = {}

    async def set_variables(self, values: dict[str, str]) -> None:
        self.variables.update(values)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def route(engine: AsyncEngine) -> tuple[QueueCallbackRoute, CallJournal]:
    sessions = session_factory(engine)
    async with sessions() as session:
        await seed_demo(session, site_code="default", now=NOW)
    clock = Clock(fixed=NOW)
    routing = RoutingTable(sessions=sessions, clock=clock, default_site="default",
                           crisis_priority=10)
    await routing.reload_quietly()
    journal = CallJournal(engine=engine, node="pbx1")
    return QueueCallbackRoute(requests=QueueCallbacks(sessions=sessions, clock=clock),
                              journal=journal, clock=clock, routing=routing), journal


async def tasks(engine: AsyncEngine) -> list[CallbackTask]:
    async with session_factory(engine)() as session:
        return list(await session.scalars(select(CallbackTask)))


async def test_a_caller_in_psych_gets_a_task_dated_from_the_queue_join(
        engine: AsyncEngine) -> None:
    handler, journal = await route(engine)
    joined = NOW - timedelta(minutes=3)
    channel = Channel("1764470000.5", "default", "psych", str(int(joined.timestamp())),
                      b64("13912345678"))
    await handler(channel)
    [task] = await tasks(engine)
    assert channel.variables == {"HOTLINE_CALLBACK_TASK": str(task.id)}
    assert (task.source, task.queue, task.number) == ("queue", "psych", "13912345678")
    assert task.requested_at == joined and task.due_at == NOW
    assert task.call_id == journal.call_id("1764470000.5")


async def test_never_in_the_crisis_queue_nor_for_a_withheld_number(engine: AsyncEngine) -> None:
    handler, _ = await route(engine)
    crisis = Channel("1.1", "default", "crisis", "1764470000", b64("13912345678"))
    withheld = Channel("1.2", "default", "legal", "1764470000", b64("anonymous"))
    garbage = Channel("1.3", "default", "psych", "soon", "@@not base64@@")
    for channel in (crisis, withheld, garbage):
        await handler(channel)
        assert "HOTLINE_CALLBACK_TASK" not in channel.variables
        assert channel.variables["HOTLINE_CALLBACK_REFUSED"]
    assert await tasks(engine) == []
