"""AmiConnection against a scripted AMI server over real TCP.

Tests named ``test_raw_panoramisk_*`` run panoramisk 1.4 unguarded and assert its broken
behaviour (DESIGN §6): they show what each guard in ami_listener/connection.py is for,
and fail the day panoramisk is fixed (then the guard can go).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager
from panoramisk.message import Message

from ami_listener.connection import (
    AmiConnection,
    AmiConnectionLost,
    AmiNotConnected,
    AmiTimeout,
    SafeAmiProtocol,
    backoff_delay,
)

Action = dict[str, Any]


def block(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_action(raw: bytes) -> Action:
    action: Action = {}
    for line in raw.decode().split("\r\n"):
        if not line:
            continue
        key, _, value = line.partition(": ")
        if key in action:  # repeated headers (Variable: ...) become a list
            previous = action[key]
            action[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            action[key] = value
    return action


class AmiPeer:
    """The server side of one AMI connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 answer_ping: bool) -> None:
        self.reader, self.writer = reader, writer
        self.answer_ping = answer_ping
        self.raw = bytearray()
        self.actions: list[Action] = []
        self.closed = asyncio.Event()

    def named(self, name: str) -> list[Action]:
        return [a for a in self.actions if a.get("Action", "").lower() == name.lower()]

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, action: Action, *lines: str, response: str = "Success") -> None:
        await self.send(block(f"Response: {response}", f"ActionID: {action['ActionID']}",
                              *lines))

    def close(self) -> None:
        self.writer.close()


class ScriptedAmi:
    """Banner, Login (Success unless refused), Ping (Pong unless told not to),
    FullyBooted after login like Asterisk; other actions go to ``on_action``."""

    def __init__(self) -> None:
        self.peers: list[AmiPeer] = []
        self.refuse_logins = 0
        self.answer_ping = True
        self.on_action: Callable[[AmiPeer, Action], Awaitable[None]] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.accepted_at: list[float] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for peer in self.peers:
            peer.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.accepted_at.append(time.monotonic())
        peer = AmiPeer(reader, writer, self.answer_ping)
        self.peers.append(peer)
        try:
            await peer.send(b"Asterisk Call Manager/9.0.0\r\n")
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                peer.raw += raw
                action = parse_action(raw)
                peer.actions.append(action)
                name = action.get("Action", "").lower()
                if name == "login":
                    if self.refuse_logins > 0:
                        self.refuse_logins -= 1
                        await peer.reply(action, "Message: Authentication failed",
                                         response="Error")
                        break  # Asterisk hangs up after a failed login
                    await peer.reply(action, "Message: Authentication accepted")
                    await peer.send(block("Event: FullyBooted", "Privilege: system,all",
                                          "Status: Fully Booted"))
                elif name == "ping":
                    if peer.answer_ping:
                        await peer.reply(action, "Ping: Pong", "Timestamp: 1700000000.000000")
                elif self.on_action is not None:
                    await self.on_action(peer, action)
        finally:
            peer.closed.set()
            writer.close()
            self.tasks.discard(task)


