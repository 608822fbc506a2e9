"""FastAGI server over a real TCP connection, with a scripted Asterisk on the other end.

Tests named ``test_raw_panoramisk_*`` run panoramisk 1.4 unguarded and assert its broken
behaviour (DESIGN §6): they show what the guard in agi/fastagi.py is for, and fail the
day panoramisk is fixed (then the guard can go).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, ClassVar

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st
from panoramisk.fast_agi import Application, Request
from structlog.testing import capture_logs

from agi.fastagi import (
    AgiChannel,
    AgiCommandError,
    AgiHangup,
    AgiTimeout,
    FastAgiServer,
    quote_agi_arg,
)

REPO = Path(__file__).resolve().parents[2]


# --- a scripted Asterisk ---------------------------------------------------------------


def header_block(script: str = "ivr", args: Iterable[str] = (),
                 caller_name: bytes = b"unknown") -> bytes:
    """The header block in the order res_agi sends it (agi_network_script comes first)."""
    lines = [b"agi_network: yes", b"agi_network_script: " + script.encode(),
             b"agi_request: agi://127.0.0.1/" + script.encode(),
             b"agi_channel: PJSIP/carrier-00000001", b"agi_language: zh",
             b"agi_type: PJSIP", b"agi_uniqueid: 1700000000.1", b"agi_version: 22.10.1",
             b"agi_callerid: 13800000000", b"agi_calleridname: " + caller_name,
             b"agi_callingpres: 0", b"agi_dnid: 12355", b"agi_context: hotline-inbound",
             b"agi_extension: 12355", b"agi_priority: 2", b"agi_enhanced: 0.0",
             b"agi_accountcode: ", b"agi_threadid: 140000000000000"]
    lines += [f"agi_arg_{i}: ".encode() + a.encode() for i, a in enumerate(args, start=1)]
    return b"\n".join(lines) + b"\n\n"


class Peer:
    """The Asterisk side of one FastAGI connection."""

    opened: ClassVar[list[Peer]] = []  # closed after each test by close_peers

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> Peer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        peer = cls(reader, writer)
        cls.opened.append(peer)
        return peer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def expect(self, command: str) -> None:
        line = await asyncio.wait_for(self.reader.readline(), 2)
        assert line.decode() == command + "\n"

    async def reply(self, line: str) -> None:
        await self.send(line.encode() + b"\n")

    async def closed_by_server(self, within: float = 2.0) -> bool:
        data = await asyncio.wait_for(self.reader.read(), within)
        return data == b""

    def close(self) -> None:
        self.writer.close()


@pytest.fixture(autouse=True)
async def close_peers() -> AsyncIterator[None]:
    yield
    while Peer.opened:
        peer = Peer.opened.pop()
        peer.close()
        with contextlib.suppress(ConnectionError):
            await peer.writer.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[FastAgiServer]:
    srv = FastAgiServer(host="127.0.0.1", port=0, header_timeout=1.0, command_timeout=1.0)
    await srv.start()
    yield srv
    await srv.close()


class Recorder:
    """Collects what a route saw; ``done`` is set when the route returns or raises."""

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.seen: dict[str, Any] = {}
        self.error: BaseException | None = None

    async def wait(self) -> None:
        await asyncio.wait_for(self.done.wait(), 3)


async def wait_idle(srv: FastAgiServer) -> None:
    for _ in range(200):
        if srv.active_sessions == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("session still active")


# --- a normal session ------------------------------------------------------------------


async def test_normal_session(server: FastAgiServer) -> None:
    rec = Recorder()

    async def ivr(channel: AgiChannel) -> None:
        try:
            rec.seen["headers"] = dict(channel.headers)
            rec.seen["args"] = channel.args
            rec.seen["path"], rec.seen["query"] = channel.path, dict(channel.query)
            await channel.answer()
            rec.seen["digit"] = await channel.stream_file("hotline/welcome", "123")
            await channel.set_variable("HOTLINE_ROUTE", "queue")
        finally:
            rec.done.set()

    server.add_route("/ivr", ivr)
    peer = await Peer.connect(server.port)
    args = [f"a{i}" for i in range(1, 12)]  # agi_arg_10 must sort after agi_arg_9
    await peer.send(header_block("ivr?site=gd", args))
    await peer.expect("ANSWER")
    await peer.reply("200 result=0")
    await peer.expect('STREAM FILE "hotline/welcome" "123"')
    await peer.reply("100 result=0 Trying...")  # Asterisk may say this first
    await peer.reply("200 result=49 endpos=1234")
    await peer.expect('SET VARIABLE HOTLINE_ROUTE "queue"')
    await peer.reply("200 result=1")
    await rec.wait()
    assert await peer.closed_by_server()
    assert rec.seen["digit"] == "1"
    assert rec.seen["args"] == args
    assert rec.seen["path"] == "ivr" and rec.seen["query"] == {"site": "gd"}
    assert rec.seen["headers"]["agi_context"] == "hotline-inbound"
    await wait_idle(server)
    assert (server.sessions_total, server.errors_total) == (1, 0)


async def test_get_data_results(server: FastAgiServer) -> None:
    rec = Recorder()

    async def menu(channel: AgiChannel) -> None:
        try:
            rec.seen["results"] = [await channel.get_data("hotline/menu", 5000, 1)
                                   for _ in range(4)]
        finally:
            rec.done.set()

    server.add_route("menu", menu)
    peer = await Peer.connect(server.port)
    await peer.send(header_block("menu"))
    for answer in ("200 result= (timeout)", "200 result=", "200 result=12 (timeout)",
                   "200 result=3"):
        await peer.expect('GET DATA "hotline/menu" 5000 1')
        await peer.reply(answer)
    await rec.wait()
    # nothing pressed -> None; '#' alone -> ''; digits then timeout -> the digits
    assert rec.seen["results"] == [None, "", "12", "3"]


async def test_set_variables_uses_one_mset_for_safe_values(server: FastAgiServer) -> None:
    rec = Recorder()

    async def route(channel: AgiChannel) -> None:
        try:
            await channel.set_variables({"HOTLINE_ROUTE": "queue", "HOTLINE_QUEUE": "psych",
                                         "HOTLINE_CALL_ID": "c-0f3a/1=2",
                                         "HOTLINE_NOTE": "a,b|c\"d",  # MSet would split
                                         "HOTLINE_SITE": "广东"})
            with pytest.raises(ValueError):
                await channel.set_variables({"BAD NAME": "x"})
            with pytest.raises(ValueError):
                await channel.set_variable("X\nY", "x")
        finally:
            rec.done.set()

    server.add_route("vars", route)
    peer = await Peer.connect(server.port)
    await peer.send(header_block("vars"))
    await peer.expect('SET VARIABLE HOTLINE_NOTE "a,b|c\\"d"')
    await peer.reply("200 result=1")
    await peer.expect('SET VARIABLE HOTLINE_SITE "广东"')
    await peer.reply("200 result=1")
    await peer.expect(
        'EXEC MSet "HOTLINE_ROUTE=queue,HOTLINE_QUEUE=psych,HOTLINE_CALL_ID=c-0f3a/1=2"')
    await peer.reply("200 result=0")
    await rec.wait()
    assert await peer.closed_by_server()


async def test_command_errors(server: FastAgiServer) -> None:
    rec = Recorder()

    async def route(channel: AgiChannel) -> None:
        try:
            with pytest.raises(AgiCommandError, match="510"):
                await channel.command("NOPE")
            with pytest.raises(AgiCommandError, match="Proper usage"):
                await channel.command("SET VARIABLE")
            with pytest.raises(ValueError):
                await channel.command("NOOP\nHANGUP")
            rec.seen["after"] = await channel.exec("Playback", "hotline/bye")
        finally:
            rec.done.set()

    server.add_route("errors", route)
    peer = await Peer.connect(server.port)
    await peer.send(header_block("errors"))
    await peer.expect("NOPE")
    await peer.reply("510 Invalid or unknown command")
    await peer.expect("SET VARIABLE")
    await peer.send(b"520-Invalid command syntax.  Proper usage follows:\n"
                    b" Usage: SET VARIABLE <variablename> <value>\n"
                    b"520 End of proper usage.\n")
    await peer.expect('EXEC Playback "hotline/bye"')
    await peer.reply("200 result=0")
    await rec.wait()
    assert rec.seen["after"].result == "0"


# --- the peer closes before the blank line: ours closes, panoramisk spins -------------


async def test_peer_closes_before_end_of_headers(server: FastAgiServer) -> None:
    called = False

    async def ivr(channel: AgiChannel) -> None:
        nonlocal called
        called = True

    server.add_route("ivr", ivr)
    peer = await Peer.connect(server.port)
    with capture_logs() as logs:
        await peer.send(header_block("ivr")[:60])  # no blank line
        peer.writer.write_eof()
        started = time.monotonic()
        assert await peer.closed_by_server(within=1.0)
        await wait_idle(server)
    assert time.monotonic() - started < 0.5  # promptly, not after the header timeout
    assert not called
    assert server.errors_total == 1
    assert any(e["event"] == "fastagi.bad_headers" for e in logs)


_SPIN_SCRIPT = """
import asyncio, sys

