"""Queues follow the roster, for real: sipp softphones registering with digest auth, the
sandboxed Asterisk's app_queue, the backend's membership sync over AMI, Redis, SQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from tests.integration.conftest import Backend, clock_offset_for, eventually, unique_caller_number
from tests.integration.sipp import Caller, dial_feature_code, register, softphone

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")

def caller_number() -> str:
    return unique_caller_number()


def agent(backend: Backend, counsellor_id: int) -> dict[str, Any]:
    status, page = backend.api("/api/live/agents")
    assert status == 200, page
    return next(item for item in page["items"] if item["counsellor_id"] == counsellor_id)


def in_call(line: str) -> bool:
    return "(in call)" in line.lower() or "(in use)" in line.lower()


@contextmanager
def paused(backend: Backend, *counsellor_ids: int) -> Iterator[None]:
    """Others paused (reason admin), so the test's counsellor is the one who answers."""
    for counsellor_id in counsellor_ids:
        status, body = backend.api(f"/api/counsellors/{counsellor_id}/pause", method="POST",
                                   body={"reason": "admin"})
        assert status == 200, body
    try:
        yield
    finally:
        for counsellor_id in counsellor_ids:
            backend.api(f"/api/counsellors/{counsellor_id}/unpause", method="POST")


@contextmanager
def site_setting(backend: Backend, **values: Any) -> Iterator[None]:
    status, before = backend.api("/api/sites/default/staffing")
    assert status == 200, before
    status, body = backend.api("/api/sites/default/staffing", method="PATCH", body=values)
    assert status == 200, body
    try:
        yield
    finally:
        backend.api("/api/sites/default/staffing", method="PATCH",
                    body={key: before[key] for key in values})


