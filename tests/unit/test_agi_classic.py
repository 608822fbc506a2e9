"""The classic AGI script (agi/classic.py) as Asterisk runs it: a child process with the AGI
environment and the answers on its stdin, its commands on its stdout."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hotline.rules.snapshot_files import write_atomically, write_snapshot
from routing.defaults import default_rules
from routing.hours import HolidayCalendar
from routing.ids import call_id_for
from routing.menu import CallerContext, Collect, MenuWalk, Play, Route
from routing.rules import RuleSet
from routing.snapshot import ClockSetting, RulesSnapshot
from tests.unit.classic_agi_peer import (
    ScriptedAsterisk,
    agi_environment,
    b64,
    caller_pressing,
    parse_agi_args,
    variables_set,
)
from tests.unit.routing_support import official_calendar, shanghai

LINKEDID = "1764300000.1"
OPEN = shanghai(2026, 3, 11, 10, 0)  # a Wednesday, 10:00: the default hours are 08–22
SOUNDS = {"hotline/welcome": "hotline/site-default/welcome-v7"}
HIGH_RISK = "13800000009"


def _snapshot(rules: RuleSet | None = None, calendar: HolidayCalendar | None = None,
              site: str = "default") -> RulesSnapshot:
    return RulesSnapshot.create(
        site_code=site, rules_version=3, rules=rules or default_rules(), node="sandbox",
        written_at=datetime(2026, 3, 1, tzinfo=UTC), calendar=calendar or official_calendar(),
        sounds=SOUNDS, high_risk_numbers=[f"+86 {HIGH_RISK}"], abusive_numbers=[])


def _set_clock(directory: Path, at: datetime) -> None:
    write_atomically(directory / "clock.json",
                     ClockSetting(fixed=at).model_dump_json().encode())


@pytest.fixture
def snapshots(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    write_snapshot(directory, _snapshot(), default=True)
    _set_clock(directory, OPEN)
    return directory


def _args(number: str = "13800000001", site: str = "default", resume: str = "") -> list[str]:
    return [LINKEDID, site, b64(number), b64("张三"), "12355", resume]


def _expected(digits: list[str | None], *, at: datetime = OPEN,
              caller: CallerContext | None = None,
              resume: str = "") -> tuple[Route, str, list[list[str]]]:
    """What MenuWalk decides for a caller who lets prompts play out and answers each menu
    with the next digit: the route, the digits pressed, and the conversation
    (STREAM FILE / GET DATA and their sounds) the script must have with Asterisk."""
    walk = MenuWalk(rules=default_rules(), at=at, calendar=official_calendar(),
                    caller=caller or CallerContext())
    script = list(digits)
    conversation: list[list[str]] = []
    action = walk.start(resume or None)
    while not isinstance(action, Route):
        sound = SOUNDS.get(action.prompt, action.prompt)
        if isinstance(action, Play):
            conversation.append(["STREAM", "FILE", sound])
            action = walk.played(None)
        else:
            assert isinstance(action, Collect)
            conversation.append(["GET", "DATA", sound, str(action.timeout_ms)])
            action = walk.collected(script.pop(0) if script else None)
    return action, "".join(d for d in walk.digits if d), conversation


def _conversation(commands: list[str]) -> list[list[str]]:
    """The script's STREAM FILE / GET DATA commands, as _expected lists them."""
    found = []
    for command in commands:
        words = parse_agi_args(command)
        if words[:2] == ["STREAM", "FILE"]:
            found.append(words[:3])
        elif words[:2] == ["GET", "DATA"]:
            found.append(words[:4])
    return found


def _commands_named(commands: list[str], *words: str) -> list[list[str]]:
    parsed = [parse_agi_args(c) for c in commands]
    return [p for p in parsed if p[:len(words)] == list(words)]


