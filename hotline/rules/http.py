"""HTTP handlers: /api/sites/{site}/rules…, /api/calendar…, /api/callers/flags…"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from hotline.db.models import FlagKind, Role
from hotline.rules.schemas import (
    CalendarCoverageOut,
    CalendarYearIn,
    CalendarYearOut,
    CheckOut,
    FlagIn,
    FlagList,
    FlagOut,
    ProblemOut,
    PublishIn,
    RollbackIn,
    RulesStateOut,
    RulesVersionList,
    RulesVersionOut,
)
from hotline.rules.services import (
    InvalidInput,
    NotFound,
    RulesRefused,
    VersionView,
)
from hotline.web.auth import require_role
from hotline.web.bodies import BadRequest, answers_errors, read_body
from hotline.web.keys import COMPONENTS
from hotline.web.responses import json_error, json_model

Model = TypeVar("Model", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _version_out(view: VersionView) -> RulesVersionOut:
    return RulesVersionOut(
        site=view.site, version=view.version, status=view.status,
        note=view.note, created_by=view.created_by, created_at=view.created_at,
        published_by=view.published_by, published_at=view.published_at,
        prompt_versions=view.prompt_versions,
        problems=[ProblemOut(node=p.node, reason=p.reason) for p in view.problems],
        document=view.document)


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(400, "the body is not valid JSON", str(error)) from error


def _refused(error: Exception) -> web.StreamResponse:
    assert isinstance(error, RulesRefused)
    return json_error(422, "the rules have problems and were not accepted", {
        "problems": [p.as_dict() for p in error.problems]})


# One place turning use-case errors into the API's error shape.
_errors = answers_errors({RulesRefused: _refused, NotFound: 404, InvalidInput: 422})


def _site(request: web.Request) -> str:
    return request.match_info["site"]


# -- rules --------------------------------------------------------------------------------

@_errors
async def get_rules(request: web.Request) -> web.Response:
    require_role(request, Role.ADMIN, Role.SUPERVISOR)
    components = request.app[COMPONENTS]
    published, draft = await components.rules.state(_site(request))
    serving = components.routing.site(_site(request))
    return json_model(RulesStateOut(
        site=_site(request), published=_version_out(published) if published else None,
        draft=_version_out(draft) if draft else None,
        serving_version=serving.version if serving.code == _site(request) else 0))


@_errors
async def put_draft(request: web.Request) -> web.Response:
    actor = require_role(request, Role.ADMIN)
    document = await _json_body(request)
    if not isinstance(document, dict):
        raise BadRequest(422, "the rules must be a JSON object")
    view = await request.app[COMPONENTS].rules.save_draft(
        _site(request), document, actor=actor, note=request.query.get("note", ""))
    return json_model(_version_out(view))


@_errors
async def put_draft_section(request: web.Request) -> web.Response:
    actor = require_role(request, Role.ADMIN)
    value = await _json_body(request)
    view = await request.app[COMPONENTS].rules.save_draft_section(
        _site(request), request.match_info["section"], value, actor=actor)
    return json_model(_version_out(view))


@_errors
async def delete_draft(request: web.Request) -> web.Response:
    actor = require_role(request, Role.ADMIN)
    await request.app[COMPONENTS].rules.discard_draft(_site(request), actor=actor)
    return web.Response(status=204)


@_errors
async def check_rules(request: web.Request) -> web.Response:
    require_role(request, Role.ADMIN, Role.SUPERVISOR)
    document = await _json_body(request)
    if not isinstance(document, dict):
        raise BadRequest(422, "the rules must be a JSON object")
    problems = await request.app[COMPONENTS].rules.check(_site(request), document)
    return json_model(CheckOut(problems=[ProblemOut(node=p.node, reason=p.reason)
                                         for p in problems]))


@_errors
async def publish(request: web.Request) -> web.Response:
    actor = require_role(request, Role.ADMIN)
    body = await read_body(request, PublishIn) if request.can_read_body else PublishIn()
    view = await request.app[COMPONENTS].rules.publish(
        _site(request), actor=actor, version=body.version, note=body.note)
    return json_model(_version_out(view))


@_errors
async def rollback(request: web.Request) -> web.Response:
    actor = require_role(request, Role.ADMIN)
    body = await read_body(request, RollbackIn)
    view = await request.app[COMPONENTS].rules.rollback(
        _site(request), to_version=body.version, actor=actor, note=body.note)
    return json_model(_version_out(view))


@_errors
async def list_versions(request: web.Request) -> web.Response:
    require_role(request, Role.ADMIN, Role.SUPERVISOR)
    views = await request.app[COMPONENTS].rules.versions(_site(request))
    return json_model(RulesVersionList(items=[_version_out(v) for v in views]))


@_errors
async def get_version(request: web.Request) -> web.Response:
    require_role(request, Role.ADMIN, Role.SUPERVISOR)
    try:
        number = int(request.match_info["version"])
    except ValueError as error:
        raise BadRequest(400, "the version must be a number") from error
    view = await request.app[COMPONENTS].rules.version(_site(request), number)
    return json_model(_version_out(view))


# -- calendar -----------------------------------------------------------------------------

@_errors
async def calendar_coverage(request: web.Request) -> web.Response:
    require_role(request, Role.ADMIN, Role.SUPERVISOR)
    coverage = await request.app[COMPONENTS].rules.calendar_coverage()
    return json_model(CalendarCoverageOut.model_validate(coverage))


def _year(request: web.Request) -> int:
    try:
        year = int(request.match_info["year"])
    except ValueError as error:
        raise BadRequest(400, "the year must be a number") from error
    if not 2000 <= year <= 2100:
        raise BadRequest(422, "the year must be between 2000 and 2100")
    return year


@_errors
async def get_calendar_year(request: web.Request) -> web.Response:
    require_role(request, Role.ADMIN, Role.SUPERVISOR)
    year = await request.app[COMPONENTS].rules.calendar_year(_year(request))
    return json_model(CalendarYearOut.model_validate(year))


@_errors
async def put_calendar_year(request: web.Request) -> web.Response:
    actor = require_role(request, Role.ADMIN)
    year = _year(request)
    body = await read_body(request, CalendarYearIn)
    rules = request.app[COMPONENTS].rules
    await rules.put_calendar_year(year, holidays=[(h.date, h.name) for h in body.holidays],
                                  workdays=body.workdays, source=body.source, actor=actor)
    return json_model(CalendarYearOut.model_validate(await rules.calendar_year(year)))


# -- caller flags ---------------------------------------------------------------------------

@_errors
async def list_flags(request: web.Request) -> web.Response:
    require_role(request, Role.ADMIN, Role.SUPERVISOR)
    flags = await request.app[COMPONENTS].rules.flags(request.query.get("number"))
    return json_model(FlagList(items=[FlagOut.model_validate(f) for f in flags]))


@_errors
async def add_flag(request: web.Request) -> web.Response:
    actor = require_role(request, Role.ADMIN, Role.SUPERVISOR)
    body = await read_body(request, FlagIn)
    flag = await request.app[COMPONENTS].rules.add_flag(
        number=body.number, kind=FlagKind(body.kind), reason=body.reason, actor=actor,
        expires_in_days=body.expires_in_days, call_id=body.call_id)
    return json_model(FlagOut.model_validate(flag), status=201)


@_errors
async def revoke_flag(request: web.Request) -> web.Response:
    actor = require_role(request, Role.ADMIN, Role.SUPERVISOR)
    try:
        flag_id = int(request.match_info["flag_id"])
    except ValueError as error:
        raise BadRequest(400, "the flag id must be a number") from error
    flag = await request.app[COMPONENTS].rules.revoke_flag(flag_id, actor=actor)
    return json_model(FlagOut.model_validate(flag))


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/api/sites/{site}/rules", get_rules)
    router.add_put("/api/sites/{site}/rules/draft", put_draft)
    router.add_delete("/api/sites/{site}/rules/draft", delete_draft)
    router.add_put("/api/sites/{site}/rules/draft/{section}", put_draft_section)
    router.add_post("/api/sites/{site}/rules/check", check_rules)
    router.add_post("/api/sites/{site}/rules/publish", publish)
    router.add_post("/api/sites/{site}/rules/rollback", rollback)
    router.add_get("/api/sites/{site}/rules/versions", list_versions)
    router.add_get("/api/sites/{site}/rules/versions/{version}", get_version)
    router.add_get("/api/calendar", calendar_coverage)
    router.add_get("/api/calendar/{year}", get_calendar_year)
    router.add_put("/api/calendar/{year}", put_calendar_year)
    router.add_get("/api/callers/flags", list_flags)
    router.add_post("/api/callers/flags", add_flag)
    router.add_delete("/api/callers/flags/{flag_id}", revoke_flag)
