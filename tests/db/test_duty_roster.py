"""The duty roster API through aiohttp's test server, on SQLite and PostgreSQL: officers and
roster entries added, changed and removed by admins and supervisors (audited), read by duty
officers, refused to counsellors; bad numbers and windows refused with the field named; the
roster's gaps; who is on duty now, in escalation order."""

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

from crisis import duty_http
from crisis.duty_calls import DutyCalls
from crisis.roster import DutyRoster
from hotline.alerts.services import Alerts
from hotline.db.engine import session_factory
from hotline.db.models import AuditEntry, Role, Site
from hotline.people import http as people_http
from hotline.web import openapi as openapi_http
from hotline.web.auth import bearer_auth, json_errors
from hotline.web.keys import COMPONENTS, SESSIONS
from routing.duty_chain import ChainPolicy
from tests.db.people_support import ManualClock, make_people, token_per_role

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai


class NoAsterisk:
    connected = False

    async def action(self, action: Any, *, as_list: bool | None = None) -> Any:
        raise AssertionError("the roster API never dials")


@dataclass
class Api:
    client: TestClient
    engine: AsyncEngine
    tokens: dict[Role, str]
    clock: ManualClock

    async def call(self, method: str, path: str, role: Role | None = Role.ADMIN,
                   json: object = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        response = await self.client.request(method, path, headers=headers, json=json)
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body

    async def audit(self, action: str) -> list[AuditEntry]:
        async with session_factory(self.engine)() as session:
            return list((await session.scalars(select(AuditEntry).where(
                AuditEntry.action == action).order_by(AuditEntry.id))).all())


@pytest.fixture
async def api(engine: AsyncEngine) -> AsyncIterator[Api]:
    sessions = session_factory(engine)
    async with sessions() as session:
        session.add(Site(code="default", name="12355"))
        await session.commit()
    clock = ManualClock(NOW)
    roster = DutyRoster(sessions=sessions, clock=clock)
    calls = DutyCalls(sessions=sessions, clock=clock, ami=NoAsterisk(), roster=roster,
                      alerts=Alerts(sessions=sessions, clock=clock), policy=ChainPolicy(),
                      default_site="default")
    app = web.Application(middlewares=[json_errors, bearer_auth])
    app[SESSIONS] = sessions
    app[COMPONENTS] = SimpleNamespace(  # type: ignore[assignment]
        duty_roster=roster, duty_calls=calls, clock=clock)
    people = make_people(engine, ManualClock())
    people_http.add_routes(app, people=people)
    duty_http.add_routes(app)
    openapi_http.add_routes(app)
    tokens = await token_per_role(people)
    async with TestClient(TestServer(app)) as client:
        yield Api(client, engine, tokens, clock)


def at(hours: float) -> str:
    return (NOW + timedelta(hours=hours)).isoformat()


async def officer(api: Api, name: str, number: str) -> int:
    status, body = await api.call("POST", "/api/duty/officers",
                                  json={"name": name, "number": number})
    assert status == 201, body
    return int(body["id"])


async def entry(api: Api, officer_id: int, start: float, end: float, position: int = 0,
                site: str | None = None) -> dict[str, Any]:
    status, body = await api.call("POST", "/api/duty/roster", json={
        "officer_id": officer_id, "starts_at": at(start), "ends_at": at(end),
        "position": position, "site": site})
    assert status == 201, body
    return dict(body)


async def test_officers_are_added_changed_and_deactivated_with_an_audit_trail(api: Api) -> None:
    zhang = await officer(api, "张主任", "13900000001")
    status, body = await api.call("PATCH", f"/api/duty/officers/{zhang}",
                                  json={"number": "+8613900000009"}, role=Role.SUPERVISOR)
    assert status == 200 and body["number"] == "+8613900000009"
    status, listed = await api.call("GET", "/api/duty/officers", role=Role.DUTY_OFFICER)
    assert status == 200 and [o["name"] for o in listed["items"]] == ["张主任"]
    status, _ = await api.call("DELETE", f"/api/duty/officers/{zhang}")
    assert status == 204
    _, listed = await api.call("GET", "/api/duty/officers")
    assert listed["items"] == []
    _, everyone = await api.call("GET", "/api/duty/officers?include_inactive=true")
    assert [(o["name"], o["active"]) for o in everyone["items"]] == [("张主任", False)]
    [created] = await api.audit("duty.officer.create")
    assert created.after == {"id": zhang, "name": "张主任", "number": "13900000001",
                             "user_id": None, "active": True}
    updates = await api.audit("duty.officer.update")
    assert [(u.actor, u.before["number"], u.after["number"], u.after["active"])
            for u in updates] == [("u_supervisor", "13900000001", "+8613900000009", True),
                                  ("u_admin", "+8613900000009", "+8613900000009", False)]
    status, body = await api.call("PATCH", "/api/duty/officers/999", json={"name": "x"})
    assert status == 404 and body["error"] == "no duty officer 999"


@pytest.mark.parametrize("number", ["1390000000\r\nAction: Originate", "139-0000-0001",
                                    "12", "PJSIP/c1001", "+", ""])
async def test_a_number_that_is_not_digits_is_refused(api: Api, number: str) -> None:
    status, body = await api.call("POST", "/api/duty/officers",
                                  json={"name": "张主任", "number": number})
    assert status == 422, body
    assert body["detail"][0]["loc"] == ["number"]
    zhang = await officer(api, "张主任", "13900000001")
    status, body = await api.call("PATCH", f"/api/duty/officers/{zhang}", json={"number": number})
    assert status == 422 and body["detail"][0]["loc"] == ["number"]


async def test_roles_admins_and_supervisors_edit_duty_officers_read_others_nothing(
        api: Api) -> None:
    zhang = await officer(api, "张主任", "13900000001")
    body = {"officer_id": zhang, "starts_at": at(0), "ends_at": at(8)}
    for role in (Role.DUTY_OFFICER, Role.COUNSELLOR):
        status, _ = await api.call("POST", "/api/duty/officers", role=role,
                                   json={"name": "x", "number": "13900000002"})
        assert status == 403
        status, _ = await api.call("POST", "/api/duty/roster", role=role, json=body)
        assert status == 403
        status, _ = await api.call("DELETE", f"/api/duty/officers/{zhang}", role=role)
        assert status == 403
    for path in ("/api/duty/officers", "/api/duty/roster", "/api/duty/now"):
        assert (await api.call("GET", path, role=Role.DUTY_OFFICER))[0] == 200
        assert (await api.call("GET", path, role=Role.COUNSELLOR))[0] == 403
        assert (await api.call("GET", path, role=None))[0] == 401
    assert (await api.call("POST", "/api/duty/roster", role=Role.SUPERVISOR, json=body))[0] == 201


async def test_roster_entries_bad_windows_unknown_officers_and_sites_are_refused(
        api: Api) -> None:
    zhang = await officer(api, "张主任", "13900000001")
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"officer_id": zhang, "starts_at": at(8), "ends_at": at(0)}, 422,
         "a duty window ends after it starts"),
        ({"officer_id": zhang, "starts_at": at(0), "ends_at": at(24 * 400)}, 422,
         "a duty window lasts at most 366 days"),
        ({"officer_id": 999, "starts_at": at(0), "ends_at": at(8)}, 422,
         "no active duty officer 999"),
        ({"officer_id": zhang, "starts_at": at(0), "ends_at": at(8), "site": "nowhere"}, 422,
         "no site 'nowhere'"),
    ]
    for body, status_wanted, error in cases:
        status, answer = await api.call("POST", "/api/duty/roster", json=body)
        assert (status, answer["error"]) == (status_wanted, error)
    # Naive times and unknown fields are refused by the schema, with the field named.
    status, answer = await api.call("POST", "/api/duty/roster", json={
        "officer_id": zhang, "starts_at": "2026-11-30T10:00:00", "ends_at": at(8)})
    assert status == 422 and answer["detail"][0]["loc"] == ["starts_at"]
    status, answer = await api.call("POST", "/api/duty/roster", json={
        "officer_id": zhang, "starts_at": at(0), "ends_at": at(8), "phone": "1"})
    assert status == 422 and answer["detail"][0]["loc"] == ["phone"]
    await api.call("DELETE", f"/api/duty/officers/{zhang}")
    status, answer = await api.call("POST", "/api/duty/roster", json={
        "officer_id": zhang, "starts_at": at(0), "ends_at": at(8)})
    assert (status, answer["error"]) == (422, f"no active duty officer {zhang}")
    assert await api.audit("duty.roster.create") == []


