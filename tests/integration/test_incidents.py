"""Incidents for real: a sipp caller on the carrier trunk presses 3 (crisis); the route the
IVR wrote opens an incident with the caller's number and raises its crisis alert. With the
clock set 31 minutes forward and nobody having acknowledged, the deadline watchdog
escalates: the incident shows the missed deadline, a `deadline.missed` line on its
timeline and a `deadline_missed` alert."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Backend, eventually, unique_caller_number
from tests.integration.sipp import Caller

pytestmark = pytest.mark.integration

def caller_number() -> str:
    return unique_caller_number()


def incident_of(backend: Backend, number: str) -> dict[str, Any] | None:
    status, page = backend.api("/api/incidents?state=open&limit=500")
    assert status == 200, page
    found = [item for item in page["items"] if item["caller_number"] == number]
    if not found:
        return None
    status, detail = backend.api(f"/api/incidents/{found[0]['id']}")
    assert status == 200, detail
    return dict(detail)


def alerts_of(backend: Backend, incident_id: int) -> list[dict[str, Any]]:
    status, page = backend.api("/api/alerts?state=active")
    assert status == 200, page
    return [alert for alert in page["items"] if alert["incident_id"] == incident_id]


@pytest.fixture
def clock_restored(backend: Backend) -> Iterator[None]:
    yield
    backend.restart()  # the harness's own clock again


def test_the_crisis_option_opens_an_incident_and_a_missed_deadline_escalates(
        backend: Backend, workdir: Path, clock_restored: None) -> None:
    number = caller_number()
    caller = Caller(workdir, caller=number, keys="3", hold_ms=12000).start()
    try:
        incident = eventually(lambda: incident_of(backend, number), timeout=30,
                              what=f"an incident for {number}")
    finally:
        result = caller.wait(timeout=120)
    assert result.ok, result.errors[-2000:]
    assert incident["source"] == "crisis_option" and incident["state"] == "open"
    call = backend.find_call(number, timeout=30)
    assert incident["call_id"] == call["id"] and call["route"] in ("crisis", "oncall")
    assert incident["deadline_state"] == "ok" and incident["intervention_at"] is None
    assert [e["kind"] for e in incident["timeline"]][:2] == ["signal.crisis_option",
                                                            "alert.raised"]
    [alert] = alerts_of(backend, incident["id"])
    assert (alert["kind"], alert["severity"], alert["key"]) == (
        "crisis", "critical", f"incident:{incident['id']}")
    assert number in alert["summary"]

    # 31 minutes later, nobody acknowledged: the watchdog escalates once.
    offset = float(backend.env["HOTLINE_CLOCK__OFFSET_SECONDS"]) + 31 * 60
    backend.restart(HOTLINE_CLOCK__OFFSET_SECONDS=str(offset))

    def escalated() -> dict[str, Any] | None:
        detail = incident_of(backend, number)
        kinds = [e["kind"] for e in (detail or {}).get("timeline", [])]
        return detail if detail and "deadline.missed" in kinds else None

    incident = eventually(escalated, timeout=30, what="the missed deadline on the timeline")
    assert incident["deadline_state"] == "missed" and incident["escalated_at"]
    kinds = [e["kind"] for e in incident["timeline"]]
    # First seen already missed (the backend was down meanwhile): no warning after the fact.
    assert kinds.count("deadline.missed") == 1 and "deadline.near" not in kinds
    missed = [a for a in alerts_of(backend, incident["id"]) if a["kind"] == "deadline_missed"]
    assert [(a["severity"], a["key"]) for a in missed] == [
        ("critical", f"deadline:{incident['id']}")]
    assert number in missed[0]["summary"]
    # The escalation goes through the duty chain: the duty officer's phone is rung for it.
    rung = eventually(lambda: backend.api(f"/api/alerts/{missed[0]['id']}")[1]["deliveries"],
                      timeout=20, what="the duty phone rung for the missed deadline")
    assert rung[0]["number"] and rung[0]["lap"] == 1, rung
    # Handled: closing resolves the incident's alerts (no duty phone keeps ringing for it).
    status, closed = backend.api(f"/api/incidents/{incident['id']}/close", method="POST",
                                 body={"outcome": "测试结束"})
    assert status == 200, closed
    assert alerts_of(backend, incident["id"]) == []
    [entry, *_] = backend.audit("incident.close")
    assert entry["target"] == f"incident:{incident['id']}"
