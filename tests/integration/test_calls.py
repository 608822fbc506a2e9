"""One real call, end to end: sipp callers on the carrier trunk, sipp counsellors that
register with digest auth, the sandboxed Asterisk 22, the backend, Redis and SQL."""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Backend, eventually
from tests.integration.sipp import Caller, softphone

pytestmark = pytest.mark.integration

_numbers = itertools.count(int(time.time()) % 100000 * 10)


def caller_number() -> str:
    return f"139{next(_numbers):08d}"


def kinds(call: dict, kind: str) -> list[dict]:
    return [event for event in call["events"] if event["kind"] == kind]


def test_press_1_reaches_a_psych_counsellor(backend: Backend, counsellors: dict[str, str],
                                            workdir: Path) -> None:
    number = caller_number()
    with softphone(workdir, user="c1002", password=counsellors["c1002"]) as phone:
        result = Caller(workdir, caller=number, keys="1", hold_ms=15000).run()
    assert result.ok, result.errors[-2000:]
    assert phone.invites() == 1
    call = backend.find_call(number)
    assert call["queue"] == "psych"
    assert call["digits"] == "1"
    assert call["route"] == "queue"
    assert call["answered_by"] == "李老师"
    assert call["answered_by_counsellor_id"] is not None
    assert call["outcome"] == "answered"
    assert call["wait_seconds"] is not None and 0 <= call["wait_seconds"] < 10
    assert call["caller_number"] == number
    journey = [e["kind"] for e in call["events"]]
    assert journey.index("ivr_start") < journey.index("digit") < journey.index("route")
    # What the caller heard is on the record: the welcome, then the menu.
    assert kinds(call, "prompt")[0]["data"]["sound"] == "hotline/welcome"
    assert kinds(call, "connect")[0]["data"]["interface"] == "PJSIP/c1002"


def test_press_3_rings_the_high_risk_specialist_first(backend: Backend,
                                                      counsellors: dict[str, str],
                                                      workdir: Path) -> None:
    number = caller_number()
    with softphone(workdir, user="c1001", password=counsellors["c1001"], ring_ms=3000) as expert, \
            softphone(workdir, user="c1003", password=counsellors["c1003"]) as consultant:
        result = Caller(workdir, caller=number, keys="3", hold_ms=15000).run()
    assert result.ok, result.errors[-2000:]
    call = backend.find_call(number)
    assert (call["route"], call["queue"], call["digits"]) == ("crisis", "crisis", "3")
    assert call["priority"] == 10
    rings = kinds(call, "ring")
    assert rings and rings[0]["data"]["interface"] == "PJSIP/c1001"
    # The consultation counsellor was not rung while the specialist could still answer.
    assert all(ring["data"]["interface"] == "PJSIP/c1001" for ring in rings)
    assert consultant.invites() == 0
    assert expert.invites() == 1
    assert call["answered_by"] == "张老师"