async def main():
    if sys.argv[1] == "raw":
        from panoramisk.fast_agi import Application
        app = Application(loop=asyncio.get_running_loop())
        srv = await asyncio.start_server(app.handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
    else:
        from agi.fastagi import FastAgiServer
        srv = FastAgiServer(host="127.0.0.1", port=0)
        await srv.start()
        port = srv.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"agi_network: yes\\nagi_network_script: ivr\\n")  # no blank line
    await writer.drain()
    writer.close()
    print("sent", flush=True)
    await asyncio.sleep(0.3)
    print("loop alive", flush=True)
    srv.close()

asyncio.run(main())
"""


def _run_spin_script(mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _SPIN_SCRIPT, mode], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_raw_panoramisk_spins_when_peer_closes_before_end_of_headers() -> None:
    """DEFECT DEMO: panoramisk's handler freezes the event loop at 100% CPU.

    Run in a child process (with a deadline) because the frozen loop can't be timed out
    from inside: reader.read() returns b'' at EOF without ever yielding.
    """
    proc = _run_spin_script("raw")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "sent\n"
        cpu = psutil.Process(proc.pid)
        before = sum(cpu.cpu_times()[:2])
        time.sleep(1.5)
        busy = sum(cpu.cpu_times()[:2]) - before
        assert proc.poll() is None, "the raw handler returned: panoramisk may be fixed"
        # a loop idling in asyncio.sleep() would use next to no CPU; a spinning one takes
        # a whole core (less on a loaded machine)
        assert busy > 0.3, f"expected a spinning loop, child used {busy:.2f}s CPU in 1.5s"
    finally:
        proc.kill()
        out, _ = proc.communicate(timeout=5)
    assert "loop alive" not in out  # asyncio.sleep(0.3) never came back


def test_same_script_with_our_server_keeps_the_loop_alive() -> None:
    """The control for the demo above: the same client against FastAgiServer."""
    proc = _run_spin_script("ours")
    try:
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    lines = out.splitlines()  # structlog's default output goes to stdout too
    assert lines.index("sent") < lines.index("loop alive")
    assert "fastagi.bad_headers" in out


async def test_header_timeout_and_size_cap() -> None:
    srv = FastAgiServer(host="127.0.0.1", port=0, header_timeout=0.2, max_header_bytes=256)
    await srv.start()
    try:
        silent = await Peer.connect(srv.port)  # connects, sends nothing
        assert await silent.closed_by_server(within=1.0)
        huge = await Peer.connect(srv.port)
        await huge.send(b"agi_network_script: ivr\n" + b"agi_x: " + b"x" * 1000 + b"\n\n")
        assert await huge.closed_by_server(within=1.0)
        await wait_idle(srv)
        assert srv.errors_total == 2
    finally:
        await srv.close()


# --- invalid UTF-8 in the headers -----------------------------------------------------


async def test_invalid_utf8_in_headers_is_replaced(server: FastAgiServer) -> None:
    rec = Recorder()

    async def ivr(channel: AgiChannel) -> None:
        rec.seen["name"] = channel.headers["agi_calleridname"]
        rec.seen["args"] = channel.args
        rec.done.set()

    server.add_route("ivr", ivr)
    peer = await Peer.connect(server.port)
    await peer.send(header_block("ivr", ["5byg5LiJ"], caller_name=b"\xe5\xbc bad \xff"))
    await rec.wait()
    assert rec.seen["name"] == "\ufffd bad \ufffd"
    assert rec.seen["args"] == ["5byg5LiJ"]
    assert await peer.closed_by_server()


async def test_raw_panoramisk_never_runs_route_on_invalid_utf8() -> None:
    """DEFECT DEMO: panoramisk decodes strictly; the handler dies before the route."""
    loop = asyncio.get_running_loop()
    errors: list[BaseException] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx["exception"]))
    called = False

    async def ivr(request: Request) -> None:
        nonlocal called
        called = True

    app = Application(loop=loop)
    app.add_route("ivr", ivr)
    srv = await asyncio.start_server(app.handler, "127.0.0.1", 0)
    try:
        peer = await Peer.connect(srv.sockets[0].getsockname()[1])
        await peer.send(header_block("ivr", caller_name=b"\xe5\xbc bad \xff"))
        assert await peer.closed_by_server()
        await asyncio.sleep(0.05)
    finally:
        loop.set_exception_handler(previous)
        srv.close()
        await srv.wait_closed()
    assert not called
    assert [type(e) for e in errors] == [UnicodeDecodeError]


async def test_duplicate_header_keeps_first(server: FastAgiServer) -> None:
    """A caller name with a newline can add header lines; the route path isn't hijacked."""
    rec = Recorder()

    async def ivr(channel: AgiChannel) -> None:
        rec.seen["script"] = channel.headers["agi_network_script"]
        rec.done.set()

    async def admin(channel: AgiChannel) -> None:  # must never run
        rec.seen["script"] = "admin"
        rec.done.set()

    server.add_route("ivr", ivr)
    server.add_route("admin", admin)
    peer = await Peer.connect(server.port)
    await peer.send(header_block("ivr", caller_name=b"x\nagi_network_script: admin"))
    await rec.wait()
    assert rec.seen["script"] == "ivr"


