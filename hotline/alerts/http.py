"""HTTP handlers: the alerts list and acknowledging an alert (duty officers, supervisors,
admins)."""

from __future__ import annotations

import json

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hotline.alerts.services import AlertNotFound
from hotline.web.auth import require_role
from hotline.web.bodies import answers_errors, path_int, read_query
from hotline.web.keys import COMPONENTS

ROLES = ("admin", "supervisor", "duty_officer")

_errors = answers_errors({AlertNotFound: 404})


class AlertQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: str | None = Field(default="active",
                              pattern="^(active|open|acknowledged|resolved)$")
    limit: int = Field(default=100, ge=1, le=1000)


@_errors
async def list_alerts(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    query = read_query(request, AlertQuery)
    alerts = await request.app[COMPONENTS].alerts.list(state=query.state, limit=query.limit)
    return web.json_response({"items": [a.as_json() for a in alerts]}, dumps=_dumps)


@_errors
async def acknowledge(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *ROLES)
    alert = await request.app[COMPONENTS].alerts.acknowledge(actor,
                                                             path_int(request, "alert_id"))
    return web.json_response(alert.as_json(), dumps=_dumps)


def _dumps(value: object) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/alerts", list_alerts)
    app.router.add_post(r"/api/alerts/{alert_id:\d{1,9}}/ack", acknowledge)
