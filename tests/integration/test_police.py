"""The one-key police alert for real: a sipp caller presses 3 and the sipp counsellor c1001
(the high-risk specialist the crisis queue rings first) answers; the counsellor presses the
feature code. The simulated carrier plays 110 (it answers any number but its busy plan), so
all three parties are sipp endpoints; the conference is checked over AMI."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Backend, eventually, unique_caller_number
from tests.integration.sipp import Caller
from tests.integration.transfer_parties import keyed_softphone

pytestmark = pytest.mark.integration

def caller_number() -> str:
    return unique_caller_number()


def byes_received(messages: str) -> int:
    return sum(1 for block in messages.split("message received")[1:]
               if block.split("\n\n", 1)[-1].lstrip().startswith("BYE sip:"))


def ami_list(backend: Backend, action: dict[str, str], complete: str) -> list[dict[str, str]]:
    """One AMI action with the backend's own AMI user; the events of its list."""
    settings = backend.settings.ami
    with socket.create_connection((settings.host, settings.port), timeout=5) as link:
        reader = link.makefile("rb")
        reader.readline()  # the banner

        def send(fields: dict[str, str]) -> None:
            link.sendall("".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode() + b"\r\n")

        def message() -> dict[str, str]:
            fields: dict[str, str] = {}
            while (line := reader.readline().decode("utf-8", "replace").rstrip("\r\n")):
                key, _, value = line.partition(": ")
                fields[key] = value
            return fields

        send({"Action": "Login", "Username": settings.username, "Secret": settings.secret,
              "Events": "off"})
        assert message().get("Response") == "Success"
        send({**action, "ActionID": "police-test"})
        items: list[dict[str, str]] = []
        while True:
            fields = message()
            if fields.get("Event") == complete or (
                    fields.get("Response") == "Error"):
                return items
            if fields.get("Event"):
                items.append(fields)


def police_key(backend: Backend, after_ms: int = 4000) -> list[tuple[str, int]]:
    """The counsellor's softphone presses the police feature code `after_ms` after
    answering (or after its previous keys)."""
    code = backend.settings.crisis.police_feature_code
    return [(key, after_ms if i == 0 else 300) for i, key in enumerate(code)]


def police_incident(backend: Backend, number: str) -> dict[str, Any] | None:
    status, page = backend.api("/api/incidents?limit=50")
    assert status == 200, page
    for item in page["items"]:
        if item["caller_number"] == number and item["conference"]:
            return dict(backend.api(f"/api/incidents/{item['id']}")[1])
    return None


def recording_file(backend: Backend, room: str) -> Path:
    crisis = backend.settings.crisis
    return backend.settings.asterisk.chroot_dir / crisis.recording_dir.lstrip("/") / f"{room}.wav"