# --- hangups ---------------------------------------------------------------------------


async def test_hangup_line_mid_route(server: FastAgiServer) -> None:
    rec = Recorder()

    async def ivr(channel: AgiChannel) -> None:
        try:
            await channel.answer()
            try:
                await channel.stream_file("hotline/welcome", "123")
            except AgiHangup:
                rec.seen["hangup"] = True
                raise
            rec.seen["continued"] = True
        finally:
            rec.done.set()

    server.add_route("ivr", ivr)
    peer = await Peer.connect(server.port)
    with capture_logs() as logs:
        await peer.send(header_block("ivr"))
        await peer.expect("ANSWER")
        await peer.reply("200 result=0")
        await peer.expect('STREAM FILE "hotline/welcome" "123"')
        await peer.reply("HANGUP")
        await peer.reply("200 result=-1 endpos=0")
        await rec.wait()
        assert await peer.closed_by_server()
        await wait_idle(server)
    assert rec.seen == {"hangup": True}
    assert server.errors_total == 0  # a hangup is not an error
    assert [e["log_level"] for e in logs if e["event"] == "fastagi.hangup"] == ["info"]


async def test_eof_and_dead_channel_are_hangups(server: FastAgiServer) -> None:
    rec = Recorder()

    async def dead(channel: AgiChannel) -> None:
        try:
            with pytest.raises(AgiHangup, match="dead channel"):
                await channel.command("NOOP")
            with pytest.raises(AgiHangup, match="already"):  # nothing more is sent
                await channel.command("NOOP")
        finally:
            rec.done.set()

    server.add_route("dead", dead)
    peer = await Peer.connect(server.port)
    await peer.send(header_block("dead"))
    await peer.expect("NOOP")
    await peer.reply("511 Command Not Permitted on a dead channel or intercept routine")
    await rec.wait()
    assert await peer.closed_by_server()

    eof = Recorder()

    async def gone(channel: AgiChannel) -> None:
        try:
            await channel.answer()
        except AgiHangup as exc:
            eof.seen["hangup"] = str(exc)
        finally:
            eof.done.set()

    server.add_route("gone", gone)
    peer = await Peer.connect(server.port)
    await peer.send(header_block("gone"))
    await peer.expect("ANSWER")
    peer.close()  # Asterisk goes away mid-command
    await eof.wait()
    assert "closed" in eof.seen["hangup"]