async def until(predicate: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def ami() -> AsyncIterator[ScriptedAmi]:
    server = ScriptedAmi()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_conn(ami: ScriptedAmi) -> AsyncIterator[Callable[..., AmiConnection]]:
    made: list[AmiConnection] = []

    def make(**options: Any) -> AmiConnection:
        settings: dict[str, Any] = dict(host="127.0.0.1", port=ami.port, username="hotline",
                                        secret="s3cret", action_timeout=1.0,
                                        reconnect_min=0.05, reconnect_max=0.4,
                                        ping_interval=5.0)
        settings.update(options)
        conn = AmiConnection(**settings)
        made.append(conn)
        return conn

    yield make
    for conn in made:
        await conn.close()


async def started(make_conn: Callable[..., AmiConnection], **options: Any) -> AmiConnection:
    conn = make_conn(**options)
    await conn.start()
    assert await conn.wait_connected(3)
    return conn


@pytest.fixture
def raw_managers() -> Iterator[list[Manager]]:
    managers: list[Manager] = []
    yield managers
    for manager in managers:
        manager.close()


async def raw_manager(ami: ScriptedAmi, managers: list[Manager]) -> Manager:
    """panoramisk's own Manager, as documented, against the scripted server."""
    manager = Manager(host="127.0.0.1", port=ami.port, username="hotline", secret="s3cret",
                      ping_delay=600, reconnect_timeout=0, loop=asyncio.get_running_loop())
    managers.append(manager)
    manager.connect()
    await until(lambda: manager.authenticated)
    return manager


# --- a UTF-8 character split across two TCP reads -------------------------------------

ZHANG_SAN = "张三".encode()  # e5 bc a0 e4 b8 89


async def send_split_newchannel(peer: AmiPeer) -> None:
    head = b"Event: Newchannel\r\nChannel: PJSIP/carrier-1\r\nCallerIDName: "
    await peer.send(head + ZHANG_SAN[:1])  # cut inside 张
    await asyncio.sleep(0.05)  # the rest comes in a second read
    await peer.send(ZHANG_SAN[1:] + b"\r\nCallerIDNum: 13800000000\r\n\r\n")


async def test_split_utf8_character_arrives_intact(
        ami: ScriptedAmi, make_conn: Callable[..., AmiConnection]) -> None:
    names: list[str] = []
    conn = make_conn()
    conn.subscribe("Newchannel", lambda event: names.append(event["CallerIDName"]))
    await conn.start()
    assert await conn.wait_connected(3)
    await send_split_newchannel(ami.peers[-1])
    await until(lambda: bool(names))
    assert names == ["张三"]


async def test_raw_panoramisk_drops_split_character(
        ami: ScriptedAmi, raw_managers: list[Manager]) -> None:
    """DEFECT DEMO: panoramisk decodes each read with errors='ignore'."""
    manager = await raw_manager(ami, raw_managers)
    names: list[str] = []
    manager.register_event("Newchannel", lambda _m, event: names.append(event["CallerIDName"]))
    await send_split_newchannel(ami.peers[-1])
    await until(lambda: bool(names))
    assert names == ["三"]


# --- CR/LF in action values -------------------------------------------------------------

INJECTED = "x\r\n\r\nAction: Originate\r\nChannel: Local/110@police\r\nApplication: Wait"


async def test_crlf_in_action_value_never_reaches_the_wire(
        ami: ScriptedAmi, make_conn: Callable[..., AmiConnection]) -> None:
    async def answer(peer: AmiPeer, action: Action) -> None:
        await peer.reply(action)

    ami.on_action = answer
    conn = await started(make_conn)
    reply = await conn.action({"Action": "Setvar", "Channel": "PJSIP/carrier-1",
                               "Variable": "HOTLINE_NOTE", "Value": INJECTED})
    assert isinstance(reply, Message) and reply.success
    await conn.action({"Action": "Originate", "Channel": "Local/1@x",
                       "Variable": ["A=1\r\nAction: Hangup", "B=2"], "Async": "false"})
    peer = ami.peers[-1]
    setvar, originate = [a for a in peer.actions if a["Action"] not in ("Login", "Ping")]
    assert setvar["Value"] == "xAction: OriginateChannel: Local/110@policeApplication: Wait"
    assert originate["Variable"] == ["A=1Action: Hangup", "B=2"]
    assert originate["Channel"] == "Local/1@x"
    assert len(peer.named("Originate")) == 1  # ours; no injected one
    assert b"\r\nChannel: Local/110@police" not in peer.raw
    assert b"\r\nAction: Hangup" not in peer.raw
    with pytest.raises(ValueError, match="header name"):
        await conn.action({"Action": "Setvar", "Value\r\nAction: Hangup": "x"})


async def test_raw_panoramisk_writes_crlf_as_new_headers() -> None:
    """DEFECT DEMO: panoramisk writes values verbatim: one action becomes two."""
    protocol = AMIProtocol()
    transport = mock.MagicMock()
    protocol.connection_made(transport)
    protocol.send({"Action": "Setvar", "Channel": "PJSIP/carrier-1",
                   "Variable": "HOTLINE_NOTE", "Value": INJECTED})
    wire = transport.write.call_args.args[0]
    blocks = [b for b in wire.split(b"\r\n\r\n") if b]
    assert len(blocks) == 2
    injected = parse_action(blocks[1])  # keys are sorted: it even takes "Variable" along
    assert injected["Action"] == "Originate" and injected["Channel"] == "Local/110@police"


# --- timeouts ---------------------------------------------------------------------------


async def test_action_timeout_forgets_the_action(
        ami: ScriptedAmi, make_conn: Callable[..., AmiConnection]) -> None:
    async def silent_for_status(peer: AmiPeer, action: Action) -> None:
        if action["Action"] != "Status":
            await peer.reply(action)

    ami.on_action = silent_for_status
    conn = await started(make_conn)
    for _ in range(3):
        began = time.monotonic()
        with pytest.raises(AmiTimeout):
            await conn.action({"Action": "Status"}, timeout=0.2)
        assert 0.15 < time.monotonic() - began < 1.0
    assert conn._protocol is not None and conn._protocol.responses == {}  # nothing piles up
    reply = await conn.action({"Action": "CoreSettings"})  # the link is still fine
    assert isinstance(reply, Message) and reply.success


async def test_raw_panoramisk_actions_pile_up_without_timeout(
        ami: ScriptedAmi, raw_managers: list[Manager]) -> None:
    """DEFECT DEMO: no timeout, and abandoned actions stay in ``responses`` for good."""
    manager = await raw_manager(ami, raw_managers)
    for _ in range(3):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(manager.send_action({"Action": "Status"}), 0.1)
    assert len(manager.protocol.responses) == 3


async def test_unanswered_ping_drops_and_reconnects(
        ami: ScriptedAmi, make_conn: Callable[..., AmiConnection]) -> None:
    ami.answer_ping = False  # the first link is alive at TCP level but Asterisk is stuck
    conn = make_conn(ping_interval=0.1, action_timeout=0.2)
    logins: list[float] = []
    conn.on_connected.append(lambda: logins.append(time.monotonic()))
    await conn.start()
    assert await conn.wait_connected(3)
    ami.answer_ping = True
    await until(lambda: len(logins) == 2)
    assert ami.peers[0].named("Ping") and "Ping" in (conn.last_error or "")
    await asyncio.wait_for(ami.peers[0].closed.wait(), 1)  # the stuck link was dropped
    assert conn.connected and conn.reconnects == 1


# --- reconnects -------------------------------------------------------------------------


async def test_reconnects_with_backoff_and_runs_on_connected_again(
        ami: ScriptedAmi, make_conn: Callable[..., AmiConnection]) -> None:
    conn = make_conn(reconnect_min=0.2, reconnect_max=1.0)
    events: list[tuple[str, float]] = []

    async def reconcile() -> None:
        reply = await conn.action({"Action": "QueueStatus"}, as_list=False)
        assert isinstance(reply, Message)
        events.append(("connected", time.monotonic()))

    async def answer(peer: AmiPeer, action: Action) -> None:
        await peer.reply(action)

    ami.on_action = answer
    conn.on_connected.append(reconcile)
    conn.on_disconnected.append(lambda: events.append(("disconnected", time.monotonic())))
    await conn.start()
    await until(lambda: len(events) == 1)
    ami.peers[-1].close()  # Asterisk restarts
    await until(lambda: len(events) == 3)
    assert [kind for kind, _ in events] == ["connected", "disconnected", "connected"]
    assert events[2][1] - events[1][1] >= 0.2  # waited at least reconnect_min
    assert conn.reconnects == 1 and conn.connected
    assert len(ami.peers) == 2 and len(ami.peers[1].named("QueueStatus")) == 1


async def test_login_refused_backs_off_then_connects(
        ami: ScriptedAmi, make_conn: Callable[..., AmiConnection]) -> None:
    ami.refuse_logins = 3
    conn = make_conn(reconnect_min=0.05, reconnect_max=1.0)
    await conn.start()
    await until(lambda: ami.refuse_logins < 3)
    await until(lambda: conn.last_error is not None)
    assert "login refused" in (conn.last_error or "")
    assert not conn.connected
    assert await conn.wait_connected(3)
    gaps = [b - a for a, b in zip(ami.accepted_at, ami.accepted_at[1:], strict=False)]
    # ceilings 0.05, 0.1, 0.2 with jitter in [ceiling/2, ceiling]
    assert len(gaps) == 3 and gaps[0] >= 0.045 and gaps[2] >= 0.095 and gaps[2] > gaps[0]


def test_backoff_delay_grows_with_jitter_and_is_capped() -> None:
    low_draw = [backoff_delay(n, 0.5, 15.0, uniform=lambda a, b: a) for n in range(8)]
    high_draw = [backoff_delay(n, 0.5, 15.0, uniform=lambda a, b: b) for n in range(8)]
    assert high_draw == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]
    assert low_draw == [0.5, 0.5, 1.0, 2.0, 4.0, 7.5, 7.5, 7.5]
    assert backoff_delay(10_000, 0.5, 15.0) <= 15.0


