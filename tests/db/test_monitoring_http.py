"""POST /api/calls/{call_id}/monitor and GET /api/monitoring/calls through aiohttp's test
server, with the demo site in SQLite and PostgreSQL, a stand-in for the backend's AMI user
(CoreShowChannels as Asterisk 22 lists them) and one for the dialler's (records each
Originate). The real thing: tests/integration/test_monitoring.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from panoramisk.message import Message
from sqlalchemy import select

from crisis import monitoring_http
from hotline.calls.storage import CallJournal
from hotline.clock import Clock
from hotline.config import Settings
from hotline.db.engine import session_factory
from hotline.db.models import AuditEntry, Call, CallEvent, Counsellor, Role, call_id_for
from hotline.demo import seed_demo
from hotline.people import http as people_http
from hotline.web.auth import bearer_auth, json_errors
from hotline.web.keys import COMPONENTS, SESSIONS, SETTINGS
from tests.db.people_support import PASSWORD, ROOT, ManualClock, make_people

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
LINKEDID = "1795952558.0"
CALL_ID = call_id_for("sandbox", LINKEDID)
ENDED_ID = call_id_for("sandbox", "1.0")
WAITING = "1795952600.7"  # a caller still in the queue (no counsellor bridged)
WAITING_ID = call_id_for("sandbox", WAITING)
COUNSELLOR_CHANNEL = "PJSIP/c1002-00000001"


@dataclass
class FakeAmi:
    """Answers CoreShowChannels with `channels` and any other action with `answer`,
    recording what was sent."""

    channels: list[dict[str, str]] = field(default_factory=list)
    answer: dict[str, str] = field(default_factory=lambda: {
        "Response": "Success", "Message": "Originate successfully queued"})
    connected: bool = True
    fail: Exception | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)

    async def action(self, action: Mapping[str, Any], *,
                     as_list: bool | None = None) -> Message | list[Message]:
        if self.fail is not None:
            raise self.fail
        self.sent.append(dict(action))
        if action["Action"] == "CoreShowChannels":
            return [Message({"Response": "Success", "EventList": "start"}),
                    *(Message({"Event": "CoreShowChannel", **c}) for c in self.channels),
                    Message({"Event": "CoreShowChannelsComplete"})]
        return Message(self.answer)


def channel(name: str, uniqueid: str, linkedid: str, bridge: str = "",
            application: str = "AppQueue", data: str = "") -> dict[str, str]:
    return {"Channel": name, "Uniqueid": uniqueid, "Linkedid": linkedid, "BridgeId": bridge,
            "Application": application, "ApplicationData": data}


def talking() -> list[dict[str, str]]:
    return [
        channel("PJSIP/carrier-00000000", LINKEDID, LINKEDID, "b-1", "Queue", "crisis"),
        channel(COUNSELLOR_CHANNEL, "1795952564.1", LINKEDID, "b-1", "AppQueue", "(Outgoing)"),
        channel("PJSIP/carrier-00000005", WAITING, WAITING, "", "Queue", "psych"),
    ]


class Api:
    def __init__(self, client: TestClient, people: Any, engine: Any, ami: FakeAmi,
                 dialer: FakeAmi) -> None:
        self.client, self.people, self.engine = client, people, engine
        self.ami, self.dialer = ami, dialer

    async def token_for(self, username: str, role: Role) -> str:
        user = await self.people.create_user(ROOT, username=username, role=role,
                                             password=PASSWORD)
        return str((await self.people.issue_token(ROOT, user.id, name="test")).token)

    async def monitor(self, token: str, body: Any, call_id: str = CALL_ID,
                      raw: bytes | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        path = f"/api/calls/{call_id}/monitor"
        if raw is not None:
            response = await self.client.post(path, data=raw, headers=headers)
        else:
            response = await self.client.post(path, json=body, headers=headers)
        return response.status, await response.json()

    async def live(self, token: str) -> tuple[int, Any]:
        response = await self.client.get("/api/monitoring/calls",
                                         headers={"Authorization": f"Bearer {token}"})
        return response.status, await response.json()

    @property
    def originates(self) -> list[dict[str, Any]]:
        return [a for a in self.dialer.sent if a["Action"] == "Originate"]

    async def audit(self) -> list[AuditEntry]:
        async with session_factory(self.engine)() as session:
            return list((await session.scalars(select(AuditEntry).where(
                AuditEntry.action == "call.monitor").order_by(AuditEntry.id))).all())


@pytest.fixture
async def api(engine, tmp_path) -> AsyncIterator[Api]:
    sessions = session_factory(engine)
    async with sessions() as session:
        await seed_demo(session, site_code="default", now=NOW)
        session.add(Call(id=CALL_ID, node="sandbox", linkedid=LINKEDID, site_code="default",
                         dialed_number="12355", caller_number="13800000001",
                         caller_name="小明", started_at=NOW, queue="crisis", answered_at=NOW,
                         answered_by="李老师", outcome="answered"))
        session.add(Call(id=ENDED_ID, node="sandbox", linkedid="1.0", site_code="default",
                         started_at=NOW, ended_at=NOW, outcome="answered"))
        session.add(Call(id=WAITING_ID, node="sandbox", linkedid=WAITING, site_code="default",
                         started_at=NOW, queue="psych"))
        await session.commit()
    journal = CallJournal(engine=engine, node="sandbox", linger_seconds=0)
    await journal.start()
    ami, dialer = FakeAmi(channels=talking()), FakeAmi()
    app = web.Application(middlewares=[json_errors, bearer_auth])
    app[SESSIONS] = sessions
    app[SETTINGS] = Settings(var_dir=tmp_path)
    app[COMPONENTS] = SimpleNamespace(  # type: ignore[assignment]
        ami=ami, messages=SimpleNamespace(dialer_ami=dialer), journal=journal,
        clock=Clock(fixed=NOW))
    people = make_people(engine, ManualClock())
    people_http.add_routes(app, people=people)
    monitoring_http.add_routes(app)
    async with TestClient(TestServer(app)) as client:
        yield Api(client, people, engine, ami, dialer)
    await journal.close()


LISTEN = {"mode": "listen", "endpoint": "c1001"}


async def test_a_supervisor_listens_from_their_softphone_and_it_is_on_the_record(api):
    token = await api.token_for("zhao", Role.SUPERVISOR)
    status, body = await api.monitor(token, LISTEN)
    assert status == 202, body
    assert body == {"call_id": CALL_ID, "mode": "listen", "dial": "PJSIP/c1001",
                    "spied_channel": COUNSELLOR_CHANNEL, "counsellor": "c1002",
                    "action_id": body["action_id"], "status": "ringing"}
    [originate] = api.originates
    assert originate == {
        "Action": "Originate", "ActionID": body["action_id"], "Channel": "PJSIP/c1001",
        "Application": "ChanSpy", "Data": f"{COUNSELLOR_CHANNEL},qE",
        "CallerID": f'"监听 {CALL_ID}" <12355>', "Timeout": "30000", "Async": "true",
        "Variable": [f"HOTLINE_MONITOR_CALL={CALL_ID}", "HOTLINE_MONITOR_MODE=listen"]}
    assert body["action_id"].startswith("hotline-monitor-")
    # The main AMI user only listed channels; the dialler's user only originated.
    assert [a["Action"] for a in api.ami.sent] == ["CoreShowChannels"]
    assert [a["Action"] for a in api.dialer.sent] == ["Originate"]
    [entry] = await api.audit()
    assert (entry.actor, entry.target) == ("zhao", f"call:{CALL_ID}")
    assert entry.after == {"mode": "listen", "endpoint": "c1001", "dial": "PJSIP/c1001",
                           "spied_channel": COUNSELLOR_CHANNEL, "counsellor": "c1002",
                           "action_id": body["action_id"], "accepted": True,
                           "asterisk": "Originate successfully queued"}
    await api.client.server.app[COMPONENTS].journal.flush()
    async with session_factory(api.engine)() as session:
        events = (await session.scalars(select(CallEvent).where(
            CallEvent.call_id == CALL_ID))).all()
    assert [(e.kind, e.source, e.data["mode"], e.data["by_user"]) for e in events] == [
        ("monitor", "api", "listen", "zhao")]


@pytest.mark.parametrize(("body", "dial", "data", "label"), [
    ({"mode": "whisper", "endpoint": "c1003"}, "PJSIP/c1003", "qEw", "密语"),
    ({"mode": "barge", "number": "+8613900000000"}, "PJSIP/+8613900000000@carrier", "qEB",
     "强插"),
    ({"mode": "listen", "number": "13900000000"}, "PJSIP/13900000000@carrier", "qE", "监听"),
])
async def test_modes_and_phones(api, body, dial, data, label):
    token = await api.token_for("zhao", Role.SUPERVISOR)
    status, answer = await api.monitor(token, body)
    assert status == 202, answer
    [originate] = api.originates
    assert (originate["Channel"], originate["Data"]) == (dial, f"{COUNSELLOR_CHANNEL},{data}")
    assert originate["CallerID"].startswith(f'"{label} {CALL_ID}"')
    [entry] = await api.audit()
    assert entry.after["dial"] == dial and entry.after["mode"] == body["mode"]


@pytest.mark.parametrize("role", [Role.COUNSELLOR, Role.DUTY_OFFICER, Role.ADMIN])
async def test_only_supervisors_and_refusals_are_audited(api, role):
    token = await api.token_for("someone", role)
    status, body = await api.monitor(token, LISTEN)
    assert (status, body["error"]) == (403, "monitoring needs the role supervisor")
    status, body = await api.live(token)
    assert status == 403
    assert api.dialer.sent == [] and api.ami.sent == []
    [entry] = await api.audit()
    assert (entry.actor, entry.target) == ("someone", f"call:{CALL_ID}")
    assert entry.after == {"mode": "listen", "endpoint": "c1001", "accepted": False,
                           "status": 403, "reason": "monitoring needs the role supervisor"}


async def test_no_token_is_401(api):
    response = await api.client.post(f"/api/calls/{CALL_ID}/monitor", json=LISTEN)
    assert response.status == 401
    assert await api.audit() == []


@pytest.mark.parametrize(("body", "locations"), [
    ({"mode": "listen"}, {()}),  # neither phone
    ({"mode": "listen", "endpoint": "c1001", "number": "13900000000"}, {()}),  # both
    ({"mode": "spy", "endpoint": "c1001"}, {("mode",)}),
    ({"endpoint": "c1001"}, {("mode",)}),
    ({"mode": "listen", "endpoint": "c1001,qB"}, {("endpoint",)}),
    ({"mode": "listen", "endpoint": "c1001\r\nAction: Originate"}, {("endpoint",)}),
    ({"mode": "listen", "number": "139-0000"}, {("number",)}),
    ({"mode": "listen", "number": "110@carrier"}, {("number",)}),
    ({"mode": "listen", "endpoint": "c1001", "extra": 1}, {("extra",)}),
    (["listen"], {()}),
])
async def test_malformed_bodies_never_reach_asterisk(api, body, locations):
    token = await api.token_for("zhao", Role.SUPERVISOR)
    status, answer = await api.monitor(token, body)
    assert status == 422, answer
    assert {tuple(error["loc"]) for error in answer["detail"]} == locations
    assert api.dialer.sent == []


async def test_a_body_that_is_not_json(api):
    token = await api.token_for("zhao", Role.SUPERVISOR)
    status, answer = await api.monitor(token, None, raw=b"{mode: listen")
    assert status == 400 and '"mode": "listen"' in answer["error"]
    assert api.dialer.sent == []


async def test_unknown_and_ended_calls_are_404(api):
    token = await api.token_for("zhao", Role.SUPERVISOR)
    status, body = await api.monitor(token, LISTEN, call_id="nosuchcall")
    assert (status, body["error"]) == (404, "no such call")
    status, body = await api.monitor(token, LISTEN, call_id=ENDED_ID)
    assert (status, body["error"]) == (404, "the call has ended")
    assert api.dialer.sent == []
    audit = await api.audit()
    assert [(e.target, e.after["status"], e.after["accepted"]) for e in audit] == [
        ("call:nosuchcall", 404, False), (f"call:{ENDED_ID}", 404, False)]
    status, body = await api.monitor(token, LISTEN, call_id="x" * 600)
    assert status == 404
    assert (await api.audit())[-1].target == "call:" + "x" * 100


async def test_nothing_to_spy_on_is_409(api):
    token = await api.token_for("zhao", Role.SUPERVISOR)
    # still in the queue: no counsellor is bridged with the caller
    status, body = await api.monitor(token, LISTEN, call_id=WAITING_ID)
    assert status == 409, body
    assert body["error"].startswith("nothing to monitor: the caller is not talking to anyone")
    # the record says live, but Asterisk has no such channel any more
    api.ami.channels = []
    status, body = await api.monitor(token, LISTEN)
    assert status == 409 and "not live on Asterisk" in body["error"], body
    assert api.dialer.sent == []
    assert [e.after["status"] for e in await api.audit()] == [409, 409]


async def test_endpoints_must_be_real_softphones_and_not_the_counsellor(api):
    token = await api.token_for("zhao", Role.SUPERVISOR)
    status, body = await api.monitor(token, {"mode": "listen", "endpoint": "c9999"})
    assert status == 422 and "c9999" in body["error"]
    async with session_factory(api.engine)() as session:
        row = await session.scalar(select(Counsellor).where(Counsellor.sip_username == "c1003"))
        row.active = False
        await session.commit()
    status, body = await api.monitor(token, {"mode": "listen", "endpoint": "c1003"})
    assert status == 422
    status, body = await api.monitor(token, {"mode": "whisper", "endpoint": "c1002"})
    assert (status, body["error"]) == (422, "that endpoint is the counsellor in this call")
    assert api.dialer.sent == []


async def test_asterisk_down_or_refusing(api):
    token = await api.token_for("zhao", Role.SUPERVISOR)
    api.dialer.connected = False
    status, body = await api.monitor(token, LISTEN)
    assert status == 503, body
    api.dialer.connected = True
    api.ami.fail = ConnectionError("AMI not connected")
    status, body = await api.monitor(token, LISTEN)
    assert status == 503, body
    api.ami.fail = None
    api.dialer.answer = {"Response": "Error", "Message": "Originate failed"}
    status, body = await api.monitor(token, LISTEN)
    assert (status, body["detail"]) == (409, "Originate failed")
    api.dialer.fail = TimeoutError()
    status, body = await api.monitor(token, LISTEN)
    assert status == 502 and "may still ring" in body["error"]
    audit = await api.audit()
    assert [e.after["status"] for e in audit] == [503, 503, 409, 502]
    assert all(e.after["accepted"] is False for e in audit)
    assert audit[2].after["dial"] == "PJSIP/c1001"  # what was asked of Asterisk
    assert audit[2].after["detail"] == "Originate failed"


async def test_the_list_of_calls_to_monitor(api):
    token = await api.token_for("zhao", Role.SUPERVISOR)
    api.ami.channels = [*talking(), channel(
        "PJSIP/c1003-00000009", "1795952700.9", "1795952700.9", "", "ChanSpy",
        f"{COUNSELLOR_CHANNEL},qE")]
    status, body = await api.live(token)
    assert status == 200, body
    # the waiting caller and the spying channel are not calls to monitor
    assert body == {"items": [{
        "call_id": CALL_ID, "caller_number": "13800000001", "caller_name": "小明",
        "queue": "crisis", "counsellor": "李老师", "counsellor_endpoint": "c1002",
        "channel": COUNSELLOR_CHANNEL, "since": body["items"][0]["since"],
        "monitored_by": ["PJSIP/c1003-00000009"]}]}
    assert body["items"][0]["since"].startswith("2026-12-01T02:00:00")
    api.ami.fail = ConnectionError("down")
    status, body = await api.live(token)
    assert status == 503


async def test_openapi_documents_monitoring():
    from hotline.web.openapi import build_openapi

    document = build_openapi()
    post = document["paths"]["/api/calls/{call_id}/monitor"]["post"]
    assert {"202", "400", "403", "404", "409", "422", "503"} <= set(post["responses"])
    assert "get" in document["paths"]["/api/monitoring/calls"]
    assert {"MonitorIn", "MonitorOut", "MonitoredCallList"} <= set(
        document["components"]["schemas"])


async def test_whether_the_supervisors_phone_answered_is_an_event_of_the_call(api):
    from crisis.monitoring import MonitorOutcomes

    token = await api.token_for("zhao", Role.SUPERVISOR)
    status, body = await api.monitor(token, LISTEN)
    assert status == 202, body
    journal = api.client.server.app[COMPONENTS].journal
    outcomes = MonitorOutcomes(sessions=session_factory(api.engine), journal=journal,
                               clock=Clock(fixed=NOW))
    subscribed: list[tuple[str, Any]] = []
    outcomes.subscribe(SimpleNamespace(subscribe=lambda *args: subscribed.append(args)))
    assert [name for name, _callback in subscribed] == ["OriginateResponse"]
    await outcomes.on_originate_response(Message({
        "Event": "OriginateResponse", "ActionID": body["action_id"], "Response": "Failure",
        "Channel": "PJSIP/c1001", "Reason": "3"}))
    # others' Originates (callbacks, duty calls) and unknown calls are not ours
    await outcomes.on_originate_response(Message({
        "Event": "OriginateResponse", "ActionID": "hotline-callback-1-1",
        "Response": "Failure", "Reason": "3"}))
    await outcomes.on_originate_response(Message({
        "Event": "OriginateResponse", "ActionID": "hotline-monitor-nosuchcall-1",
        "Response": "Success", "Reason": "4"}))
    await journal.flush()
    async with session_factory(api.engine)() as session:
        events = (await session.scalars(select(CallEvent).where(
            CallEvent.kind == "monitor_result"))).all()
    assert [(e.call_id, e.source, e.data) for e in events] == [(CALL_ID, "ami", {
        "action_id": body["action_id"], "answered": False, "reason": "3",
        "channel": "PJSIP/c1001"})]
