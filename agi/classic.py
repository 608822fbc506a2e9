"""Classic AGI fallback (pyst2): the IVR's routing decisions when FastAGI is unreachable.

The dialplan runs it only after ``AGI(agi://…/ivr)`` failed to set ``HOTLINE_ROUTE``:

    AGI(/opt/hotline12355/bin/hotline-ivr-classic,${LINKEDID},<site>,
        ${BASE64_ENCODE(${CALLERID(num)})},${BASE64_ENCODE(${CALLERID(name)})},${EXTEN},<resume>)

Same arguments as the FastAGI route: linkedid, site code, base64 caller number, base64
caller name, dialled number, resume node (after a self-help programme; may be empty). They
arrive as the script's argv, never through the AGI environment (a caller name there is
raw text). The script reads the site's snapshot of the published rules
(``<snapshot dir>/<site>.json``, else ``_default.json``, the default site's; see
routing/snapshot.py) and ``clock.json``, walks the same ``MenuWalk`` as the backend
(every queue counts as staffed: shifts are not in the snapshot), plays and collects with
pyst2, sets the same channel variables plus ``HOTLINE_VIA=classic`` (``HOTLINE_ROUTE``
last) and exits 0.

Exit status, which Asterisk turns into ``AGISTATUS``: 0 after a route (SUCCESS); 0 after a
hang-up, with nothing set; 2 when there is no readable snapshot and 1 on any other
failure (FAILURE; ``HOTLINE_ROUTE`` stays unset, so the dialplan takes its default route).

Imports only the standard library, pyst2, pydantic and ``routing``: the sandbox copies
this file and ``routing/`` into the Asterisk chroot (hotline/asterisk/sandbox.py).
pyst2 0.5.1's defects are guarded in ``ClassicChannel`` (DESIGN §6).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from asterisk.agi import AGI, AGIAppError, AGIError, AGIHangup, AGIUnknownError
from pydantic import ValidationError

from routing.ids import call_id_for
from routing.menu import Collect, MenuWalk, Play, Route
from routing.snapshot import (
    CLOCK_FILE,
    DEFAULT_SITE_FILE,
    ClockSetting,
    RulesSnapshot,
    is_site_code,
    snapshot_file_name,
)
from routing.variables import route_variables

DEFAULT_SNAPSHOT_DIR = Path("/var/lib/hotline12355/rules")
SNAPSHOT_DIR_ENV = "HOTLINE_RULES__SNAPSHOT_DIR"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NO_SNAPSHOT = 2

# An answer line: "200 result=…", "510 …", "511 …", "520-…"/"520 …".
_ANSWER = re.compile(r"^[0-9]{3}[ -]")
_STRIP_FROM_ARGS = str.maketrans("", "", "\r\n\0")
_VARIABLE_NAME = re.compile(r"[A-Za-z0-9_]+")
# Values MSet takes literally (agi/fastagi.py uses the same set): no quotes, backslashes,
# commas, pipes, brackets, parentheses, blanks or ${}.
_MSET_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:@+\-/=#*]*")
_MAX_MSET_LINE = 1500  # res_agi reads a command into 2048 bytes
_MAX_MSET_PAIRS = 99


class CallerGone(Exception):
    """The caller hung up, or Asterisk closed the pipe: stop, set nothing."""


class AgiProtocolError(Exception):
    """Asterisk refused a command (510, 520) or answered something else than expected."""


class _CommandFailed(Exception):
    """A 200 answer with result=-1: the command failed (a missing file, or a hang-up)."""


def quote_arg(value: str) -> str:
    """One AGI argument: CR/LF/NUL removed, backslash and double quote escaped, quoted.

    res_agi splits a command line on blanks outside double quotes and takes the character
    after a backslash literally; a newline would end the command and start another.
    """
    cleaned = value.translate(_STRIP_FROM_ARGS)
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _AgiInput:
    """Asterisk → script, as pyst2 reads it (``readline()``).

    Decodes UTF-8 with replacement (pyst2 reads ``sys.stdin`` as text: one invalid byte in
    a caller name raises UnicodeDecodeError before the first command); turns end of input
    and a ``HANGUP`` line into CallerGone (pyst2 would raise ValueError from ``int('')``,
    or loop forever inside a 520 usage answer); once the environment is read, passes only
    answer lines, dropping a ``100 Trying`` line (the real answer follows) and anything
    else (environment lines left over when a caller name with a newline in it ended the
    environment block early).
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.answers = False

    def readline(self) -> str:
        while True:
            raw = self._raw.readline()
            if not raw.endswith(b"\n"):
                raise CallerGone("Asterisk closed the AGI pipe")
            line = raw.decode("utf-8", errors="replace")
            if not self.answers:
                return line
            text = line.strip()
            if text == "HANGUP":
                raise CallerGone("HANGUP from Asterisk")
            if _ANSWER.match(text) and not text.startswith("100 "):
                return line


