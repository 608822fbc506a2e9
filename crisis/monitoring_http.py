"""POST /api/calls/{call_id}/monitor and GET /api/monitoring/calls (crisis.monitoring does
the work).

Supervisor role only, not admin: listening in on a caller in crisis is clinical
supervision, and the admin role runs the system (rules, users, prompts). An admin who
must listen gives themselves a supervisor sign-in, which the user audit log shows. Every
monitor request from another role is refused with 403 and audited, as are requests that
fail later (unknown call, nothing to spy on, Asterisk refusing).
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from crisis.monitoring import MonitoredCallList, MonitorIn, Monitoring, MonitorRefused
from hotline.db.models import Role
from hotline.web.auth import actor_of, require_role
from hotline.web.bodies import BadRequest, read_body
from hotline.web.keys import COMPONENTS, SESSIONS, SETTINGS
from hotline.web.responses import json_error, json_model

ROLES = (Role.SUPERVISOR,)
FORBIDDEN = "monitoring needs the role supervisor"
BODY_SHAPE = ('the body must be a JSON object: {"mode": "listen", "whisper" or "barge", '
              '"endpoint": "<your softphone>"} or {"mode": …, "number": "<a phone number>"}')


def monitoring(request: web.Request) -> Monitoring:
    components = request.app[COMPONENTS]
    return Monitoring(sessions=request.app[SESSIONS], ami=components.ami,
                      originate=components.messages.dialer_ami, journal=components.journal,
                      clock=components.clock, node=request.app[SETTINGS].asterisk.node_name)


async def _body_for_the_record(request: web.Request) -> dict[str, str]:
    """What a refused request asked for, if its body makes sense (for the audit entry)."""
    try:
        body = MonitorIn.model_validate(await request.json())
    except (ValueError, ValidationError):  # not JSON, or not a monitor body
        return {}
    return {"mode": body.mode, **body.where}


async def monitor_call(request: web.Request) -> web.Response:
    actor = actor_of(request)
    call_id = request.match_info["call_id"]
    service = monitoring(request)
    if actor.role not in ROLES:
        await service.refused(actor, call_id, MonitorRefused(403, FORBIDDEN),
                              await _body_for_the_record(request))
        return json_error(403, FORBIDDEN)
    try:
        body = await read_body(request, MonitorIn)
    except BadRequest as error:
        if error.status == 400:
            return json_error(400, BODY_SHAPE)
        return json_error(error.status, error.error, error.detail)
    try:
        started = await service.monitor(actor, call_id, body)
    except MonitorRefused as refused:
        return json_error(refused.status, refused.message, refused.detail)
    return json_model(started, status=202)


async def list_calls(request: web.Request) -> web.Response:
    require_role(request, *ROLES)
    try:
        items = await monitoring(request).calls()
    except MonitorRefused as refused:
        return json_error(refused.status, refused.message, refused.detail)
    return json_model(MonitoredCallList(items=items))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/calls/{call_id}/monitor", monitor_call)
    app.router.add_get("/api/monitoring/calls", list_calls)
