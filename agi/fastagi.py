"""FastAGI server on panoramisk, with panoramisk 1.4's defects guarded (DESIGN §6).

panoramisk's ``Application.handler`` reads the AGI headers with ``reader.read()`` until it
sees a blank line. When Asterisk (or anything else) closes the socket before that line,
``read()`` returns ``b''`` without ever yielding, so the handler spins at 100% CPU and the
whole event loop freezes. It also decodes strictly (one bad byte raises before the route
runs), has no timeout, and its ``add_route`` wraps sync routes in ``asyncio.coroutine``,
which no longer exists in Python 3.11. This module keeps panoramisk's route table and
request object but replaces the handler and the command round trip.

Header values are NOT trustworthy. Asterisk writes ``agi_calleridname`` (and the other
caller fields) raw into the header block, so a caller name containing a newline can add
header lines of its own, or even end the header block early so that the injected lines
are read as answers to our first command. Only ``agi_network``/``agi_network_script``
are sent before the caller fields; we keep the first occurrence of every key, which
protects those but not the keys sent after the caller name (``agi_context``,
``agi_extension``, ``agi_arg_N``...). Our dialplan therefore passes the caller ID
base64-encoded in the AGI arguments; routes must decode it from ``args`` and must not
take caller data from ``headers``.

Every session is measured (agi/metrics.py): the backend's own time per step, from an
answer read to the next command written, and any SQL run from the session's task.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from time import perf_counter
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

import structlog
from panoramisk.fast_agi import Application, Request

from agi.metrics import AgiMetrics, StepTimer, enter_session, leave_session

log = structlog.get_logger(__name__)


class AgiHangup(Exception):
    """The channel hung up: a ``HANGUP`` line, a dead-channel answer, or EOF on the socket."""


class AgiCommandError(Exception):
    """Asterisk refused a command (510, 511 is a hangup, 520 usage...) or answered garbage."""


class AgiTimeout(AgiCommandError):
    """No answer within the command timeout; the session cannot be used afterwards."""


@dataclass(frozen=True)
class AgiResult:
    code: int
    result: str  # the value after ``result=``, possibly empty
    data: str  # the text in parentheses after the result, '' when absent
    raw: str  # the full answer as received (several lines for a 520 usage error)


Route = Callable[["AgiChannel"], Awaitable[None]]

_STRIP_FROM_ARGS = str.maketrans("", "", "\r\n\0")
_VARIABLE_NAME = re.compile(r"[A-Za-z0-9_()]+")
_APP_NAME = re.compile(r"[A-Za-z0-9_]+")
# Characters that mean nothing to MSet's argument parser (quotes, backslashes, commas,
# pipes, brackets, parentheses and ${} all do). Anything else goes through SET VARIABLE.
_MSET_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:@+\-/=#*]*")
# res_agi reads commands into a 2048-byte buffer; stay well below it.
_MAX_MSET_LINE = 1500
_MAX_MSET_PAIRS = 99  # MSet parses at most 99 pairs
_RESPONSE = re.compile(r"(?P<code>\d{3})(?P<sep>[ -])(?P<rest>.*)", re.DOTALL)
_RESULT = re.compile(r"result=(?P<result>\S*)(?:\s+\((?P<data>.*)\))?", re.DOTALL)


def quote_agi_arg(value: str) -> str:
    """One AGI command argument: CR/LF/NUL removed, backslash and quote escaped, quoted.

    res_agi splits a command on blanks outside double quotes and takes the character
    after a backslash literally; a newline would end the command and start another.
    """
    cleaned = value.translate(_STRIP_FROM_ARGS)
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _is_mset_safe(value: str) -> bool:
    return _MSET_SAFE_VALUE.fullmatch(value) is not None


def _check_variable_name(name: str) -> None:
    if _VARIABLE_NAME.fullmatch(name) is None:
        raise ValueError(f"invalid channel variable name {name!r}")


def _normalise_path(script: str) -> str:
    # agi://host:port/ivr?site=1 arrives as "ivr?site=1"; routes are registered as "ivr"
    return script.partition("?")[0].strip("/")


class AgiChannel(Request):
    """One FastAGI session, handed to a route.

    ``headers`` holds the ``agi_*`` header block (decoded with errors='replace'; see the
    module docstring on why caller fields in it must not be trusted), ``args`` the
    ``agi_arg_N`` values in order, ``path`` the route path and ``query`` the parameters
    after ``?`` in the AGI URL.
    """

    headers: Mapping[str, str]

    def __init__(self, app: _AgiApplication, headers: dict[str, str],
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 *, command_timeout: float, steps: StepTimer | None = None) -> None:
        super().__init__(app=app, headers=MappingProxyType(headers), reader=reader,
                         writer=writer, encoding="utf-8")
        self.args: list[str] = _ordered_args(headers)
        script = headers.get("agi_network_script", "")
        self.path = _normalise_path(script)
        self.query: Mapping[str, str] = MappingProxyType(dict(parse_qsl(script.partition("?")[2])))
        self.command_timeout = command_timeout
        self._lock = asyncio.Lock()  # answers are matched to commands by order only
        self._hung_up = False
        self._broken: str | None = None
        self._steps = steps

    async def send_command(self, command: str) -> AgiResult:
        """panoramisk's name for :meth:`command`; its own version has no timeout or EOF check."""
        return await self.command(command)

    async def command(self, line: str) -> AgiResult:
        """Send one AGI command and read its answer.

        Raises AgiHangup (HANGUP line, 511 dead channel, "(hangup)" result, EOF),
        AgiTimeout (no answer within ``command_timeout``; the session is then unusable,
        since a late answer would be taken for the next command's) and AgiCommandError
        (510, 520, anything unparseable).
        """
        return await self._round_trip(line, self.command_timeout)

    async def _round_trip(self, line: str, limit: float) -> AgiResult:
        if any(c in line for c in "\r\n\0"):
            raise ValueError("an AGI command is one line; quote arguments with quote_agi_arg")
        async with self._lock:
            if self._hung_up:
                raise AgiHangup("channel already hung up")
            if self._broken is not None:
                raise AgiCommandError(f"session unusable: {self._broken}")
            try:
                async with asyncio.timeout(limit):
                    await self._write_line(line)
                    return await self._read_answer(line)
            except TimeoutError:
                self._broken = f"no answer to {line!r} within {limit}s"
                raise AgiTimeout(self._broken) from None
            except AgiHangup:
                self._hung_up = True
                raise
            except asyncio.CancelledError:
                # the answer may still come and would be read as the next command's
                self._broken = f"cancelled while waiting for the answer to {line!r}"
                raise

    async def answer(self) -> None:
        result = await self.command("ANSWER")
        if result.result == "-1":
            raise AgiCommandError("ANSWER failed")

    async def stream_file(self, name: str, escape_digits: str = "") -> str | None:
        """Play a prompt; the digit that interrupted it, or None.

        result=-1 (missing file, or a hangup that the next command will report) raises
        AgiCommandError so a route can carry on without the prompt.
        """
        result = await self.command(
            f"STREAM FILE {quote_agi_arg(name)} {quote_agi_arg(escape_digits)}")
        return _digit_or_none(result, "STREAM FILE")

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        if timeout_ms < 0:
            raise ValueError("WAIT FOR DIGIT -1 waits forever; AGI steps must stay short")
        result = await self._round_trip(f"WAIT FOR DIGIT {int(timeout_ms)}",
                                        self.command_timeout + timeout_ms / 1000)
        return _digit_or_none(result, "WAIT FOR DIGIT")

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> str | None:
        """Play ``prompt`` and collect up to ``max_digits`` digits.

        None: nothing pressed before the timeout. '': the caller pressed # (or the input
        ended) with no digit. Otherwise the digits, also when the timeout ended the input
        after some digits.
        """
        if timeout_ms < 0 or max_digits < 1:
            raise ValueError("GET DATA needs timeout_ms >= 0 and max_digits >= 1")
        # the prompt's length is unknown; allow the per-digit timeout for every digit
        budget = self.command_timeout + timeout_ms * max_digits / 1000
        result = await self._round_trip(
            f"GET DATA {quote_agi_arg(prompt)} {int(timeout_ms)} {int(max_digits)}", budget)
        if result.result == "-1":
            raise AgiCommandError("GET DATA failed")
        if result.result == "" and result.data == "timeout":
            return None
        return result.result

    async def set_variable(self, name: str, value: str) -> None:
        _check_variable_name(name)
        result = await self.command(f"SET VARIABLE {name} {quote_agi_arg(value)}")
        if result.result != "1":
            raise AgiCommandError(f"SET VARIABLE {name} failed: {result.raw}")

    async def set_variables(self, values: Mapping[str, str]) -> None:
        """Set several variables, in one ``EXEC MSet`` round trip when the values allow.

        MSet splits on commas and interprets quotes, backslashes and brackets, so only
        values made of plain characters go through it; any other value (Chinese text,
        spaces, punctuation) gets its own SET VARIABLE.
        """
        for name in values:
            _check_variable_name(name)
        batch: list[str] = []
        length = 0
        for name, value in values.items():
            if not _is_mset_safe(value):
                await self.set_variable(name, value)
                continue
            pair = f"{name}={value}"
            if batch and (len(batch) >= _MAX_MSET_PAIRS or length + len(pair) > _MAX_MSET_LINE):
                await self._mset(batch)
                batch, length = [], 0
            batch.append(pair)
            length += len(pair) + 1
        if batch:
            await self._mset(batch)

    async def _mset(self, pairs: list[str]) -> None:
        result = await self.exec("MSet", ",".join(pairs))
        if result.result == "-1":
            raise AgiCommandError(f"MSet failed: {result.raw}")

    async def exec(self, app: str, args: str = "") -> AgiResult:
        """Run a dialplan application; ``args`` is passed as one quoted argument."""
        if _APP_NAME.fullmatch(app) is None:
            raise ValueError(f"invalid application name {app!r}")
        line = f"EXEC {app} {quote_agi_arg(args)}" if args else f"EXEC {app}"
        return await self.command(line)

    async def _write_line(self, line: str) -> None:
        try:
            self.writer.write(line.encode("utf-8") + b"\n")
            if self._steps is not None:
                self._steps.command_written(line)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise AgiHangup(f"socket closed while sending: {exc}") from exc

    async def _read_line(self) -> str:
        try:
            raw = await self.reader.readline()
        except (ConnectionError, OSError) as exc:
            raise AgiHangup(f"socket error: {exc}") from exc
        except ValueError as exc:  # longer than the stream limit
            self._broken = "answer line too long"
            raise AgiCommandError(self._broken) from exc
        finally:
            # Asterisk's turn is over (the answer, a hangup, EOF): the backend's begins.
            if self._steps is not None:
                self._steps.answer_read()
        if not raw.endswith(b"\n"):
            raise AgiHangup("socket closed by Asterisk")
        return raw.decode("utf-8", errors="replace").rstrip("\r\n")

    async def _read_answer(self, command: str) -> AgiResult:
        while True:
            line = await self._read_line()
            if line == "HANGUP":
                raise AgiHangup("HANGUP from Asterisk")
            match = _RESPONSE.fullmatch(line)
            if match is None:
                self._broken = f"unexpected answer {line!r}"
                raise AgiCommandError(self._broken)
            code = int(match["code"])
            if code == 100:  # "100 result=0 Trying...": the real answer follows
                continue
            raw = line
            if match["sep"] == "-":  # 520-...: usage text until "520 End of proper usage."
                lines = [line]
                while not lines[-1].startswith(f"{code} "):
                    lines.append(await self._read_line())
                raw = "\n".join(lines)
            if code == 511:
                raise AgiHangup(f"dead channel: {raw}")
            if code != 200:
                raise AgiCommandError(f"{command!r} failed: {raw}")
            fields = _RESULT.match(match["rest"])
            if fields is None:
                self._broken = f"unexpected answer {line!r}"
                raise AgiCommandError(self._broken)
            data = fields["data"] or ""
            if data.lower() == "hangup":
                raise AgiHangup(f"hangup during {command!r}")
            return AgiResult(code=code, result=fields["result"], data=data, raw=raw)


