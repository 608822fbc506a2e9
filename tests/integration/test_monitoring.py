"""Supervisor monitoring for real: a sipp caller presses 3 and the sipp counsellor c1001
answers; a supervisor asks the API to listen (their softphone: the demo's c1002 endpoint,
registered by sipp), to whisper and to barge in (phones through the simulated carrier).
Asterisk rings each phone, which runs ChanSpy on the counsellor's channel; the caller's
call goes on undisturbed and ends normally. Other roles are refused, and every request is
audited."""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import WEB_PORT, Backend, eventually, unique_caller_number
from tests.integration.sipp import Caller, softphone

pytestmark = pytest.mark.integration

_numbers = itertools.count(int(time.time()) % 100000 * 10 + 7)
PASSWORD = "monitor-test-password-1"


def caller_number() -> str:
    return unique_caller_number()


def api_as(token: str, path: str, *, method: str = "GET",
           body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{WEB_PORT}{path}", data=data,
                                     method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def token_for(backend: Backend, role: str) -> tuple[str, str]:
    """A new user of `role` and a bearer token, created through the API by the admin."""
    username = f"mon-{role.replace('_', '-')}-{next(_numbers)}"
    status, user = backend.api("/api/users", method="POST", body={
        "username": username, "role": role, "password": PASSWORD})
    assert status == 201, user
    status, issued = backend.api(f"/api/users/{user['id']}/tokens", method="POST",
                                 body={"name": "monitoring test"})
    assert status == 201, issued
    return username, issued["token"]


def byes_received(messages: str) -> int:
    """BYE requests a sipp party received (its -trace_msg log), not the ones it sent."""
    return sum(1 for block in messages.split("message received")[1:]
               if block.split("\n\n", 1)[-1].lstrip().startswith("BYE sip:"))


def live_call_id(backend: Backend, number: str, timeout: float = 40) -> str:
    """The id of this caller's call once a counsellor has answered it."""
    def answered() -> str | None:
        status, page = backend.api(f"/api/calls?caller_number={number}&limit=1")
        if status == 200 and page["items"] and page["items"][0]["answered_at"]:
            return str(page["items"][0]["id"])
        return None

    return str(eventually(answered, timeout=timeout, what=f"{number} answered"))


def spy_channels(backend: Backend) -> list[list[str]]:
    """Asterisk's channels running ChanSpy: concise fields (channel!context!exten!prio!
    state!application!data!…)."""
    rows = [line.split("!") for line in
            backend.asterisk("core show channels concise").splitlines()]
    return [row for row in rows if len(row) > 6 and row[5] == "ChanSpy"]


def test_a_supervisor_listens_whispers_and_barges_in(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    supervisor, supervisor_token = token_for(backend, "supervisor")
    _, counsellor_token = token_for(backend, "counsellor")
    number = caller_number()
    carrier_log = backend.carrier_log
    before = carrier_log.read_text(errors="replace") if carrier_log.exists() else ""
    with softphone(workdir, user="c1001", password=counsellors["c1001"]) as counsellor, \
            softphone(workdir, user="c1002", password=counsellors["c1002"],
                      ring_ms=500) as supervisor_phone:
        caller = Caller(workdir, caller=number, keys="3", hold_ms=30000).start()
        call_id = live_call_id(backend, number)
        path = f"/api/calls/{call_id}/monitor"
        listen = {"mode": "listen", "endpoint": "c1002"}

        # Nobody but a supervisor: a counsellor and the admin are refused (and audited).
        assert api_as(counsellor_token, path, method="POST", body=listen)[0] == 403
        assert backend.api(path, method="POST", body=listen)[0] == 403
        assert api_as(counsellor_token, "/api/monitoring/calls")[0] == 403
        # Bad bodies say what is wrong; nothing rings.
        status, body = api_as(supervisor_token, path, method="POST",
                              body={"mode": "listen", "endpoint": "c1002",
                                    "number": "13900000000"})
        assert status == 422, body
        status, body = api_as(supervisor_token, path, method="POST",
                              body={"mode": "listen", "endpoint": "nobody"})
        assert status == 422 and "nobody" in body["error"], body
        status, body = api_as(supervisor_token, path, method="POST",
                              body={"mode": "listen", "endpoint": "c1001"})
        assert status == 422, body  # the counsellor's own phone

        # The call is listed as one to monitor.
        status, page = api_as(supervisor_token, "/api/monitoring/calls")
        assert status == 200, page
        listed = {item["call_id"]: item for item in page["items"]}
        assert listed[call_id]["caller_number"] == number
        assert listed[call_id]["counsellor"] == "张老师"
        assert listed[call_id]["counsellor_endpoint"] == "c1001"
        assert listed[call_id]["monitored_by"] == []

        # Listen from the supervisor's softphone.
        status, started = api_as(supervisor_token, path, method="POST", body=listen)
        assert status == 202, started
        assert started["dial"] == "PJSIP/c1002"
        assert started["spied_channel"].startswith("PJSIP/c1001-")
        spying = eventually(lambda: spy_channels(backend), timeout=15,
                            what="a channel running ChanSpy")
        assert spying[0][0].startswith("PJSIP/c1002-")
        assert spying[0][6] == f"{started['spied_channel']},qE"
        assert supervisor_phone.invites() == 1
        # The phone shows which call it is.
        assert f"监听 {call_id}" in supervisor_phone.messages

        # Whisper from a phone through the carrier.
        status, whisper = api_as(supervisor_token, path, method="POST",
                                 body={"mode": "whisper", "number": "13900012355"})
        assert status == 202, whisper
        assert whisper["dial"] == "PJSIP/13900012355@carrier"
        # And barge in from another phone through the carrier.
        status, barge = api_as(supervisor_token, path, method="POST",
                               body={"mode": "barge", "number": "13900012356"})
        assert status == 202, barge
        spies = eventually(lambda: (lambda rows: rows if len(rows) == 3 else None)(
            spy_channels(backend)), timeout=15, what="three ChanSpy channels")
        spied = started["spied_channel"]
        assert sorted(row[6] for row in spies) == sorted(
            [f"{spied},qE", f"{spied},qEw", f"{spied},qEB"])
        status, page = api_as(supervisor_token, "/api/monitoring/calls")
        assert status == 200, page
        assert len(next(i for i in page["items"] if i["call_id"] == call_id)
                   ["monitored_by"]) == 3

        result = caller.wait()
        # The caller's call was not disturbed: it ran to its end, and Asterisk never hung
        # up on the caller (the caller's own BYE ends it).
        assert result.ok, result.errors[-2000:]
        assert byes_received(result.messages) == 0
        # ChanSpy ends with the spied channel (E): the supervisor's phone is hung up too.
        eventually(lambda: not spy_channels(backend), timeout=15, what="ChanSpy ended")
        eventually(lambda: byes_received(supervisor_phone.messages) == 1, timeout=10,
                   what="the supervisor's phone hung up")
        assert byes_received(counsellor.messages) == 1

    after = carrier_log.read_text(errors="replace")[len(before):]
    assert "INVITE sip:13900012355@" in after and "INVITE sip:13900012356@" in after

    # Over: nothing to monitor; the call is ended (404).
    call = backend.find_call(number, timeout=30)
    assert call["outcome"] == "answered" and call["answered_by"] == "张老师"
    status, body = api_as(supervisor_token, path, method="POST", body=listen)
    assert status == 404, body
    monitors = [event["data"] for event in call["events"] if event["kind"] == "monitor"]
    assert [(m["mode"], m["by_user"]) for m in monitors] == [
        ("listen", supervisor), ("whisper", supervisor), ("barge", supervisor)]
    # Both phones answered (the OriginateResponse of each request, on the call's record).
    results = {event["data"]["action_id"]: event["data"] for event in call["events"]
               if event["kind"] == "monitor_result"}
    assert set(results) == {started["action_id"], whisper["action_id"], barge["action_id"]}
    assert all(result["answered"] for result in results.values()), results

    audit = [entry for entry in backend.audit("call.monitor")
             if entry["target"] == f"call:{call_id}"]
    accepted = [entry["after"] for entry in audit if entry["after"]["accepted"]]
    assert sorted(a["mode"] for a in accepted) == ["barge", "listen", "whisper"]
    assert all(entry["actor"] == supervisor for entry in audit if entry["after"]["accepted"])
    refused = {(entry["actor"], entry["after"]["status"]) for entry in audit
               if not entry["after"]["accepted"]}
    assert ("admin", 403) in refused and (supervisor, 422) in refused
    assert (supervisor, 404) in refused
    assert any(actor.startswith("mon-counsellor-") and status == 403
               for actor, status in refused)
