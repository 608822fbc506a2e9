"""Real SIP parties for the integration tests: sipp callers and counsellor softphones."""

from __future__ import annotations

import itertools
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parents[1] / "sipp"
DTMF_PCAP = "/usr/share/sip-tester/dtmf_2833_{}.pcap"
SPEECH_PCAP = "/usr/share/sip-tester/g711a.pcap"
ASTERISK = "127.0.0.1:5060"
CARRIER_IP = "127.0.0.2"

_ports = itertools.count(41000, 8)


def free_port_pair() -> tuple[int, int]:
    """A signalling port and a media port (sipp also binds media+2), unused and unique."""
    while True:
        base = next(_ports)
        if base > 60000:
            raise RuntimeError("ran out of test ports")
        if all(_udp_free(port) for port in (base, base + 2, base + 4, base + 6)):
            return base, base + 2


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _scenario(name: str, directory: Path, **values: str) -> Path:
    text = (SCENARIOS / f"{name}.xml").read_text()
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    target = directory / f"{name}-{next(_ports)}.xml"
    target.write_text(text, encoding="utf-8")
    return target


def _sipp(scenario: Path, *, local_ip: str, port: int, media_port: int, calls: int = 1,
          extra: Sequence[str] = ()) -> list[str]:
    return ["sipp", "-sf", str(scenario), "-i", local_ip, "-p", str(port), "-mp", str(media_port),
            "-m", str(calls), "-nostdin", "-trace_err", "-trace_msg",
            "-message_file", str(scenario.with_suffix(".messages.log")),
            "-error_file", str(scenario.with_suffix(".errors.log")), *extra, ASTERISK]


@dataclass
class CallResult:
    returncode: int
    messages: str
    errors: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def key_presses(keys: str, *, workdir: Path, first_after_ms: int = 1500,
                gap_ms: int = 1500) -> str:
    """Key presses as RFC 4733 events: the first after `first_after_ms`, then one every
    `gap_ms`."""
    return timed_key_presses([(key, first_after_ms if index == 0 else gap_ms)
                              for index, key in enumerate(keys)], workdir=workdir)


def timed_key_presses(presses: Sequence[tuple[str, int]], *, workdir: Path) -> str:
    """sipp actions pressing each key after its pause (ms), as RFC 4733 events. Each
    recording after the first is re-stamped after the previous one: Asterisk ignores an
    event whose RTP timestamp is older than the last it saw, and sip-tester's recordings do
    not rise in key order (2 after 5 is lost)."""
    from bench.menu import later_key_pcap

    lines = []
    previous: Path | None = None
    for key, pause_ms in presses:
        name = {"*": "star", "#": "pound"}.get(key, key)
        if previous is None:
            pcap = Path(DTMF_PCAP.format(name))
        else:
            pcap = later_key_pcap(name, previous, workdir / f"dtmf-{next(_ports)}-{name}.pcap")
        previous = pcap
        lines.append(f'  <pause milliseconds="{pause_ms}"/>')
        lines.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
    return "\n".join(lines)


