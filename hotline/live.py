"""Live state in Redis: active calls, counsellors' states and queues' waiting callers, with
a pub/sub channel for the web.

Live state is a view, never a dependency of a call: updates are queued and written by
one owned task in pipelines; when Redis is down they are dropped (and counted), and the
next reconciliation rebuilds the view.

Keys (prefix `hotline:` by default): `calls:active`, `agents` and `queues` are hashes of
JSON documents (call id, counsellor id, queue name → document). Every batch of changes is
published on `events` as one JSON list of `{"type": "call"|"agent"|"queue", ...}`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
import structlog

from hotline.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

CALLS = "calls:active"
AGENTS = "agents"
QUEUES = "queues"
_TYPES = {CALLS: "call", AGENTS: "agent", QUEUES: "queue"}


@dataclass(frozen=True)
class _Update:
    # merge: fold fields into the document (calls); put: replace it; drop: delete it;
    # reset: replace the whole hash with `data` (after a rebuild).
    op: str
    view: str
    key: str
    data: Any = None


class LiveState:
    def __init__(self, *, url: str, prefix: str = "hotline:", timeout: float = 0.5,
                 max_pending: int = 50_000, linger_seconds: float = 0.2) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=timeout,
                                            socket_connect_timeout=timeout,
                                            decode_responses=True)
        self.prefix = prefix
        self._queue: asyncio.Queue[_Update] = asyncio.Queue()
        self._max_pending = max_pending
        self._linger = linger_seconds
        self._task: asyncio.Task[None] | None = None
        # This node's active calls, merged: the process is their only writer.
        self._active: dict[str, dict[str, Any]] = {}
        self.dropped = 0
        self.written = 0
        self.last_error: str | None = None

    def key(self, view: str) -> str:
        return f"{self.prefix}{view}"

    @property
    def active_calls_key(self) -> str:
        return self.key(CALLS)

    @property
    def events_channel(self) -> str:
        return f"{self.prefix}events"

    # -- what handlers call (never blocks, never raises) ------------------------------------

    def call_changed(self, call_id: str, data: dict[str, Any]) -> None:
        self._enqueue(_Update("merge", CALLS, call_id, data))

    def call_ended(self, call_id: str) -> None:
        self._enqueue(_Update("drop", CALLS, call_id))

    def agent_changed(self, counsellor_id: int | str, data: dict[str, Any]) -> None:
        self._enqueue(_Update("put", AGENTS, str(counsellor_id), data))

    def queue_changed(self, queue: str, data: dict[str, Any]) -> None:
        self._enqueue(_Update("put", QUEUES, queue, data))

    def reset(self, view: str, documents: dict[str, dict[str, Any]]) -> None:
        self._enqueue(_Update("reset", view, "", documents))

    def _enqueue(self, update: _Update) -> None:
        if self._queue.qsize() >= self._max_pending:
            self.dropped += 1
            return
        self._queue.put_nowait(update)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-state")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._client.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (redis.RedisError, OSError) as error:
            self.last_error = repr(error)
            return False

    async def flush(self) -> None:
        """Write what is queued now (benchmarks and tests; the task does it otherwise)."""
        batch = []
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        if batch:
            await self._write(batch)

    # -- reads ------------------------------------------------------------------------------

    async def read(self, view: str) -> dict[str, dict[str, Any]]:
        raw = await self._client.hgetall(self.key(view))
        return {str(key): json.loads(value) for key, value in raw.items()}

    async def active_calls(self) -> dict[str, dict[str, Any]]:
        return await self.read(CALLS)

    # -- the writer -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(self._linger)  # one pipeline for what arrives meanwhile
            while not self._queue.empty() and len(batch) < 5000:
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
                self.last_error = None
            except (redis.RedisError, OSError) as error:
                self.dropped += len(batch)
                if self.last_error is None:
                    log.warning("redis unavailable; live state updates dropped", error=repr(error))
                self.last_error = repr(error)

    async def _write(self, batch: list[_Update]) -> None:
        # The last write per (view, key) wins; a reset clears what came before it.
        final: dict[tuple[str, str], _Update] = {}
        resets: dict[str, _Update] = {}
        changes: list[dict[str, Any]] = []
        for update in batch:
            kind = _TYPES.get(update.view, update.view)
            if update.op == "reset":
                resets[update.view] = update
                for stale in [k for k in final if k[0] == update.view]:
                    del final[stale]
                changes.append({"type": kind, "event": "reset"})
                continue
            if update.op == "merge":
                document = self._active.setdefault(update.key, {})
                document.update({k: v for k, v in update.data.items() if v is not None})
                final[(update.view, update.key)] = _Update("put", update.view, update.key,
                                                           document)
                changes.append({"type": kind, "id": update.key, **update.data})
            elif update.op == "put":
                final[(update.view, update.key)] = update
                changes.append({"type": kind, "id": update.key, **update.data})
            else:
                if update.view == CALLS:
                    self._active.pop(update.key, None)
                final[(update.view, update.key)] = update
                changes.append({"type": kind, "id": update.key, "event": "ended"})
        async with self._client.pipeline(transaction=False) as pipe:
            for view, reset in resets.items():
                pipe.delete(self.key(view))
                if reset.data:
                    pipe.hset(self.key(view), mapping={
                        k: json.dumps(v, default=str, ensure_ascii=False)
                        for k, v in reset.data.items()})
            for (view, key), update in final.items():
                if update.op == "drop":
                    pipe.hdel(self.key(view), key)
                else:
                    pipe.hset(self.key(view), key,
                              json.dumps(update.data, default=str, ensure_ascii=False))
            # One message per batch: subscribers get the changes in order, as a list.
            pipe.publish(self.events_channel, json.dumps(changes, default=str,
                                                         ensure_ascii=False))
            await pipe.execute()
        self.written += len(batch)