async def test_raw_panoramisk_send_command_on_eof_and_hangup() -> None:
    """DEFECT DEMO: panoramisk reports HANGUP as a plain dict, and EOF as a ValueError."""

    class Writer:
        def write(self, data: bytes) -> None:
            pass

        async def drain(self) -> None:
            pass

    reader = asyncio.StreamReader()
    reader.feed_data(b"HANGUP\n")
    request = Request(app=None, headers={}, reader=reader, writer=Writer())
    result = await request.send_command("ANSWER")
    assert result["error"] == "AGIResultHangup"  # no exception: a route just carries on
    reader.feed_eof()
    with pytest.raises(ValueError, match="invalid literal for int"):
        await request.send_command("ANSWER")


# --- routes ----------------------------------------------------------------------------


async def test_sync_route_rejected() -> None:
    srv = FastAgiServer(host="127.0.0.1", port=0)

    def sync_route(channel: AgiChannel) -> None:
        pass

    with pytest.raises(TypeError, match="async def"):
        srv.add_route("ivr", sync_route)  # type: ignore[arg-type]


def test_raw_panoramisk_sync_route_crashes() -> None:
    """DEFECT DEMO: panoramisk wraps sync routes in asyncio.coroutine, removed in 3.11."""
    app = Application(loop=object())

    def sync_route(request: Request) -> None:
        pass

    with pytest.raises(AttributeError, match="coroutine"):
        app.add_route("ivr", sync_route)


