"""POST /api/calls/{call_id}/transfer: hand a caller to a queue, a colleague or an outside
line, blind or attended (hotline.calls.transfer_services does the work)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from hotline.calls.schemas import ErrorOut
from hotline.calls.transfer_services import TransferRefused, Transfers
from hotline.calls.transfers import TransferIn, TransferOut
from hotline.db.models import Role
from hotline.web.auth import require_role
from hotline.web.bodies import BadRequest, read_body
from hotline.web.keys import COMPONENTS, SESSIONS, SETTINGS
from hotline.web.responses import json_error, json_model

ROLES = (Role.ADMIN, Role.SUPERVISOR, Role.COUNSELLOR)


async def _body(request: web.Request) -> TransferIn:
    """400 when the body is not JSON; 422 naming each field that does not fit."""
    try:
        return await read_body(request, TransferIn)
    except BadRequest as error:
        if error.status == 400:  # say what a transfer looks like
            raise TransferRefused(400, "the body must be a JSON object: {\"mode\": \"blind\" "
                                       "or \"attended\", \"to\": {\"kind\": \"queue\", "
                                       "\"counsellor\" or \"external\", \"target\": …}}"
                                  ) from error
        raise TransferRefused(error.status, error.error, error.detail) from error


def _transfers(request: web.Request) -> Transfers:
    components = request.app[COMPONENTS]
    settings = request.app[SETTINGS]
    return Transfers(sessions=request.app[SESSIONS], ami=components.ami,
                     journal=components.journal, clock=components.clock,
                     node=settings.asterisk.node_name, default_site=settings.demo.site_code)


async def transfer_call(request: web.Request) -> web.Response:
    actor = require_role(request, *ROLES)
    try:
        body = await _body(request)
        started = await _transfers(request).transfer(actor, request.match_info["call_id"], body)
    except TransferRefused as refused:
        return json_error(refused.status, refused.message, refused.detail)
    return json_model(started, status=202)


def openapi_paths(json_schema: Callable[[type[BaseModel], str], dict[str, Any]],
                  body: Callable[[type[BaseModel]], dict[str, Any]]) -> dict[str, Any]:
    error = {status: json_schema(ErrorOut, text) for status, text in (
        ("400", "the body is not JSON"),
        ("401", "missing or invalid bearer token"),
        ("403", "a role that may not, or a counsellor's sign-in not linked to a counsellor"),
        ("404", "no such call"),
        ("409", "the call cannot be transferred now (ended, nobody talking to the caller, "
                "not the counsellor's own call), or Asterisk refused it: the counsellor is "
                "still with the caller"),
        ("422", "invalid body, or a destination the site does not have (detail lists them)"),
        ("502", "the AMI link dropped before Asterisk answered"),
        ("503", "Asterisk cannot be reached"),
        ("504", "Asterisk did not answer in time"),
    )}
    return {"/api/calls/{call_id}/transfer": {"post": {
        "summary": "Transfer the caller to a queue (by name), a colleague (by extension) or an "
                   "outside line (by its code): blind (at once) or attended (the counsellor "
                   "talks to the destination, then hangs up to hand over). Admin, supervisor, "
                   "or the counsellor in the call. The result is in the call's events "
                   "(transfer, transfer_dial, transfer_result)",
        "parameters": [{"name": "call_id", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "requestBody": body(TransferIn),
        "responses": {"202": json_schema(TransferOut, "Asterisk took the transfer"), **error},
    }}}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/calls/{call_id}/transfer", transfer_call)
