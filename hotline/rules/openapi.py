"""The rules, calendar and caller-flag endpoints in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from hotline.calls.schemas import ErrorOut
from hotline.rules.schemas import (
    CalendarCoverageOut,
    CalendarYearIn,
    CalendarYearOut,
    CheckOut,
    FlagIn,
    FlagList,
    FlagOut,
    PublishIn,
    RollbackIn,
    RulesStateOut,
    RulesVersionList,
    RulesVersionOut,
)
from hotline.rules.services import SECTIONS
from routing.rules import RuleSet

OUTPUTS: tuple[type[BaseModel], ...] = (RulesStateOut, RulesVersionOut, RulesVersionList,
                                        CheckOut, CalendarCoverageOut, CalendarYearOut,
                                        FlagOut, FlagList)
INPUTS: tuple[type[BaseModel], ...] = (RuleSet, PublishIn, RollbackIn, CalendarYearIn, FlagIn)

Schema = Callable[[type[BaseModel], str], dict[str, Any]]


def rules_paths(json: Schema, body: Callable[[type[BaseModel]], dict[str, Any]]
                ) -> dict[str, Any]:
    def path(name: str, kind: str = "string") -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}

    site = path("site")
    common = {"401": json(ErrorOut, "missing or invalid bearer token"),
              "403": json(ErrorOut, "a role that may not"),
              "404": json(ErrorOut, "no such site, version or flag")}
    refused = json(ErrorOut, "the rules have problems: detail.problems lists each node and "
                             "reason; nothing was changed")
    invalid = json(ErrorOut, "invalid body (detail names each field and the reason)")
    version = json(RulesVersionOut, "the version")
    return {
        "/api/sites/{site}/rules": {"get": {
            "summary": "The site's published rules, its draft with the draft's problems, and "
                       "the version this node routes with (admin, supervisor)",
            "parameters": [site], "responses": {"200": json(RulesStateOut, "rules"), **common}}},
        "/api/sites/{site}/rules/draft": {
            "put": {"summary": "Save the whole rule set as the site's draft (admin). Problems "
                               "are reported with it; malformed documents are refused",
                    "parameters": [site, {"name": "note", "in": "query", "required": False,
                                          "schema": {"type": "string"}}],
                    "requestBody": body(RuleSet),
                    "responses": {"200": version, "400": json(ErrorOut, "not JSON"),
                                  "422": refused, **common}},
            "delete": {"summary": "Discard the draft (admin)", "parameters": [site],
                       "responses": {"204": {"description": "discarded"}, **common}},
        },
        "/api/sites/{site}/rules/draft/{section}": {"put": {
            "summary": f"Replace one section of the draft ({', '.join(SECTIONS)}); the draft "
                       "starts from the published rules (admin)",
            "parameters": [site, path("section")],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}},
            "responses": {"200": version, "422": refused, **common}}},
        "/api/sites/{site}/rules/check": {"post": {
            "summary": "The problems of a rule set, without saving it (admin, supervisor)",
            "parameters": [site], "requestBody": body(RuleSet),
            "responses": {"200": json(CheckOut, "the problems (empty: publishable)"),
                          **common}}},
        "/api/sites/{site}/rules/publish": {"post": {
            "summary": "Publish the draft (or a draft version): on every node for the next "
                       "call, without reloading Asterisk (admin)",
            "parameters": [site], "requestBody": body(PublishIn),
            "responses": {"200": version, "422": refused, **common}}},
        "/api/sites/{site}/rules/rollback": {"post": {
            "summary": "Publish a copy of an earlier version, with its prompt recordings (admin)",
            "parameters": [site], "requestBody": body(RollbackIn),
            "responses": {"200": version, "422": refused, **common}}},
        "/api/sites/{site}/rules/versions": {"get": {
            "summary": "Every version, newest first (admin, supervisor)", "parameters": [site],
            "responses": {"200": json(RulesVersionList, "versions"), **common}}},
        "/api/sites/{site}/rules/versions/{version}": {"get": {
            "summary": "One version (admin, supervisor)",
            "parameters": [site, path("version", "integer")],
            "responses": {"200": version, **common}}},
        "/api/calendar": {"get": {
            "summary": "Which years have official holidays, and the coming days without "
                       "(admin, supervisor)",
            "responses": {"200": json(CalendarCoverageOut, "coverage"), **common}}},
        "/api/calendar/{year}": {
            "get": {"summary": "A year's holidays and make-up workdays (admin, supervisor)",
                    "parameters": [path("year", "integer")],
                    "responses": {"200": json(CalendarYearOut, "the year"), **common}},
            "put": {"summary": "Enter a year's official dates (admin; audited)",
                    "parameters": [path("year", "integer")], "requestBody": body(CalendarYearIn),
                    "responses": {"200": json(CalendarYearOut, "the year"), "422": invalid,
                                  **common}},
        },
        "/api/callers/flags": {
            "get": {"summary": "Caller flags, newest first; ?number= in any form "
                               "(admin, supervisor)",
                    "responses": {"200": json(FlagList, "flags"), **common}},
            "post": {"summary": "Flag a caller number high_risk or abusive (admin, supervisor; "
                                "audited)", "requestBody": body(FlagIn),
                     "responses": {"201": json(FlagOut, "the flag"), "422": invalid, **common}},
        },
        "/api/callers/flags/{flag_id}": {"delete": {
            "summary": "Revoke a flag (admin, supervisor; audited)",
            "parameters": [path("flag_id", "integer")],
            "responses": {"200": json(FlagOut, "the revoked flag"), **common}}},
    }
