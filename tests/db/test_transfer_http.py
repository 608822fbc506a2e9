"""POST /api/calls/{call_id}/transfer through aiohttp's test server, with the demo site in
SQLite and PostgreSQL and a stand-in for Asterisk's AMI that answers as Asterisk 22 does
(the real thing: tests/integration/test_transfers.py)."""

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

from ami_listener.connection import AmiNotConnected
from hotline.calls import transfer_http
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


def _message(**headers: str) -> Message:
    return Message(headers)


@dataclass
class FakeAmi:
    """Answers CoreShowChannels with `channels`, and transfers with `answer`."""

    channels: list[dict[str, str]] = field(default_factory=list)
    answer: dict[str, str] = field(default_factory=lambda: {
        "Response": "Success", "Message": "Transfer succeeded"})
    down: bool = False
    sent: list[dict[str, Any]] = field(default_factory=list)

    async def action(self, action: Mapping[str, Any], *, as_list: bool | None = None,
                     timeout: float | None = None,  # noqa: ASYNC109  (AmiConnection's API)
                     ) -> Message | list[Message]:
        if self.down:
            raise AmiNotConnected("AMI not connected")
        self.sent.append(dict(action))
        if action["Action"] == "CoreShowChannels":
            return [_message(Response="Success", EventList="start"),
                    *(_message(Event="CoreShowChannel", **c) for c in self.channels),
                    _message(Event="CoreShowChannelsComplete")]
        return _message(**self.answer)

    @property
    def transfers(self) -> list[dict[str, Any]]:
        return [a for a in self.sent if a["Action"] in ("BlindTransfer", "Atxfer")]


def talking(counsellor: str = "c1002", bridge: str = "b-1") -> list[dict[str, str]]:
    return [
        {"Channel": "PJSIP/carrier-00000000", "Uniqueid": LINKEDID, "Linkedid": LINKEDID,
         "BridgeId": bridge},
        {"Channel": f"PJSIP/{counsellor}-00000001", "Uniqueid": "1795952564.1",
         "Linkedid": LINKEDID, "BridgeId": bridge},
    ]


