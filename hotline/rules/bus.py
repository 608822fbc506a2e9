"""Tells every backend node that the published rules changed (Redis pub/sub).

The message only says "reload": each node reads the rules from the database itself. When
Redis is down the message is lost, so every node also reloads every `refresh_seconds`;
the node that published reloads at once without waiting for the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

import redis.asyncio as redis
import structlog

log = structlog.get_logger(__name__)


class RulesBus:
    def __init__(self, *, url: str, prefix: str, node: str, timeout: float,
                 on_change: Callable[[], Awaitable[None]], refresh_seconds: float = 60.0,
                 retry_seconds: float = 2.0) -> None:
        self._url = url
        self.channel = f"{prefix}rules"
        self._node = node
        self._timeout = timeout
        self._on_change = on_change
        self._refresh_seconds = refresh_seconds
        self._retry_seconds = retry_seconds
        self._client = redis.Redis.from_url(url, socket_timeout=timeout,
                                            socket_connect_timeout=timeout,
                                            decode_responses=True)
        self._tasks: list[asyncio.Task[None]] = []
        self.messages = 0

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(), name="rules-bus"),
                       asyncio.create_task(self._refresh(), name="rules-refresh")]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._client.aclose()

    async def announce(self, site: str | None) -> None:
        """Tell the other nodes; a failure only delays them until their next refresh."""
        try:
            await self._client.publish(self.channel, json.dumps({"site": site,
                                                                 "node": self._node}))
        except (redis.RedisError, OSError) as error:
            log.warning("rules change not announced; other nodes reload on their timer",
                        error=repr(error))

    async def _listen(self) -> None:
        while True:
            # A subscription blocks on reads: its own client, without the socket timeout.
            client = redis.Redis.from_url(self._url, socket_connect_timeout=self._timeout,
                                          decode_responses=True)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                # Changes made while we were not listening.
                await self._on_change()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    self.messages += 1
                    try:
                        sender = json.loads(message["data"]).get("node")
                    except (ValueError, AttributeError):
                        sender = None
                    if sender != self._node:
                        await self._on_change()
            except (redis.RedisError, OSError) as error:
                log.info("rules bus disconnected; retrying", error=repr(error))
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(self._retry_seconds)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            await self._on_change()