def test_the_counsellors_feature_code_brings_110_into_a_recorded_conference(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    log = backend.carrier_log
    before = log.read_text(errors="replace") if log.exists() else ""
    number = caller_number()
    presses = police_key(backend)
    with keyed_softphone(workdir, user="c1001", password=counsellors["c1001"],
                         presses=presses, wait_ms=90000):
        caller = Caller(workdir, caller=number, keys="3", hold_ms=40000).start()
        incident = eventually(lambda: police_incident(backend, number), timeout=40,
                              what="an incident with the police conference")
        room = incident["conference"]
        assert room.startswith("police-")

        eventually(lambda: "police.answered" in [e["kind"] for e in backend.api(
            f"/api/incidents/{incident['id']}")[1]["timeline"]], timeout=20,
            what="the police leg answered on the timeline")

        seen: list[list[str]] = []

        def three_in_the_room() -> list[str] | None:
            members = ami_list(backend, {"Action": "ConfbridgeList", "Conference": room},
                               "ConfbridgeListComplete")
            channels = sorted(m["Channel"] for m in members)
            seen.append(channels)
            return channels if len(channels) == 3 else None

        try:
            channels = eventually(three_in_the_room, timeout=30,
                                  what="the caller, the counsellor and 110 in the room")
        except AssertionError as error:
            raise AssertionError(f"{error}; the room held {seen[-3:]}") from None
        # The caller (through the carrier trunk), the counsellor, and the 110 leg: a Local
        # channel whose other half is bridged with the carrier channel that dialled 110.
        assert any(c.startswith("PJSIP/carrier-") for c in channels), channels
        assert any(c.startswith("PJSIP/c1001-") for c in channels), channels
        police = [c for c in channels if c.startswith("Local/") and "hotline-police-dial" in c]
        assert len(police) == 1, channels
        far_half = police[0][:-2] + ";2"

        def police_connected() -> bool:
            # After the announcement the police alone heard, their channel is bridged.
            listing = ami_list(backend, {"Action": "CoreShowChannels"},
                               "CoreShowChannelsComplete")
            bridges = {item["Channel"]: item.get("BridgeId", "") for item in listing}
            return bool(bridges.get(far_half)) and any(
                name.startswith("PJSIP/carrier-") and bridge == bridges[far_half]
                for name, bridge in bridges.items())

        eventually(police_connected, timeout=30, what="110 bridged to the room's 110 leg")
        # 110 was dialled through the carrier; the caller's number was never hung up on.
        after = log.read_text(errors="replace")[len(before):]
        assert "INVITE sip:110@" in after
        # The whole conference is recorded, and the file grows while they talk.
        recording = recording_file(backend, room)
        first = eventually(lambda: recording.exists() and recording.stat().st_size > 0 and
                           recording.stat().st_size, timeout=10, what="the recording")
        time.sleep(2)
        assert recording.stat().st_size > first
        incident = police_incident(backend, number)
        assert incident is not None
        packet = incident["packet"]
        assert packet["caller_number"] == number
        assert packet["counsellor"] == "张老师"
        assert packet["via"] == "feature_code"
        assert packet["call_started_at"] and packet["recording"].endswith(f"{room}.wav")
        assert incident["police_requested_by"] == "c1001"
        kinds = [event["kind"] for event in incident["timeline"]]
        assert "signal.police" in kinds and "police.packet" in kinds
        # The duty officer is alerted.
        _status, alerts = backend.api("/api/alerts")
        assert any(a["kind"] == "police" and a["details"].get("incident_id") == incident["id"]
                   for a in alerts["items"]), alerts
        result = caller.wait(timeout=120)
        backend.asterisk(f"confbridge kick {room} all")
    assert result.ok, result.errors[-2000:]
    # The caller's leg was never hung up by the hotline: they hung up themselves.
    assert byes_received(result.messages) == 0
    # The caller left first: the incident stays open and asks for a callback.
    incident = eventually(lambda: (found := police_incident(backend, number)) and
                          found["callback_needed"] and found, timeout=20,
                          what="the callback flag")
    assert incident["state"] == "open"


def timeline(backend: Backend, incident_id: int) -> list[dict[str, Any]]:
    return list(backend.api(f"/api/incidents/{incident_id}")[1]["timeline"])


def room_channels(backend: Backend, room: str) -> list[str]:
    return sorted(m["Channel"] for m in ami_list(
        backend, {"Action": "ConfbridgeList", "Conference": room}, "ConfbridgeListComplete"))


SUPERVISOR = "13990077701"  # the carrier answers it


def test_the_counsellors_leg_drops_the_caller_stays_with_110_and_a_supervisor_is_rung(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    backend.restart(HOTLINE_CRISIS__SUPERVISOR_NUMBER=SUPERVISOR)
    try:
        log = backend.carrier_log
        before = log.read_text(errors="replace") if log.exists() else ""
        number = caller_number()
        presses = police_key(backend)
        # The counsellor's softphone presses the code, then its leg drops 12 s later.
        with keyed_softphone(workdir, user="c1001", password=counsellors["c1001"],
                             presses=presses, talk_ms=12000):
            caller = Caller(workdir, caller=number, keys="3", hold_ms=50000).start()
            incident = eventually(lambda: police_incident(backend, number), timeout=40,
                                  what="an incident with the police conference")
            room = incident["conference"]
            eventually(lambda: "supervisor.called" in [
                e["kind"] for e in timeline(backend, incident["id"])], timeout=40,
                what="the supervisor called in")
            # The caller, 110 and the supervisor: the counsellor's softphone is gone, the
            # caller never left the room.
            members = eventually(lambda: (found := room_channels(backend, room)) and len(
                found) == 3 and not any(c.startswith("PJSIP/c1001-") for c in found) and found,
                timeout=30, what="caller, 110 and supervisor in the room")
            assert any("hotline-police-dial" in c for c in members), members
            assert sum(c.startswith("PJSIP/carrier-") for c in members) == 2, members
            after = log.read_text(errors="replace")[len(before):]
            assert f"INVITE sip:{SUPERVISOR}@" in after
            kinds = [e["kind"] for e in timeline(backend, incident["id"])]
            assert kinds.index("bridge.counsellor_left") < kinds.index("supervisor.called")
            result = caller.wait(timeout=120)
        backend.asterisk(f"confbridge kick {room} all")
        assert result.ok, result.errors[-2000:]
        assert byes_received(result.messages) == 0
    finally:
        backend.restart()


@pytest.fixture
def busy_police(backend: Backend) -> Any:
    """110 busy (the carrier's 1399486 plan), tried twice a second apart: rendered into the
    sandbox's dialplan for this test, the defaults put back after it."""
    overrides = {"HOTLINE_CRISIS__POLICE_NUMBER": "1399486110",
                 "HOTLINE_CRISIS__POLICE_ATTEMPTS": "2",
                 "HOTLINE_CRISIS__POLICE_RETRY_SECONDS": "1"}

    def render(env: dict[str, str]) -> None:
        subprocess.run([sys.executable, "-m", "hotline.cli", "asterisk", "render"],
                       env={**backend.env, **env}, check=True, stdout=subprocess.DEVNULL)

    render(overrides)
    backend.restart(**overrides)
    try:
        yield overrides["HOTLINE_CRISIS__POLICE_NUMBER"]
    finally:
        render({})
        backend.restart()


def test_110_busy_is_retried_and_the_duty_officer_alerted(
        backend: Backend, counsellors: dict[str, str], workdir: Path, busy_police: str) -> None:
    log = backend.carrier_log
    before = log.read_text(errors="replace") if log.exists() else ""
    number = caller_number()
    presses = police_key(backend)
    with keyed_softphone(workdir, user="c1001", password=counsellors["c1001"],
                         presses=presses, wait_ms=90000):
        caller = Caller(workdir, caller=number, keys="3", hold_ms=35000).start()
        incident = eventually(lambda: police_incident(backend, number), timeout=40,
                              what="an incident with the police conference")
        events = eventually(lambda: (found := timeline(backend, incident["id"])) and any(
            e["kind"] == "police.gave_up" for e in found) and found, timeout=60,
            what="110 given up after its attempts")
        kinds = [e["kind"] for e in events]
        assert kinds.count("police.dialing") == 2 and kinds.count("police.busy") == 2, kinds
        assert [e["details"]["state"] for e in events if e["kind"] == "police.busy"] == [
            "BUSY", "BUSY"]
        after = log.read_text(errors="replace")[len(before):]
        assert after.count(f"INVITE sip:{busy_police}@") >= 2
        # The duty officer is alerted about the failing 110 leg (and the duty chain rings).
        _status, alerts = backend.api("/api/alerts")
        trouble = [a for a in alerts["items"] if a["key"] == f"police-trouble:{incident['id']}"]
        assert trouble and trouble[0]["severity"] == "critical", alerts
        # The caller is still with the counsellor in the room meanwhile.
        members = room_channels(backend, incident["conference"])
        assert any(c.startswith("PJSIP/c1001-") for c in members), members
        assert any(c.startswith("PJSIP/carrier-") for c in members), members
        result = caller.wait(timeout=120)
        backend.asterisk(f"confbridge kick {incident['conference']} all")
    assert result.ok, result.errors[-2000:]
    assert byes_received(result.messages) == 0


def bridge_of(listing: list[dict[str, str]], prefix: str) -> str:
    return next((item.get("BridgeId", "") for item in listing
                 if item["Channel"].startswith(prefix) and item.get("BridgeId")), "")


def channels(backend: Backend) -> list[dict[str, str]]:
    return ami_list(backend, {"Action": "CoreShowChannels"}, "CoreShowChannelsComplete")


@contextmanager
def backend_killed_mid_call(backend: Backend, workdir: Path, counsellors: dict[str, str], *,
                            number: str, presses: list[tuple[str, int]], hold_ms: int,
                            **phone: int) -> Iterator[Caller]:
    """A crisis caller talking with c1001, then the backend SIGKILLed before the key is
    pressed: yields the running caller; afterwards the backend is started again and every
    channel left is hung up."""
    try:
        with keyed_softphone(workdir, user="c1001", password=counsellors["c1001"],
                             presses=presses, **phone):
            caller = Caller(workdir, caller=number, keys="3", hold_ms=hold_ms).start()
            eventually(lambda: bridge_of(channels(backend), "PJSIP/c1001-"), timeout=40,
                       what="the counsellor talking with the caller")
            backend.stop(signal.SIGKILL)
            yield caller
    finally:
        if backend.process is None:
            backend.start()
        backend.asterisk("channel request hangup all")


def test_with_the_backend_down_the_key_still_brings_110_into_the_call(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    """The backend killed while the caller talks with the counsellor: the police key dials
    110 into the same call (no backend, no move), the call is recorded, the counsellor's
    leg dropping leaves the caller with the police, and the backend, back, opens the
    incident and alerts the duty officer."""
    log = backend.carrier_log
    before = log.read_text(errors="replace") if log.exists() else ""
    number = caller_number()
    # The key 8 s after answering (the backend is gone by then); the leg drops 35 s later
    # (110 answers after the announcement they alone hear, ~10 s).
    with backend_killed_mid_call(backend, workdir, counsellors, number=number,
                                 presses=police_key(backend, 8000), hold_ms=90000,
                                 talk_ms=35000) as caller:

        def three_way() -> list[dict[str, str]] | None:
            listing = channels(backend)
            bridge = bridge_of(listing, "PJSIP/c1001-")
            members = [i for i in listing if bridge and i.get("BridgeId") == bridge]
            return members if len(members) == 3 else None

        members = eventually(three_way, timeout=30, what="110 joined the call")
        names = sorted(m["Channel"] for m in members)
        assert any(n.startswith("PJSIP/carrier-") for n in names), names
        police = [n for n in names if "@hotline-police-dial" in n]
        assert len(police) == 1 and police[0].endswith(";1"), names
        caller_channel, linkedid = next((m["Channel"], m["Linkedid"]) for m in members
                                        if m["Channel"].startswith("PJSIP/carrier-"))
        far_half = police[0][:-2] + ";2"
        # 110 answered through the carrier, after the announcement for them alone.
        eventually(lambda: bridge_of(channels(backend), far_half), timeout=30,
                   what="110 bridged to the 110 leg")
        assert "INVITE sip:110@" in log.read_text(errors="replace")[len(before):]
        recording = recording_file(backend, f"fallback-police-{linkedid}-c1001-{number}")
        first = eventually(lambda: recording.exists() and recording.stat().st_size > 0 and
                           recording.stat().st_size, timeout=10, what="the recording")
        # MixMonitor writes in large blocks: the file grows within seconds, not at once.
        eventually(lambda: recording.stat().st_size > first, timeout=30,
                   what="the recording growing")

        # The counsellor's leg drops: the caller and the police stay bridged.
        seen: list[list[tuple[str, str]]] = []

        def caller_with_police() -> bool:
            listing = channels(backend)
            seen.append([(i["Channel"], i.get("BridgeId", "")) for i in listing])
            caller_bridge = bridge_of(listing, caller_channel)
            return (not any(i["Channel"].startswith("PJSIP/c1001-") for i in listing)
                    and bridge_of(listing, police[0]) == caller_bridge != "")

        try:
            eventually(caller_with_police, timeout=40,
                       what="the caller still with the police after the counsellor left")
        except AssertionError as error:
            raise AssertionError(f"{error}; channels: {seen[-2:]}") from None
        # The backend back: the incident from the recording, the duty officer alerted.
        backend.start()
        incident = eventually(lambda: police_incident(backend, number), timeout=30,
                              what="the incident opened from the recording")
        assert incident["packet"]["via"] == "dialplan_fallback"
        assert incident["police_requested_by"] == "c1001"
        assert "police.fallback" in [e["kind"] for e in incident["timeline"]]
        _status, alerts = backend.api("/api/alerts")
        assert any(a["kind"] == "police" and
                   a["details"].get("incident_id") == incident["id"]
                   for a in alerts["items"]), alerts
        result = caller.wait(timeout=120)
    assert result.ok, result.errors[-2000:]
    assert byes_received(result.messages) == 0


def test_with_the_backend_down_a_busy_110_is_retried_and_a_second_press_waits(
        backend: Backend, counsellors: dict[str, str], workdir: Path, busy_police: str) -> None:
    """The backend killed, 110 busy: the dialplan's own 110 leg is tried as configured (2
    attempts), the key pressed again meanwhile dials no second leg, and the caller stays
    with the counsellor throughout."""
    log = backend.carrier_log
    before = log.read_text(errors="replace") if log.exists() else ""
    number = caller_number()
    # The key 8 s after answering, and again 1 s later (the first 110 leg still busy/retrying).
    presses = police_key(backend, 8000) + police_key(backend, 1000)
    with backend_killed_mid_call(backend, workdir, counsellors, number=number,
                                 presses=presses, hold_ms=35000, wait_ms=60000) as caller:
        # Both attempts made (2 INVITEs answered busy), then the leg gives up and leaves.
        eventually(lambda: log.read_text(errors="replace")[len(before):].count(
            f"INVITE sip:{busy_police}@") >= 2, timeout=40, what="two 110 attempts")
        eventually(lambda: not any("@hotline-police-dial" in i["Channel"]
                                   for i in channels(backend)), timeout=30,
                   what="the 110 leg given up")
        after = log.read_text(errors="replace")[len(before):]
        assert after.count(f"INVITE sip:{busy_police}@") == 2, "a second leg was dialled"
        # The caller (the call's first channel) is still talking with the counsellor.
        listing = channels(backend)
        counsellor = next(i for i in listing if i["Channel"].startswith("PJSIP/c1001-"))
        with_counsellor = [i for i in listing if counsellor.get("BridgeId")
                           and i.get("BridgeId") == counsellor["BridgeId"]]
        assert [i["Uniqueid"] for i in with_counsellor if i is not counsellor] == [
            counsellor["Linkedid"]], listing
        result = caller.wait(timeout=120)
    assert result.ok, result.errors[-2000:]
    assert byes_received(result.messages) == 0


def test_110_given_up_and_the_counsellor_gone_the_caller_goes_to_a_person(
        backend: Backend, counsellors: dict[str, str], workdir: Path, busy_police: str) -> None:
    """110 busy on both attempts, then the counsellor's leg drops: the caller, alone in the
    room, is moved on to the site's fallback route (the duty queue, then the on-call
    phones); never hung up, never left in an empty room."""
    number = caller_number()
    presses = police_key(backend)
    with keyed_softphone(workdir, user="c1001", password=counsellors["c1001"],
                         presses=presses, talk_ms=22000):
        caller = Caller(workdir, caller=number, keys="3", hold_ms=60000).start()
        incident = eventually(lambda: police_incident(backend, number), timeout=40,
                              what="an incident with the police conference")
        eventually(lambda: "police.gave_up" in [
            e["kind"] for e in timeline(backend, incident["id"])], timeout=60,
            what="110 given up")
        events = eventually(lambda: (found := timeline(backend, incident["id"])) and any(
            e["kind"] == "bridge.caller_alone" for e in found) and found, timeout=40,
            what="the caller alone in the room moved on")
        kinds = [e["kind"] for e in events]
        assert kinds.index("bridge.counsellor_left") < kinds.index("bridge.caller_alone")
        assert "supervisor.called" not in kinds, kinds
        [alone] = [e for e in events if e["kind"] == "bridge.caller_alone"]
        assert alone["details"]["moved"] is True, alone
        # Out of the room, in the fallback route: the duty queue, then the on-call phones.
        linkedid = incident["conference"].removeprefix("police-")

        def caller_route() -> str:
            listing = ami_list(backend, {"Action": "CoreShowChannels"},
                               "CoreShowChannelsComplete")
            return next((f"{i['Context']}:{i['Application']}" for i in listing
                         if i.get("Uniqueid") == linkedid), "gone")

        route = eventually(lambda: (found := caller_route()).startswith(
            ("hotline-fallback:", "hotline-oncall:")) and found, timeout=20,
            what="the caller in the fallback route")
        assert "ConfBridge" not in route
        result = caller.wait(timeout=120)
    assert result.ok, result.errors[-2000:]
    assert byes_received(result.messages) == 0
