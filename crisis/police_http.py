"""POST /api/calls/{call_id}/police: the one-key police alert from the API (the same bridge
as the counsellor's in-call feature code, crisis/police.py). Counsellors, supervisors, duty
officers and admins; who asked, when and the stated reason are audited and on the incident."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from crisis.police import CallNotLive, PoliceBridgeError
from hotline.audit import record_audit
from hotline.db.models import Call, Role
from hotline.web.auth import require_role
from hotline.web.bodies import read_body
from hotline.web.keys import COMPONENTS, SESSIONS
from hotline.web.responses import json_error, json_model

ROLES = (Role.ADMIN, Role.SUPERVISOR, Role.DUTY_OFFICER, Role.COUNSELLOR)


class PoliceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Why the police are needed: on the incident and in the audit log.
    reason: str = Field(min_length=1, max_length=2000)


class PoliceOut(BaseModel):
    call_id: str
    conference: str
    requested_by: str
    requested_at: str
    caller_number: str
    recording: str


async def request_police(request: web.Request) -> web.Response:
    actor = require_role(request, *ROLES)
    body = await read_body(request, PoliceIn)
    call_id = request.match_info["call_id"]
    components = request.app[COMPONENTS]
    async with request.app[SESSIONS]() as session:
        call = await session.get(Call, call_id)
        if call is None:
            return json_error(404, f"no call {call_id}")
        linkedid, site = call.linkedid, call.site_code
    try:
        started = await components.police.request(
            linkedid=linkedid, requested_by=actor.username, reason=body.reason, via="api",
            site=site)
        outcome: dict[str, Any] = {"conference": started.room}
    except CallNotLive as error:
        outcome = {"refused": str(error)}
        status, message = 409, str(error)
    except PoliceBridgeError as error:
        outcome = {"refused": str(error)}
        status, message = 503, str(error)
    async with request.app[SESSIONS]() as session:
        record_audit(session, actor=actor, at=components.clock.now(), action="call.police",
                     target=f"call:{call_id}", after={"reason": body.reason, **outcome})
        await session.commit()
    if "refused" in outcome:
        return json_error(status, message)
    return json_model(PoliceOut(
        call_id=call_id, conference=started.room, requested_by=started.requested_by,
        requested_at=started.requested_at.isoformat(), caller_number=started.caller_number,
        recording=started.recording_path), status=202)


def openapi_paths(json_schema: Callable[[type[BaseModel], str], dict[str, Any]],
                  body: Callable[[type[BaseModel]], dict[str, Any]]) -> dict[str, Any]:
    return {"/api/calls/{call_id}/police": {"post": {
        "summary": "One-key police alert: the caller and the counsellor are moved into a "
                   "recorded conference and 110 is dialled into it (the police hear who is "
                   "calling and the caller's number first); an incident with the packet is "
                   "stored and sent by webhook, and the duty officer is alerted",
        "parameters": [{"name": "call_id", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "requestBody": body(PoliceIn),
        "responses": {
            "202": json_schema(PoliceOut, "the call is being moved; 110 is being dialled"),
            "404": {"description": "no such call"},
            "409": {"description": "the call is not connected to a counsellor now"},
            "422": {"description": "invalid body (a reason is required)"},
            "503": {"description": "Asterisk cannot be reached: dial 110 by hand"},
        },
    }}}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/calls/{call_id}/police", request_police)