async def test_the_roster_lists_entries_in_escalation_order_with_its_gaps(api: Api) -> None:
    zhang = await officer(api, "张主任", "13900000001")
    li = await officer(api, "李老师", "13900000002")
    day = await entry(api, li, 0, 12, position=1)
    night = await entry(api, zhang, 12, 24, site="default")
    backup = await entry(api, zhang, -2, 6, position=0)
    status, body = await api.call("GET", f"/api/duty/roster?from={at(-4)}&to={at(26)}"
                                  .replace("+", "%2B"), role=Role.DUTY_OFFICER)
    assert status == 200, body
    assert [e["id"] for e in body["items"]] == [backup["id"], night["id"], day["id"]]
    assert body["items"][1]["site"] == "default"
    assert [(g["starts_at"], g["ends_at"]) for g in body["gaps"]] == [
        (at(-4).replace("+00:00", "Z"), at(-2).replace("+00:00", "Z")),
        (at(24).replace("+00:00", "Z"), at(26).replace("+00:00", "Z"))]
    assert "值班表无人值班" in body["gaps"][0]["summary"]
    # Now (10:00): 张主任 (position 0) first, then 李老师.
    status, now = await api.call("GET", "/api/duty/now", role=Role.DUTY_OFFICER)
    assert status == 200 and [e["officer_name"] for e in now["items"]] == ["张主任", "李老师"]
    # Removing an entry: gone from the roster, audited with what it was.
    status, _ = await api.call("DELETE", f"/api/duty/roster/{backup['id']}", role=Role.SUPERVISOR)
    assert status == 204
    _, now = await api.call("GET", "/api/duty/now")
    assert [e["officer_name"] for e in now["items"]] == ["李老师"]
    [deleted] = await api.audit("duty.roster.delete")
    assert deleted.actor == "u_supervisor" and deleted.before["officer_name"] == "张主任"
    assert len(await api.audit("duty.roster.create")) == 3
    assert (await api.call("DELETE", f"/api/duty/roster/{backup['id']}"))[0] == 404
    # A deactivated officer is no longer on duty.
    await api.call("DELETE", f"/api/duty/officers/{li}")
    _, now = await api.call("GET", "/api/duty/now")
    assert now["items"] == []


async def test_the_roster_period_is_checked(api: Api) -> None:
    status, body = await api.call("GET", f"/api/duty/roster?from={at(5)}&to={at(1)}"
                                  .replace("+", "%2B"))
    assert (status, body["error"]) == (400, "`to` must be after `from`")
    status, body = await api.call("GET", f"/api/duty/roster?from={at(0)}&to={at(24 * 40)}"
                                  .replace("+", "%2B"))
    assert (status, body["error"]) == (400, "at most 31 days at a time")
    status, body = await api.call("GET", "/api/duty/roster?from=2026-11-30T10:00:00")
    assert status == 400 and body["error"] == "invalid query"


async def test_the_openapi_document_lists_the_duty_endpoints(api: Api) -> None:
    status, document = await api.call("GET", "/api/openapi.json", role=None)
    assert status == 200
    for path in ("/api/duty/officers", "/api/duty/officers/{officer_id}", "/api/duty/roster",
                 "/api/duty/roster/{entry_id}", "/api/duty/now", "/api/alerts/{alert_id}"):
        assert path in document["paths"], path
    assert {"OfficerIn", "RosterEntryIn", "DutyRosterOut", "AlertDetailOut"} <= set(
        document["components"]["schemas"])