def test_crisis_widens_to_consultation_when_the_specialist_is_away(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    number = caller_number()
    with softphone(workdir, user="c1003", password=counsellors["c1003"]) as consultant:
        result = Caller(workdir, caller=number, keys="3", hold_ms=25000).run()
    assert result.ok, result.errors[-2000:]
    call = backend.find_call(number)
    assert consultant.invites() == 1
    assert call["answered_by"] == "王老师"
    # Rung only after the crisis rule widened the penalty ceiling (8 s in tests).
    assert call["wait_seconds"] >= 7


def test_pressing_nothing_reaches_a_human(backend: Backend, counsellors: dict[str, str],
                                          workdir: Path) -> None:
    number = caller_number()
    with softphone(workdir, user="c1002", password=counsellors["c1002"]) as phone:
        result = Caller(workdir, caller=number, keys="", hold_ms=30000).run()
    assert result.ok, result.errors[-2000:]
    assert phone.invites() == 1
    call = backend.find_call(number)
    assert call["queue"] == "psych"
    assert call["digits"] is None
    assert kinds(call, "route")[0]["data"]["reason"] == "no_input"
    assert call["outcome"] == "answered"


def test_two_invalid_digits_reach_a_human(backend: Backend, counsellors: dict[str, str],
                                          workdir: Path) -> None:
    number = caller_number()
    with softphone(workdir, user="c1002", password=counsellors["c1002"]) as phone:
        result = Caller(workdir, caller=number, keys="79", hold_ms=20000, gap_ms=2500).run()
    assert result.ok, result.errors[-2000:]
    assert phone.invites() == 1
    call = backend.find_call(number)
    assert call["digits"] == "79"
    assert kinds(call, "route")[0]["data"]["reason"] == "invalid"
    assert call["queue"] == "psych"
    assert call["outcome"] == "answered"


@pytest.mark.parametrize("display", [
    '"张三" ',
    '"O\\"Brien \\"the \\\\ quoted\\"" ',
    '"小明 🙂" ',
])
def test_unusual_caller_names_are_routed_and_stored_intact(
        backend: Backend, counsellors: dict[str, str], workdir: Path, display: str) -> None:
    number = caller_number()
    with softphone(workdir, user="c1002", password=counsellors["c1002"]) as phone:
        result = Caller(workdir, caller=number, keys="1", hold_ms=12000,
                        from_display=display).run()
    assert result.ok, result.errors[-2000:]
    assert phone.invites() == 1
    call = backend.find_call(number)
    expected = display.strip()[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    assert call["caller_name"] == expected
    assert call["queue"] == "psych" and call["outcome"] == "answered"
    assert backend.api("/api/health", token=False)[1]["components"]["fastagi"]["detail"][
        "errors"] == 0


def test_without_fastagi_the_classic_agi_routes_and_a_counsellor_answers(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    number = caller_number()
    backend.stop()
    backend.start(HOTLINE_AGI__ENABLED="false")
    try:
        with softphone(workdir, user="c1003", password=counsellors["c1003"]) as phone:
            # Its seat free in the legal queue first (the queue lets nobody join otherwise).
            eventually(lambda: (line := backend.queue_members("legal").get(
                "PJSIP/c1003", "")) and "Not in use" in line and "paused" not in line,
                timeout=20, what="c1003 ready in the legal queue")
            result = Caller(workdir, caller=number, keys="2", hold_ms=12000).run()
        assert result.ok, result.errors[-2000:]
        assert phone.invites() == 1
        call = backend.find_call(number)
        # The same decision as the FastAGI route (2 → legal), by the classic AGI script.
        assert (call["route"], call["queue"], call["fallback"]) == ("queue", "legal", True)
        assert kinds(call, "route")[0]["data"]["via"] == "classic"
        assert call["outcome"] == "answered"
        assert call["answered_by"] == "王老师"
    finally:
        backend.stop()
        backend.start()


def test_backend_down_and_nobody_on_duty_reaches_the_oncall_phone(
        backend: Backend, workdir: Path) -> None:
    from hotline.asterisk.sandbox import AsteriskSandbox
    from hotline.config import load_settings

    settings = load_settings()
    carrier_log = AsteriskSandbox(settings=settings.asterisk, ami=settings.ami,
                                  var_dir=settings.var_dir).carrier_log
    before = carrier_log.read_text(errors="replace") if carrier_log.exists() else ""
    number = caller_number()
    backend.stop(signal.SIGKILL)
    try:
        result = Caller(workdir, caller=number, keys="1", hold_ms=15000).run()
    finally:
        backend.start()
    assert result.ok, result.errors[-2000:]
    after = carrier_log.read_text(errors="replace")[len(before):]
    assert "INVITE sip:13800000001@" in after
    assert "SIP/2.0 200 OK" in after


def test_asterisk_restart_the_listener_reconnects(backend: Backend,
                                                  counsellors: dict[str, str],
                                                  workdir: Path) -> None:
    from hotline.asterisk.sandbox import AsteriskSandbox
    from hotline.config import load_settings

    settings = load_settings()
    reconnects = backend.api("/api/health", token=False)[1]["components"]["ami"]["detail"][
        "reconnects"]
    AsteriskSandbox(settings=settings.asterisk, ami=settings.ami,
                    var_dir=settings.var_dir).restart_asterisk()
    health = backend.wait_healthy(timeout=60)
    assert health["components"]["ami"]["detail"]["reconnects"] > reconnects
    number = caller_number()
    with softphone(workdir, user="c1002", password=counsellors["c1002"]):
        result = Caller(workdir, caller=number, keys="1", hold_ms=12000).run()
    assert result.ok, result.errors[-2000:]
    call = backend.find_call(number)
    assert call["outcome"] == "answered" and call["queue"] == "psych"


def test_api_requires_the_token_and_reports_health(backend: Backend) -> None:
    status, body = backend.api("/api/calls", token=False)
    assert status == 401 and body["error"]
    status, body = backend.api("/api/calls?limit=0")
    assert status == 400
    status, body = backend.api("/api/calls/doesnotexist")
    assert status == 404
    status, health = backend.api("/api/health", token=False)
    assert status == 200, health
    assert {name for name, c in health["components"].items() if c["status"] == "ok"} >= {
        "asterisk", "ami", "redis", "database"}
    status, document = backend.api("/api/openapi.json", token=False)
    assert status == 200 and "/api/calls/{call_id}" in document["paths"]


def test_asterisk_loaded_the_configuration_without_errors(backend: Backend) -> None:
    from hotline.asterisk.sandbox import AsteriskSandbox
    from hotline.config import load_settings

    settings = load_settings()
    sandbox = AsteriskSandbox(settings=settings.asterisk, ami=settings.ami,
                              var_dir=settings.var_dir)
    problems = [line for line in sandbox.log_problems() if "ERROR" in line]
    assert problems == []
    assert "crisis" in sandbox.cli("queue show crisis")
    assert "c1001" in sandbox.cli("pjsip show endpoints")


def test_crlf_in_the_caller_number_is_stored_intact_and_injects_nothing(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    """A carrier may escape anything into the From URI; pjsip unescapes it (%0D%0A → CR LF).

    Were it to reach the AGI environment raw, the blank line would end the headers early
    and "HANGUP" would be read as Asterisk's answer to the IVR's first command.
    """
    number = caller_number()
    sent = f"{number}%0D%0Aagi_arg_1%20hijack%0D%0A%0D%0AHANGUP"
    with softphone(workdir, user="c1002", password=counsellors["c1002"]) as phone:
        result = Caller(workdir, caller=sent, keys="1", hold_ms=12000,
                        from_display='"a\\"b" ').run()
    assert result.ok, result.errors[-2000:]
    assert phone.invites() == 1
    from urllib.parse import quote

    expected = f"{number}\r\nagi_arg_1 hijack\r\n\r\nHANGUP"
    call = backend.find_call(quote(expected))
    assert call["caller_number"] == expected
    assert call["caller_name"] == 'a"b'
    assert (call["queue"], call["digits"], call["outcome"]) == ("psych", "1", "answered")
    assert backend.api("/api/health", token=False)[1]["components"]["fastagi"]["detail"][
        "errors"] == 0


def test_nobody_registered_the_oncall_phone_answers_and_is_recorded(
        backend: Backend, workdir: Path) -> None:
    number = caller_number()
    result = Caller(workdir, caller=number, keys="2", hold_ms=15000).run()
    assert result.ok, result.errors[-2000:]
    call = backend.find_call(number)
    assert call["queue"] == "legal"
    assert call["outcome"] == "answered_oncall"
    assert call["answered_by"] == "13800000001"
    assert [e["data"]["number"] for e in kinds(call, "oncall_result")] == ["13800000001"]
