"""SQL run inside a FastAGI session is counted on SQLite and PostgreSQL alike (the session
is found through the greenlet SQLAlchemy's asyncio layer runs the driver in); SQL from a
task that already ran (the call journal's writer) is not."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from agi.fastagi import AgiChannel, FastAgiServer
from agi.metrics import AgiMetrics
from tests.unit.test_fastagi import Peer, close_peers, header_block, wait_idle

__all__ = ["close_peers"]


async def test_session_sql_is_counted_and_the_journals_is_not(engine: AsyncEngine) -> None:
    metrics = AgiMetrics()
    metrics.watch_engine(engine)
    server = FastAgiServer(host="127.0.0.1", port=0, header_timeout=1.0, command_timeout=2.0,
                           metrics=metrics)
    session_running, writer_done = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        await session_running.wait()
        async with engine.begin() as connection:
            await connection.execute(text("SELECT 2"))
            await connection.execute(text("SELECT 3"))
        writer_done.set()

    async def lookup(channel: AgiChannel) -> None:
        session_running.set()
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        await writer_done.wait()
        await channel.set_variable("HOTLINE_ROUTE", "queue")

    writer_task = asyncio.create_task(writer())
    server.add_route("lookup", lookup)
    await server.start()
    try:
        peer = await Peer.connect(server.port)
        await peer.send(header_block("lookup"))
        await peer.expect('SET VARIABLE HOTLINE_ROUTE "queue"')
        await peer.reply("200 result=1")
        assert await peer.closed_by_server()
        await wait_idle(server)
        await writer_task
    finally:
        await server.close()
        metrics.unwatch_engine(engine)
    registry = metrics.registry
    assert registry.get_sample_value("hotline_agi_db_queries_total", {"route": "lookup"}) == 1
    assert registry.get_sample_value("hotline_db_statements_total") == 3