def _digit_or_none(result: AgiResult, command: str) -> str | None:
    try:
        code = int(result.result)
    except ValueError:
        raise AgiCommandError(f"{command}: unexpected result {result.raw!r}") from None
    if code < 0:
        raise AgiCommandError(f"{command} failed (result={code}): missing file or hangup")
    return chr(code) if code > 0 else None


def _ordered_args(headers: Mapping[str, str]) -> list[str]:
    numbered: list[tuple[int, str]] = []
    for key, value in headers.items():
        if key.startswith("agi_arg_") and key[8:].isdigit():
            numbered.append((int(key[8:]), value))
    return [value for _, value in sorted(numbered)]


class _HeaderError(Exception):
    pass


class _AgiApplication(Application):
    """panoramisk's Application (its route table) with a handler that cannot spin."""

    def __init__(self, server: FastAgiServer) -> None:
        # loop=None would make panoramisk call the deprecated asyncio.get_event_loop();
        # it never uses self.loop afterwards
        super().__init__(default_encoding="utf-8", loop=False)
        self._server = server

    def find_route(self, path: str) -> Route | None:
        route: Route | None = self._route.get(path)
        return route

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._server._serve(reader, writer)


class FastAgiServer:
    """A FastAGI server: ``agi://host:port/<route>`` runs the route registered for it.

    Counters: ``active_sessions`` (sessions being served), ``sessions_total`` (accepted
    connections), ``errors_total`` (bad or timed-out header blocks, unknown routes, route
    exceptions; a hangup is not an error). ``metrics`` (agi/metrics.py): the time per
    step and the SQL run inside sessions.
    """

    def __init__(self, *, host: str, port: int, header_timeout: float = 5.0,
                 command_timeout: float = 30.0, max_header_bytes: int = 65536,
                 metrics: AgiMetrics | None = None) -> None:
        self.host = host
        self._port = port
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self.max_header_bytes = max_header_bytes
        self._app = _AgiApplication(self)
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.sessions_total = 0
        self.errors_total = 0
        self.metrics = metrics if metrics is not None else AgiMetrics()

    @property
    def active_sessions(self) -> int:
        return len(self._sessions)

    @property
    def port(self) -> int:
        """The bound port (useful when constructed with port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def add_route(self, path: str, route: Route) -> None:
        if not inspect.iscoroutinefunction(route):
            # A route object with an `async def __call__` is registered by its bound method.
            route = route.__call__  # type: ignore[operator]
        if not inspect.iscoroutinefunction(route):
            # panoramisk would wrap it in asyncio.coroutine, which Python 3.11 removed
            raise TypeError(f"FastAGI route for {path!r} must be an async def")
        self._app.add_route(_normalise_path(path), route)

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("FastAgiServer already started")
        self._closing = False
        self._server = await asyncio.start_server(
            self._app.handler, self.host, self._port,
            limit=max(self.max_header_bytes, 65536))
        log.info("fastagi.listening", host=self.host, port=self.port)

    async def close(self, *, grace: float = 0.0) -> None:
        """Stop listening, give running sessions ``grace`` seconds, cancel and await the rest."""
        self._closing = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # handlers of connections accepted just before close() start now and see _closing
        await asyncio.sleep(0)
        current = asyncio.current_task()
        if grace > 0 and (running := self._sessions - {current}):
            await asyncio.wait(running, timeout=grace)
        while pending := self._sessions - {current}:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        self.sessions_total += 1
        self.metrics.sessions.inc()
        peer = writer.get_extra_info("peername")
        try:
            if not self._closing:
                await self._run_session(reader, writer, peer)
        except asyncio.CancelledError:
            # only close() cancels a session; ending quietly keeps asyncio's
            # client_connected_cb callback from logging the cancellation as an error
            if not self._closing:
                raise
            log.info("fastagi.session_cancelled", peer=peer)
        finally:
            self._sessions.discard(task)
            self.metrics.sessions.dec()
            await _close_writer(writer)

    async def _run_session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           peer: object) -> None:
        try:
            headers = await self._read_headers(reader)
        except TimeoutError:
            self.errors_total += 1
            log.warning("fastagi.header_timeout", peer=peer, timeout=self.header_timeout)
            return
        except _HeaderError as exc:
            self.errors_total += 1
            log.warning("fastagi.bad_headers", peer=peer, reason=str(exc))
            return
        headers_read = perf_counter()
        path = _normalise_path(headers.get("agi_network_script", ""))
        route = self._app.find_route(path)
        if route is None:
            self.errors_total += 1
            log.error("fastagi.no_route", peer=peer, path=path)
            return
        steps = self.metrics.session(path, headers_read)
        channel = AgiChannel(self._app, headers, reader, writer,
                             command_timeout=self.command_timeout, steps=steps)
        log.debug("fastagi.session", peer=peer, path=path,
                  uniqueid=headers.get("agi_uniqueid"))
        # Set in this session's own task: tasks copy the context when they are created,
        # so those that already run (the journal's writer, the AMI listener) never see it;
        # a task the route itself starts counts as part of the session.
        session = enter_session(steps)
        try:
            await route(channel)
        except AgiHangup as exc:
            log.info("fastagi.hangup", path=path, reason=str(exc))
        except Exception:
            self.errors_total += 1
            log.exception("fastagi.route_failed", path=path)
        finally:
            steps.session_ended()
            leave_session(session)

    async def _read_headers(self, reader: asyncio.StreamReader) -> dict[str, str]:
        """Read the header block line by line: EOF, size and time are all bounded."""
        headers: dict[str, str] = {}
        size = 0
        async with asyncio.timeout(self.header_timeout):
            while True:
                try:
                    raw = await reader.readline()
                except ValueError as exc:  # one line longer than the stream limit
                    raise _HeaderError("header line too long") from exc
                except (ConnectionError, OSError) as exc:
                    raise _HeaderError(f"socket error: {exc}") from exc
                size += len(raw)
                if size > self.max_header_bytes:
                    raise _HeaderError(f"headers larger than {self.max_header_bytes} bytes")
                if not raw.endswith(b"\n"):
                    raise _HeaderError("peer closed before the end of the headers")
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not line:
                    return headers
                key, sep, value = line.partition(": ")
                if not sep:
                    continue
                if key in headers:
                    # first wins: agi_network_script precedes the caller fields
                    log.warning("fastagi.duplicate_header", key=key)
                    continue
                headers[key] = value


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        # a peer that stopped reading would keep wait_closed() waiting for the flush
        await asyncio.wait_for(writer.wait_closed(), timeout=1.0)
    except (TimeoutError, ConnectionError, OSError):
        writer.transport.abort()
