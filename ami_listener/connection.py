"""AMI connection on panoramisk, with panoramisk 1.4's defects guarded (DESIGN §6).

What panoramisk 1.4 gets wrong, and what this module does instead:

- It decodes every TCP read on its own with errors='ignore', so a UTF-8 character split
  across two reads vanishes ("张三" arrives as "三"). SafeAmiProtocol decodes with one
  incremental decoder per connection.
- It writes action values as they are: a CR/LF in a value starts a new header, or a
  whole new action. SafeAmiProtocol strips CR/LF from every value.
- It reconnects at a fixed delay through ``loop.call_later`` handles nobody owns, has no
  dead-connection detection and no action timeout, and re-sends actions still waiting
  for an answer after a reconnect (an Originate could run twice). AmiConnection owns one
  task that connects, logs in, pings and reconnects with jittered exponential backoff;
  every action is forgettable and a pending action fails with AmiConnectionLost when
  the link drops; actions time out and are then forgotten.
- Its guess of whether an answer is a list waits forever for QueueAdd ("Added ... to
  queue" is taken for the start of a list) and raises KeyError inside data_received,
  which kills the connection, for an Originate without an Async header. _Action fixes
  the guess.
- Its event dispatch fires async callbacks as unowned tasks, so the events of one call
  can be handled out of order. AmiConnection feeds one queue consumed by one owned task.
"""

from __future__ import annotations

import asyncio
import codecs
import fnmatch
import inspect
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import structlog
from panoramisk import actions as panoramisk_actions
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager
from panoramisk.message import Message

log = structlog.get_logger(__name__)

EventCallback = Callable[[Message], Awaitable[None] | None]
ConnectionCallback = Callable[[], Awaitable[None] | None]

_HEADER_BREAKS = str.maketrans("", "", "\r\n")
_TRUE = {"yes", "true", "y", "t", "1", "on"}  # Asterisk's ast_true()
_MAX_EVENT_NAMES = 1024  # Asterisk 22 has about 200 event names


class AmiError(Exception):
    pass


class AmiNotConnected(AmiError):
    """The AMI link is down (not yet logged in, reconnecting, or closed)."""


class AmiConnectionLost(AmiNotConnected):
    """The link dropped while the action waited for its answer: it may or may not have run."""


class AmiTimeout(AmiError):
    """No complete answer within the action timeout; the action is forgotten."""


class AmiLoginFailed(AmiError):
    pass


def _clean(value: object) -> str:
    return str(value).translate(_HEADER_BREAKS)