async def test_action_pending_at_disconnect_is_not_resent(
        ami: ScriptedAmi, make_conn: Callable[..., AmiConnection]) -> None:
    async def drop_on_originate(peer: AmiPeer, action: Action) -> None:
        if action["Action"] == "Originate":
            peer.close()  # the link dies before the answer
        else:
            await peer.reply(action)

    ami.on_action = drop_on_originate
    conn = await started(make_conn)
    with pytest.raises(AmiConnectionLost):
        await conn.action({"Action": "Originate", "Channel": "PJSIP/duty-officer",
                           "Exten": "110", "Context": "hotline-police", "Priority": "1"})
    await until(lambda: conn.reconnects == 1)
    await conn.action({"Action": "CoreSettings"})  # after FullyBooted was handled
    assert len(ami.peers) == 2
    assert ami.peers[1].named("Originate") == []


async def test_raw_panoramisk_resends_pending_action_after_reconnect(
        ami: ScriptedAmi, raw_managers: list[Manager]) -> None:
    """DEFECT DEMO: panoramisk re-sends unanswered actions on FullyBooted: Originate twice."""
    async def drop_first_originate(peer: AmiPeer, action: Action) -> None:
        if action["Action"] == "Originate" and len(ami.peers) == 1:
            peer.close()
        elif action["Action"] == "Originate":
            await peer.reply(action, "Message: Originate successfully queued")

    ami.on_action = drop_first_originate
    manager = await raw_manager(ami, raw_managers)
    future = manager.send_action({"Action": "Originate", "Channel": "PJSIP/duty-officer",
                                  "Exten": "110", "Context": "hotline-police",
                                  "Priority": "1", "Async": "false"})
    await asyncio.wait_for(future, 3)
    originates = [a for peer in ami.peers for a in peer.named("Originate")]
    assert len(ami.peers) == 2 and len(originates) == 2
    assert originates[0]["ActionID"] == originates[1]["ActionID"]


