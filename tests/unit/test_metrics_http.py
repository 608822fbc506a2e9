"""GET /metrics: open from this machine, an admin's or supervisor's token from elsewhere;
the raw AGI step samples are for admins only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agi.metrics import AgiMetrics
from hotline.audit import Actor
from hotline.people.services import Authenticated
from hotline.web import metrics as metrics_http
from hotline.web.auth import PEOPLE, Handler, bearer_auth, is_loopback, json_errors

TOKENS = {f"token-{role}": Authenticated(actor=Actor(username=role, role=role, user_id=i),
                                         token_id=i)
          for i, role in enumerate(("admin", "supervisor", "counsellor", "duty_officer"), 1)}


class StubPeople:
    async def authenticate(self, token: str) -> Authenticated | None:
        return TOKENS.get(token)


@web.middleware
async def remote_from_header(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The test client is always on loopback: let a test say where a request comes from."""
    remote = request.headers.get("X-Test-Remote")
    return await handler(request.clone(remote=remote) if remote else request)


@pytest.fixture
async def client() -> AsyncIterator[tuple[TestClient, AgiMetrics]]:
    metrics = AgiMetrics(keep_samples=True)
    timer = metrics.session("ivr", 0.0)
    timer.session_ended()
    app = web.Application(middlewares=[remote_from_header, json_errors, bearer_auth])
    app[PEOPLE] = StubPeople()  # type: ignore[assignment]
    metrics_http.add_routes(app, metrics)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client, metrics


async def get(client: TestClient, path: str, *, remote: str | None = None,
              token: str | None = None, method: str = "GET") -> tuple[int, str]:
    headers = {}
    if remote:
        headers["X-Test-Remote"] = remote
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = await client.request(method, path, headers=headers)
    return response.status, await response.text()


async def test_metrics_from_loopback_need_no_token(client) -> None:
    test_client, _ = client
    for remote in (None, "127.0.0.1", "::1", "::ffff:127.0.0.1"):
        status, body = await get(test_client, "/metrics", remote=remote)
        assert status == 200, remote
        assert 'hotline_agi_step_seconds_count{route="ivr"} 1.0' in body
        assert "hotline_agi_db_queries_total" in body
        assert "hotline_db_statements_total 0.0" in body


async def test_metrics_from_elsewhere_need_an_admin_or_supervisor_token(client) -> None:
    test_client, _ = client
    for remote in ("10.0.0.7", "192.168.1.20", "2001:db8::1"):
        assert (await get(test_client, "/metrics", remote=remote))[0] == 401
        assert (await get(test_client, "/metrics", remote=remote, token="bogus"))[0] == 401
        for role, expected in (("admin", 200), ("supervisor", 200), ("counsellor", 403),
                               ("duty_officer", 403)):
            status, body = await get(test_client, "/metrics", remote=remote,
                                     token=f"token-{role}")
            assert status == expected, (remote, role)
            assert ("hotline_agi_step_seconds" in body) == (expected == 200)


async def test_step_samples_are_for_admins_even_from_loopback(client) -> None:
    test_client, metrics = client
    assert (await get(test_client, "/api/agi/step-samples"))[0] == 401
    status, _ = await get(test_client, "/api/agi/step-samples", token="token-supervisor")
    assert status == 403
    response = await test_client.get("/api/agi/step-samples",
                                     headers={"Authorization": "Bearer token-admin"})
    assert response.status == 200
    document = await response.json()
    assert document["enabled"] is True and document["max"] == 200_000
    assert [sample[:3] for sample in document["samples"]] == [["ivr", 1, "end"]]
    status, _ = await get(test_client, "/api/agi/step-samples", token="token-counsellor",
                          method="DELETE")
    assert status == 403
    status, _ = await get(test_client, "/api/agi/step-samples", token="token-admin",
                          method="DELETE")
    assert status == 204
    assert metrics.samples is not None and len(metrics.samples) == 0


@pytest.mark.parametrize(("remote", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("10.0.0.1", False), ("::ffff:10.0.0.1", False), ("", False), (None, False),
    ("localhost", False),
])
def test_is_loopback(remote: str | None, loopback: bool) -> None:
    assert is_loopback(remote) is loopback