async def test_route_exception_is_logged_and_server_keeps_serving(
        server: FastAgiServer) -> None:
    calls = 0

    async def broken(channel: AgiChannel) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("bug in a route")

    server.add_route("broken", broken)
    with capture_logs() as logs:
        for _ in range(2):
            peer = await Peer.connect(server.port)
            await peer.send(header_block("broken"))
            assert await peer.closed_by_server()
        unknown = await Peer.connect(server.port)
        await unknown.send(header_block("nowhere"))
        assert await unknown.closed_by_server()
        await wait_idle(server)
    assert calls == 2
    assert server.errors_total == 3
    events = [e["event"] for e in logs]
    assert events.count("fastagi.route_failed") == 2 and "fastagi.no_route" in events


# --- timeouts and shutdown -------------------------------------------------------------


async def test_command_timeout(server: FastAgiServer) -> None:
    rec = Recorder()
    server.command_timeout = 0.2

    async def slow(channel: AgiChannel) -> None:
        try:
            started = time.monotonic()
            with pytest.raises(AgiTimeout):
                await channel.answer()
            rec.seen["waited"] = time.monotonic() - started
            # a late answer would be taken for the next command's: refuse to go on
            with pytest.raises(AgiCommandError, match="unusable"):
                await channel.command("NOOP")
        finally:
            rec.done.set()

    server.add_route("slow", slow)
    peer = await Peer.connect(server.port)
    await peer.send(header_block("slow"))
    await peer.expect("ANSWER")  # and never answer
    await rec.wait()
    assert 0.15 < rec.seen["waited"] < 1.0
    assert await peer.closed_by_server()