def _clean_value(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return _clean(value)


def _expects_list(action: Any) -> bool:
    """panoramisk's Action.multi without its two bugs (see the module docstring)."""
    if action.as_list is not None:
        return bool(action.as_list)
    first = action.responses[0]
    message = str(first.message).lower()
    if first.subevent == "Start" or str(first.get("EventList", "")).lower() == "start":
        return True
    if "will follow" in message:
        return True
    if message.endswith("successfully queued"):
        # only an async Originate sends an OriginateResponse event after this
        return str(action.get("Async", "")).lower() in _TRUE
    # "Added <interface> to queue <queue>" is QueueAdd's one and only answer
    return False


class _Action(panoramisk_actions.Action):
    @property
    def multi(self) -> bool:
        return _expects_list(self)


class _Command(panoramisk_actions.Command):
    @property
    def multi(self) -> bool:
        return _expects_list(self)


class _EveryAction:
    """panoramisk's ``forgetable_actions``: every action is forgettable, none is re-sent."""

    def __contains__(self, item: object) -> bool:
        return True


class SafeAmiProtocol(AMIProtocol):
    """panoramisk's AMIProtocol with an incremental decoder and CR/LF-free action values.

    ``factory`` (the Manager) is set in connection_made, before any data can arrive;
    panoramisk sets it only after the connection is made.
    """

    def __init__(self, factory: Any = None) -> None:
        super().__init__()
        self._factory_on_connect = factory

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.encoding = "utf-8"
        self.lost = asyncio.Event()
        self.lost_reason: str | None = None
        if self._factory_on_connect is not None:
            self.factory = self._factory_on_connect

    def data_received(self, data: bytes) -> None:
        # bytes of a character split across reads wait in the decoder for the rest; the
        # re-encoded text holds whole characters only, so panoramisk's own decode is lossless
        text = self._decoder.decode(data)
        if text:
            super().data_received(text.encode("utf-8"))

    def send(self, data: Any, as_list: bool | None = False) -> Any:
        for key in data:
            if any(c in str(key) for c in "\r\n:"):
                raise ValueError(f"invalid AMI header name {key!r}")
        if isinstance(data, panoramisk_actions.Action):
            for key in list(data):  # in place: the Action owns the future
                data[key] = _clean_value(data[key])
        else:
            data = {key: _clean_value(value) for key, value in data.items()}
        return super().send(data, as_list=as_list)

    def connection_lost(self, exc: Any) -> None:
        if self.lost_reason is None:
            if isinstance(exc, Message):
                self.lost_reason = "Asterisk is shutting down"
            else:
                self.lost_reason = f"connection lost: {exc}" if exc else "connection closed"
        self.lost.set()
        super().connection_lost(exc)

    def close(self) -> None:
        # fail what is still waiting, instead of panoramisk queueing it for re-sending
        pending = {id(action): action for action in self.responses.values()}
        self.responses.clear()
        for action in pending.values():
            if not action.future.done():
                action.future.set_exception(AmiConnectionLost(
                    f"AMI link lost before {action.get('Action', '?')} was answered"))
        self.lost.set()
        super().close()


class _Manager(Manager):
    """panoramisk's Manager as the protocol's factory, minus its own reconnects and pings."""

    def __init__(self, connection: AmiConnection, **config: Any) -> None:
        super().__init__(**config)
        self._connection = connection

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("AmiConnection owns connecting")

    def ping(self) -> None:  # AmiConnection pings
        pass

    def connection_lost(self, exc: Any) -> None:  # no loop.call_later(reconnect)
        self._connected = False
        self.authenticated = False

    def dispatch(self, event: Message) -> list[str]:
        event.manager = self
        self._connection._events.put_nowait(event)
        return []


def backoff_delay(failures: int, low: float, high: float,
                  uniform: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait before the next attempt after ``failures`` failed ones.

    The ceiling doubles from ``low`` up to ``high``; the delay is drawn between half the
    ceiling (never below ``low``) and the ceiling, so many listeners restarted together
    don't reconnect in lockstep.
    """
    ceiling = min(high, low * 2 ** min(failures, 32))
    return uniform(max(low, ceiling / 2), ceiling)


class AmiConnection:
    """One AMI connection, kept up by an owned task.

    ``reconnects`` counts successful logins after the first one; ``last_error`` is the
    latest reason the link went down or could not come up. ``on_connected`` callbacks (no
    arguments, sync or async) run after every successful login, in order, in their own
    task that is cancelled if the link drops: reconcile live state there.
    ``on_disconnected`` callbacks run when a logged-in link goes down, also on close().
    """

    def __init__(self, *, host: str, port: int, username: str, secret: str,
                 action_timeout: float = 5.0, reconnect_min: float = 0.5,
                 reconnect_max: float = 15.0, ping_interval: float = 5.0,
                 events: str = "on") -> None:
        if not 0 < reconnect_min <= reconnect_max:
            raise ValueError("need 0 < reconnect_min <= reconnect_max")
        if action_timeout <= 0 or ping_interval <= 0:
            raise ValueError("action_timeout and ping_interval must be positive")
        self.host, self.port = host, port
        self.action_timeout = action_timeout
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.ping_interval = ping_interval
        self._manager = _Manager(
            self, host=host, port=port, username=username, secret=secret, events=events,
            encoding="utf-8", protocol_factory=SafeAmiProtocol,
            forgetable_actions=_EveryAction())
        self.on_connected: list[ConnectionCallback] = []
        self.on_disconnected: list[ConnectionCallback] = []
        self._subscriptions: list[tuple[str, EventCallback]] = []
        # event name → its callbacks in subscription order; emptied by every subscribe()
        self._callbacks: dict[str, tuple[EventCallback, ...]] = {}
        self._events: asyncio.Queue[Message | None] = asyncio.Queue()
        self._protocol: SafeAmiProtocol | None = None
        self._connected_event = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._closing = False
        self.reconnects = 0
        self.last_error: str | None = None

    @property
    def connected(self) -> bool:
        return self._protocol is not None and not self._protocol.closed

    def subscribe(self, pattern: str, callback: EventCallback) -> None:
        """Call ``callback`` for every event whose name matches the fnmatch ``pattern``.

        Callbacks run one at a time in arrival order (an async one is awaited before the
        next event), so the events of one call are seen in order; keep them short.
        """
        self._subscriptions.append((pattern, callback))
        self._callbacks.clear()

    def _callbacks_for(self, name: str) -> tuple[EventCallback, ...]:
        """The callbacks of an event name, matched once per name rather than per event."""
        callbacks = self._callbacks.get(name)
        if callbacks is None:
            if len(self._callbacks) >= _MAX_EVENT_NAMES:  # names come from the peer
                self._callbacks.clear()
            callbacks = self._callbacks[name] = tuple(
                callback for pattern, callback in self._subscriptions
                if fnmatch.fnmatchcase(name, pattern))
        return callbacks

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("AmiConnection already started")
        self._closing = False
        self._consumer = asyncio.create_task(self._consume(), name="ami-events")
        self._runner = asyncio.create_task(self._run(), name="ami-connection")

    async def wait_connected(self, timeout: float) -> bool:  # noqa: ASYNC109  (API)
        try:
            async with asyncio.timeout(timeout):
                await self._connected_event.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Disconnect, then let the event consumer finish what was received; await all."""
        self._closing = True
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            self._events.put_nowait(None)
            try:
                async with asyncio.timeout(self.action_timeout):
                    await asyncio.shield(consumer)
            except TimeoutError:
                log.warning("ami.events_dropped_on_close", pending=self._events.qsize())
                consumer.cancel()
                await asyncio.gather(consumer, return_exceptions=True)

    async def action(self, action: Mapping[str, str | list[str]], *,
                     as_list: bool | None = None,
                     timeout: float | None = None,  # noqa: ASYNC109  (API)
                     ) -> Message | list[Message]:
        """Send an action and wait for its complete answer.

        ``as_list`` None lets the first answer decide (EventList: start and the like give
        a list). An error answer is returned, not raised: check ``.success``. Raises
        AmiNotConnected when the link is down, AmiConnectionLost when it drops before the
        answer (the action may have run; it is never re-sent), AmiTimeout after
        ``timeout`` (default ``action_timeout``).
        """
        protocol = self._protocol
        if protocol is None or protocol.closed:
            raise AmiNotConnected(self.last_error or "AMI not connected")
        limit = self.action_timeout if timeout is None else timeout
        return await self._send(protocol, action, as_list=as_list, limit=limit)

    async def _send(self, protocol: SafeAmiProtocol, action: Mapping[str, Any], *,
                    as_list: bool | None, limit: float) -> Any:
        is_command = any(str(key).lower() == "command" for key in action)
        sent = (_Command if is_command else _Action)(dict(action), as_list=as_list)
        future = protocol.send(sent, as_list=as_list)
        try:
            async with asyncio.timeout(limit):
                return await future
        except TimeoutError:
            raise AmiTimeout(f"no answer to {sent.get('Action', '?')} within {limit}s") from None
        finally:
            # answered, timed out or cancelled: forget it, so nothing piles up
            protocol.responses.pop(sent.id, None)
            if sent.action_id:
                protocol.responses.pop(sent.action_id, None)
            if not future.done():
                future.cancel()

    async def _run(self) -> None:
        failures = 0
        logged_in_before = False
        while True:
            try:
                protocol = await self._open()
            except (OSError, TimeoutError, AmiError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                level = log.error if isinstance(exc, AmiLoginFailed) else log.warning
                level("ami.connect_failed", host=self.host, port=self.port,
                      error=self.last_error, attempt=failures + 1)
                failures += 1
            except Exception:
                self.last_error = "unexpected error while connecting"
                log.exception("ami.connect_failed", host=self.host, port=self.port)
                failures += 1
            else:
                if logged_in_before:
                    self.reconnects += 1
                logged_in_before = True
                up_since = time.monotonic()
                await self._serve(protocol)
                # a link that drops right after login keeps backing off
                failures = 0 if time.monotonic() - up_since > self.reconnect_max else failures + 1
            delay = backoff_delay(max(failures - 1, 0), self.reconnect_min, self.reconnect_max)
            log.info("ami.reconnect_in", seconds=round(delay, 3))
            await asyncio.sleep(delay)

    async def _open(self) -> SafeAmiProtocol:
        loop = asyncio.get_running_loop()
        factory = self._manager.config["protocol_factory"]
        async with asyncio.timeout(self.action_timeout):
            _, protocol = await loop.create_connection(
                lambda: factory(self._manager), self.host, self.port)
        self._manager.protocol = protocol
        self._manager.awaiting_actions.clear()  # belt and braces: nothing is re-sent
        try:
            answer = await self._send(protocol, {
                "Action": "Login", "Username": self._manager.config["username"],
                "Secret": self._manager.config["secret"],
                "Events": self._manager.config["events"]}, as_list=False,
                limit=self.action_timeout)
            if not answer.success:
                raise AmiLoginFailed(f"login refused: {answer.message or answer.response}")
        except BaseException:
            _drop(protocol)
            raise
        self._manager.authenticated = True
        self._manager._connected = True
        return protocol

    async def _serve(self, protocol: SafeAmiProtocol) -> None:
        """Keep a logged-in link until it is lost or stops answering Ping."""
        self._protocol = protocol
        self._connected_event.set()
        log.info("ami.connected", host=self.host, port=self.port, reconnects=self.reconnects)
        hooks = asyncio.create_task(self._run_callbacks(self.on_connected, "on_connected"),
                                    name="ami-on-connected")
        try:
            await self._watch(protocol)
        finally:
            self._protocol = None
            self._connected_event.clear()
            hooks.cancel()
            _drop(protocol)
            await asyncio.gather(hooks, return_exceptions=True)
            if self._closing:
                log.info("ami.closed", host=self.host, port=self.port)
            else:
                log.warning("ami.disconnected", host=self.host, port=self.port,
                            reason=self.last_error)
            try:
                async with asyncio.timeout(self.action_timeout):
                    await self._run_callbacks(self.on_disconnected, "on_disconnected")
            except TimeoutError:
                log.warning("ami.on_disconnected_timeout")

    async def _watch(self, protocol: SafeAmiProtocol) -> None:
        while True:
            try:
                async with asyncio.timeout(self.ping_interval):
                    await protocol.lost.wait()
                self.last_error = protocol.lost_reason or "connection lost"
                return
            except TimeoutError:
                pass
            try:
                await self._send(protocol, {"Action": "Ping"}, as_list=False,
                                 limit=self.action_timeout)
            except AmiTimeout:
                self.last_error = f"no answer to Ping within {self.action_timeout}s"
                return
            except AmiNotConnected:
                self.last_error = protocol.lost_reason or "connection lost"
                return

    async def _run_callbacks(self, callbacks: list[ConnectionCallback], kind: str) -> None:
        for callback in list(callbacks):
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("ami.callback_failed", kind=kind, callback=repr(callback))

    async def _consume(self) -> None:
        while (event := await self._events.get()) is not None:
            name = str(event.get("Event", ""))
            for callback in self._callbacks_for(name):
                try:
                    result = callback(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("ami.event_callback_failed", ami_event=name,
                                  callback=repr(callback))

    async def replay(self, events: Iterable[Message], *, per_read: int = 100) -> int:
        """Benchmarks: hand recorded events to the subscribers the way received ones reach
        them — through the same queue and consumer task, ``per_read`` at a time as one TCP
        read delivers them, letting other tasks run in between — with no connection.
        Returns when every event has been handled; the number of events."""
        if self._runner is not None or self._consumer is not None:
            raise RuntimeError("replay needs an AmiConnection that is not started")
        consumer = asyncio.create_task(self._consume(), name="ami-events-replay")
        count = 0
        try:
            for event in events:
                event.manager = self._manager
                self._events.put_nowait(event)
                count += 1
                if count % per_read == 0:
                    await asyncio.sleep(0)
            self._events.put_nowait(None)
            await consumer
        finally:
            consumer.cancel()
        return count


def _drop(protocol: SafeAmiProtocol) -> None:
    protocol.close()  # fails pending actions
    protocol.transport.abort()  # don't wait to flush to a peer that stopped reading