# --- panoramisk's guess of list answers ---------------------------------------------


async def test_queue_add_and_originate_answers_complete(
        ami: ScriptedAmi, make_conn: Callable[..., AmiConnection]) -> None:
    async def answer(peer: AmiPeer, action: Action) -> None:
        aid = f"ActionID: {action['ActionID']}"
        if action["Action"] == "QueueAdd":
            await peer.reply(action, "Message: Added interface to queue")
        elif action["Action"] == "Originate":
            await peer.reply(action, "Message: Originate successfully queued")
            if action.get("Async") == "true":
                await peer.send(block("Event: OriginateResponse", aid, "Response: Success",
                                      "Channel: PJSIP/1001-00000001"))
        elif action["Action"] == "QueueStatus":
            await peer.reply(action, "EventList: start", "Message: Queue status will follow")
            await peer.send(block("Event: QueueParams", aid, "Queue: psych"))
            await peer.send(block("Event: QueueStatusComplete", aid, "EventList: Complete"))

    ami.on_action = answer
    conn = await started(make_conn)
    added = await conn.action({"Action": "QueueAdd", "Queue": "psych",
                               "Interface": "PJSIP/1001"}, timeout=0.5)
    assert isinstance(added, Message) and added.success
    sync = await conn.action({"Action": "Originate", "Channel": "PJSIP/1001",
                              "Application": "Wait", "Data": "1"}, timeout=0.5)
    assert isinstance(sync, Message) and sync.success
    async_ = await conn.action({"Action": "Originate", "Channel": "PJSIP/1001",
                                "Application": "Wait", "Data": "1", "Async": "true"})
    assert isinstance(async_, list) and async_[1].event == "OriginateResponse"
    status = await conn.action({"Action": "QueueStatus"})
    assert isinstance(status, list) and [m.event for m in status][1:] == [
        "QueueParams", "QueueStatusComplete"]
    first_only = await conn.action({"Action": "QueueStatus"}, as_list=False)
    assert isinstance(first_only, Message)
    assert conn.connected and conn._protocol is not None
    await until(lambda: conn._protocol is not None and conn._protocol.responses == {})


