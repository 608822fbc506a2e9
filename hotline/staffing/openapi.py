"""The staffing endpoints in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from hotline.calls.schemas import ErrorOut
from hotline.staffing.schemas import (
    CounsellorCreate,
    CounsellorCreated,
    CounsellorList,
    CounsellorOut,
    CounsellorPatch,
    LiveOut,
    OverrideIn,
    OverrideList,
    OverrideOut,
    PauseIn,
    PresenceOut,
    RosterOut,
    SiteStaffingOut,
    SiteStaffingPatch,
    TemplateIn,
    TemplateList,
    TemplateOut,
)

OUTPUTS: tuple[type[BaseModel], ...] = (CounsellorList, CounsellorOut, PresenceOut, TemplateOut,
                                        TemplateList, OverrideOut, OverrideList, RosterOut,
                                        LiveOut, SiteStaffingOut, CounsellorCreated)
INPUTS: tuple[type[BaseModel], ...] = (CounsellorCreate, CounsellorPatch, PauseIn, TemplateIn,
                                       OverrideIn, SiteStaffingPatch)

Schema = Callable[[type[BaseModel], str], dict[str, Any]]


def staffing_paths(json: Schema, body: Callable[[type[BaseModel]], dict[str, Any]]
                   ) -> dict[str, Any]:
    def path(name: str, kind: str = "string") -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}

    def query(*names: str) -> list[dict[str, Any]]:
        return [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                for n in names]

    common = {"401": json(ErrorOut, "missing or invalid bearer token"),
              "403": json(ErrorOut, "a role that may not (counsellors act only on themselves)"),
              "404": json(ErrorOut, "no such counsellor, shift or site")}
    invalid = {"422": json(ErrorOut, "invalid body (detail names each field and the reason)")}
    presence = json(PresenceOut, "the counsellor's presence after the change")
    period = query("site", "from", "to")
    return {
        "/api/counsellors": {
            "get": {"summary": "Counsellors (tier, skills, seat, site) with their live state",
                    "parameters": query("site"),
                    "responses": {"200": json(CounsellorList, "counsellors"), **common}},
            "post": {"summary": "A new counsellor (admin; audited). The SIP secret is in the "
                               "answer once; Asterisk learns it at the next render",
                     "requestBody": body(CounsellorCreate),
                     "responses": {"201": json(CounsellorCreated, "created"), **common,
                                   **invalid,
                                   "409": json(ErrorOut, "username or extension taken")}}},
        "/api/counsellors/{counsellor_id}": {
            "get": {"summary": "One counsellor with presence (log in / out, pause) and live "
                               "state",
                    "parameters": [path("counsellor_id", "integer")],
                    "responses": {"200": json(CounsellorOut, "the counsellor"), **common}},
            "patch": {"summary": "Change tier, skills, seat, extension, mobile, sign-in link or "
                                 "deactivate (admin; audited). Tier and skills apply to the "
                                 "queues at once",
                      "parameters": [path("counsellor_id", "integer")],
                      "requestBody": body(CounsellorPatch),
                      "responses": {"200": json(CounsellorOut, "the counsellor"), **common,
                                    **invalid}}},
        "/api/counsellors/{counsellor_id}/{action}": {"post": {
            "summary": "login | logout (until the shift ends) | pause (body: reason break, "
                       "debrief or admin; optional seconds) | unpause (also ends a debrief "
                       "early). Admins and supervisors for anyone, a counsellor for themself",
            "parameters": [path("counsellor_id", "integer"), path("action")],
            "requestBody": {"required": False, **body(PauseIn)},
            "responses": {"200": presence, **common, **invalid}}},
        "/api/me/seat": {"get": {
            "summary": "The signed-in counsellor's own seat",
            "responses": {"200": json(CounsellorOut, "your seat"), **common}}},
        "/api/me/seat/{action}": {"post": {
            "summary": "login | logout | pause | unpause for the signed-in counsellor",
            "parameters": [path("action")],
            "requestBody": {"required": False, **body(PauseIn)},
            "responses": {"200": presence, **common, **invalid}}},
        "/api/shift-templates": {
            "get": {"summary": "Weekly shift templates",
                    "parameters": query("site", "counsellor_id"),
                    "responses": {"200": json(TemplateList, "templates"), **common}},
            "post": {"summary": "Add a weekly shift (site time; may cross midnight)",
                     "requestBody": body(TemplateIn),
                     "responses": {"201": json(TemplateOut, "created"), **common, **invalid}}},
        "/api/shift-templates/{template_id}": {"delete": {
            "summary": "Remove a weekly shift",
            "parameters": [path("template_id", "integer")],
            "responses": {"204": {"description": "removed"}, **common}}},
        "/api/shifts": {
            "get": {"summary": "Dated overrides (work: extra duty; off: time off) in a period",
                    "parameters": period,
                    "responses": {"200": json(OverrideList, "overrides"), **common}},
            "post": {"summary": "Add a dated override", "requestBody": body(OverrideIn),
                     "responses": {"201": json(OverrideOut, "created"), **common, **invalid}}},
        "/api/shifts/{shift_id}": {"delete": {
            "summary": "Remove a dated override", "parameters": [path("shift_id", "integer")],
            "responses": {"204": {"description": "removed"}, **common}}},
        "/api/roster": {"get": {
            "summary": "Who is scheduled when: templates and overrides expanded (≤ 31 days)",
            "parameters": period,
            "responses": {"200": json(RosterOut, "duty windows"), **common}}},
        "/api/sites/{site}/staffing": {
            "get": {"summary": "A site's debrief pause, crisis cap, short-abandon threshold, "
                               "backup line and unstaffed-line alert",
                    "parameters": [path("site")],
                    "responses": {"200": json(SiteStaffingOut, "settings"), **common}},
            "patch": {"summary": "Change them (admin; audited)", "parameters": [path("site")],
                      "requestBody": body(SiteStaffingPatch),
                      "responses": {"200": json(SiteStaffingOut, "settings"), **common,
                                    **invalid}}},
        "/api/live/agents": {"get": {
            "summary": "Each counsellor's live state: offline, available, ringing, on_call, "
                       "wrap_up or paused (with the reason); from Redis",
            "parameters": query("site"),
            "responses": {"200": json(LiveOut, "states"), **common}}},
        "/api/live/queues": {"get": {
            "summary": "Each queue's waiting callers with their wait, members and available",
            "parameters": query("site"),
            "responses": {"200": json(LiveOut, "queues"), **common}}},
    }
