"""Live state in Redis: active calls and a pub/sub channel for the web.

Live state is a view, never a dependency of a call: updates are queued and written by
one owned task in pipelines; when Redis is down they are dropped (and counted), and the
next reconciliation rebuilds the view.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import redis.asyncio as redis
import structlog

log = structlog.get_logger(__name__)


class LiveState:
    def __init__(self, *, url: str, prefix: str = "hotline:", timeout: float = 0.5,
                 max_pending: int = 50_000) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=timeout,
                                            socket_connect_timeout=timeout,
                                            decode_responses=True)
        self.prefix = prefix
        self._queue: asyncio.Queue[tuple[str, str, dict[str, Any] | None]] = asyncio.Queue()
        self._max_pending = max_pending
        self._task: asyncio.Task[None] | None = None
        # This node's active calls, merged: the process is their only writer.
        self._active: dict[str, dict[str, Any]] = {}
        self.dropped = 0
        self.last_error: str | None = None

    @property
    def active_calls_key(self) -> str:
        return f"{self.prefix}calls:active"

    @property
    def events_channel(self) -> str:
        return f"{self.prefix}events"

    def call_changed(self, call_id: str, data: dict[str, Any]) -> None:
        self._enqueue(("changed", call_id, data))

    def call_ended(self, call_id: str) -> None:
        self._enqueue(("ended", call_id, None))

    def _enqueue(self, item: tuple[str, str, dict[str, Any] | None]) -> None:
        if self._queue.qsize() >= self._max_pending:
            self.dropped += 1
            return
        self._queue.put_nowait(item)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-state")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._client.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (redis.RedisError, OSError) as error:
            self.last_error = repr(error)
            return False

    async def active_calls(self) -> dict[str, dict[str, Any]]:
        raw = await self._client.hgetall(self.active_calls_key)
        return {str(key): json.loads(value) for key, value in raw.items()}

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(0.2)  # linger: one pipeline for what arrives meanwhile
            while not self._queue.empty() and len(batch) < 2000:
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
                self.last_error = None
            except (redis.RedisError, OSError) as error:
                self.dropped += len(batch)
                if self.last_error is None:
                    log.warning("redis unavailable; live state updates dropped", error=repr(error))
                self.last_error = repr(error)

    async def _write(self, batch: list[tuple[str, str, dict[str, Any] | None]]) -> None:
        touched: set[str] = set()
        changes: list[dict[str, Any]] = []
        async with self._client.pipeline(transaction=False) as pipe:
            for kind, call_id, data in batch:
                if kind == "changed" and data is not None:
                    self._active.setdefault(call_id, {}).update(
                        {k: v for k, v in data.items() if v is not None})
                    touched.add(call_id)
                    changes.append({"call_id": call_id, **data})
                else:
                    self._active.pop(call_id, None)
                    touched.discard(call_id)
                    pipe.hdel(self.active_calls_key, call_id)
                    changes.append({"call_id": call_id, "event": "ended"})
            # One message per batch: subscribers get the changes in order, as a list.
            pipe.publish(self.events_channel, json.dumps(changes, default=str))
            for call_id in touched:
                pipe.hset(self.active_calls_key, call_id,
                          json.dumps(self._active[call_id], default=str))
            await pipe.execute()
