"""Rules that administrators edit, heard on real calls: publish and refusal through the API,
service hours, holidays and make-up workdays, a desk open across midnight, the classic AGI
fallback, flagged callers and the post-call survey."""

from __future__ import annotations

import copy
import itertools
import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Backend, clock_offset_for, eventually
from tests.integration.sipp import Caller, softphone

pytestmark = pytest.mark.integration

_numbers = itertools.count(int(time.time()) % 100000 * 10)


def caller_number() -> str:
    return f"137{next(_numbers):08d}"


def kinds(call: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [event for event in call["events"] if event["kind"] == kind]


def published(backend: Backend) -> dict[str, Any]:
    status, state = backend.api("/api/sites/default/rules")
    assert status == 200, state
    return dict(state["published"])


def publish(backend: Backend, document: dict[str, Any]) -> dict[str, Any]:
    status, draft = backend.api("/api/sites/default/rules/draft", method="PUT", body=document)
    assert status == 200, draft
    assert draft["problems"] == [], draft["problems"]
    status, version = backend.api("/api/sites/default/rules/publish", method="POST",
                                  body={"note": "integration test"})
    assert status == 200, version
    return dict(version)


@pytest.fixture
def rules(backend: Backend) -> Iterator[dict[str, Any]]:
    """The published rules to change; the same rules are published again afterwards."""
    before = published(backend)
    yield copy.deepcopy(before["document"])
    backend.restart()
    if published(backend)["document"] != before["document"]:
        status, body = backend.api("/api/sites/default/rules/rollback", method="POST",
                                   body={"version": before["version"]})
        assert status == 200, body


def call(backend: Backend, workdir: Path, keys: str, *, hold_ms: int = 9000,
         **options: Any) -> dict[str, Any]:
    number = caller_number()
    result = Caller(workdir, caller=number, keys=keys, hold_ms=hold_ms, **options).run()
    assert result.ok, result.errors[-2000:]
    return backend.find_call(number)


def as_if(backend: Backend, local_time: str) -> None:
    """Restart the backend with its clock running from this Asia/Shanghai wall-clock time."""
    backend.restart(HOTLINE_CLOCK__OFFSET_SECONDS=str(
        clock_offset_for(datetime.fromisoformat(local_time))))


def weekdays_only(document: dict[str, Any]) -> dict[str, Any]:
    day = [{"start": "08:00", "end": "22:00"}]
    document["hours"] = {"site": {"mon": day, "tue": day, "wed": day, "thu": day, "fri": day}}
    return document


def test_a_published_change_is_heard_on_the_next_call_and_a_bad_one_is_refused(
        backend: Backend, workdir: Path, rules: dict[str, Any]) -> None:
    # A new recording for the main menu, generated from text, and a new option 4.
    status, prompt = backend.api("/api/sites/default/prompts/menu-2027", method="POST",
                                 body={"text": "心理咨询请按1，法律咨询请按2，"
                                               "如果你现在有危险请按3，新的家庭教育咨询请按4。"})
    assert status == 201, prompt
    rules["nodes"]["main"]["prompt"] = "menu-2027"
    rules["nodes"]["main"]["options"]["4"] = "legal"
    version = publish(backend, rules)

    # Pressed after the welcome, while the new menu recording plays.
    heard = call(backend, workdir, "4", first_key_after_ms=5500)
    assert (heard["route"], heard["queue"], heard["digits"]) == ("queue", "legal", "4")
    assert heard["rules_version"] == version["version"]
    menu = kinds(heard, "digit")[0]["data"]
    assert menu["prompt"] == f"hotline/sites/default/menu-2027-v{prompt['version']}"
    assert menu["played"] is True

    # Without the crisis option the rules are refused, naming the node and the reason.
    broken = copy.deepcopy(rules)
    del broken["nodes"]["main"]["options"]["3"]
    status, draft = backend.api("/api/sites/default/rules/draft", method="PUT", body=broken)
    assert status == 200 and any(p["node"] == "main" for p in draft["problems"]), draft
    status, refused = backend.api("/api/sites/default/rules/publish", method="POST", body={})
    assert status == 422, refused
    assert any(p["node"] == "main" and "crisis" in p["reason"]
               for p in refused["detail"]["problems"])
    status, body = backend.api("/api/sites/default/rules/draft", method="DELETE")
    assert status == 204, body

    # The previous rules keep serving.
    still = call(backend, workdir, "4")
    assert (still["queue"], still["rules_version"]) == ("legal", version["version"])
    crisis = call(backend, workdir, "3")
    assert crisis["route"] in ("crisis", "oncall") and crisis["priority"] == 10


def test_outside_service_hours_the_night_attendant_answers(
        backend: Backend, workdir: Path, rules: dict[str, Any]) -> None:
    as_if(backend, "2026-11-30T23:30:00+08:00")  # a Monday night
    spool = backend.voicemail_spool("default")
    before = set(spool.glob("*.wav")) if spool.exists() else set()
    # 2: leave a message; the caller stays through the greeting and speaks (silence here).
    message = call(backend, workdir, "2", hold_ms=24000)
    assert (message["route"], message["digits"]) == ("voicemail", "2")
    assert kinds(message, "prompt")[0]["data"]["sound"] == "hotline/closed"
    # Asterisk recorded into its own spool (the message survives a backend outage), and the
    # backend took it from there: a message of this call, its file gone from the spool.
    stored = eventually(lambda: [m for m in backend.api("/api/voicemail/messages")[1]["items"]
                                 if m["call_id"] == message["id"]], what="the message stored")
    assert stored[0]["caller_number"] == message["caller_number"]
    assert not set(spool.glob("*.wav")) - before
    # A caller who presses nothing at night still reaches a human (the crisis duty).
    silent = call(backend, workdir, "", hold_ms=40000)
    assert silent["route"] in ("crisis", "oncall")
    assert kinds(silent, "route")[0]["data"]["reason"] == "no_input"


def test_a_self_help_programme_returns_to_the_menu(
        backend: Backend, workdir: Path, rules: dict[str, Any]) -> None:
    as_if(backend, "2026-11-30T23:30:00+08:00")
    # 1: self-help programmes; 3: breathing; # ends the programme; back at the menu.
    heard = call(backend, workdir, "13#", hold_ms=9000, gap_ms=2500)
    routes = kinds(heard, "route")
    assert routes[0]["data"]["route"] == "selfhelp"
    starts = kinds(heard, "ivr_start")
    assert len(starts) >= 2 and starts[1]["data"]["resume"] == "selfhelp-menu"


def test_public_holiday_closed_make_up_saturday_open(
        backend: Backend, workdir: Path, rules: dict[str, Any]) -> None:
    publish(backend, weekdays_only(rules))
    # 2026-10-01, National Day (chinese-calendar): closed, so 2 means "leave a message".
    as_if(backend, "2026-10-01T10:00:00+08:00")
    assert call(backend, workdir, "2")["route"] == "voicemail"
    # 2026-10-10, a Saturday worked instead (调休): open, 2 is legal help.
    as_if(backend, "2026-10-10T10:00:00+08:00")
    assert call(backend, workdir, "2")["queue"] == "legal"
    # 2026-10-17, an ordinary Saturday: closed.
    as_if(backend, "2026-10-17T10:00:00+08:00")
    assert call(backend, workdir, "2")["route"] == "voicemail"


def test_a_desk_open_19_to_2_is_open_at_1_30_and_closed_at_2_30(
        backend: Backend, workdir: Path, rules: dict[str, Any]) -> None:
    rules["hours"] = {"site": {day: [{"start": "00:00", "end": "24:00"}]
                               for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
                      "queues": {"legal": {day: [{"start": "19:00", "end": "02:00"}]
                                           for day in ("mon", "tue", "wed", "thu", "fri",
                                                       "sat", "sun")}}}
    rules["nodes"]["legal"]["closed"] = "psych"
    publish(backend, rules)
    as_if(backend, "2026-12-01T01:30:00+08:00")
    assert call(backend, workdir, "2")["queue"] == "legal"
    as_if(backend, "2026-12-01T02:30:00+08:00")
    assert call(backend, workdir, "2")["queue"] == "psych"


def test_classic_agi_routes_the_same_way_when_fastagi_is_down(
        backend: Backend, workdir: Path) -> None:
    backend.restart(HOTLINE_AGI__ENABLED="false")
    try:
        classic = call(backend, workdir, "2")
        assert (classic["route"], classic["queue"], classic["digits"]) == ("queue", "legal", "2")
        assert kinds(classic, "route")[0]["data"]["via"] == "classic"
        assert classic["rules_version"] == published(backend)["version"]

        # Both down (the snapshot unreadable): the dialplan's own default route, a human.
        snapshots = backend.settings_snapshot_dir()
        aside = snapshots.with_name(snapshots.name + ".aside")
        shutil.move(snapshots, aside)
        try:
            default = call(backend, workdir, "2")
        finally:
            shutil.move(aside, snapshots)
        assert default["route"] == "fallback" and default["fallback"] is True
    finally:
        backend.restart()


def test_a_caller_flagged_high_risk_goes_straight_to_crisis(
        backend: Backend, workdir: Path) -> None:
    number = caller_number()
    status, flag = backend.api("/api/callers/flags", method="POST", body={
        "number": f"+86 {number}", "kind": "high_risk", "reason": "integration test"})
    assert status == 201, flag
    try:
        result = Caller(workdir, caller=number, keys="", hold_ms=6000).run()
        assert result.ok, result.errors[-2000:]
        flagged = backend.find_call(number)
        assert flagged["route"] in ("crisis", "oncall") and flagged["priority"] == 10
        assert flagged["digits"] is None
        assert kinds(flagged, "route")[0]["data"]["reason"] == "flagged_high_risk"
    finally:
        backend.api(f"/api/callers/flags/{flag['id']}", method="DELETE")


def test_survey_digits_land_on_the_call_record(
        backend: Backend, counsellors: dict[str, str], workdir: Path,
        rules: dict[str, Any]) -> None:
    rules["survey"] = {"enabled": True}
    publish(backend, rules)
    number = caller_number()
    with softphone(workdir, user="c1002", password=counsellors["c1002"], talk_ms=3000):
        # 1 at the menu; the counsellor talks 3 s and hangs up; 4 for the survey.
        result = Caller(workdir, caller=number, keys="14", first_key_after_ms=1500,
                        gap_ms=11000, hold_ms=40000, until_hangup=True).run()
    assert result.ok, result.errors[-2000:]
    rated = backend.find_call(number)
    assert rated["answered_by"] == "李老师"
    assert rated["survey_score"] == 4
    assert kinds(rated, "survey")[0]["data"]["score"] == 4