class _AgiOutput:
    """Script → Asterisk: always UTF-8, whatever locale Asterisk started the script in."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw

    def write(self, text: str) -> int:
        self._raw.write(text.encode("utf-8", errors="replace"))
        return len(text)

    def flush(self) -> None:
        self._raw.flush()


class _Discard:
    """pyst2 writes its argv, every environment line (caller number and name) and every
    command to stderr, which is Asterisk's console and log: none of it may go there."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


class ClassicChannel:
    """One classic AGI session over pyst2's ``AGI``, with pyst2 0.5.1's defects guarded.

    Commands go through ``AGI.execute`` (pyst2's framing, SIGHUP flag and result parsing)
    but never through its helpers, which quote arguments without escaping them
    (``set_variable`` turns a value with ``"`` into a broken command, and one with CR/LF
    into two commands) and leave file names unquoted. A hang-up in any of its forms
    (SIGHUP, SIGPIPE, a ``(hangup)`` result, 511 on a dead channel, end of input, a
    failed GET DATA) becomes ``CallerGone``.
    """

    def __init__(self, stdin: BinaryIO, stdout: BinaryIO) -> None:
        self._input = _AgiInput(stdin)
        try:
            self._agi: Any = AGI(stdin=self._input, stdout=_AgiOutput(stdout), stderr=_Discard())
        except AGIHangup as error:
            raise CallerGone(str(error)) from error
        self._input.answers = True
        self.env: dict[str, str] = dict(self._agi.env)

    @property
    def got_sighup(self) -> bool:
        return bool(getattr(self._agi, "_got_sighup", False))

    def _execute(self, command: str, *args: str) -> tuple[str, str]:
        """Send one command (arguments already quoted); (result, data) of its answer."""
        try:
            answer = self._agi.execute(command, *args)
        except AGIHangup as error:  # SIGHUP seen, SIGPIPE, a "(hangup)" result
            raise CallerGone(f"{command}: {error}") from error
        except AGIUnknownError as error:
            if error.args and error.args[0] == 511:
                raise CallerGone(f"{command}: dead channel (511)") from error
            raise AgiProtocolError(f"{command}: unexpected answer {error.args!r}") from error
        except AGIAppError as error:  # result=-1; AGIHangup, its subclass, is caught above
            raise _CommandFailed(command) from error
        except AGIError as error:  # 510 invalid command, 520 usage
            raise AgiProtocolError(f"{command}: {error}") from error
        result = answer.get("result", ("", ""))
        return str(result[0]), str(result[1])

    def stream_file(self, sound: str, escape_digits: str = "") -> str | None:
        """Play a sound; the digit that interrupted it, or None. A sound that cannot be
        played (result=-1: a missing file) is skipped; a hang-up is reported by the SIGHUP
        flag or by the next command (511)."""
        try:
            value, _ = self._execute("STREAM FILE", quote_arg(sound), quote_arg(escape_digits),
                                     "0")
        except _CommandFailed:
            if self.got_sighup:
                raise CallerGone("hang-up during STREAM FILE") from None
            return None
        return _digit(value, "STREAM FILE")

    def get_data(self, sound: str, timeout_ms: int, max_digits: int) -> str | None:
        """Play a sound and collect digits; None when nothing was pressed.

        pyst2 returns '' both on a timeout (``result= (timeout)``) and on # alone
        (``result=``): both mean no choice here. result=-1 only comes from a hang-up.
        """
        try:
            value, _ = self._execute("GET DATA", quote_arg(sound), str(int(timeout_ms)),
                                     str(int(max_digits)))
        except _CommandFailed:
            raise CallerGone("hang-up during GET DATA (result=-1)") from None
        return value or None

    def set_variables(self, values: Mapping[str, str]) -> None:
        """Set every variable, the last one last, in as few commands as the values allow.

        Values MSet takes literally go in one ``EXEC MSet`` (one round trip); any other
        value gets its own SET VARIABLE, escaped, before it.
        """
        names = list(values)
        for name in names:
            if _VARIABLE_NAME.fullmatch(name) is None:
                raise ValueError(f"invalid channel variable name {name!r}")
        batch: list[str] = []
        length = 0
        for index, name in enumerate(names):
            value = values[name]
            last = index == len(names) - 1
            if _MSET_SAFE_VALUE.fullmatch(value) is None:
                if last and batch:
                    self._mset(batch)
                    batch = []
                self._set_variable(name, value)
                continue
            pair = f"{name}={value}"
            if batch and (len(batch) >= _MAX_MSET_PAIRS or length + len(pair) > _MAX_MSET_LINE):
                self._mset(batch)
                batch, length = [], 0
            batch.append(pair)
            length += len(pair) + 1
        if batch:
            self._mset(batch)

    def _set_variable(self, name: str, value: str) -> None:
        try:
            result, _ = self._execute("SET VARIABLE", name, quote_arg(value))
        except _CommandFailed:
            raise AgiProtocolError(f"SET VARIABLE {name} failed") from None
        if result != "1":
            raise AgiProtocolError(f"SET VARIABLE {name}: result={result}")

    def _mset(self, pairs: Sequence[str]) -> None:
        try:
            self._execute("EXEC", "MSet", quote_arg(",".join(pairs)))
        except _CommandFailed:
            raise AgiProtocolError("EXEC MSet failed") from None

    def verbose(self, message: str, level: int = 1) -> None:
        """A line in Asterisk's verbose log; never fails the call."""
        with contextlib.suppress(CallerGone, AgiProtocolError, _CommandFailed):
            self._execute("VERBOSE", quote_arg(message), str(int(level)))


