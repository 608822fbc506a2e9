"""The duty alert chain for real: a crisis alert rings the first duty officer's phone through
the simulated carrier within 2 s; they answer but never press 1, so after escalate_seconds
the next officer on the roster is rung, who presses 1: the alert is acknowledged in their
name, each duty call's outcome is recorded, and nobody is rung again.

The carrier's number plan (asterisk_conf/sandbox/carrier_uas.xml) plays the duty phones:
1399002… answers and stays silent, 1399001… answers and presses 1 three seconds later."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.integration.conftest import Backend, eventually

pytestmark = pytest.mark.integration

DUTY_KINDS = ("crisis", "crisis_keyword", "deadline_missed", "police")
ESCALATE_SECONDS = 8
_STAMP = re.compile(r"-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)")


def carrier_invites(text: str, number: str) -> list[tuple[datetime, str]]:
    """(when the carrier received it, Call-ID) of each INVITE to `number`, retransmissions
    counted once. The carrier's -trace_msg log: a "----- <local time>" line, then
    "message received", then the message."""
    found: dict[str, datetime] = {}
    for block in ("\n" + text).split("\n---")[1:]:
        lines = block.splitlines()
        stamp = _STAMP.search("---" + lines[0]) if lines else None
        if stamp is None or not any(line.startswith(f"INVITE sip:{number}@") for line in lines):
            continue
        call_id = next((line.split(":", 1)[1].strip() for line in lines
                        if line.lower().startswith("call-id:")), "")
        found.setdefault(call_id, datetime.fromisoformat(stamp.group(1)))
    return sorted(((at, call_id) for call_id, at in found.items()))


def new_log(backend: Backend, offset: int) -> str:
    with backend.carrier_log.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


@pytest.fixture(scope="module")
def chain(backend: Backend) -> Iterator[dict[str, Any]]:
    """Short chain times; two officers on the roster ahead of the demo's; nothing open."""
    backend.restart(HOTLINE_CRISIS__ESCALATE_SECONDS=str(ESCALATE_SECONDS),
                    HOTLINE_CRISIS__REPEAT_SECONDS="30",
                    HOTLINE_CRISIS__DUTY_RING_SECONDS="20")
    # Crisis alerts other tests left open would ring these officers too.
    status, page = backend.api("/api/alerts?state=open&limit=1000")
    assert status == 200, page
    for alert in page["items"]:
        if alert["kind"] in DUTY_KINDS:
            assert backend.api(f"/api/alerts/{alert['id']}/ack", method="POST")[0] == 200
    suffix = f"{random.randrange(10000):04d}"
    people = {"silent": ("张主任", f"1399002{suffix}"), "presses": ("李老师", f"1399001{suffix}")}
    now = backend.now()
    officers, entries = {}, []
    for position, (role, (name, number)) in enumerate(people.items()):
        status, officer = backend.api("/api/duty/officers", method="POST",
                                      body={"name": name, "number": number})
        assert status == 201, officer
        officers[role] = officer
        status, entry = backend.api("/api/duty/roster", method="POST", body={
            "officer_id": officer["id"], "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(hours=2)).isoformat(), "position": position,
            "site": "default"})
        assert status == 201, entry
        entries.append(entry)
    yield officers
    backend.asterisk("channel request hangup all")
    for entry in entries:
        backend.api(f"/api/duty/roster/{entry['id']}", method="DELETE")
    for officer in officers.values():
        backend.api(f"/api/duty/officers/{officer['id']}", method="DELETE")
    backend.restart()


def test_the_duty_phone_rings_at_once_escalates_and_pressing_1_acknowledges(
        backend: Backend, chain: dict[str, Any]) -> None:
    silent, presses = chain["silent"], chain["presses"]
    status, now_on_duty = backend.api("/api/duty/now")
    assert status == 200
    assert [e["officer_id"] for e in now_on_duty["items"]][:2] == [silent["id"], presses["id"]]
    log_offset = backend.carrier_log.stat().st_size
    # A duty officer opens an incident by hand (a report on another line): a crisis alert.
    raised = datetime.now()
    status, incident = backend.api("/api/incidents", method="POST", body={
        "site": "default", "summary": "值班测试：来电者有自伤风险",
        "caller_number": "13912345678"})
    assert status == 201, incident

    status, detail = backend.api(f"/api/incidents/{incident['id']}")
    assert status == 200, detail
    [alert] = [a for a in detail["alerts"] if a["kind"] == "crisis"]

    def acknowledged() -> dict[str, Any] | None:
        status, page = backend.api("/api/alerts?state=acknowledged&limit=50")
        assert status == 200, page
        return next((a for a in page["items"] if a["id"] == alert["id"]), None)

    acked = eventually(acknowledged, timeout=ESCALATE_SECONDS + 30,
                       what="the alert acknowledged by pressing 1")
    assert acked["acknowledged_by"] == "李老师"

    # The carrier's log says when each phone was rung.
    def both_rung() -> tuple[list[Any], list[Any]] | None:
        text = new_log(backend, log_offset)
        rung = (carrier_invites(text, silent["number"]), carrier_invites(text, presses["number"]))
        return rung if all(rung) else None

    first, second = eventually(both_rung, timeout=30, what="both duty phones in the carrier log")
    assert (first[0][0] - raised).total_seconds() < 2, (first, raised)
    escalated_after = (second[0][0] - first[0][0]).total_seconds()
    assert ESCALATE_SECONDS - 1 <= escalated_after <= ESCALATE_SECONDS + 3, escalated_after

    def outcomes() -> list[tuple[str, str, str | None]] | None:
        status, body = backend.api(f"/api/alerts/{alert['id']}")
        assert status == 200, body
        found = [(d["officer_name"], d["number"], d["outcome"]) for d in body["deliveries"]]
        return found if all(outcome for *_x, outcome in found) else None

    assert eventually(outcomes, timeout=10, what="every duty call's outcome") == [
        ("张主任", silent["number"], "answered"), ("李老师", presses["number"], "acknowledged")]
    # Acknowledged: nobody is rung again (the repeat would come 30 s after each call).
    time.sleep(5)
    assert len(outcomes() or []) == 2
    text = new_log(backend, log_offset)
    assert len(carrier_invites(text, silent["number"])) == 1
    assert len(carrier_invites(text, presses["number"])) == 1
    # The incident's timeline tells the chain's story.
    status, detail = backend.api(f"/api/incidents/{incident['id']}")
    kinds = [event["kind"] for event in detail["timeline"]]
    assert kinds.count("duty.call") == 2 and "duty.escalated" in kinds, kinds
    assert "alert.acknowledged" in kinds, kinds