async def test_close_cancels_running_sessions() -> None:
    srv = FastAgiServer(host="127.0.0.1", port=0, command_timeout=60)
    await srv.start()
    started = asyncio.Event()
    cancelled = 0

    async def hold(channel: AgiChannel) -> None:
        nonlocal cancelled
        started.set()
        try:
            await channel.command("WAIT FOR DIGIT 100")  # the peer never answers
        except asyncio.CancelledError:
            cancelled += 1
            raise

    srv.add_route("hold", hold)
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    try:
        peers = [await Peer.connect(srv.port) for _ in range(3)]
        for peer in peers:
            await peer.send(header_block("hold"))
        for peer in peers:
            await peer.expect("WAIT FOR DIGIT 100")
        assert started.is_set() and srv.active_sessions == 3
        await asyncio.wait_for(srv.close(), 2)
        for peer in peers:
            assert await peer.closed_by_server()
        await asyncio.sleep(0.05)
    finally:
        loop.set_exception_handler(previous)
    assert cancelled == 3 and srv.active_sessions == 0
    assert errors == []  # no "Unhandled exception in client_connected_cb"
    with pytest.raises(OSError):
        await Peer.connect(srv.port)


async def test_close_with_grace_lets_sessions_finish() -> None:
    srv = FastAgiServer(host="127.0.0.1", port=0)
    await srv.start()
    entered, finished = asyncio.Event(), asyncio.Event()

    async def short(channel: AgiChannel) -> None:
        entered.set()
        await asyncio.sleep(0.1)
        finished.set()

    srv.add_route("short", short)
    peer = await Peer.connect(srv.port)
    await peer.send(header_block("short"))
    await asyncio.wait_for(entered.wait(), 2)
    await srv.close(grace=2)
    assert finished.is_set()


# --- quoting ---------------------------------------------------------------------------


def res_agi_parse_args(line: str) -> list[str]:
    """A port of parse_args() in Asterisk's res_agi.c, to check quoting against."""
    args: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and cur is None:
                cur = []
                args.append("")
            continue
        if ch in " \t" and not quoted and not escaped:
            if cur is not None:
                args[-1] = "".join(cur)
            cur = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if cur is None:
            cur = []
            args.append("")
        cur.append(ch)
        escaped = False
    if cur is not None:
        args[-1] = "".join(cur)
    return args


@pytest.mark.parametrize(("value", "quoted", "parsed"), [
    ("plain", '"plain"', "plain"),
    ("", '""', ""),
    ("two words", '"two words"', "two words"),
    ("evil\r\nEXEC System rm", '"evilEXEC System rm"', "evilEXEC System rm"),
    ("nul\0byte", '"nulbyte"', "nulbyte"),
    ('say "hi"', '"say \\"hi\\""', 'say "hi"'),
    ("back\\slash\\", '"back\\\\slash\\\\"', "back\\slash\\"),
    ("张三", '"张三"', "张三"),
    ("emoji 🆘😀", '"emoji 🆘😀"', "emoji 🆘😀"),
])
def test_quote_agi_arg(value: str, quoted: str, parsed: str) -> None:
    assert quote_agi_arg(value) == quoted
    assert res_agi_parse_args(f"SET VARIABLE X {quoted}") == ["SET", "VARIABLE", "X", parsed]


@given(st.text())
def test_quote_agi_arg_is_always_one_argument(value: str) -> None:
    quoted = quote_agi_arg(value)
    assert "\n" not in quoted and "\r" not in quoted and "\0" not in quoted
    expected = value.replace("\r", "").replace("\n", "").replace("\0", "")
    assert res_agi_parse_args(f"SET VARIABLE X {quoted}") == ["SET", "VARIABLE", "X", expected]
