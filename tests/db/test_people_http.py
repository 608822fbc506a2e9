"""The people API through aiohttp's test server: 401/403/200/409/422 and the audit trail."""

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from hotline.calls import http as calls_http
from hotline.db.engine import session_factory
from hotline.db.models import AuditEntry, Role
from hotline.people import http as people_http
from hotline.people.services import People
from hotline.web import openapi as openapi_http
from hotline.web.auth import bearer_auth, json_errors
from hotline.web.keys import SESSIONS
from tests.db.people_support import PASSWORD, ROOT, ManualClock, make_people


class Api:
    def __init__(self, client: TestClient, people: People, engine) -> None:
        self.client = client
        self.people = people
        self.engine = engine

    async def call(self, method: str, path: str, token: str | None = None,
                   json: object = None) -> tuple[int, object, web.StreamResponse]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.client.request(method, path, headers=headers, json=json)
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body, response

    async def token_for(self, username: str, role: Role) -> str:
        user = await self.people.create_user(ROOT, username=username, role=role,
                                             password=PASSWORD)
        return (await self.people.issue_token(ROOT, user.id, name="test")).token

    async def audit(self, action: str) -> list[AuditEntry]:
        """The entries of `action` made through the API (not by the test's own setup)."""
        async with session_factory(self.engine)() as session:
            return list((await session.scalars(
                select(AuditEntry).where(AuditEntry.action == action,
                                         AuditEntry.actor != ROOT.username)
                .order_by(AuditEntry.id)
            )).all())


@pytest.fixture
async def api(engine) -> AsyncIterator[Api]:
    app = web.Application(middlewares=[json_errors, bearer_auth])
    app[SESSIONS] = session_factory(engine)
    people = make_people(engine, ManualClock())
    people_http.add_routes(app, people=people)
    calls_http.add_routes(app)
    openapi_http.add_routes(app)
    async with TestClient(TestServer(app)) as client:
        yield Api(client, people, engine)


async def test_no_token_or_a_bad_one_is_401_in_the_json_shape(api):
    admin = await api.token_for("root", Role.ADMIN)
    for token in (None, "nonsense", admin[:-2] + "xx", admin + "x"):
        for method, path in (("GET", "/api/users"), ("GET", "/api/calls"), ("GET", "/api/me"),
                             ("POST", "/api/auth/logout"), ("GET", "/api/nowhere")):
            status, body, response = await api.call(method, path, token)
            assert status == 401, (token, path)
            assert body == {"error": "missing or invalid bearer token", "detail": None}
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    status, body, _ = await api.call("GET", "/api/openapi.json")
    assert status == 200


async def test_sign_in_me_and_sign_out(api):
    await api.people.create_user(ROOT, username="li", role=Role.SUPERVISOR, password=PASSWORD,
                                 display_name="李老师")
    status, body, _ = await api.call("POST", "/api/auth/login",
                                      json={"username": "li", "password": PASSWORD,
                                            "token_name": "browser"})
    assert status == 200, body
    token = body["token"]
    assert token.startswith("h12355_") and body["user"]["username"] == "li"
    assert "password_hash" not in body["user"]
    status, me, _ = await api.call("GET", "/api/me", token)
    assert status == 200 and me["display_name"] == "李老师" and me["role"] == "supervisor"
    assert me["last_login_at"] is not None
    status, _, _ = await api.call("POST", "/api/auth/logout", token)
    assert status == 204
    status, _, _ = await api.call("GET", "/api/me", token)
    assert status == 401
    (logout,) = await api.audit("auth.logout")
    assert logout.actor == "li" and logout.target == f"token:{body['token_id']}"


async def test_failed_sign_ins_answer_alike_then_lock_out(api):
    await api.people.create_user(ROOT, username="li", role=Role.SUPERVISOR, password=PASSWORD)
    answers = []
    for username in ("li", "nobody"):
        status, body, _ = await api.call("POST", "/api/auth/login",
                                         json={"username": username, "password": "wrong!"})
        answers.append((status, body))
    assert answers[0] == answers[1] == (401, {"error": "invalid username or password",
                                              "detail": None})
    for _ in range(4):
        await api.call("POST", "/api/auth/login", json={"username": "li", "password": "nope"})
    status, body, response = await api.call("POST", "/api/auth/login",
                                            json={"username": "li", "password": PASSWORD})
    assert status == 429 and int(response.headers["Retry-After"]) > 0
    assert body["detail"]["retry_after_seconds"] == int(response.headers["Retry-After"])
    assert len(await api.audit("auth.login_failed")) == 6


