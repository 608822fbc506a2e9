"""HTTP handlers: incidents (list, one with its timeline and alerts, notes and location,
closing, opening one by hand) for duty officers, supervisors and admins; and marking a
call high-risk, which counsellors do too. Every change is audited."""

from __future__ import annotations

from aiohttp import web

from crisis.incidents import CallNotFound, IncidentClosed, IncidentNotFound, Incidents
from crisis.schemas import (
    HighRiskIn,
    IncidentCloseIn,
    IncidentCreate,
    IncidentList,
    IncidentOut,
    IncidentPatch,
    IncidentQuery,
)
from hotline.db.models import Role
from hotline.web.auth import require_role
from hotline.web.bodies import answers_errors, path_int, read_body, read_query
from hotline.web.keys import COMPONENTS
from hotline.web.responses import json_model

ROLES = (Role.ADMIN, Role.SUPERVISOR, Role.DUTY_OFFICER)
MARKERS = (Role.ADMIN, Role.SUPERVISOR, Role.DUTY_OFFICER, Role.COUNSELLOR)

_errors = answers_errors({IncidentNotFound: 404, CallNotFound: 404, IncidentClosed: 409})


def _incidents(request: web.Request) -> Incidents:
    return request.app[COMPONENTS].incidents


@_errors
async def list_incidents(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    query = read_query(request, IncidentQuery)
    items, total = await _incidents(request).list(state=query.state, site=query.site,
                                                  limit=query.limit, offset=query.offset)
    return json_model(IncidentList(items=[IncidentOut.model_validate(i) for i in items],
                                   total=total, limit=query.limit, offset=query.offset))


@_errors
async def get_incident(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    incident = await _incidents(request).get(path_int(request, "incident_id"))
    return json_model(IncidentOut.model_validate(incident))


@_errors
async def open_incident(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *ROLES)
    body = await read_body(request, IncidentCreate)
    incident = await _incidents(request).open_by_hand(actor, site=body.site,
                                                      summary=body.summary,
                                                      caller_number=body.caller_number)
    return json_model(IncidentOut.model_validate(incident), status=201)


@_errors
async def patch_incident(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *ROLES)
    body = await read_body(request, IncidentPatch)
    incident = await _incidents(request).update(path_int(request, "incident_id"), actor,
                                                notes=body.notes, location=body.location)
    return json_model(IncidentOut.model_validate(incident))


@_errors
async def close_incident(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *ROLES)
    body = await read_body(request, IncidentCloseIn)
    incident = await _incidents(request).close(path_int(request, "incident_id"), actor,
                                               body.outcome)
    return json_model(IncidentOut.model_validate(incident))


@_errors
async def mark_high_risk(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *MARKERS)
    body = await read_body(request, HighRiskIn)
    incident = await _incidents(request).mark_high_risk(actor, request.match_info["call_id"],
                                                        body.reason)
    return json_model(IncidentOut.model_validate(incident))


def add_routes(app: web.Application) -> None:
    incident = r"/api/incidents/{incident_id:\d{1,9}}"
    app.router.add_get("/api/incidents", list_incidents)
    app.router.add_post("/api/incidents", open_incident)
    app.router.add_get(incident, get_incident)
    app.router.add_patch(incident, patch_incident)
    app.router.add_post(incident + "/close", close_incident)
    app.router.add_post("/api/calls/{call_id}/high-risk", mark_high_risk)
