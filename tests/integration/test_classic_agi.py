"""The classic AGI fallback where Asterisk runs: installed into the sandbox's chroot by
`hotline asterisk up`, run by the chroot's Python 3.14 and by Asterisk's AGI() itself."""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hotline.asterisk.sandbox import (
    CLASSIC_LIB,
    CLASSIC_VENV,
    CLASSIC_WRAPPER,
    AsteriskSandbox,
)
from hotline.config import load_settings
from hotline.rules.snapshot_files import snapshot_directory, write_snapshot
from routing.defaults import default_rules
from routing.hours import HolidayCalendar
from routing.ids import call_id_for
from routing.snapshot import RulesSnapshot
from tests.integration.conftest import Backend

pytestmark = pytest.mark.integration

FLAGGED = "13800000009"


@pytest.fixture
def sandbox(backend: Backend) -> AsteriskSandbox:
    settings = load_settings()
    return AsteriskSandbox(settings=settings.asterisk, ami=settings.ami,
                           var_dir=settings.var_dir)


@pytest.fixture
def site(backend: Backend) -> Iterator[str]:
    """A site of this test's own in the snapshot directory Asterisk reads."""
    code = f"classic{uuid.uuid4().hex[:8]}"
    settings = load_settings()
    path = write_snapshot(snapshot_directory(settings), RulesSnapshot.create(
        site_code=code, rules_version=42, rules=default_rules(),
        node=settings.asterisk.node_name, written_at=datetime.now(UTC),
        calendar=HolidayCalendar(), high_risk_numbers=[FLAGGED]))
    yield code
    path.unlink(missing_ok=True)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_up_installs_the_venv_the_code_and_the_script(sandbox: AsteriskSandbox) -> None:
    assert sandbox.host_path(f"{CLASSIC_VENV}/bin/python3").exists()
    wrapper = sandbox.root / CLASSIC_WRAPPER.lstrip("/")
    assert wrapper.stat().st_mode & 0o111
    current = sandbox.root / CLASSIC_LIB.lstrip("/") / "current"
    assert (current / "agi/classic.py").read_bytes() == \
        (Path(__file__).resolve().parents[2] / "agi/classic.py").read_bytes()
    # pyst2 and its six import cleanly on sid's Python with warnings as errors
    subprocess.run(["chroot", str(sandbox.root), f"{CLASSIC_VENV}/bin/python3", "-W", "error",
                    "-c", "import asterisk.agi, six, pydantic"], check=True)


def test_the_script_speaks_agi_inside_the_chroot(sandbox: AsteriskSandbox, site: str) -> None:
    args = [CLASSIC_WRAPPER, "1764300000.9", site, _b64(f"+86 {FLAGGED}"), "", "12355", ""]
    environment = "".join(f"agi_arg_{n}: {a}\n" for n, a in enumerate(args[1:], 1))
    stdin = f"agi_request: {CLASSIC_WRAPPER}\n{environment}\n200 result=0\n".encode()
    started = time.monotonic()
    result = subprocess.run(["chroot", str(sandbox.root), *args], input=stdin,
                            capture_output=True, timeout=30)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    [command] = result.stdout.decode().splitlines()
    assert command.startswith('EXEC MSet "HOTLINE_CALL_ID=')
    assert command.endswith('HOTLINE_VIA=classic,HOTLINE_ROUTE=crisis"')
    assert call_id_for(load_settings().asterisk.node_name, "1764300000.9") in command
    assert elapsed < 5


def _probe(sandbox: AsteriskSandbox, site: str, *, number: str, wait: int) -> str:
    """A call through Asterisk's own AGI(): a Local channel whose far end waits `wait` s,
    then hangs up; what the dialplan saw after the script, from Asterisk's log."""
    context = f"classic-probe-{site}-{number[-4:]}"
    steps = [
        "s,1,Answer()",
        f"s,2,AGI({CLASSIC_WRAPPER},${{LINKEDID}},{site},{_b64(number)},,12355,)",
        f"s,3,Log(NOTICE,{context}:AGISTATUS=${{AGISTATUS}}:ROUTE=${{HOTLINE_ROUTE}}:"
        "VIA=${HOTLINE_VIA}:QUEUE=${HOTLINE_QUEUE}:end)",
        "s,4,Hangup()",
        f"h,1,Log(NOTICE,{context}-h:AGISTATUS=${{AGISTATUS}}:ROUTE=${{HOTLINE_ROUTE}}:end)",
    ]
    log = sandbox.messages_log
    offset = log.stat().st_size
    text = ""
    try:
        for step in steps:
            sandbox.cli(f'dialplan add extension "{step}" into {context} replace')
        sandbox.cli(f"channel originate Local/s@{context} application Wait {wait}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with log.open("rb") as handle:
                handle.seek(offset)
                text = handle.read().decode(errors="replace")
            if f"{context}-h:" in text:
                return text
            time.sleep(0.2)
        raise AssertionError(f"the probe call did not end: {text}")
    finally:
        sandbox.cli(f"dialplan remove context {context}")


def test_asterisk_runs_the_fallback_and_reads_its_route(sandbox: AsteriskSandbox,
                                                        site: str) -> None:
    text = _probe(sandbox, site, number=FLAGGED, wait=20)
    assert "AGISTATUS=SUCCESS:ROUTE=crisis:VIA=classic:QUEUE=crisis:end" in text


def test_a_caller_who_hangs_up_gets_no_route_and_leaves_no_process(
        sandbox: AsteriskSandbox, site: str) -> None:
    # Not flagged: the caller is still in the menu when the far end hangs up after 3 s.
    text = _probe(sandbox, site, number="13900000000", wait=3)
    assert "-h:AGISTATUS=HANGUP:ROUTE=:end" in text
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", "hotline-ivr-classic"], capture_output=True,
                          text=True).stdout.split()
    assert left == []