async def test_invalid_bodies_are_422_and_never_echo_a_password(api):
    admin = await api.token_for("root", Role.ADMIN)
    status, body, _ = await api.call("POST", "/api/auth/login", json={"username": "li"})
    assert status == 422 and body["detail"][0]["loc"] == ["password"]
    cases = [
        {"username": "Bad Name", "role": "admin", "password": "secret-secret-1"},
        {"username": "ok_name", "role": "admin", "password": "short-pw"},
        {"username": "ok_name", "role": "king", "password": "secret-secret-1"},
        {"username": "ok_name", "role": "admin", "password": "secret-secret-1", "extra": 1},
    ]
    for case in cases:
        status, body, response = await api.call("POST", "/api/users", admin, json=case)
        assert status == 422, (case, body)
        assert body["error"] == "invalid body"
        assert case["password"] not in await response.text()
    status, body, _ = await api.call("PATCH", "/api/users/1", admin, json={"username": "x"})
    assert status == 422
    status, body, _ = await api.call("POST", "/api/users/1/tokens", admin,
                                     json={"name": "t", "expires_in_days": 0})
    assert status == 422
    response = await api.client.post("/api/users", data=b"{not json",
                                     headers={"Authorization": f"Bearer {admin}"})
    assert response.status == 400 and (await response.json())["error"]


async def test_roles_decide_who_may_do_what(api):
    supervisor = await api.token_for("sup", Role.SUPERVISOR)
    counsellor = await api.token_for("coun", Role.COUNSELLOR)
    duty = await api.token_for("duty", Role.DUTY_OFFICER)
    admin = await api.token_for("root", Role.ADMIN)
    for token in (admin, supervisor):
        status, body, _ = await api.call("GET", "/api/calls", token)
        assert status == 200 and body["total"] == 0
        status, body, _ = await api.call("GET", "/api/calls/nope", token)
        assert status == 404
    for token in (counsellor, duty):
        for path in ("/api/calls", "/api/calls/nope"):
            status, body, _ = await api.call("GET", path, token)
            assert status == 403
            assert body == {"error": "this needs the role admin or supervisor", "detail": None}
    for token in (supervisor, counsellor, duty):
        for method, path, payload in (
                ("GET", "/api/users", None),
                ("POST", "/api/users", {"username": "x", "role": "admin", "password": "p"}),
                ("PATCH", "/api/users/1", {"role": "admin"}),
                ("GET", "/api/users/1/tokens", None),
                ("POST", "/api/users/1/tokens", {"name": "mine"}),
                ("DELETE", "/api/users/1/tokens/1", None)):
            status, body, _ = await api.call(method, path, token, json=payload)
            assert status == 403, (method, path, body)
            assert body["error"] == "this needs the role admin"
        status, _, _ = await api.call("GET", "/api/me", token)
        assert status == 200


async def test_admins_manage_users_and_the_audit_names_them(api):
    admin = await api.token_for("root", Role.ADMIN)
    root = (await api.people.user_named("root")).id
    status, user, _ = await api.call("POST", "/api/users", admin, json={
        "username": "wang.li", "display_name": "王丽", "role": "counsellor",
        "password": "a long enough secret"})
    assert status == 201, user
    assert user["role"] == "counsellor" and user["active"] and "password" not in user
    status, body, _ = await api.call("POST", "/api/users", admin, json={
        "username": "wang.li", "role": "counsellor", "password": "a long enough secret"})
    assert status == 409 and body["error"] == "this username is taken"
    status, users, _ = await api.call("GET", "/api/users", admin)
    assert [u["username"] for u in users["items"]] == ["root", "wang.li"]

    status, changed, _ = await api.call("PATCH", f"/api/users/{user['id']}", admin,
                                        json={"role": "duty_officer",
                                              "password": "another long secret"})
    assert status == 200 and changed["role"] == "duty_officer"
    status, _, _ = await api.call("PATCH", "/api/users/999", admin, json={"active": False})
    assert status == 404

    (create,) = await api.audit("user.create")
    (update,) = await api.audit("user.update")
    for entry in (create, update):
        assert (entry.actor, entry.actor_user_id) == ("root", root)
        assert entry.target == "user:wang.li"
    assert update.before == {"role": "counsellor"}
    assert update.after == {"role": "duty_officer", "password_changed": True}
    assert "a long enough secret" not in str(create.after)


