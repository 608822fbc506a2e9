"""The call journal: Call and CallEvent rows written off the call path.

AGI routes and AMI handlers enqueue changes and return at once; one owned writer task
applies them in order, many per transaction. A caller never waits on the database, and
when the database is down the changes wait in memory (bounded) and are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.db.models import Call, CallEvent, call_id_for

log = structlog.get_logger(__name__)

# (call id, linkedid, route): a call's route as written, after the commit.
RouteHook = Callable[[str, str, str], None]


def _is_transient(error: DBAPIError) -> bool:
    """Connection trouble (retry the same batch) as opposed to data the database refuses."""
    return error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)


@dataclass
class _CallChange:
    call_id: str
    linkedid: str
    at: datetime
    fields: dict[str, Any]
    events: list[tuple[str, datetime, str, dict[str, Any]]]
    fill: dict[str, Any] | None = None


@dataclass
class JournalStats:
    pending: int = 0
    written_changes: int = 0
    batches: int = 0
    failures: int = 0
    dropped: int = 0
    last_error: str | None = None
    durations: list[float] = field(default_factory=list)


class CallJournal:
    def __init__(self, *, engine: AsyncEngine, node: str, max_pending: int = 200_000,
                 retry_seconds: float = 1.0, linger_seconds: float = 0.2) -> None:
        self._engine = engine
        self.node = node
        self._max_pending = max_pending
        self._retry_seconds = retry_seconds
        self._linger_seconds = linger_seconds
        self._in_flight = 0
        self._update_statements: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}
        self._queue: asyncio.Queue[_CallChange] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = JournalStats()
        self._dialect = engine.dialect.name
        # Told of every route written (the crisis route opens an incident); a hook must
        # return at once: it runs in the writer task.
        self.on_route: list[RouteHook] = []

    @property
    def pending(self) -> int:
        """Changes not yet written: queued, and the batch being written now."""
        return self._queue.qsize() + self._in_flight

    def call_id(self, linkedid: str) -> str:
        return call_id_for(self.node, linkedid)

    def record(self, linkedid: str, at: datetime, *, event: str | None = None,
               source: str = "", data: dict[str, Any] | None = None,
               fill: dict[str, Any] | None = None,
               steps: Sequence[tuple[str, datetime, dict[str, Any]]] = (), **fields: Any) -> str:
        """Create the call if new, set the given fields, append an event. Never blocks.

        `fill` sets columns only where they are still empty: a weaker source (an AMI
        header) never overwrites a stronger one (the IVR's base64 caller ID). `steps` are
        earlier events (kind, time, data) written with this one, in order.
        """
        call_id = self.call_id(linkedid)
        if self._queue.qsize() >= self._max_pending:
            self.stats.dropped += 1
            log.error("call journal full, change dropped", call_id=call_id, event_kind=event)
            return call_id
        events = [(kind, when, source, step_data) for kind, when, step_data in steps]
        if event:
            events.append((event, at, source, data or {}))
        change = _CallChange(call_id, linkedid, at, fields, events,
                             {k: v for k, v in (fill or {}).items() if v is not None} or None)
        self._queue.put_nowait(change)
        self._idle.clear()
        return call_id

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="call-journal")

    async def flush(self, wait_seconds: float = 10.0) -> None:
        """Wait until everything enqueued so far is written (tests, shutdown)."""
        await asyncio.wait_for(self._idle.wait(), wait_seconds)

    async def close(self) -> None:
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await self.flush(wait_seconds=5.0)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            self._in_flight = 1
            # Linger briefly: one transaction for everything that arrives meanwhile.
            await asyncio.sleep(self._linger_seconds)
            while not self._queue.empty() and len(batch) < 2000:
                batch.append(self._queue.get_nowait())
            self._in_flight = len(batch)
            while True:
                started = loop.time()
                try:
                    await self._write(batch)
                except asyncio.CancelledError:
                    raise
                except DBAPIError as error:
                    if _is_transient(error):
                        await self._wait_after(error, batch)
                        continue
                    # The database refused the data itself (a constraint): a retry would
                    # fail forever and hold up every later call. Keep what it accepts.
                    await self._write_one_by_one(batch)
                except Exception as error:  # the database is unreachable: keep and retry
                    await self._wait_after(error, batch)
                    continue
                self.stats.written_changes += len(batch)
                self.stats.batches += 1
                self.stats.last_error = None
                self.stats.durations = [*self.stats.durations[-99:], loop.time() - started]
                break
            self._routes_written(batch)
            self._in_flight = 0
            if self._queue.empty():
                self._idle.set()

    def _routes_written(self, batch: Sequence[_CallChange]) -> None:
        for change in batch:
            route = change.fields.get("route")
            if not route:
                continue
            for hook in self.on_route:
                try:
                    hook(change.call_id, change.linkedid, str(route))
                except Exception:  # a listener's failure must not stop the journal
                    log.exception("route hook failed", call_id=change.call_id)

    async def _wait_after(self, error: Exception, batch: Sequence[_CallChange]) -> None:
        self.stats.failures += 1
        self.stats.last_error = repr(error)
        log.warning("call journal write failed; retrying", error=repr(error), batch=len(batch))
        await asyncio.sleep(self._retry_seconds)

    async def _write_one_by_one(self, batch: Sequence[_CallChange]) -> None:
        for change in batch:
            while True:
                try:
                    await self._write([change])
                except DBAPIError as error:
                    if _is_transient(error):
                        await self._wait_after(error, [change])
                        continue
                    self.stats.dropped += 1
                    self.stats.last_error = repr(error)
                    log.error("call journal change refused by the database; dropped",
                              call_id=change.call_id, fields=change.fields,
                              events=[kind for kind, *_ in change.events], error=repr(error))
                break

    def _insert_calls_statement(self) -> Any:
        dialect_insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        return dialect_insert(Call).on_conflict_do_nothing(index_elements=["id"])

    def _update_statement(self, set_keys: tuple[str, ...], fill_keys: tuple[str, ...]) -> Any:
        """One UPDATE per set of columns, built once: executemany reuses the compiled form."""
        key = (set_keys, fill_keys)
        statement = self._update_statements.get(key)
        if statement is None:
            values: dict[str, Any] = {
                name: func.coalesce(getattr(Call, name),
                                    bindparam(f"f_{name}", type_=getattr(Call, name).type))
                for name in fill_keys
            }
            values.update({name: bindparam(f"u_{name}", type_=getattr(Call, name).type)
                           for name in set_keys})
            statement = update(Call).where(Call.id == bindparam("b_call_id")).values(values)
            self._update_statements[key] = statement
        return statement

    async def _write(self, batch: Sequence[_CallChange]) -> None:
        new_calls: dict[str, dict[str, Any]] = {}
        updates: dict[str, dict[str, Any]] = {}
        fills: dict[str, dict[str, Any]] = {}
        events: list[dict[str, Any]] = []
        for change in batch:
            if change.call_id not in new_calls:
                new_calls[change.call_id] = {
                    "id": change.call_id, "node": self.node, "linkedid": change.linkedid,
                    "started_at": change.at,
                }
            if change.fill:
                known = updates.get(change.call_id, {})
                pending = fills.setdefault(change.call_id, {})
                for key, value in change.fill.items():
                    if key not in known:
                        pending.setdefault(key, value)
            if change.fields:
                updates.setdefault(change.call_id, {}).update(change.fields)
            for kind, at, source, data in change.events:
                events.append({"call_id": change.call_id, "at": at, "kind": kind,
                               "source": source, "data": data})
        grouped: dict[tuple[tuple[str, ...], tuple[str, ...]], list[dict[str, Any]]] = {}
        for call_id in updates.keys() | fills.keys():
            set_values = updates.get(call_id, {})
            fill_values = {k: v for k, v in fills.get(call_id, {}).items() if k not in set_values}
            params = {"b_call_id": call_id}
            params.update({f"u_{k}": v for k, v in set_values.items()})
            params.update({f"f_{k}": v for k, v in fill_values.items()})
            grouped.setdefault((tuple(sorted(set_values)), tuple(sorted(fill_values))),
                               []).append(params)
        async with self._engine.begin() as connection:
            await connection.execute(self._insert_calls_statement(), list(new_calls.values()))
            for (set_keys, fill_keys), rows in grouped.items():
                await connection.execute(self._update_statement(set_keys, fill_keys), rows)
            if events:
                await connection.execute(insert(CallEvent), events)

    async def known_open_calls(self) -> list[tuple[str, str, str | None]]:
        """(call id, linkedid, outcome) of calls this node has not seen end, for reconciliation."""
        await self.flush()
        async with self._engine.connect() as connection:
            result = await connection.execute(
                select(Call.id, Call.linkedid, Call.outcome)
                .where(Call.node == self.node, Call.ended_at.is_(None))
            )
            return [(row[0], row[1], row[2]) for row in result]
