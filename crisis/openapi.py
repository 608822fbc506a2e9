"""The incidents endpoints (and marking a call high-risk) in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from crisis.schemas import (
    HighRiskIn,
    IncidentCloseIn,
    IncidentCreate,
    IncidentList,
    IncidentOut,
    IncidentPatch,
    IncidentQuery,
)
from hotline.calls.schemas import ErrorOut

OUTPUTS: tuple[type[BaseModel], ...] = (IncidentList, IncidentOut)
INPUTS: tuple[type[BaseModel], ...] = (IncidentCreate, IncidentPatch, IncidentCloseIn,
                                       HighRiskIn)

Schema = Callable[[type[BaseModel], str], dict[str, Any]]


def incident_paths(json: Schema, body: Callable[[type[BaseModel]], dict[str, Any]]
                   ) -> dict[str, Any]:
    incident_id = {"name": "incident_id", "in": "path", "required": True,
                   "schema": {"type": "integer"}}
    query = [{"name": name, "in": "query", "required": False,
              "description": schema.pop("description", ""), "schema": schema}
             for name, schema in IncidentQuery.model_json_schema()["properties"].items()]
    roles = "admin, supervisor, duty officer"
    common = {"401": json(ErrorOut, "missing or invalid bearer token"),
              "403": json(ErrorOut, "needs the role admin, supervisor or duty_officer")}
    bad_body = {"400": json(ErrorOut, "the body is not JSON"),
                "422": json(ErrorOut, "invalid body (unknown fields are refused; detail "
                                      "names each field and the reason)")}
    missing = {"404": json(ErrorOut, "no such incident")}
    closed = {"409": json(ErrorOut, "the incident is closed")}
    one = json(IncidentOut, "the incident with its timeline and alerts")
    return {
        "/api/incidents": {
            "get": {"summary": f"Incidents, newest first ({roles})",
                    "parameters": query,
                    "responses": {"200": json(IncidentList, "a page of incidents"),
                                  "400": json(ErrorOut, "invalid query (detail names each "
                                                        "parameter)"), **common}},
            "post": {"summary": "Open an incident by hand: a crisis reported on another line "
                                f"({roles}; audited). It raises the crisis alert and gets "
                                "the crisis deadline like any other",
                     "requestBody": body(IncidentCreate),
                     "responses": {"201": one, **bad_body, **common}},
        },
        "/api/incidents/{incident_id}": {
            "get": {"summary": "One incident: its timeline (signals, alerts and who "
                               "acknowledged them, deadlines, notes, the outcome), its "
                               f"alerts and its deadline state ({roles})",
                    "parameters": [incident_id],
                    "responses": {"200": one, **common, **missing}},
            "patch": {"summary": f"Change the notes or the location ({roles}; audited)",
                      "parameters": [incident_id], "requestBody": body(IncidentPatch),
                      "responses": {"200": one, **bad_body, **common, **missing,
                                    **closed}},
        },
        "/api/incidents/{incident_id}/close": {"post": {
            "summary": "Close with the outcome; the incident's alerts are resolved "
                       f"({roles}; audited)",
            "parameters": [incident_id], "requestBody": body(IncidentCloseIn),
            "responses": {"200": one, **bad_body, **common, **missing, **closed}}},
        "/api/calls/{call_id}/high-risk": {"post": {
            "summary": "Mark a call high-risk: opens the call's incident (crisis alert, "
                       "30-minute deadline) or adds to its open one (admin, supervisor, "
                       "duty officer, counsellor; audited)",
            "parameters": [{"name": "call_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "requestBody": body(HighRiskIn),
            "responses": {"200": json(IncidentOut, "the call's incident"), **bad_body,
                          "401": common["401"],
                          "403": json(ErrorOut, "needs the role admin, supervisor, "
                                                "duty_officer or counsellor"),
                          "404": json(ErrorOut, "no such call")}}},
    }