async def test_the_last_admin_is_protected_409(api):
    admin = await api.token_for("root", Role.ADMIN)
    root = (await api.people.user_named("root")).id
    for change in ({"active": False}, {"role": "supervisor"}):
        status, body, _ = await api.call("PATCH", f"/api/users/{root}", admin, json=change)
        assert status == 409 and "last active admin" in body["error"]
    status, me, _ = await api.call("GET", "/api/me", admin)
    assert me["role"] == "admin" and me["active"]


async def test_tokens_issued_listed_and_revoked(api):
    admin = await api.token_for("root", Role.ADMIN)
    sup = await api.people.create_user(ROOT, username="sup", role=Role.SUPERVISOR,
                                       password=PASSWORD)
    status, issued, _ = await api.call("POST", f"/api/users/{sup.id}/tokens", admin,
                                       json={"name": "wallboard", "expires_in_days": 30})
    assert status == 201 and issued["token"].startswith("h12355_") and issued["expires_at"]
    status, me, _ = await api.call("GET", "/api/me", issued["token"])
    assert status == 200 and me["username"] == "sup"
    status, tokens, _ = await api.call("GET", f"/api/users/{sup.id}/tokens", admin)
    assert status == 200 and [t["name"] for t in tokens["items"]] == ["wallboard"]
    assert "token" not in tokens["items"][0] and "token_hash" not in tokens["items"][0]
    assert tokens["items"][0]["last_used_at"] is not None

    status, revoked, _ = await api.call("DELETE", f"/api/users/{sup.id}/tokens/{issued['id']}",
                                        admin)
    assert status == 200 and revoked["revoked_at"]
    status, _, _ = await api.call("GET", "/api/me", issued["token"])
    assert status == 401
    root = (await api.people.user_named("root")).id
    status, _, _ = await api.call("DELETE", f"/api/users/{root}/tokens/{issued['id']}", admin)
    assert status == 404  # not that user's token
    (issue,) = await api.audit("token.issue")
    (revoke,) = await api.audit("token.revoke")
    assert issue.actor == revoke.actor == "root"
    assert issue.after == {"user": "sup", "name": "wallboard",
                           "expires_at": issued["expires_at"].replace("Z", "+00:00")}


async def test_deactivating_a_user_locks_them_out_at_once(api):
    admin = await api.token_for("root", Role.ADMIN)
    supervisor = await api.token_for("sup", Role.SUPERVISOR)
    sup = await api.people.user_named("sup")
    assert (await api.call("GET", "/api/calls", supervisor))[0] == 200
    status, body, _ = await api.call("PATCH", f"/api/users/{sup.id}", admin,
                                     json={"active": False})
    assert status == 200 and body["active"] is False
    assert (await api.call("GET", "/api/calls", supervisor))[0] == 401
    status, body, _ = await api.call("POST", "/api/auth/login",
                                     json={"username": "sup", "password": PASSWORD})
    assert status == 401
    status, body, _ = await api.call("POST", f"/api/users/{sup.id}/tokens", admin,
                                     json={"name": "again"})
    assert status == 409


async def test_openapi_documents_every_api_route(api):
    status, document, _ = await api.call("GET", "/api/openapi.json")
    assert status == 200
    app = api.client.server.app
    routes = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter", "")
        for route in resource:
            if path.startswith("/api/") and route.method != "HEAD":
                routes.add((path.replace(r":\d{1,9}", ""), route.method.lower()))
    documented = {(path, method) for path, item in document["paths"].items()
                  for method in item}
    assert routes <= documented, routes - documented
    login = document["paths"]["/api/auth/login"]["post"]
    assert login["security"] == [] and "429" in login["responses"]