@pytest.mark.parametrize("digit", ["1", "2", "3", "0", "9"])
def test_a_menu_digit_takes_the_same_route_as_the_menu_walk(snapshots: Path, digit: str) -> None:
    peer = ScriptedAsterisk(_args(), snapshots)
    digits: list[str | None] = [digit, digit] if digit == "9" else [digit]
    assert peer.run(caller_pressing(digits)) == 0, peer.stderr

    route, pressed, conversation = _expected(digits)
    assert _conversation(peer.commands) == conversation
    values = variables_set(peer.commands)
    assert values["HOTLINE_ROUTE"] == route.kind.value
    assert values["HOTLINE_QUEUE"] == route.queue
    assert values["HOTLINE_PRIORITY"] == str(route.priority)
    assert values["HOTLINE_NODE"] == route.node
    assert values["HOTLINE_REASON"] == route.reason.value
    assert values["HOTLINE_DIGITS"] == pressed
    assert values["HOTLINE_RULES_VERSION"] == "3"
    assert values["HOTLINE_VIA"] == "classic"
    assert values["HOTLINE_CALL_ID"] == call_id_for("sandbox", LINKEDID)
    # the pinned sound is what plays; the prompt without a pinned version plays by name
    assert parse_agi_args(peer.commands[0])[:3] == ["STREAM", "FILE",
                                                     "hotline/site-default/welcome-v7"]
    assert _commands_named(peer.commands, "GET", "DATA")[0][2:] == ["hotline/menu", "5000", "1"]
    # every variable in one round trip, HOTLINE_ROUTE in it, after everything else
    assert parse_agi_args(peer.commands[-1])[:2] == ["EXEC", "MSet"]
    assert list(variables_set(peer.commands[-1:]))[-1] == "HOTLINE_ROUTE"
    assert not _commands_named(peer.commands, "SET", "VARIABLE")


def test_silence_takes_the_no_input_route(snapshots: Path) -> None:
    peer = ScriptedAsterisk(_args(), snapshots)
    assert peer.run(caller_pressing([None, None])) == 0
    route, _, conversation = _expected([None, None])
    assert _conversation(peer.commands) == conversation
    values = variables_set(peer.commands)
    assert (values["HOTLINE_ROUTE"], values["HOTLINE_QUEUE"]) == ("queue", "psych")
    assert values["HOTLINE_REASON"] == route.reason.value == "no_input"
    assert values["HOTLINE_DIGITS"] == ""


def test_a_hang_up_mid_menu_ends_cleanly_without_a_route(snapshots: Path) -> None:
    peer = ScriptedAsterisk(_args(), snapshots)
    seen: list[str] = []

    def answer(command: str) -> str | None:
        seen.append(command)
        return None if command.startswith("GET DATA") else caller_pressing([])(command)

    assert peer.run(answer) == 0
    assert seen[-1].startswith("GET DATA")
    assert variables_set(peer.commands) == {}
    assert "Traceback" not in peer.stderr


def test_sighup_then_a_failed_get_data_ends_without_a_route(snapshots: Path) -> None:
    peer = ScriptedAsterisk(_args(), snapshots)
    assert peer.command() is not None  # STREAM FILE welcome
    peer.answer("200 result=0 endpos=8000")
    command = peer.command()
    assert command is not None and command.startswith("GET DATA")
    peer.sighup()  # Asterisk signals the hang-up, then GET DATA fails
    peer.answer("200 result=-1")
    assert peer.command() is None
    assert peer.finish() == 0
    assert variables_set(peer.commands) == {}


def test_a_dead_channel_answer_ends_without_a_route(snapshots: Path) -> None:
    peer = ScriptedAsterisk(_args(), snapshots)
    peer.command()
    peer.answer("511 Command Not Permitted on a dead channel or intercept routine")
    assert peer.command() is None
    assert peer.finish() == 0
    assert variables_set(peer.commands) == {}


def test_no_snapshot_exits_non_zero_without_a_route(tmp_path: Path) -> None:
    peer = ScriptedAsterisk(_args(), tmp_path / "empty")
    assert peer.run(caller_pressing([])) == 2
    assert "HOTLINE_ROUTE" not in variables_set(peer.commands)
    # the reason reaches Asterisk's log, and no caller data does
    assert [parse_agi_args(c)[0] for c in peer.commands] == ["VERBOSE"]
    assert "no rules snapshot" in peer.commands[0]
    assert "13800000001" not in peer.stderr


def test_an_unreadable_snapshot_exits_non_zero_without_a_route(snapshots: Path) -> None:
    (snapshots / "default.json").write_text('{"format": 1, "site_code": "default"}')
    peer = ScriptedAsterisk(_args(), snapshots)
    assert peer.run(caller_pressing([])) == 2
    assert "HOTLINE_ROUTE" not in variables_set(peer.commands)


def test_a_site_without_a_snapshot_uses_the_default_sites(snapshots: Path) -> None:
    write_snapshot(snapshots, _snapshot(site="jiangxi").model_copy(update={"rules_version": 9}))
    peer = ScriptedAsterisk(_args(site="jiangxi"), snapshots)
    assert peer.run(caller_pressing(["1"])) == 0
    assert variables_set(peer.commands)["HOTLINE_RULES_VERSION"] == "9"
    for site in ("guangxi", "", "../etc/passwd", "_default"):
        peer = ScriptedAsterisk(_args(site=site), snapshots)
        assert peer.run(caller_pressing(["1"])) == 0
        assert variables_set(peer.commands)["HOTLINE_RULES_VERSION"] == "3", site