def test_time_off_starting_mid_call_removes_the_counsellor_only_after_the_hang_up(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    ids = backend.counsellor_ids()
    eventually(lambda: "PJSIP/c1002" in backend.queue_members("psych"),
               what="c1002 in psych at the start")
    number = caller_number()
    with paused(backend, ids["c1001"], ids["c1003"]), \
            softphone(workdir, user="c1002", password=counsellors["c1002"]):
        caller = Caller(workdir, caller=number, keys="1", hold_ms=14000).start()
        eventually(lambda: in_call(backend.queue_members("psych").get("PJSIP/c1002", "")),
                   timeout=20, what="c1002 answered the psych caller")
        # c1002's duty ends now (an `off` override from now on: leave, a swap).
        now = backend.now()
        status, shift = backend.api("/api/shifts", method="POST", body={
            "counsellor_id": ids["c1002"], "kind": "off", "note": "test: shift ends mid-call",
            "starts_at": now.isoformat(), "ends_at": (now + timedelta(minutes=10)).isoformat()})
        assert status == 201, shift
        try:
            # Still a member while the call lasts: paused, so no new call reaches them.
            line = eventually(lambda: "shift_end" in backend.queue_members("psych").get(
                "PJSIP/c1002", "") and backend.queue_members("psych")["PJSIP/c1002"],
                what="c1002 paused for shift end")
            assert in_call(line)
            time.sleep(2)
            assert "PJSIP/c1002" in backend.queue_members("psych")
            assert caller.wait().ok
            # Hung up: removed from every queue within a tick.
            eventually(lambda: not any("PJSIP/c1002" in backend.queue_members(queue)
                                       for queue in ("psych", "legal", "crisis", "duty")),
                       what="c1002 removed from every queue")
            eventually(lambda: agent(backend, ids["c1002"])["state"] == "offline",
                       what="c1002 shown offline (off duty)")
        finally:
            backend.api(f"/api/shifts/{shift['id']}", method="DELETE")
    # The override deleted: back on duty, with the penalty of their tier.
    line = eventually(lambda: backend.queue_members("crisis").get("PJSIP/c1002"),
                      what="c1002 back in crisis")
    assert "dynamic" in line
    call = backend.find_call(number)
    assert call["answered_by"] == "李老师" and call["outcome"] == "answered"


def restart_just_before(backend: Backend, boundary: datetime) -> None:
    """Restart the backend with its clock shortly before a shift boundary. The margin covers
    the restart itself (a few seconds, more on a loaded machine): the boundary must still
    be ahead when the restarted backend first answers."""
    backend.restart(HOTLINE_CLOCK__OFFSET_SECONDS=str(
        clock_offset_for(boundary - timedelta(seconds=BOUNDARY_MARGIN_SECONDS))))
    assert seconds_until(backend, boundary) > 1, "the restart took longer than the margin"


def seconds_until(backend: Backend, instant: datetime) -> float:
    return (instant - backend.now()).total_seconds()


BOUNDARY_MARGIN_SECONDS = 15


def test_setting_the_clock_across_a_weekly_shift_adds_then_removes_the_counsellor(
        backend: Backend, workdir: Path) -> None:
    """c1003 without the demo's dated shift, on a weekly template tomorrow 09:00–12:00: the
    backend restarted with its clock just before the start adds them (consultation tier:
    penalty 5 in the crisis queue), just before the end removes them."""
    ids = backend.counsellor_ids()
    now = backend.now()
    later = now + timedelta(minutes=1)
    status, page = backend.api(
        f"/api/shifts?from={quote(now.isoformat())}&to={quote(later.isoformat())}")
    assert status == 200, page
    demo = [s for s in page["items"] if s["counsellor_id"] == ids["c1003"] and s["kind"] == "work"]
    assert demo, page
    for shift in demo:
        assert backend.api(f"/api/shifts/{shift['id']}", method="DELETE")[0] == 204
    starts = (now + timedelta(days=1)).astimezone(SHANGHAI).replace(hour=9, minute=0, second=0,
                                                                    microsecond=0)
    status, template = backend.api("/api/shift-templates", method="POST", body={
        "counsellor_id": ids["c1003"], "weekday": starts.weekday(), "start": "09:00",
        "minutes": 180})
    assert status == 201, template
    try:
        eventually(lambda: "PJSIP/c1003" not in backend.queue_members("crisis"),
                   what="c1003 off duty without the dated shift")
        restart_just_before(backend, starts)
        assert "PJSIP/c1003" not in backend.queue_members("crisis")
        line = eventually(lambda: backend.queue_members("crisis").get("PJSIP/c1003"),
                          timeout=seconds_until(backend, starts) + 8,
                          what="c1003 added when the shift starts")
        assert "with penalty 5" in line and "dynamic" in line
        assert "PJSIP/c1003" in backend.queue_members("psych")
        ends = starts + timedelta(minutes=180)
        restart_just_before(backend, ends)
        assert "PJSIP/c1003" in backend.queue_members("crisis")
        eventually(lambda: "PJSIP/c1003" not in backend.queue_members("crisis"),
                   timeout=seconds_until(backend, ends) + 8,
                   what="c1003 removed when the shift ends")
    finally:
        backend.api(f"/api/shift-templates/{template['id']}", method="DELETE")
        for shift in demo:
            backend.api("/api/shifts", method="POST", body={
                "counsellor_id": shift["counsellor_id"], "kind": "work",
                "starts_at": shift["starts_at"], "ends_at": shift["ends_at"]})
        backend.restart()
    eventually(lambda: "PJSIP/c1003" in backend.queue_members("crisis"),
               what="c1003 back with the dated demo shift")


def test_an_unregistered_softphone_pauses_its_counsellor_and_registering_unpauses(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    ids = backend.counsellor_ids()
    with softphone(workdir, user="c1003", password=counsellors["c1003"]):
        line = eventually(lambda: (m := backend.queue_members("psych").get("PJSIP/c1003", ""))
                          and "paused" not in m and m, what="c1003 registered and unpaused")
        assert "Unavailable" not in line
        assert eventually(lambda: agent(backend, ids["c1003"])["state"] == "available")
    # The softphone context unregistered (expires=0) on leaving.
    line = eventually(lambda: "paused:offline" in backend.queue_members("psych").get(
        "PJSIP/c1003", "") and backend.queue_members("psych")["PJSIP/c1003"],
        what="c1003 paused: offline")
    live = eventually(lambda: (a := agent(backend, ids["c1003"]))["state"] == "offline" and a)
    assert live["reason"] == "unregistered"
    # Registering again (a softphone back on the network) unpauses.
    port = 47000 + int(time.time()) % 500 * 8
    result = register(workdir, user="c1003", password=counsellors["c1003"], contact_port=port)
    assert result.ok, result.errors[-2000:]
    try:
        eventually(lambda: "paused" not in backend.queue_members("psych").get("PJSIP/c1003",
                                                                                "paused"),
                   what="c1003 unpaused after registering")
    finally:
        register(workdir, user="c1003", password=counsellors["c1003"], contact_port=port,
                 expires=0)


def test_a_crisis_call_is_followed_by_the_debrief_pause_which_can_end_early(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    ids = backend.counsellor_ids()
    number = caller_number()
    with site_setting(backend, debrief_seconds=600), \
            softphone(workdir, user="c1001", password=counsellors["c1001"], talk_ms=3000):
        result = Caller(workdir, caller=number, keys="3", hold_ms=20000,
                        until_hangup=True).run()
        assert result.ok, result.errors[-2000:]
        # In every queue: no call of any kind until the debrief is over.
        eventually(lambda: all("paused:debrief" in backend.queue_members(queue).get(
            "PJSIP/c1001", "") for queue in ("crisis", "psych", "legal")),
            what="c1001 debrief pause in every queue")
        live = eventually(lambda: (a := agent(backend, ids["c1001"]))["state"] == "paused"
                          and a)
        assert live["reason"] == "debrief" and live["crisis_calls"] >= 1
        status, detail = backend.api(f"/api/counsellors/{ids['c1001']}")
        assert status == 200 and detail["presence"]["pause_reason"] == "debrief"
        assert detail["presence"]["pause_until"] is not None
        # Ended early by the counsellor's *64 (the feature code): back in the queues.
        dialled = dial_feature_code(workdir, user="c1001", password=counsellors["c1001"],
                                    code="*64")
        assert dialled.ok, dialled.errors[-2000:]
        eventually(lambda: "paused" not in backend.queue_members("crisis").get("PJSIP/c1001",
                                                                                "paused"),
                   what="c1001 resumed by *64")
    call = backend.find_call(number)
    assert (call["queue"], call["answered_by"]) == ("crisis", "张老师")


def test_feature_codes_log_out_and_in_and_pause_with_a_reason(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    password = counsellors["c1002"]
    out = dial_feature_code(workdir, user="c1002", password=password, code="*62")
    assert out.ok, out.errors[-2000:]
    try:
        eventually(lambda: "PJSIP/c1002" not in backend.queue_members("psych"),
                   what="c1002 logged out by *62")
        status, detail = backend.api(f"/api/counsellors/{backend.counsellor_ids()['c1002']}")
        assert status == 200 and detail["presence"]["presence"] == "logged_out"
    finally:
        back = dial_feature_code(workdir, user="c1002", password=password, code="*61")
    assert back.ok, back.errors[-2000:]
    eventually(lambda: "PJSIP/c1002" in backend.queue_members("psych"), what="back by *61")
    paused = dial_feature_code(workdir, user="c1002", password=password, code="*633")
    assert paused.ok, paused.errors[-2000:]
    try:
        eventually(lambda: "paused:admin" in backend.queue_members("psych").get(
            "PJSIP/c1002", ""), what="paused for admin by *633")
    finally:
        backend.api(f"/api/counsellors/{backend.counsellor_ids()['c1002']}/unpause",
                    method="POST")
    eventually(lambda: "paused:admin" not in backend.queue_members("psych").get(
        "PJSIP/c1002", ""), what="unpaused by the API")


def test_crisis_with_the_specialist_busy_reaches_consultation_after_the_widen_time(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    first, second = caller_number(), caller_number()
    with softphone(workdir, user="c1001", password=counsellors["c1001"]), \
            softphone(workdir, user="c1003", password=counsellors["c1003"]) as consultant:
        busy = Caller(workdir, caller=first, keys="3", hold_ms=30000).start()
        eventually(lambda: in_call(backend.queue_members("crisis").get("PJSIP/c1001", "")),
                   timeout=15, what="the specialist busy with the first crisis caller")
        result = Caller(workdir, caller=second, keys="3", hold_ms=20000).run()
        assert busy.wait().ok
    assert result.ok, result.errors[-2000:]
    call = backend.find_call(second)
    assert call["answered_by"] == "王老师"
    assert consultant.invites() == 1
    joined = next(e for e in call["events"] if e["kind"] == "queue_join")
    rang = next(e for e in call["events"] if e["kind"] == "ring")
    waited = (datetime.fromisoformat(rang["at"]) - datetime.fromisoformat(joined["at"]))
    # The harness widens after 8 s: the consultation counsellor was not rung before.
    assert waited.total_seconds() >= 7.5


def test_nobody_on_duty_a_crisis_caller_rolls_over_to_the_oncall_mobile(
        backend: Backend, workdir: Path) -> None:
    ids = backend.counsellor_ids()
    for username in ("c1001", "c1002", "c1003"):
        status, body = backend.api(f"/api/counsellors/{ids[username]}/logout", method="POST")
        assert status == 200, body
    number = caller_number()
    try:
        eventually(lambda: not any(backend.queue_members(queue)
                                   for queue in ("crisis", "psych", "duty")),
                   what="every queue empty")
        result = Caller(workdir, caller=number, keys="3", hold_ms=12000).run()
        assert result.ok, result.errors[-2000:]
    finally:
        for username in ("c1001", "c1002", "c1003"):
            backend.api(f"/api/counsellors/{ids[username]}/login", method="POST")
    call = backend.find_call(number)
    assert call["outcome"] == "answered_oncall"
    assert call["answered_by"] == "13800000001"
    eventually(lambda: len(backend.queue_members("crisis")) == 3, what="everyone back")
