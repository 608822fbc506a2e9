"""HTTP handlers: counsellors and their presence (log in / out, pause, resume), weekly
shift templates, dated overrides, the expanded roster, and the live state of counsellors
and queues.

Admins and supervisors act on anyone; a counsellor on themselves (`/api/me/seat/...`);
duty officers read.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import redis.asyncio as redis
from aiohttp import web

from hotline.db.models import Shift, ShiftTemplate
from hotline.live import AGENTS, QUEUES
from hotline.staffing.roster import CounsellorInfo
from hotline.staffing.schemas import (
    CounsellorCreate,
    CounsellorCreated,
    CounsellorList,
    CounsellorOut,
    CounsellorPatch,
    DutyWindowOut,
    LiveOut,
    OverrideIn,
    OverrideList,
    OverrideOut,
    PauseIn,
    PresenceOut,
    RosterOut,
    RosterQuery,
    SiteStaffingOut,
    SiteStaffingPatch,
    TemplateIn,
    TemplateList,
    TemplateOut,
)
from hotline.staffing.services import Conflict, Forbidden, InvalidInput, NotFound, Staffing
from hotline.web.auth import actor_of, require_role
from hotline.web.bodies import BadRequest, answers_errors, path_int, read_body, read_query
from hotline.web.keys import COMPONENTS
from hotline.web.responses import json_model

READERS = ("admin", "supervisor", "duty_officer")
MANAGERS = ("admin", "supervisor")
MAX_ROSTER_SPAN = timedelta(days=31)

_errors = answers_errors({InvalidInput: 422, NotFound: 404, Forbidden: 403, Conflict: 409})


def _staffing(request: web.Request) -> Staffing:
    return request.app[COMPONENTS].staffing


def _counsellor_out(request: web.Request, counsellor: CounsellorInfo,
                    presence: PresenceOut | None = None) -> CounsellorOut:
    components = request.app[COMPONENTS]
    now = components.clock.now()
    on_duty = any(window.counsellor_id == counsellor.id and window.covers(now)
                  for window in components.roster.state.windows)
    live = components.live_staffing.agent_document(counsellor)
    return CounsellorOut(id=counsellor.id, site=counsellor.site_code, name=counsellor.name,
                         tier=counsellor.tier, seat=counsellor.seat,
                         skills=sorted(counsellor.skills), sip_username=counsellor.sip_username,
                         extension=counsellor.extension, on_duty=on_duty, presence=presence,
                         live=live)


# -- counsellors and presence -------------------------------------------------------------

@_errors
async def list_counsellors(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    site = request.query.get("site")
    roster = request.app[COMPONENTS].roster
    items = [_counsellor_out(request, c) for c in roster.state.counsellors.values()
             if site is None or c.site_code == site]
    return json_model(CounsellorList(items=items))


@_errors
async def get_counsellor(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    staffing = _staffing(request)
    counsellor_id = path_int(request, "counsellor_id")
    counsellor = staffing.counsellor(counsellor_id)
    presence = await staffing.presence(counsellor_id)
    return json_model(_counsellor_out(request, counsellor,
                                      PresenceOut.model_validate(presence.as_json())))


@_errors
async def create_counsellor(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, "admin")
    body = await read_body(request, CounsellorCreate)
    row, secret = await _staffing(request).create_counsellor(
        actor, **body.model_dump())
    return json_model(CounsellorCreated(id=row.id, sip_username=row.sip_username,
                                        sip_secret=secret), status=201)


@_errors
async def update_counsellor(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, "admin")
    body = await read_body(request, CounsellorPatch)
    changes = body.model_dump(exclude_unset=True)
    for required in ("name", "tier", "seat", "skills", "active"):
        if required in changes and changes[required] is None:
            raise BadRequest(422, f"{required} cannot be null")
    staffing = _staffing(request)
    counsellor_id = path_int(request, "counsellor_id")
    await staffing.update_counsellor(actor, counsellor_id, changes)
    roster = request.app[COMPONENTS].roster
    counsellor = roster.state.counsellors.get(counsellor_id)
    if counsellor is None:  # deactivated: no longer on the roster
        return web.json_response({"id": counsellor_id, "active": False})
    return json_model(_counsellor_out(request, counsellor))


async def _act(request: web.Request, counsellor_id: int, action: str) -> web.StreamResponse:
    staffing = _staffing(request)
    actor = actor_of(request)
    if action == "login":
        view = await staffing.log_in(actor, counsellor_id)
    elif action == "logout":
        view = await staffing.log_out(actor, counsellor_id)
    elif action == "pause":
        body = await read_body(request, PauseIn) if request.body_exists else PauseIn()
        view = await staffing.pause(actor, counsellor_id, body.reason, body.seconds)
    elif action == "unpause":
        view = await staffing.unpause(actor, counsellor_id)
    else:
        raise BadRequest(404, f"unknown action {action!r}",
                         {"allowed": ["login", "logout", "pause", "unpause"]})
    return json_model(PresenceOut.model_validate(view.as_json()))


@_errors
async def counsellor_action(request: web.Request) -> web.StreamResponse:
    require_role(request, *MANAGERS, "counsellor")
    return await _act(request, path_int(request, "counsellor_id"), request.match_info["action"])


def _my_counsellor(request: web.Request) -> CounsellorInfo:
    actor = actor_of(request)
    counsellor = (request.app[COMPONENTS].roster.counsellor_of_user(actor.user_id)
                  if actor.user_id is not None else None)
    if counsellor is None:
        raise BadRequest(404, "your user is not linked to a counsellor")
    return counsellor


@_errors
async def my_seat(request: web.Request) -> web.StreamResponse:
    counsellor = _my_counsellor(request)
    presence = await _staffing(request).presence(counsellor.id)
    return json_model(_counsellor_out(request, counsellor,
                                      PresenceOut.model_validate(presence.as_json())))


@_errors
async def my_seat_action(request: web.Request) -> web.StreamResponse:
    counsellor = _my_counsellor(request)
    return await _act(request, counsellor.id, request.match_info["action"])


# -- shift templates and overrides --------------------------------------------------------

def _template_out(row: ShiftTemplate) -> TemplateOut:
    return TemplateOut(id=row.id, counsellor_id=row.counsellor_id, weekday=row.weekday,
                       start=row.start, minutes=row.minutes, valid_from=row.valid_from,
                       valid_until=row.valid_until)


def _override_out(row: Shift) -> OverrideOut:
    return OverrideOut(id=row.id, counsellor_id=row.counsellor_id, starts_at=row.starts_at,
                       ends_at=row.ends_at, kind=row.kind.value, note=row.note)


@_errors
async def list_templates(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    counsellor = request.query.get("counsellor_id")
    rows = await _staffing(request).templates(
        site=request.query.get("site"),
        counsellor_id=int(counsellor) if counsellor and counsellor.isdigit() else None)
    return json_model(TemplateList(items=[_template_out(row) for row in rows]))


@_errors
async def create_template(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *MANAGERS)
    body = await read_body(request, TemplateIn)
    row = await _staffing(request).add_template(
        actor, counsellor_id=body.counsellor_id, weekday=body.weekday, start=body.start,
        minutes=body.minutes, valid_from=body.valid_from, valid_until=body.valid_until)
    return json_model(_template_out(row), status=201)


@_errors
async def delete_template(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *MANAGERS)
    await _staffing(request).delete_template(actor, path_int(request, "template_id"))
    return web.Response(status=204)


def _period(request: web.Request) -> tuple[Any, Any, str | None]:
    query = read_query(request, RosterQuery)
    now = request.app[COMPONENTS].clock.now()
    start = query.start or now - timedelta(hours=12)
    end = query.end or start + timedelta(days=1)
    if end <= start:
        raise BadRequest(400, "`to` must be after `from`")
    if end - start > MAX_ROSTER_SPAN:
        raise BadRequest(400, "at most 31 days at a time")
    return start, end, query.site


@_errors
async def list_overrides(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    start, end, site = _period(request)
    roster = request.app[COMPONENTS].roster
    ids = None if site is None else [c.id for c in roster.state.counsellors.values()
                                     if c.site_code == site]
    rows = await _staffing(request).overrides(start=start, end=end, counsellor_ids=ids)
    return json_model(OverrideList(items=[_override_out(row) for row in rows]))


@_errors
async def create_override(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *MANAGERS)
    body = await read_body(request, OverrideIn)
    row = await _staffing(request).add_override(
        actor, counsellor_id=body.counsellor_id, starts_at=body.starts_at, ends_at=body.ends_at,
        kind=body.kind, note=body.note)
    return json_model(_override_out(row), status=201)


@_errors
async def delete_override(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *MANAGERS)
    await _staffing(request).delete_override(actor, path_int(request, "shift_id"))
    return web.Response(status=204)


@_errors
async def roster_windows(request: web.Request) -> web.StreamResponse:
    """Who is scheduled when (templates and overrides expanded), for a site's rota view."""
    require_role(request, *READERS)
    start, end, site = _period(request)
    components = request.app[COMPONENTS]
    windows = await components.roster.windows_between(start, end)
    counsellors = components.roster.state.counsellors
    items = [DutyWindowOut(counsellor_id=w.counsellor_id, name=counsellors[w.counsellor_id].name,
                           site=counsellors[w.counsellor_id].site_code,
                           tier=counsellors[w.counsellor_id].tier,
                           starts_at=w.starts_at, ends_at=w.ends_at)
             for w in windows if w.counsellor_id in counsellors
             and (site is None or counsellors[w.counsellor_id].site_code == site)]
    return json_model(RosterOut(start=start, end=end, windows=items))