def _digit(value: str, command: str) -> str | None:
    try:
        code = int(value)
    except ValueError:
        raise AgiProtocolError(f"{command}: unexpected result {value!r}") from None
    return chr(code) if code > 0 else None


# -- the call ---------------------------------------------------------------------------------


class SnapshotError(Exception):
    """No readable rules snapshot for the site (nor the default site)."""


@dataclass(frozen=True)
class CallArgs:
    linkedid: str = ""
    site: str = ""
    caller_number: str = ""
    caller_name: str = ""
    dialled: str = ""
    resume: str = ""

    @classmethod
    def parse(cls, argv: Sequence[str]) -> CallArgs:
        args = [*argv, "", "", "", "", "", ""][:6]
        return cls(linkedid=args[0], site=args[1], caller_number=_decode_b64(args[2]),
                   caller_name=_decode_b64(args[3]), dialled=args[4], resume=args[5])


def _decode_b64(value: str) -> str:
    if not value:
        return ""
    try:
        raw = base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        return ""
    return raw.decode("utf-8", errors="replace")


def snapshot_path(directory: Path, site: str) -> Path:
    """The site's snapshot file when it has one, else the default site's."""
    if site and is_site_code(site):
        path = directory / snapshot_file_name(site)
        if path.exists():
            return path
    return directory / DEFAULT_SITE_FILE


def load_snapshot(directory: Path, site: str) -> RulesSnapshot:
    path = snapshot_path(directory, site)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SnapshotError(f"no rules snapshot at {path} ({error.strerror})") from None
    try:
        return RulesSnapshot.model_validate_json(data)
    except ValidationError as error:
        raise SnapshotError(
            f"{path} is not a rules snapshot ({error.error_count()} errors)") from None


