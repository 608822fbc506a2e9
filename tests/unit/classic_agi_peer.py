"""A scripted Asterisk for the classic AGI script: the script runs as a child process, as
Asterisk runs it; we write the AGI environment and the answers to its stdin and read its
commands from its stdout."""

from __future__ import annotations

import base64
import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def agi_environment(args: Sequence[str], *, caller: bytes = b"13800000001",
                    name: bytes = b"\xe5\xbc\xa0\xe4\xb8\x89") -> bytes:
    """The block Asterisk 22 writes first (values as bytes: a caller name can be any)."""
    lines = [
        b"agi_request: /opt/hotline12355/bin/hotline-ivr-classic",
        b"agi_channel: PJSIP/carrier-00000001",
        b"agi_language: zh",
        b"agi_type: PJSIP",
        b"agi_uniqueid: 1764300000.1",
        b"agi_version: 22.10.1",
        b"agi_callerid: " + caller,
        b"agi_calleridname: " + name,
        b"agi_callingpres: 0",
        b"agi_callingani2: 0",
        b"agi_callington: 0",
        b"agi_callingtns: 0",
        b"agi_dnid: 12355",
        b"agi_rdnis: unknown",
        b"agi_context: hotline-inbound",
        b"agi_extension: 12355",
        b"agi_priority: 5",
        b"agi_enhanced: 0.0",
        b"agi_accountcode: ",
        b"agi_threadid: 140000000000000",
    ]
    lines += [f"agi_arg_{n}: {value}".encode() for n, value in enumerate(args, start=1)]
    return b"\n".join(lines) + b"\n\n"


def parse_agi_args(line: str) -> list[str]:
    """Split a command line the way res_agi's parse_args does: blanks separate words
    outside double quotes, a backslash makes the next character literal."""
    words: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    in_word = False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
            in_word = True
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
            in_word = True
        elif char in " \t" and not quoted:
            if in_word:
                words.append("".join(current))
            current, in_word = [], False
        else:
            current.append(char)
            in_word = True
    if in_word:
        words.append("".join(current))
    return words


def variables_set(commands: Sequence[str]) -> dict[str, str]:
    """Channel variables the commands set (SET VARIABLE and EXEC MSet), in order."""
    found: dict[str, str] = {}
    for command in commands:
        words = parse_agi_args(command)
        if words[:2] == ["SET", "VARIABLE"]:
            found[words[2]] = words[3]
        elif words[:2] == ["EXEC", "MSet"]:
            for pair in words[2].split(","):
                name, _, value = pair.partition("=")
                found[name] = value
    return found


class ScriptedAsterisk:
    def __init__(self, args: Sequence[str], snapshot_dir: Path, *,
                 environment: bytes | None = None, python: str = sys.executable) -> None:
        env = {**os.environ, "HOTLINE_RULES__SNAPSHOT_DIR": str(snapshot_dir),
               "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            [python, "-m", "agi.classic", *args], cwd=REPO, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.process.stdin is not None and self.process.stdout is not None
        self._stdin = self.process.stdin
        self._stdout = self.process.stdout
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._stdout, selectors.EVENT_READ)
        self._buffer = b""
        self.commands: list[str] = []
        self._stdin.write(environment if environment is not None else agi_environment(args))
        self._stdin.flush()

    def command(self, timeout: float = 20.0) -> str | None:
        """The script's next command; None once it closed its stdout (it exited)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no command within {timeout} s; so far {self.commands}")
            if not self._selector.select(remaining):
                continue
            chunk = os.read(self._stdout.fileno(), 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        text = line.decode()
        self.commands.append(text)
        return text

    def answer(self, line: str | bytes) -> None:
        self._stdin.write((line.encode() if isinstance(line, str) else line) + b"\n")
        self._stdin.flush()

    def hang_up(self) -> None:
        """Asterisk's side closes (the channel and the AGI are gone)."""
        self._stdin.close()

    def sighup(self) -> None:
        self.process.send_signal(signal.SIGHUP)

    def finish(self, timeout: float = 20.0) -> int:
        with contextlib.suppress(BrokenPipeError):
            self._stdin.close()
        code = self.process.wait(timeout=timeout)
        self._selector.close()
        return code

    @property
    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")

    def run(self, answer: Callable[[str], str | None]) -> int:
        """Answer every command with `answer(command)` (None: hang up) until the script
        exits; its exit status."""
        while (command := self.command()) is not None:
            reply = answer(command)
            if reply is None:
                self.hang_up()
                break
            self.answer(reply)
        return self.finish()


def caller_pressing(digits: Sequence[str | None], *,
                    missing_sounds: Mapping[str, bool] | None = None) -> Callable[[str], str]:
    """Asterisk with a caller who lets every prompt play to its end and answers each
    GET DATA with the next digit (None: silence until the timeout)."""
    script = list(digits)
    missing = dict(missing_sounds or {})

    def answer(command: str) -> str:
        words = parse_agi_args(command)
        if words[:2] == ["STREAM", "FILE"]:
            return "200 result=-1 endpos=0" if missing.get(words[2]) else \
                "200 result=0 endpos=8000"
        if words[:2] == ["GET", "DATA"]:
            digit = script.pop(0) if script else None
            return f"200 result={digit}" if digit else "200 result= (timeout)"
        if words[:2] == ["SET", "VARIABLE"] or words[0] == "VERBOSE":
            return "200 result=1"
        if words[0] == "EXEC":
            return "200 result=0"
        return "510 Invalid or unknown command"

    return answer
