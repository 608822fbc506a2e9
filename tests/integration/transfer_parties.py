"""Counsellors' softphones that press keys after answering (transfer feature codes), for
tests/integration/test_transfers.py. Built on tests/integration/sipp.py."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.integration.sipp import (
    Softphone,
    _scenario,
    _sipp,
    free_port_pair,
    register,
    stop,
    timed_key_presses,
)


def dtmf(presses: Sequence[tuple[str, int]], workdir: Path) -> str:
    """sipp actions pressing each key after its pause (ms), as RFC 4733 events.

    A feature code's keys must follow each other within features.conf's
    featuredigittimeout (1 s); a destination's digits within transferdigittimeout. Every
    recording after the first is re-stamped after the previous one (Asterisk ignores an
    event older than the last it saw; see bench.menu.later_key_pcap).
    """
    return timed_key_presses(presses, workdir=workdir)


def feature_then_digits(code: str, digits: str, *, after_answer_ms: int = 3000,
                        digit_gap_ms: int = 1200) -> list[tuple[str, int]]:
    """The feature code's keys 300 ms apart, then the destination's digits."""
    presses = [(key, after_answer_ms if i == 0 else 300) for i, key in enumerate(code)]
    return presses + [(digit, digit_gap_ms) for digit in digits]


@dataclass
class KeyedPhone(Softphone):
    def wait(self, timeout: float) -> int:
        """The sipp exit code once its one call is over (0: the scenario completed)."""
        return self.process.wait(timeout=timeout)

    def received_bye(self) -> bool:
        return any(block.lstrip().startswith("BYE sip:")
                   for block in self.messages.split("message received")[1:])


@contextmanager
def keyed_softphone(workdir: Path, *, user: str, password: str,
                    presses: Sequence[tuple[str, int]], ring_ms: int = 1000,
                    talk_ms: int | None = None, wait_ms: int = 120000) -> Iterator[KeyedPhone]:
    """A counsellor's softphone that answers one call, presses `presses`, then hangs up
    after talk_ms (attended transfer: that hands the caller over) or, without talk_ms,
    waits up to wait_ms for the far end's BYE."""
    port, media = free_port_pair()
    result = register(workdir, user=user, password=password, contact_port=port, port=port)
    if not result.ok:
        raise AssertionError(f"{user} could not register: {result.errors[-2000:]}")
    keys = dtmf(presses, workdir)
    if talk_ms is None:
        scenario = _scenario("counsellor_transfers_waits", workdir, ring_ms=str(ring_ms),
                             keys=keys, wait_ms=str(wait_ms))
    else:
        scenario = _scenario("counsellor_transfers_hangs_up", workdir, ring_ms=str(ring_ms),
                             keys=keys, talk_ms=str(talk_ms))
    process = subprocess.Popen(
        _sipp(scenario, local_ip="127.0.0.1", port=port, media_port=media, calls=1),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        yield KeyedPhone(user, process, scenario)
    finally:
        stop(process)
        register(workdir, user=user, password=password, contact_port=port, port=port,
                 expires=0)
