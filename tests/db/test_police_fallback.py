"""Police calls the dialplan made alone (the backend unreachable) become incidents once the
backend reads the recording folder: the packet, the police alert for the duty officer, a
timeline line saying it was recorded afterwards; once per recording, other files ignored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from crisis.incidents import Incidents
from crisis.police_fallback import FallbackPoliceCalls, parse_recording_name
from crisis.police_records import PoliceRecords
from hotline.alerts.services import Alerts, AlertView
from hotline.db.engine import session_factory
from hotline.db.models import Alert, Incident
from routing.deadlines import DeadlinePolicy
from tests.db.people_support import T0, ManualClock


class Sent:
    def __init__(self) -> None:
        self.packets: list[tuple[str, dict[str, Any]]] = []

    def send(self, event_type: str, payload: Any) -> str | None:
        self.packets.append((event_type, dict(payload)))
        return "delivery-1"


class Rung:
    def __init__(self) -> None:
        self.alerts: list[AlertView] = []

    async def notify(self, alert: AlertView) -> None:
        self.alerts.append(alert)


def watcher(engine: AsyncEngine,
            folder: Path) -> tuple[FallbackPoliceCalls, Sent, Rung, Incidents]:
    sessions = session_factory(engine)
    clock = ManualClock(T0)
    rung, sent = Rung(), Sent()
    alerts = Alerts(sessions=sessions, clock=clock, notifiers=[rung])
    incidents = Incidents(sessions=sessions, clock=clock, alerts=alerts,
                          policy=DeadlinePolicy())
    records = PoliceRecords(sessions=sessions, clock=clock, incidents=incidents,
                            alerts=alerts, webhook=sent, default_site="default")
    return FallbackPoliceCalls(sessions=sessions, clock=clock, records=records,
                               timeline=incidents, folder=folder,
                               asterisk_folder="/var/spool/asterisk/monitor/hotline/"
                               ), sent, rung, incidents


def test_the_recording_name_says_whose_call_it_was() -> None:
    found = parse_recording_name("fallback-police-1764500000.42-c1001-13612345678.wav")
    assert found is not None
    assert (found.linkedid, found.endpoint, found.caller_number) == (
        "1764500000.42", "c1001", "13612345678")
    # A withheld number and an unnamed endpoint still name a call.
    assert parse_recording_name("fallback-police-1764500000.42--.wav") is not None
    for other in ("police-1764500000.42.wav", "fallback-police-1764500000.42-c1001.wav",
                  "fallback-police-17645.1-c1001-136;rm -rf.wav", "fallback-police-x-c-1.wav",
                  "fallback-police-1764500000.42-c1001-136.wav.tmp"):
        assert parse_recording_name(other) is None, other


async def test_a_fallback_recording_becomes_one_incident_with_its_packet_and_alert(
        engine: AsyncEngine, tmp_path: Path) -> None:
    calls, sent, rung, incidents = watcher(engine, tmp_path)
    (tmp_path / "fallback-police-1764500000.42-c1001-13612345678.wav").write_bytes(b"RIFF")
    (tmp_path / "police-1764499999.1.wav").write_bytes(b"RIFF")  # the backend's own room
    (tmp_path / "notes.txt").write_text("not a recording")

    [incident_id] = await calls.scan_once()
    assert await calls.scan_once() == []
    # A second process (a restart) finds the incident by its room: still one.
    again, _, _, _ = watcher(engine, tmp_path)
    assert await again.scan_once() == []

    async with session_factory(engine)() as session:
        [incident] = list(await session.scalars(select(Incident)))
        alerts = list(await session.scalars(select(Alert)))
    assert incident.id == incident_id
    assert (incident.source, incident.caller_number, incident.conference) == (
        "police", "13612345678", "police-1764500000.42")
    assert incident.police_requested_by == "c1001"
    assert incident.recording_path == (
        "/var/spool/asterisk/monitor/hotline/fallback-police-1764500000.42-c1001-13612345678.wav")
    assert incident.packet is not None and incident.packet["via"] == "dialplan_fallback"
    assert [(kind, packet["caller_number"]) for kind, packet in sent.packets] == [
        ("incident", "13612345678")]
    assert [a.kind for a in alerts if a.severity == "critical"].count("police") == 1
    assert any(a.kind == "police" for a in rung.alerts)
    view = await incidents.get(incident_id)
    assert "police.fallback" in [event.kind for event in view.timeline or []]


async def test_no_folder_yet_is_nothing_to_do(engine: AsyncEngine, tmp_path: Path) -> None:
    calls, _, _, _ = watcher(engine, tmp_path / "missing")
    assert await calls.scan_once() == []
