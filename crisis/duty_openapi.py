"""The duty roster endpoints, and an alert with its duty calls, in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from crisis.duty_schemas import (
    AlertDetailOut,
    DutyRosterOut,
    DutyRosterQuery,
    OfficerIn,
    OfficerList,
    OfficerOut,
    OfficerPatch,
    OnDutyOut,
    RosterEntryIn,
    RosterEntryOut,
)
from hotline.calls.schemas import ErrorOut

OUTPUTS: tuple[type[BaseModel], ...] = (OfficerOut, OfficerList, RosterEntryOut, DutyRosterOut,
                                        OnDutyOut, AlertDetailOut)
INPUTS: tuple[type[BaseModel], ...] = (OfficerIn, OfficerPatch, RosterEntryIn)

Schema = Callable[[type[BaseModel], str], dict[str, Any]]


def duty_paths(json: Schema, body: Callable[[type[BaseModel]], dict[str, Any]]
               ) -> dict[str, Any]:
    def path(name: str) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}

    def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": description,
                "schema": schema}

    unauthorized = {"401": json(ErrorOut, "missing or invalid bearer token")}
    read = {**unauthorized,
            "403": json(ErrorOut, "needs the role admin, supervisor or duty_officer")}
    edit = {**unauthorized, "403": json(ErrorOut, "needs the role admin or supervisor")}
    bad_body = {"400": json(ErrorOut, "the body is not JSON"),
                "422": json(ErrorOut, "invalid body (detail names the field and the reason)")}
    no_officer = {"404": json(ErrorOut, "no such duty officer")}
    site = query("site", {"type": "string"}, "one site's entries and those for every site")
    roster_query = DutyRosterQuery.model_json_schema(by_alias=True)["properties"]
    return {
        "/api/duty/officers": {
            "get": {"summary": "Duty officers (admin, supervisor, duty officer)",
                    "parameters": [query("include_inactive", {"type": "boolean"},
                                         "also the deactivated ones")],
                    "responses": {"200": json(OfficerList, "the officers"), **read}},
            "post": {"summary": "Add a duty officer: a name and the phone the duty alert "
                                "chain rings through the carrier (admin, supervisor; audited)",
                     "requestBody": body(OfficerIn),
                     "responses": {"201": json(OfficerOut, "added"), **bad_body, **edit}},
        },
        "/api/duty/officers/{officer_id}": {
            "patch": {"summary": "Change a duty officer's name, number, user or active flag "
                                 "(admin, supervisor; audited)",
                      "parameters": [path("officer_id")], "requestBody": body(OfficerPatch),
                      "responses": {"200": json(OfficerOut, "changed"), **bad_body, **edit,
                                    **no_officer}},
            "delete": {"summary": "Deactivate a duty officer: the chain no longer rings them; "
                                  "past calls keep their name (admin, supervisor; audited)",
                       "parameters": [path("officer_id")],
                       "responses": {"204": {"description": "deactivated"}, **edit,
                                     **no_officer}},
        },
        "/api/duty/roster": {
            "get": {"summary": "Duty roster entries overlapping [from, to) in escalation order "
                               "(default: from 12 h ago, 7 days; at most 31 days), and the "
                               "gaps nobody covers",
                    "parameters": [query(name, schema, schema.pop("description", ""))
                                   for name, schema in roster_query.items()],
                    "responses": {"200": json(DutyRosterOut, "entries and gaps"),
                                  "400": json(ErrorOut, "invalid query or period"), **read}},
            "post": {"summary": "Put a duty officer on duty from starts_at to ends_at (aware "
                                "ISO times); among entries covering an instant the lowest "
                                "position is rung first (admin, supervisor; audited)",
                     "requestBody": body(RosterEntryIn),
                     "responses": {"201": json(RosterEntryOut, "added"), **bad_body, **edit}},
        },
        "/api/duty/roster/{entry_id}": {"delete": {
            "summary": "Remove a roster entry (admin, supervisor; audited)",
            "parameters": [path("entry_id")],
            "responses": {"204": {"description": "removed"}, **edit,
                          "404": json(ErrorOut, "no such roster entry")}}},
        "/api/duty/now": {"get": {
            "summary": "Who is on duty now, in the order the duty alert chain rings them",
            "parameters": [site],
            "responses": {"200": json(OnDutyOut, "on duty now"), **read}}},
        "/api/alerts/{alert_id}": {"get": {
            "summary": "One alert with the duty phone calls made for it and their outcomes "
                       "(admin, supervisor, duty officer)",
            "parameters": [path("alert_id")],
            "responses": {"200": json(AlertDetailOut, "the alert"), **read,
                          "404": json(ErrorOut, "no such alert")}}},
    }