def load_clock(directory: Path) -> tuple[ClockSetting, str]:
    """The backend's clock setting; real time (and the reason) when it cannot be read."""
    path = directory / CLOCK_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ClockSetting(), ""
    except OSError as error:
        return ClockSetting(), f"cannot read {path} ({error.strerror}); real time used"
    try:
        return ClockSetting.model_validate_json(data), ""
    except ValidationError:
        return ClockSetting(), f"{path} is not a clock setting; real time used"


def _staffed(_queue: str) -> bool:
    return True


def walk_menu(channel: ClassicChannel, snapshot: RulesSnapshot, call: CallArgs,
              at: datetime) -> tuple[Route, MenuWalk]:
    walk = MenuWalk(rules=snapshot.rules, at=at, calendar=snapshot.holiday_calendar(),
                    staffed=_staffed, caller=snapshot.caller(call.caller_number))
    action = walk.start(call.resume or None)
    while not isinstance(action, Route):
        if isinstance(action, Play):
            digit = channel.stream_file(snapshot.sound(action.prompt), action.escape_digits)
            action = walk.played(digit)
        else:
            assert isinstance(action, Collect)
            digit = channel.get_data(snapshot.sound(action.prompt), action.timeout_ms, 1)
            action = walk.collected(digit)
    return action, walk


def main(argv: Sequence[str], *, snapshot_dir: str | Path | None = None,
         stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> int:
    directory = Path(snapshot_dir or os.environ.get(SNAPSHOT_DIR_ENV) or DEFAULT_SNAPSHOT_DIR)
    call = CallArgs.parse(argv)
    try:
        channel = ClassicChannel(stdin or sys.stdin.buffer, stdout or sys.stdout.buffer)
    except CallerGone:
        return EXIT_OK
    try:
        snapshot = load_snapshot(directory, call.site)
    except SnapshotError as error:
        _report(channel, f"{error}; the dialplan's default route follows")
        return EXIT_NO_SNAPSHOT
    clock, clock_problem = load_clock(directory)
    if clock_problem:
        _report(channel, clock_problem)
    try:
        route, walk = walk_menu(channel, snapshot, call, clock.now())
        linkedid = call.linkedid or channel.env.get("agi_uniqueid", "")
        channel.set_variables(route_variables(
            call_id=call_id_for(snapshot.node, linkedid), route=route, digits=walk.digits,
            rules_version=snapshot.rules_version, sound=snapshot.sound, via="classic"))
    except CallerGone:
        return EXIT_OK
    except AgiProtocolError as error:
        _report(channel, str(error))
        return EXIT_FAILED
    except Exception:
        import traceback  # only here: importing it costs ~13 ms on every call (Python 3.14)

        sys.stderr.write("hotline classic AGI failed:\n" + traceback.format_exc())
        return EXIT_FAILED
    return EXIT_OK


def _report(channel: ClassicChannel, message: str) -> None:
    """A problem (never caller data) to Asterisk's verbose log and its console."""
    text = f"hotline classic AGI: {message}"
    sys.stderr.write(text + "\n")
    channel.verbose(text)


def entry(snapshot_dir: str | Path | None = None) -> NoReturn:
    """The script: run with the AGI arguments as argv, exit with the status."""
    code = main(sys.argv[1:], snapshot_dir=snapshot_dir)
    # After a hang-up Asterisk may have closed the pipe: flushing what is left of stdout at
    # exit would print a BrokenPipeError and turn the status into 120.
    with contextlib.suppress(OSError):
        sys.stdout.flush()
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
    sys.exit(code)


if __name__ == "__main__":  # python -m agi.classic (tests)
    # pyst2 installs its SIGHUP handler only when the AGI session starts; until then a
    # hang-up would kill the script half-way through its imports. The installed wrapper
    # ignores SIGHUP before importing anything (here the imports are already done):
    # a hang-up then shows at the first command instead (511 on a dead channel).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    entry()
