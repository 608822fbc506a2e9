"""The incidents API through aiohttp's test server, on SQLite and PostgreSQL: list and
detail (timeline, alerts, deadline state), notes and location, closing, opening by hand,
marking a call high-risk; roles, bad bodies and queries, 404s, audit entries, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from crisis import http as incidents_http
from crisis.incidents import Incidents
from hotline.alerts import http as alerts_http
from hotline.alerts.services import Alerts
from hotline.calls.storage import CallJournal
from hotline.db.engine import session_factory
from hotline.db.models import AuditEntry, Role
from hotline.people import http as people_http
from hotline.web import openapi as openapi_http
from hotline.web.auth import bearer_auth, json_errors
from hotline.web.keys import COMPONENTS, SESSIONS
from tests.db.people_support import ManualClock, make_people, token_per_role

T0 = datetime(2026, 11, 30, 19, 0, tzinfo=UTC)


@dataclass
class Api:
    client: TestClient
    engine: AsyncEngine
    clock: ManualClock
    incidents: Incidents
    tokens: dict[Role, str]

    async def call(self, method: str, path: str, role: Role | None = Role.DUTY_OFFICER,
                   json: object = None, data: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        if data is not None:
            headers["Content-Type"] = "application/json"
        response = await self.client.request(method, path, headers=headers, json=json,
                                             data=data)
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body

    async def audit(self, action: str) -> list[AuditEntry]:
        async with session_factory(self.engine)() as session:
            return list((await session.scalars(select(AuditEntry).where(
                AuditEntry.action == action).order_by(AuditEntry.id))).all())


@pytest.fixture
async def api(engine: AsyncEngine) -> AsyncIterator[Api]:
    sessions = session_factory(engine)
    clock = ManualClock(T0)
    alerts = Alerts(sessions=sessions, clock=clock)
    incidents = Incidents(sessions=sessions, clock=clock, alerts=alerts)
    app = web.Application(middlewares=[json_errors, bearer_auth])
    app[SESSIONS] = sessions
    app[COMPONENTS] = SimpleNamespace(  # type: ignore[assignment]
        incidents=incidents, alerts=alerts)
    people = make_people(engine, ManualClock())
    people_http.add_routes(app, people=people)
    incidents_http.add_routes(app)
    alerts_http.add_routes(app)
    openapi_http.add_routes(app)
    tokens = await token_per_role(people)
    async with TestClient(TestServer(app)) as client:
        yield Api(client, engine, clock, incidents, tokens)


async def a_crisis_call(api: Api) -> int:
    incident = await api.incidents.signal(
        source="crisis_option", site="default", summary="来电者选择了危机选项",
        linkedid="1764500000.7", call_id="pbx1-1764500000.7", caller_number="13912345678")
    return incident.id


async def test_list_and_detail_with_timeline_alerts_and_deadline(api: Api) -> None:
    incident_id = await a_crisis_call(api)
    status, page = await api.call("GET", "/api/incidents?state=open")
    assert status == 200, page
    assert page["total"] == 1 and (page["limit"], page["offset"]) == (50, 0)
    [item] = page["items"]
    assert (item["id"], item["caller_number"], item["source"]) == (
        incident_id, "13912345678", "crisis_option")
    assert item["timeline"] is None
    api.clock.advance(minutes=25)
    status, detail = await api.call("GET", f"/api/incidents/{incident_id}")
    assert status == 200, detail
    assert detail["deadline_state"] == "near"
    assert detail["deadline_at"].startswith("2026-11-30T19:30:00")
    assert [e["kind"] for e in detail["timeline"]] == ["signal.crisis_option", "alert.raised"]
    [alert] = detail["alerts"]
    assert (alert["kind"], alert["state"]) == ("crisis", "open")
    # Acknowledged through the alerts API: the incident's intervention started.
    status, acked = await api.call("POST", f"/api/alerts/{alert['id']}/ack")
    assert status == 200 and acked["incident_id"] == incident_id
    status, detail = await api.call("GET", f"/api/incidents/{incident_id}")
    assert detail["deadline_state"] == "met" and detail["intervention_at"]
    assert detail["timeline"][-2]["kind"] == "alert.acknowledged"
    assert detail["timeline"][-2]["actor"] == "u_duty_officer"
    status, page = await api.call("GET", "/api/incidents?state=closed&site=default")
    assert status == 200 and page["total"] == 0


async def test_patch_close_and_open_by_hand_are_audited(api: Api) -> None:
    incident_id = await a_crisis_call(api)
    path = f"/api/incidents/{incident_id}"
    status, body = await api.call("PATCH", path, json={"location": "哈尔滨市道里区",
                                                       "notes": "母亲在场"})
    assert status == 200, body
    assert (body["location"], body["notes"]) == ("哈尔滨市道里区", "母亲在场")
    [entry] = await api.audit("incident.update")
    assert entry.actor == "u_duty_officer" and entry.after["location"] == "哈尔滨市道里区"
    status, body = await api.call("POST", path + "/close", Role.SUPERVISOR,
                                  json={"outcome": "已转介当地心理中心"})
    assert status == 200, body
    assert (body["state"], body["closed_by"], body["outcome"]) == (
        "closed", "u_supervisor", "已转介当地心理中心")
    assert {a["state"] for a in body["alerts"]} == {"resolved"}
    [entry] = await api.audit("incident.close")
    assert entry.target == f"incident:{incident_id}"
    status, body = await api.call("POST", path + "/close", json={"outcome": "again"})
    assert status == 409 and "closed" in body["error"]
    status, body = await api.call("PATCH", path, json={"notes": "x"})
    assert status == 409
    status, body = await api.call("POST", "/api/incidents", Role.ADMIN,
                                  json={"site": "default", "caller_number": "13600000000",
                                        "summary": "学校老师来电报告学生有自伤行为"})
    assert status == 201, body
    assert (body["source"], body["caller_number"], body["state"]) == (
        "manual", "13600000000", "open")
    assert [a["kind"] for a in (await api.call("GET", f"/api/incidents/{body['id']}"))[1]
            ["alerts"]] == ["crisis"]
    [entry] = await api.audit("incident.open")
    assert entry.actor == "u_admin" and entry.target == f"incident:{body['id']}"


async def test_marking_a_call_high_risk(api: Api) -> None:
    journal = CallJournal(engine=api.engine, node="pbx1", linger_seconds=0)
    await journal.start()
    call_id = journal.record("1764500005.1", T0, event="route", route="queue",
                             site_code="default", caller_number="13911112222")
    await journal.flush()
    await journal.close()
    status, body = await api.call("POST", f"/api/calls/{call_id}/high-risk", Role.COUNSELLOR,
                                  json={"reason": "来电者说今晚要跳楼"})
    assert status == 200, body
    assert (body["source"], body["call_id"], body["caller_number"]) == (
        "marked_high_risk", call_id, "13911112222")
    [entry] = await api.audit("call.mark_high_risk")
    assert entry.actor == "u_counsellor" and entry.after == {"reason": "来电者说今晚要跳楼"}
    # Marked again by a supervisor: the same incident, one more line on its timeline.
    status, again = await api.call("POST", f"/api/calls/{call_id}/high-risk", Role.SUPERVISOR,
                                   json={"reason": "确认"})
    assert status == 200 and again["id"] == body["id"]
    status, body = await api.call("POST", "/api/calls/pbx1-nosuchcall/high-risk",
                                  Role.COUNSELLOR, json={"reason": "x"})
    assert status == 404 and body["error"] == "no call pbx1-nosuchcall"
    status, body = await api.call("POST", f"/api/calls/{call_id}/high-risk", Role.COUNSELLOR,
                                  json={})
    assert status == 422 and body["detail"][0]["loc"] == ["reason"]


@pytest.mark.parametrize(("role", "method", "path"), [
    (Role.COUNSELLOR, "GET", "/api/incidents"),
    (Role.COUNSELLOR, "GET", "/api/incidents/1"),
    (Role.COUNSELLOR, "PATCH", "/api/incidents/1"),
    (Role.COUNSELLOR, "POST", "/api/incidents/1/close"),
    (Role.COUNSELLOR, "POST", "/api/incidents"),
    (None, "GET", "/api/incidents"),
    (None, "POST", "/api/calls/x/high-risk"),
])
async def test_roles(api: Api, role: Role | None, method: str, path: str) -> None:
    await a_crisis_call(api)
    status, body = await api.call(method, path, role, json={"outcome": "x"})
    assert status == (403 if role else 401), body
    assert body["error"]


@pytest.mark.parametrize(("method", "path", "payload", "status", "error"), [
    ("PATCH", "/api/incidents/{id}", "{not json", 400, "the body must be a JSON object"),
    ("PATCH", "/api/incidents/{id}", {"notes": "x", "colour": "red"}, 422, "invalid body"),
    ("PATCH", "/api/incidents/{id}", {"location": 5}, 422, "invalid body"),
    ("POST", "/api/incidents/{id}/close", {}, 422, "invalid body"),
    ("POST", "/api/incidents/{id}/close", {"outcome": ""}, 422, "invalid body"),
    ("POST", "/api/incidents", {"site": "default"}, 422, "invalid body"),
    ("POST", "/api/incidents", {"site": "bad site!", "summary": "x"}, 422, "invalid body"),
    ("POST", "/api/incidents", {"site": "default", "summary": "x",
                                "caller_number": "call me"}, 422, "invalid body"),
    ("GET", "/api/incidents?state=pending", None, 400, "invalid query"),
    ("GET", "/api/incidents?limit=0", None, 400, "invalid query"),
    ("GET", "/api/incidents?colour=red", None, 400, "invalid query"),
    ("GET", "/api/incidents/999", None, 404, "no incident 999"),
    ("PATCH", "/api/incidents/999", {"notes": "x"}, 404, "no incident 999"),
    ("POST", "/api/incidents/999/close", {"outcome": "x"}, 404, "no incident 999"),
])
async def test_bad_requests(api: Api, method: str, path: str, payload: object, status: int,
                            error: str) -> None:
    incident_id = await a_crisis_call(api)
    path = path.replace("{id}", str(incident_id))
    if isinstance(payload, str):
        got, body = await api.call(method, path, data=payload)
    else:
        got, body = await api.call(method, path, json=payload)
    assert (got, body["error"]) == (status, error), body
    detail = await api.incidents.get(incident_id)
    assert (detail.notes, detail.state) == ("", "open")  # nothing changed


async def test_in_the_openapi_document(api: Api) -> None:
    status, document = await api.call("GET", "/api/openapi.json", None)
    assert status == 200
    paths = document["paths"]
    assert set(paths["/api/incidents"]) == {"get", "post"}
    assert set(paths["/api/incidents/{incident_id}"]) == {"get", "patch"}
    assert "post" in paths["/api/incidents/{incident_id}/close"]
    assert "post" in paths["/api/calls/{call_id}/high-risk"]
    schemas = document["components"]["schemas"]
    assert {"IncidentOut", "IncidentList", "IncidentPatch", "IncidentCreate",
            "IncidentCloseIn", "HighRiskIn", "TimelineEventOut"} <= set(schemas)
    assert {p["name"] for p in paths["/api/incidents"]["get"]["parameters"]} == {
        "state", "site", "limit", "offset"}
    assert set(paths["/api/incidents/{incident_id}"]["patch"]["responses"]) >= {
        "200", "400", "401", "403", "404", "409", "422"}


async def test_a_deadline_missed_shows_in_the_detail(api: Api) -> None:
    incident_id = await a_crisis_call(api)
    api.clock.advance(minutes=31)
    status, detail = await api.call("GET", f"/api/incidents/{incident_id}")
    assert status == 200 and detail["deadline_state"] == "missed"
    assert datetime.fromisoformat(detail["deadline_at"]) == T0 + timedelta(minutes=30)