async def test_raw_panoramisk_queue_add_never_completes(
        ami: ScriptedAmi, raw_managers: list[Manager]) -> None:
    """DEFECT DEMO: "Added ... to queue" is taken for the start of a list."""
    async def answer(peer: AmiPeer, action: Action) -> None:
        await peer.reply(action, "Message: Added interface to queue")

    ami.on_action = answer
    manager = await raw_manager(ami, raw_managers)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(manager.send_action(
            {"Action": "QueueAdd", "Queue": "psych", "Interface": "PJSIP/1001"}), 0.5)


async def test_raw_panoramisk_originate_without_async_kills_the_connection(
        ami: ScriptedAmi, raw_managers: list[Manager]) -> None:
    """DEFECT DEMO: Action.multi reads self['async'] → KeyError inside data_received."""
    async def answer(peer: AmiPeer, action: Action) -> None:
        await peer.reply(action, "Message: Originate successfully queued")

    ami.on_action = answer
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    try:
        manager = await raw_manager(ami, raw_managers)
        future = manager.send_action({"Action": "Originate", "Channel": "PJSIP/1001",
                                      "Application": "Wait", "Data": "1"})
        await asyncio.wait_for(ami.peers[0].closed.wait(), 2)
    finally:
        loop.set_exception_handler(previous)
    assert not future.done()
    assert any(isinstance(ctx.get("exception"), KeyError) for ctx in errors)


# --- events, not connected, shutdown ----------------------------------------------------