class Caller:
    """One call from the carrier address to the hotline."""

    def __init__(self, workdir: Path, *, caller: str, keys: str = "", hold_ms: int = 20000,
                 from_display: str = "", dialed: str = "12355", first_key_after_ms: int = 1500,
                 gap_ms: int = 1500, until_hangup: bool = False,
                 speak_after_ms: int | None = None) -> None:
        """`until_hangup`: stay until the hotline hangs up (waiting at most hold_ms) instead
        of hanging up after hold_ms. `speak_after_ms`: after the keys, wait this long, then
        speak (sip-tester's g711a.pcap, about 8 s of a voice) during the hold."""
        port, media = free_port_pair()
        self.caller = caller
        actions = key_presses(keys, workdir=workdir, first_after_ms=first_key_after_ms,
                              gap_ms=gap_ms)
        if speak_after_ms is not None:
            actions += (f'\n  <pause milliseconds="{speak_after_ms}"/>'
                        f'\n  <nop><action><exec play_pcap_audio="{SPEECH_PCAP}"/></action></nop>')
        self.scenario = _scenario(
            "caller_until_hangup" if until_hangup else "caller", workdir, dialed=dialed,
            caller=caller, hold_ms=str(hold_ms), from_display=from_display, keys=actions)
        self.command = _sipp(self.scenario, local_ip=CARRIER_IP, port=port, media_port=media,
                             extra=["-timeout", f"{hold_ms // 1000 + 120}s"])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Caller:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        return self

    def wait(self, timeout: float = 240) -> CallResult:
        assert self.process is not None
        returncode = self.process.wait(timeout=timeout)
        return CallResult(returncode, _read(self.scenario.with_suffix(".messages.log")),
                          _read(self.scenario.with_suffix(".errors.log")))

    def run(self, timeout: float = 240) -> CallResult:
        return self.start().wait(timeout)


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a sipp process that may still be running (terminate, then kill)."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Softphone:
    """A counsellor's registered softphone that answers every call after ring_ms."""

    user: str
    process: subprocess.Popen[bytes]
    scenario: Path

    @property
    def messages(self) -> str:
        return _read(self.scenario.with_suffix(".messages.log"))

    def invites(self) -> int:
        return self.messages.count("INVITE sip:")


def register(workdir: Path, *, user: str, password: str, contact_port: int,
             expires: int = 600, port: int | None = None) -> CallResult:
    port, media = (port, free_port_pair()[1]) if port else free_port_pair()
    scenario = _scenario("register", workdir, user=user, password=password,
                         contact_port=str(contact_port), expires=str(expires))
    completed = subprocess.run(_sipp(scenario, local_ip="127.0.0.1", port=port, media_port=media,
                                     extra=["-timeout", "15s"]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    return CallResult(completed.returncode, _read(scenario.with_suffix(".messages.log")),
                      _read(scenario.with_suffix(".errors.log")))


@contextmanager
def softphone(workdir: Path, *, user: str, password: str, ring_ms: int = 1000,
              calls: int = 20, talk_ms: int | None = None) -> Iterator[Softphone]:
    """Register from port P, then answer on port P (and hang up after talk_ms, if given).

    Softphone endpoints have rewrite_contact=yes (NAT at home), so Asterisk sends INVITEs
    to the REGISTER's source address: the registering sipp exits and the answering sipp
    binds the same port (sipp cannot take new dialogs in the call that registered).
    """
    port, media = free_port_pair()
    result = register(workdir, user=user, password=password, contact_port=port, port=port)
    if not result.ok:
        raise AssertionError(f"{user} could not register: {result.errors[-2000:]}")
    scenario = (_scenario("counsellor", workdir, ring_ms=str(ring_ms)) if talk_ms is None
                else _scenario("counsellor_hangs_up", workdir, ring_ms=str(ring_ms),
                               talk_ms=str(talk_ms)))
    process = subprocess.Popen(
        _sipp(scenario, local_ip="127.0.0.1", port=port, media_port=media, calls=calls),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        yield Softphone(user, process, scenario)
    finally:
        stop(process)
        register(workdir, user=user, password=password, contact_port=port, port=port,
                 expires=0)


def dial_feature_code(workdir: Path, *, user: str, password: str, code: str) -> CallResult:
    """The counsellor's phone dials a feature code (*61 log in, *62 log out, ...) and waits
    for the confirmation to end."""
    port, media = free_port_pair()
    scenario = _scenario("counsellor_dials", workdir, user=user, password=password,
                         dialed=code)
    completed = subprocess.run(_sipp(scenario, local_ip="127.0.0.1", port=port, media_port=media,
                                     extra=["-timeout", "40s"]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return CallResult(completed.returncode, _read(scenario.with_suffix(".messages.log")),
                      _read(scenario.with_suffix(".errors.log")))