# -- site settings ------------------------------------------------------------------------

@_errors
async def get_site_staffing(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    settings = await _staffing(request).site_settings(request.match_info["site"])
    return json_model(SiteStaffingOut.model_validate(settings))


@_errors
async def patch_site_staffing(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, "admin")
    body = await read_body(request, SiteStaffingPatch)
    # Only what was sent changes; null clears the crisis cap, the backup line, the callback
    # caller ID and reply hours, and the crisis deadline (back to the default).
    changes = body.model_dump(exclude_unset=True)
    for required in ("debrief_seconds", "short_abandon_seconds", "unstaffed_alert_seconds",
                     "callback_max_attempts", "callback_retry_minutes"):
        if required in changes and changes[required] is None:
            raise BadRequest(422, f"{required} cannot be null")
    settings = await _staffing(request).update_site_settings(
        actor, request.match_info["site"], changes)
    return json_model(SiteStaffingOut.model_validate(settings))


# -- live state ---------------------------------------------------------------------------

async def _live(request: web.Request, view: str) -> LiveOut:
    components = request.app[COMPONENTS]
    site = request.query.get("site")
    try:
        documents = list((await components.live.read(view)).values())
        source = "redis"
    except (redis.RedisError, OSError):
        # Redis down: this node's own view is still worth showing.
        live_staffing = components.live_staffing
        if view == AGENTS:
            documents = [live_staffing.agent_document(c)
                         for c in components.roster.state.counsellors.values()]
        else:
            documents = [live_staffing.queue_document(q) for q in components.roster.state.queues]
        source = "memory"
    if site is not None:
        documents = [d for d in documents if d.get("site") == site]
    documents.sort(key=lambda d: (str(d.get("site")), str(d.get("name") or d.get("queue"))))
    return LiveOut(source=source, items=documents)


@_errors
async def live_agents(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    return json_model(await _live(request, AGENTS))


@_errors
async def live_queues(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    return json_model(await _live(request, QUEUES))


def add_routes(app: web.Application) -> None:
    counsellor = r"/api/counsellors/{counsellor_id:\d{1,9}}"
    app.router.add_get("/api/counsellors", list_counsellors)
    app.router.add_post("/api/counsellors", create_counsellor)
    app.router.add_get(counsellor, get_counsellor)
    app.router.add_patch(counsellor, update_counsellor)
    app.router.add_post(counsellor + r"/{action:[a-z]{1,16}}", counsellor_action)
    app.router.add_get("/api/me/seat", my_seat)
    app.router.add_post(r"/api/me/seat/{action:[a-z]{1,16}}", my_seat_action)
    app.router.add_get("/api/shift-templates", list_templates)
    app.router.add_post("/api/shift-templates", create_template)
    app.router.add_delete(r"/api/shift-templates/{template_id:\d{1,9}}", delete_template)
    app.router.add_get("/api/shifts", list_overrides)
    app.router.add_post("/api/shifts", create_override)
    app.router.add_delete(r"/api/shifts/{shift_id:\d{1,9}}", delete_override)
    app.router.add_get("/api/roster", roster_windows)
    site = r"/api/sites/{site:[A-Za-z0-9_-]{1,32}}/staffing"
    app.router.add_get(site, get_site_staffing)
    app.router.add_patch(site, patch_site_staffing)
    app.router.add_get("/api/live/agents", live_agents)
    app.router.add_get("/api/live/queues", live_queues)
