"""The FastAGI server's own metrics: time per AGI step, SQL run inside a session.

Sessions run over a real TCP connection with a scripted Asterisk (tests/unit/test_fastagi.py);
the SQL runs on a real SQLite file through the same async engine the backend uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from agi.fastagi import AgiChannel, FastAgiServer
from agi.metrics import END, STEP_BUCKETS, AgiMetrics, command_kind
from hotline.db.engine import create_engine_for
from tests.unit.test_fastagi import Peer, close_peers, header_block, wait_idle

__all__ = ["close_peers"]  # the autouse fixture closing the scripted peers

ASTERISK_THINKS = 0.15  # seconds the scripted Asterisk waits before each answer


def steps_counted(metrics: AgiMetrics, route: str) -> float:
    value = metrics.registry.get_sample_value("hotline_agi_step_seconds_count",
                                              {"route": route})
    return value or 0.0


def queries_counted(metrics: AgiMetrics, route: str) -> float:
    value = metrics.registry.get_sample_value("hotline_agi_db_queries_total", {"route": route})
    return value or 0.0


def statements_counted(metrics: AgiMetrics) -> float:
    return metrics.registry.get_sample_value("hotline_db_statements_total") or 0.0


@pytest.fixture
def metrics() -> AgiMetrics:
    return AgiMetrics(keep_samples=True)


@pytest.fixture
async def server(metrics: AgiMetrics) -> AsyncIterator[FastAgiServer]:
    srv = FastAgiServer(host="127.0.0.1", port=0, header_timeout=1.0, command_timeout=2.0,
                        metrics=metrics)
    await srv.start()
    yield srv
    await srv.close()


@pytest.fixture
async def engine(tmp_path: Path, metrics: AgiMetrics) -> AsyncIterator[AsyncEngine]:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'metrics.sqlite3'}")
    metrics.watch_engine(engine)
    yield engine
    await engine.dispose()


async def answer_slowly(peer: Peer, command: str, answer: str) -> None:
    await peer.expect(command)
    await asyncio.sleep(ASTERISK_THINKS)
    await peer.reply(answer)


async def test_every_step_is_timed_and_only_the_backends_share_counts(
        server: FastAgiServer, metrics: AgiMetrics) -> None:
    sessions_seen: list[float | None] = []

    async def ivr(channel: AgiChannel) -> None:
        sessions_seen.append(metrics.registry.get_sample_value("hotline_agi_sessions"))
        await channel.stream_file("hotline/welcome", "0123456789")
        await channel.get_data("hotline/menu", 5000, 1)
        await asyncio.sleep(0.05)  # the backend thinks: this step must show it
        await channel.set_variables({"HOTLINE_ROUTE": "queue", "HOTLINE_QUEUE": "psych"})

    server.add_route("ivr", ivr)
    peer = await Peer.connect(server.port)
    await peer.send(header_block("ivr"))
    await answer_slowly(peer, 'STREAM FILE "hotline/welcome" "0123456789"', "200 result=0")
    await answer_slowly(peer, 'GET DATA "hotline/menu" 5000 1', "200 result=5")
    await answer_slowly(peer, 'EXEC MSet "HOTLINE_ROUTE=queue,HOTLINE_QUEUE=psych"',
                        "200 result=0")
    assert await peer.closed_by_server()
    await wait_idle(server)

    # three commands, and the last step from the MSet's answer to the route's return
    assert steps_counted(metrics, "ivr") == 4
    assert sessions_seen == [1.0]
    assert metrics.registry.get_sample_value("hotline_agi_sessions") == 0.0
    assert metrics.samples is not None
    samples = list(metrics.samples)
    assert [(route, step, kind) for route, step, kind, _ in samples] == [
        ("ivr", 1, "STREAM FILE"), ("ivr", 2, "GET DATA"), ("ivr", 3, "EXEC MSet"),
        ("ivr", 4, END)]
    durations = [seconds for *_, seconds in samples]
    assert all(seconds >= 0 for seconds in durations)
    # Asterisk's 150 ms per answer is not the backend's time; the 50 ms sleep is.
    assert durations[2] >= 0.05
    assert all(seconds < 0.05 for i, seconds in enumerate(durations) if i != 2), durations
    total = metrics.registry.get_sample_value("hotline_agi_step_seconds_sum", {"route": "ivr"})
    assert total == pytest.approx(sum(durations))
    assert metrics.registry.get_sample_value(
        "hotline_agi_step_seconds_bucket", {"route": "ivr", "le": str(STEP_BUCKETS[0])}) is not None


async def test_a_hangup_ends_the_last_step_and_samples_are_off_by_default() -> None:
    metrics = AgiMetrics()
    server = FastAgiServer(host="127.0.0.1", port=0, header_timeout=1.0, command_timeout=1.0,
                           metrics=metrics)
    await server.start()
    try:
        async def ivr(channel: AgiChannel) -> None:
            await channel.stream_file("hotline/welcome")

        server.add_route("ivr", ivr)
        peer = await Peer.connect(server.port)
        await peer.send(header_block("ivr"))
        await peer.expect('STREAM FILE "hotline/welcome" ""')
        await peer.reply("HANGUP")
        assert await peer.closed_by_server()
        await wait_idle(server)
    finally:
        await server.close()
    assert steps_counted(metrics, "ivr") == 2  # to the command, then from HANGUP to the end
    assert metrics.samples is None


async def test_sql_in_the_session_task_is_counted_and_other_tasks_are_not(
        server: FastAgiServer, metrics: AgiMetrics, engine: AsyncEngine) -> None:
    session_running = asyncio.Event()
    other_task_done = asyncio.Event()

    async def journal_like_writer() -> None:
        # created before the session, runs while the session runs (like the call journal)
        await session_running.wait()
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 2"))
        other_task_done.set()

    writer = asyncio.create_task(journal_like_writer())

    async def lookup(channel: AgiChannel) -> None:
        session_running.set()
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        await other_task_done.wait()
        await channel.set_variable("HOTLINE_ROUTE", "queue")

    server.add_route("lookup", lookup)
    peer = await Peer.connect(server.port)
    await peer.send(header_block("lookup"))
    await peer.expect('SET VARIABLE HOTLINE_ROUTE "queue"')
    await peer.reply("200 result=1")
    assert await peer.closed_by_server()
    await wait_idle(server)
    await writer
    assert queries_counted(metrics, "lookup") == 1
    assert statements_counted(metrics) == 2  # the listener saw both


async def test_no_session_no_count(metrics: AgiMetrics, engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    assert statements_counted(metrics) == 1
    assert queries_counted(metrics, "ivr") == 0
    metrics.unwatch_engine(engine)
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    assert statements_counted(metrics) == 1


@pytest.mark.parametrize(("line", "kind"), [
    ('STREAM FILE "hotline/welcome" "0123456789"', "STREAM FILE"),
    ('GET DATA "hotline/menu" 5000 1', "GET DATA"),
    ('EXEC MSet "A=1"', "EXEC MSet"), ("EXEC Hangup", "EXEC Hangup"),
    ('SET VARIABLE HOTLINE_ROUTE "queue"', "SET VARIABLE"), ("ANSWER", "ANSWER"),
    ("WAIT FOR DIGIT 3000", "WAIT FOR DIGIT"), ('VERBOSE "x" 1', "VERBOSE"),
])
def test_command_kind(line: str, kind: str) -> None:
    assert command_kind(line) == kind


def test_the_sample_ring_is_bounded() -> None:
    metrics = AgiMetrics(keep_samples=True, max_samples=3)
    for _ in range(5):
        timer = metrics.session("ivr", 0.0)
        timer.session_ended()
    assert metrics.samples is not None and len(metrics.samples) == 3
    metrics.clear_samples()
    assert len(metrics.samples) == 0
    assert steps_counted(metrics, "ivr") == 5