async def test_async_event_callbacks_keep_arrival_order(
        ami: ScriptedAmi, make_conn: Callable[..., AmiConnection],
        raw_managers: list[Manager]) -> None:
    seen: list[str] = []

    async def slow_first(event: Message) -> None:
        await asyncio.sleep(0.05 if event["Uniqueid"] == "1" else 0)
        seen.append(event.event)

    conn = make_conn()
    conn.subscribe("Queue*", slow_first)
    conn.subscribe("Newchannel", lambda e: None)
    await conn.start()
    assert await conn.wait_connected(3)
    events = [("Newchannel", "1"), ("QueueCallerJoin", "1"), ("QueueCallerAbandon", "1")]
    burst = b"".join(block(f"Event: {name}", f"Uniqueid: {uid}") for name, uid in events)
    await ami.peers[-1].send(burst)
    await until(lambda: len(seen) == 2)
    assert seen == ["QueueCallerJoin", "QueueCallerAbandon"]

    # DEFECT DEMO: panoramisk runs each async callback as its own unowned task
    raw_seen: list[str] = []

    async def raw_slow_first(_manager: Manager, event: Message) -> None:
        await asyncio.sleep(0.05 if event.event == "QueueCallerJoin" else 0)
        raw_seen.append(event.event)

    manager = await raw_manager(ami, raw_managers)
    manager.register_event("Queue*", raw_slow_first)
    await ami.peers[-1].send(burst)
    await until(lambda: len(raw_seen) == 2)
    assert raw_seen == ["QueueCallerAbandon", "QueueCallerJoin"]


async def test_not_connected(make_conn: Callable[..., AmiConnection]) -> None:
    conn = make_conn(port=1)  # nothing listens there
    with pytest.raises(AmiNotConnected):
        await conn.action({"Action": "Ping"})
    await conn.start()
    assert not await conn.wait_connected(0.2)
    assert conn.last_error is not None and not conn.connected
    with pytest.raises(AmiNotConnected):
        await conn.action({"Action": "Ping"})


async def test_close_leaves_no_pending_tasks(
        ami: ScriptedAmi, make_conn: Callable[..., AmiConnection]) -> None:
    handled: list[str] = []
    hook_started = asyncio.Event()

    async def hanging_hook() -> None:
        hook_started.set()
        await asyncio.sleep(3600)

    async def on_event(event: Message) -> None:
        await asyncio.sleep(0.01)
        handled.append(event.get("Uniqueid", ""))

    async def answer(peer: AmiPeer, action: Action) -> None:
        if action["Action"] != "Status":
            await peer.reply(action)

    ami.on_action = answer
    conn = make_conn()
    conn.on_connected.append(hanging_hook)
    conn.subscribe("*", on_event)
    await conn.start()
    assert await conn.wait_connected(3)
    await hook_started.wait()
    await conn.action({"Action": "CoreSettings"})
    await ami.peers[-1].send(block("Event: Hangup", "Uniqueid: 7"))
    await until(lambda: "7" in handled)
    pending = asyncio.create_task(conn.action({"Action": "Status"}))  # never answered
    await asyncio.sleep(0.05)
    await conn.close()
    with pytest.raises(AmiConnectionLost):
        await pending
    await ami.stop()
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert leftover == []
    assert not conn.connected
    with pytest.raises(AmiNotConnected):
        await conn.action({"Action": "Ping"})


async def test_close_while_reconnecting(make_conn: Callable[..., AmiConnection]) -> None:
    conn = make_conn(port=1)
    await conn.start()
    await until(lambda: conn.last_error is not None)
    await conn.close()
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


def test_safe_protocol_decodes_across_reads() -> None:
    """The same split, fed straight into the protocols (no network, no timing)."""
    dispatched: dict[str, list[str]] = {"safe": [], "raw": []}
    for kind, cls in (("safe", SafeAmiProtocol), ("raw", AMIProtocol)):
        protocol = cls()
        protocol.connection_made(mock.MagicMock())
        protocol.encoding = "utf8"
        protocol.factory = mock.MagicMock(save_stream=None)
        protocol.factory.dispatch.side_effect = (
            lambda event, kind=kind: dispatched[kind].append(event["CallerIDName"]))
        protocol.data_received(b"Event: Newchannel\r\nCallerIDName: " + ZHANG_SAN[:4])
        protocol.data_received(ZHANG_SAN[4:] + b"\r\n\r\n")
    assert dispatched == {"safe": ["张三"], "raw": ["张"]}