class Api:
    def __init__(self, client: TestClient, people: Any, engine: Any, ami: FakeAmi) -> None:
        self.client, self.people, self.engine, self.ami = client, people, engine, ami

    async def token_for(self, username: str, role: Role, counsellor: str | None = None) -> str:
        user = await self.people.create_user(ROOT, username=username, role=role,
                                             password=PASSWORD)
        if counsellor:
            async with session_factory(self.engine)() as session:
                row = await session.scalar(select(Counsellor).where(
                    Counsellor.sip_username == counsellor))
                row.user_id = user.id
                await session.commit()
        return str((await self.people.issue_token(ROOT, user.id, name="test")).token)

    async def transfer(self, token: str, body: Any, call_id: str = CALL_ID,
                       raw: bytes | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        if raw is not None:
            response = await self.client.post(f"/api/calls/{call_id}/transfer", data=raw,
                                              headers=headers)
        else:
            response = await self.client.post(f"/api/calls/{call_id}/transfer", json=body,
                                              headers=headers)
        return response.status, await response.json()

    async def audit(self) -> list[AuditEntry]:
        async with session_factory(self.engine)() as session:
            return list((await session.scalars(select(AuditEntry).where(
                AuditEntry.action == "call.transfer").order_by(AuditEntry.id))).all())


@pytest.fixture
async def api(engine, tmp_path) -> AsyncIterator[Api]:
    sessions = session_factory(engine)
    async with sessions() as session:
        await seed_demo(session, site_code="default", now=NOW)
        session.add(Call(id=CALL_ID, node="sandbox", linkedid=LINKEDID, site_code="default",
                         started_at=NOW, queue="psych", answered_at=NOW, outcome="answered"))
        session.add(Call(id=ENDED_ID, node="sandbox", linkedid="1.0", site_code="default",
                         started_at=NOW, ended_at=NOW, outcome="answered"))
        await session.commit()
    journal = CallJournal(engine=engine, node="sandbox", linger_seconds=0)
    await journal.start()
    ami = FakeAmi(channels=talking())
    app = web.Application(middlewares=[json_errors, bearer_auth])
    app[SESSIONS] = sessions
    app[SETTINGS] = Settings(var_dir=tmp_path)
    app[COMPONENTS] = SimpleNamespace(ami=ami, journal=journal,  # type: ignore[assignment]
                                      clock=Clock(fixed=NOW))
    people = make_people(engine, ManualClock())
    people_http.add_routes(app, people=people)
    transfer_http.add_routes(app)
    async with TestClient(TestServer(app)) as client:
        yield Api(client, people, engine, ami)
    await journal.close()


BLIND_PSYCH = {"mode": "blind", "to": {"kind": "queue", "target": "psych"}}


async def test_a_supervisor_sends_the_caller_to_a_queue_and_it_is_on_the_record(api):
    token = await api.token_for("zhao", Role.SUPERVISOR)
    status, body = await api.transfer(token, BLIND_PSYCH)
    assert status == 202, body
    assert body == {"call_id": CALL_ID, "mode": "blind",
                    "to": {"kind": "queue", "target": "psych"},
                    "context": "hotline-transfer-default", "exten": "71",
                    "channel": "PJSIP/c1002-00000001", "counsellor": "c1002",
                    "status": "started"}
    assert api.ami.transfers == [{"Action": "BlindTransfer", "Channel": "PJSIP/c1002-00000001",
                                  "Context": "hotline-transfer-default", "Exten": "71"}]
    [entry] = await api.audit()
    assert (entry.actor, entry.target) == ("zhao", f"call:{CALL_ID}")
    assert entry.after["accepted"] is True and entry.after["exten"] == "71"
    await api.client.server.app[COMPONENTS].journal.flush()
    async with session_factory(api.engine)() as session:
        events = (await session.scalars(select(CallEvent).where(
            CallEvent.call_id == CALL_ID))).all()
        calls = (await session.scalars(select(Call))).all()
    assert [(e.kind, e.source) for e in events] == [("transfer_request", "api")]
    assert len(calls) == 2  # the request joined the call's own record


@pytest.mark.parametrize(("to", "exten", "action"), [
    ({"kind": "counsellor", "target": "1001"}, "1001", "Atxfer"),
    ({"kind": "external", "target": "2"}, "92", "Atxfer"),
    ({"kind": "queue", "target": "crisis"}, "73", "Atxfer"),
])
async def test_attended_destinations(api, to, exten, action):
    token = await api.token_for("root", Role.ADMIN)
    status, body = await api.transfer(token, {"mode": "attended", "to": to})
    assert status == 202, body
    assert api.ami.transfers == [{"Action": action, "Channel": "PJSIP/c1002-00000001",
                                  "Context": "hotline-transfer-default", "Exten": exten}]


async def test_a_counsellor_transfers_only_their_own_caller(api):
    mine = await api.token_for("li", Role.COUNSELLOR, counsellor="c1002")
    status, body = await api.transfer(mine, BLIND_PSYCH)
    assert status == 202, body
    other = await api.token_for("zhang", Role.COUNSELLOR, counsellor="c1001")
    status, body = await api.transfer(other, BLIND_PSYCH)
    assert status == 409 and body["error"] == "you are not talking to this caller"
    unlinked = await api.token_for("wang", Role.COUNSELLOR)
    status, body = await api.transfer(unlinked, BLIND_PSYCH)
    assert status == 403 and "not linked" in body["error"]
    duty = await api.token_for("duty", Role.DUTY_OFFICER)
    status, _ = await api.transfer(duty, BLIND_PSYCH)
    assert status == 403
    assert len(api.ami.transfers) == 1


@pytest.mark.parametrize(("to", "detail"), [
    ({"kind": "queue", "target": "nightline"},
     {"queues": ["crisis", "duty", "legal", "psych"]}),
    ({"kind": "counsellor", "target": "4040"}, None),
    ({"kind": "external", "target": "7"}, {"codes": ["1", "2"]}),
])
async def test_unknown_destinations_never_reach_asterisk(api, to, detail):
    token = await api.token_for("root", Role.ADMIN)
    status, body = await api.transfer(token, {"mode": "blind", "to": to})
    assert status == 422, body
    assert body["detail"] == detail
    assert api.ami.transfers == []
    assert await api.audit() == []


async def test_malformed_bodies(api):
    token = await api.token_for("root", Role.ADMIN)
    status, body = await api.transfer(token, None, raw=b"{mode: blind")
    assert status == 400 and "JSON object" in body["error"]
    status, body = await api.transfer(token, {"mode": "sideways", "to": {"kind": "queue"}})
    assert status == 422
    assert {tuple(e["loc"]) for e in body["detail"]} == {("mode",), ("to", "target")}
    status, body = await api.transfer(token, {"mode": "blind", "to": {
        "kind": "external", "target": "13800000000\r\nAction: Originate"}})
    assert status == 422
    assert api.ami.sent == []


async def test_calls_that_cannot_be_transferred(api):
    token = await api.token_for("root", Role.ADMIN)
    status, body = await api.transfer(token, BLIND_PSYCH, call_id="nosuchcall")
    assert status == 404
    status, body = await api.transfer(token, BLIND_PSYCH, call_id=ENDED_ID)
    assert (status, body["error"]) == (409, "the call has ended")
    api.ami.channels = talking(bridge="")
    status, body = await api.transfer(token, BLIND_PSYCH)
    assert status == 409 and "not talking to anyone" in body["error"]
    api.ami.channels = talking()
    status, body = await api.transfer(token, {"mode": "blind", "to": {
        "kind": "counsellor", "target": "1002"}})
    assert status == 422 and "themselves" in body["error"]
    api.ami.down = True
    status, body = await api.transfer(token, BLIND_PSYCH)
    assert status == 503
    assert api.ami.transfers == []


async def test_asterisk_refusing_leaves_the_counsellor_with_the_caller(api):
    token = await api.token_for("root", Role.ADMIN)
    api.ami.answer = {"Response": "Error", "Message": "Blind transfer failed"}
    status, body = await api.transfer(token, BLIND_PSYCH)
    assert status == 409, body
    assert body["detail"] == "Blind transfer failed"
    [entry] = await api.audit()
    assert entry.after["accepted"] is False and entry.after["asterisk"] == "Blind transfer failed"


async def test_openapi_documents_the_transfer():
    from hotline.web.openapi import build_openapi

    document = build_openapi()
    post = document["paths"]["/api/calls/{call_id}/transfer"]["post"]
    assert {"202", "400", "403", "409", "422"} <= set(post["responses"])
    assert "TransferIn" in document["components"]["schemas"]