def test_a_caller_flagged_high_risk_goes_straight_to_crisis(snapshots: Path) -> None:
    peer = ScriptedAsterisk(_args(number=f"+86 {HIGH_RISK[:3]}-{HIGH_RISK[3:]}"), snapshots)
    assert peer.run(caller_pressing([])) == 0
    route, _, _ = _expected([], caller=CallerContext(high_risk=True))
    values = variables_set(peer.commands)
    assert values["HOTLINE_ROUTE"] == route.kind.value == "crisis"
    assert values["HOTLINE_PRIORITY"] == "10"
    assert values["HOTLINE_REASON"] == "flagged_high_risk"
    assert not _commands_named(peer.commands, "STREAM", "FILE")


def test_the_clock_file_is_honoured_outside_hours(snapshots: Path) -> None:
    night = shanghai(2026, 3, 11, 23, 30)
    _set_clock(snapshots, night)
    peer = ScriptedAsterisk(_args(), snapshots)
    assert peer.run(caller_pressing([None, None])) == 0
    assert parse_agi_args(peer.commands[0])[:3] == ["STREAM", "FILE", "hotline/closed"]
    assert _commands_named(peer.commands, "GET", "DATA")[0][2] == "hotline/night-menu"
    route, _, conversation = _expected([None, None], at=night)
    assert _conversation(peer.commands) == conversation
    values = variables_set(peer.commands)
    assert values["HOTLINE_ROUTE"] == route.kind.value == "crisis"
    assert values["HOTLINE_NODE"] == route.node


def test_a_public_holiday_in_the_snapshot_closes_the_site(snapshots: Path) -> None:
    _set_clock(snapshots, shanghai(2026, 10, 1, 10, 0))  # National Day, 10:00
    peer = ScriptedAsterisk(_args(), snapshots)
    assert peer.run(caller_pressing(["2"])) == 0
    assert parse_agi_args(peer.commands[0])[2] == "hotline/closed"
    assert variables_set(peer.commands)["HOTLINE_ROUTE"] == "voicemail"


def test_an_unreadable_clock_file_falls_back_to_real_time(snapshots: Path) -> None:
    (snapshots / "clock.json").write_text("{not json")
    peer = ScriptedAsterisk(_args(), snapshots)
    assert peer.run(caller_pressing(["3"])) == 0
    assert variables_set(peer.commands)["HOTLINE_ROUTE"] == "crisis"
    assert any(c.startswith("VERBOSE") and "real time" in c for c in peer.commands)


def test_resume_continues_at_the_node_after_a_self_help_programme(snapshots: Path) -> None:
    _set_clock(snapshots, shanghai(2026, 3, 11, 23, 30))
    peer = ScriptedAsterisk(_args(resume="selfhelp-menu"), snapshots)
    assert peer.run(caller_pressing(["2"])) == 0
    assert _commands_named(peer.commands, "GET", "DATA")[0][2] == "hotline/selfhelp-menu"
    values = variables_set(peer.commands)
    assert (values["HOTLINE_ROUTE"], values["HOTLINE_RESUME"]) == ("selfhelp", "selfhelp-menu")
    assert values["HOTLINE_PROMPT"] == "hotline/selfhelp-sleep"


def test_a_missing_prompt_is_skipped_not_fatal(snapshots: Path) -> None:
    peer = ScriptedAsterisk(_args(), snapshots)
    answer = caller_pressing(["1"], missing_sounds={"hotline/site-default/welcome-v7": True})
    assert peer.run(answer) == 0
    assert variables_set(peer.commands)["HOTLINE_QUEUE"] == "psych"


def test_a_caller_name_that_is_not_utf8_does_not_stop_the_script(snapshots: Path) -> None:
    # A carrier sending GBK: "张三" in GB18030 bytes in agi_calleridname.
    environment = agi_environment(_args(), name="张三".encode("gb18030") + b"\xff")
    peer = ScriptedAsterisk(_args(), snapshots, environment=environment)
    assert peer.run(caller_pressing(["2"])) == 0
    assert variables_set(peer.commands)["HOTLINE_QUEUE"] == "legal"


def test_the_snapshot_file_is_what_the_script_reads(snapshots: Path) -> None:
    data = json.loads((snapshots / "default.json").read_text())
    assert data["site_code"] == "default"
    assert data["sounds"] == SOUNDS
    assert data["high_risk_numbers"] == [HIGH_RISK]
    assert (snapshots / "_default.json").is_symlink()
