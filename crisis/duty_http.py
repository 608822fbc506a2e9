"""HTTP handlers: duty officers, the duty roster with its gaps, who is on duty now, and an
alert with the duty phone calls made for it.

Admins and supervisors edit the roster (audited); duty officers read.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from crisis.duty_calls import DutyCalls
from crisis.duty_schemas import (
    AlertDetailOut,
    DeliveryOut,
    DutyRosterOut,
    DutyRosterQuery,
    GapOut,
    OfficerIn,
    OfficerList,
    OfficerOut,
    OfficerPatch,
    OnDutyOut,
    RosterEntryIn,
    RosterEntryOut,
)
from crisis.roster import DutyRoster, EntryView, InvalidInput, NotFound
from hotline.alerts.services import AlertNotFound
from hotline.web.auth import require_role
from hotline.web.bodies import BadRequest, answers_errors, path_int, read_body, read_query
from hotline.web.keys import COMPONENTS
from hotline.web.responses import json_model

READERS = ("admin", "supervisor", "duty_officer")
EDITORS = ("admin", "supervisor")
MAX_SPAN = timedelta(days=31)

_errors = answers_errors({InvalidInput: 422, NotFound: 404, AlertNotFound: 404})


def _roster(request: web.Request) -> DutyRoster:
    return request.app[COMPONENTS].duty_roster


def _calls(request: web.Request) -> DutyCalls:
    return request.app[COMPONENTS].duty_calls


def _entry_out(view: EntryView) -> RosterEntryOut:
    return RosterEntryOut.model_validate(view.as_json())


# -- officers -----------------------------------------------------------------------------

@_errors
async def list_officers(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    everyone = request.query.get("include_inactive") == "true"
    officers = await _roster(request).officers(include_inactive=everyone)
    return json_model(OfficerList(items=[OfficerOut.model_validate(o.as_json())
                                         for o in officers]))


@_errors
async def create_officer(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *EDITORS)
    body = await read_body(request, OfficerIn)
    officer = await _roster(request).add_officer(actor, name=body.name, number=body.number,
                                                 user_id=body.user_id)
    return json_model(OfficerOut.model_validate(officer.as_json()), status=201)


@_errors
async def update_officer(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *EDITORS)
    changes = (await read_body(request, OfficerPatch)).model_dump(exclude_unset=True)
    for required in ("name", "number", "active"):
        if required in changes and changes[required] is None:
            raise BadRequest(422, f"{required} cannot be null")
    officer = await _roster(request).update_officer(actor, path_int(request, "officer_id"),
                                                    changes)
    return json_model(OfficerOut.model_validate(officer.as_json()))


@_errors
async def delete_officer(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *EDITORS)
    await _roster(request).remove_officer(actor, path_int(request, "officer_id"))
    return web.Response(status=204)


# -- the roster ---------------------------------------------------------------------------

@_errors
async def list_roster(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    query = read_query(request, DutyRosterQuery)
    now = request.app[COMPONENTS].clock.now()
    start = query.start or now - timedelta(hours=12)
    end = query.end or start + timedelta(days=7)
    if end <= start:
        raise BadRequest(400, "`to` must be after `from`")
    if end - start > MAX_SPAN:
        raise BadRequest(400, "at most 31 days at a time")
    roster = _roster(request)
    entries = await roster.entries(start, end, site=query.site)
    gaps = roster.gaps(entries, start, end)
    return json_model(DutyRosterOut(
        start=start, end=end, items=[_entry_out(e) for e in entries],
        gaps=[GapOut(starts_at=g.starts_at, ends_at=g.ends_at, summary=g.summary)
              for g in gaps]))


@_errors
async def create_entry(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *EDITORS)
    body = await read_body(request, RosterEntryIn)
    entry = await _roster(request).add_entry(
        actor, officer_id=body.officer_id, starts_at=body.starts_at, ends_at=body.ends_at,
        position=body.position, site=body.site)
    _calls(request).poke()  # an open alert with nobody to ring has someone now
    return json_model(_entry_out(entry), status=201)


@_errors
async def delete_entry(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *EDITORS)
    await _roster(request).delete_entry(actor, path_int(request, "entry_id"))
    return web.Response(status=204)


@_errors
async def on_duty_now(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    site = request.query.get("site")
    entries = await _roster(request).on_duty(site)
    return json_model(OnDutyOut(at=request.app[COMPONENTS].clock.now(),
                                items=[_entry_out(e) for e in entries]))


# -- an alert and its duty calls ----------------------------------------------------------

@_errors
async def alert_detail(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    alert, deliveries = await _calls(request).alert_with_deliveries(
        path_int(request, "alert_id"))
    return json_model(AlertDetailOut(
        **alert.as_json(),
        deliveries=[DeliveryOut.model_validate(d.as_json()) for d in deliveries]))


def add_routes(app: web.Application) -> None:
    officer = r"/api/duty/officers/{officer_id:\d{1,9}}"
    app.router.add_get("/api/duty/officers", list_officers)
    app.router.add_post("/api/duty/officers", create_officer)
    app.router.add_patch(officer, update_officer)
    app.router.add_delete(officer, delete_officer)
    app.router.add_get("/api/duty/roster", list_roster)
    app.router.add_post("/api/duty/roster", create_entry)
    app.router.add_delete(r"/api/duty/roster/{entry_id:\d{1,9}}", delete_entry)
    app.router.add_get("/api/duty/now", on_duty_now)
    app.router.add_get(r"/api/alerts/{alert_id:\d{1,9}}", alert_detail)
