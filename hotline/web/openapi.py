"""GET /api/openapi.json, built from the same pydantic models the handlers return."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from crisis import duty_openapi, monitoring_openapi
from crisis import openapi as incidents_openapi
from hotline.calls import transfer_http
from hotline.calls.http import CallQuery
from hotline.calls.schemas import CallDetail, CallList, ErrorOut
from hotline.calls.transfers import TransferIn, TransferOut
from hotline.people.schemas import (
    IssuedTokenOut,
    LoginIn,
    LoginOut,
    TokenCreate,
    TokenList,
    TokenOut,
    UserCreate,
    UserList,
    UserOut,
    UserPatch,
)
from hotline.prompts.http import ACCEPTED_TYPES
from hotline.prompts.schemas import (
    PromptDetail,
    PromptList,
    PromptVersionOut,
    TextToSpeechIn,
)
from hotline.rules import openapi as rules_openapi
from hotline.staffing import openapi as staffing_openapi
from hotline.stats import openapi as stats_openapi
from hotline.web.health import Health
from voicemail import openapi as voicemail_openapi

OUTPUTS: tuple[type[BaseModel], ...] = (CallList, CallDetail, ErrorOut, Health, LoginOut, UserOut,
                                        UserList, TokenOut, IssuedTokenOut, TokenList,
                                        PromptList, PromptDetail, PromptVersionOut, TransferOut)
INPUTS: tuple[type[BaseModel], ...] = (LoginIn, UserCreate, UserPatch, TokenCreate,
                                       TextToSpeechIn, TransferIn)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(model)}}}


def _id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


def _people_paths() -> dict[str, Any]:
    unauthorized = _json(ErrorOut, "missing or invalid bearer token")
    forbidden = _json(ErrorOut, "needs the role admin")
    invalid = _json(ErrorOut, "invalid body (detail names each field and the reason)")
    not_found = _json(ErrorOut, "no such user or token")
    admin = {"401": unauthorized, "403": forbidden}
    return {
        "/api/auth/login": {"post": {
            "summary": "Sign in with a username and password: a bearer token for this user "
                       "(expires after web.login_token_hours)",
            "security": [],
            "requestBody": _body(LoginIn),
            "responses": {
                "200": _json(LoginOut, "signed in"),
                "401": _json(ErrorOut, "invalid username or password (the same answer for "
                                       "an unknown user, a wrong password, an inactive user)"),
                "422": invalid,
                "429": _json(ErrorOut, "locked out after 5 failed sign-ins within 15 minutes; "
                                       "see the Retry-After header"),
            },
        }},
        "/api/auth/logout": {"post": {
            "summary": "Revoke the token this request presents",
            "responses": {"204": {"description": "revoked"}, "401": unauthorized},
        }},
        "/api/me": {"get": {
            "summary": "The signed-in user",
            "responses": {"200": _json(UserOut, "the user"), "401": unauthorized},
        }},
        "/api/users": {
            "get": {"summary": "Users (admins only)",
                    "responses": {"200": _json(UserList, "every user"), **admin}},
            "post": {"summary": "Add a user (admins only)", "requestBody": _body(UserCreate),
                     "responses": {"201": _json(UserOut, "added"), **admin,
                                   "409": _json(ErrorOut, "the username is taken"),
                                   "422": invalid}},
        },
        "/api/users/{user_id}": {"patch": {
            "summary": "Change a user's display name, role, language, password or active flag "
                       "(admins only); deactivating revokes their tokens",
            "parameters": [_id("user_id")],
            "requestBody": _body(UserPatch),
            "responses": {"200": _json(UserOut, "changed"), **admin, "404": not_found,
                          "409": _json(ErrorOut, "would leave no active admin"),
                          "422": invalid},
        }},
        "/api/users/{user_id}/tokens": {
            "get": {"summary": "A user's API tokens, without their secrets (admins only)",
                    "parameters": [_id("user_id")],
                    "responses": {"200": _json(TokenList, "newest first"), **admin,
                                  "404": not_found}},
            "post": {"summary": "Issue an API token for a user (admins only); the token is "
                                "in this answer only",
                     "parameters": [_id("user_id")],
                     "requestBody": _body(TokenCreate),
                     "responses": {"201": _json(IssuedTokenOut, "issued"), **admin,
                                   "404": not_found,
                                   "409": _json(ErrorOut, "the user is inactive"),
                                   "422": invalid}},
        },
        "/api/users/{user_id}/tokens/{token_id}": {"delete": {
            "summary": "Revoke a user's API token (admins only; revoking twice is harmless)",
            "parameters": [_id("user_id"), _id("token_id")],
            "responses": {"200": _json(TokenOut, "revoked"), **admin, "404": not_found},
        }},
    }


def _prompt_paths() -> dict[str, Any]:
    unauthorized = _json(ErrorOut, "missing or invalid bearer token")
    forbidden = _json(ErrorOut, "needs the role admin")
    site = {"name": "site", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "the site's code"}
    name = {"name": "name", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": r"^[a-z0-9-]{1,64}$"}}
    version = {"name": "version", "in": "path", "required": True,
               "schema": {"type": "integer", "minimum": 1}}
    audio = {"schema": {"type": "string", "format": "binary"}}
    form = {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"},
        "language": {"type": "string", "description": "zh, en…; the site's language if empty"},
        "description": {"type": "string"},
    }}}
    raw_query = [
        {"name": key, "in": "query", "required": False, "schema": {"type": "string"},
         "description": text}
        for key, text in (("language", "raw uploads: zh, en…; the site's language if not "
                                       "given"),
                          ("description", "raw uploads: what the prompt is for"),
                          ("filename", "raw uploads: the original file name"))
    ]
    return {
        "/api/sites/{site}/prompts": {"get": {
            "summary": "The site's prompts, each with its newest version",
            "parameters": [site],
            "responses": {"200": _json(PromptList, "the prompts"), "401": unauthorized,
                          "404": _json(ErrorOut, "no such site")},
        }},
        "/api/sites/{site}/prompts/{name}": {
            "get": {
                "summary": "A prompt and all its versions",
                "parameters": [site, name],
                "responses": {"200": _json(PromptDetail, "the prompt"), "401": unauthorized,
                              "404": _json(ErrorOut, "no such site or prompt")},
            },
            "post": {
                "summary": "A new version (admins only): upload a WAV or MP3 (raw body or a "
                           "multipart form with a file field), or JSON text for espeak-ng. "
                           "Converted to 8 kHz mono 16-bit WAV; the sound is "
                           "hotline/sites/{site}/{name}-v{version}",
                "parameters": [site, name, *raw_query],
                "requestBody": {"required": True, "content": {
                    "audio/wav": audio, "audio/x-wav": audio, "audio/mpeg": audio,
                    "multipart/form-data": form,
                    "application/json": {"schema": _ref(TextToSpeechIn)},
                }},
                "responses": {
                    "201": _json(PromptVersionOut, "the new version"),
                    "400": _json(ErrorOut, "malformed body or form"),
                    "401": unauthorized, "403": forbidden,
                    "404": _json(ErrorOut, "no such site"),
                    "413": _json(ErrorOut, "the file is larger than prompts.max_upload_bytes"),
                    "415": _json(ErrorOut, "not one of " + ", ".join(ACCEPTED_TYPES)),
                    "422": _json(ErrorOut, "invalid name, language or text; or the audio is "
                                           "empty, silent, too long, damaged or not WAV/MP3"),
                    "503": _json(ErrorOut, "ffmpeg or espeak-ng is missing on the server"),
                },
            },
        },
        "/api/sites/{site}/prompts/{name}/versions/{version}/audio": {"get": {
            "summary": "Download a version's converted WAV (admins only; audited)",
            "parameters": [site, name, version],
            "responses": {"200": {"description": "8 kHz mono 16-bit WAV",
                                  "content": {"audio/wav": audio}},
                          "401": unauthorized, "403": forbidden,
                          "404": _json(ErrorOut, "no such prompt version, or its file is "
                                                 "missing")},
        }},
    }


def build_openapi() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(m, "serialization") for m in (*OUTPUTS, *rules_openapi.OUTPUTS,
                                          *stats_openapi.OUTPUTS, *staffing_openapi.OUTPUTS,
                                          *voicemail_openapi.OUTPUTS,
                                          *monitoring_openapi.OUTPUTS,
                                          *incidents_openapi.OUTPUTS,
                                          *duty_openapi.OUTPUTS)]
        + [(m, "validation") for m in (*INPUTS, *rules_openapi.INPUTS,
                                       *staffing_openapi.INPUTS, *voicemail_openapi.INPUTS,
                                       *monitoring_openapi.INPUTS,
                                       *incidents_openapi.INPUTS,
                                       *duty_openapi.INPUTS)],
        ref_template="#/components/schemas/{model}",
    )
    query_schema = CallQuery.model_json_schema()["properties"]
    unauthorized = _json(ErrorOut, "missing or invalid bearer token")
    calls_forbidden = _json(ErrorOut, "needs the role admin or supervisor")
    return {
        "openapi": "3.1.0",
        "info": {"title": "hotline12355 admin API", "version": "0.1.0"},
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/health": {"get": {
                "summary": "State of Asterisk, AMI, Redis and the database",
                "security": [],
                "responses": {"200": _json(Health, "all components ok"),
                              "503": _json(Health, "a component is down")},
            }},
            "/api/calls": {"get": {
                "summary": "Calls, newest first",
                "parameters": [
                    {"name": name, "in": "query", "required": False, "schema": schema}
                    for name, schema in query_schema.items()
                ],
                "responses": {"200": _json(CallList, "a page of calls"),
                              "400": _json(ErrorOut, "invalid query"), "401": unauthorized,
                              "403": calls_forbidden},
            }},
            "/api/calls/{call_id}": {"get": {
                "summary": "One call: route, menu digits, queue, wait, who answered, outcome, "
                           "and its journey step by step",
                "parameters": [{"name": "call_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": _json(CallDetail, "the call"),
                              "404": _json(ErrorOut, "no such call"), "401": unauthorized,
                              "403": calls_forbidden},
            }},
            **transfer_http.openapi_paths(_json, _body),
            **_people_paths(),
            **_prompt_paths(),
            **rules_openapi.rules_paths(_json, _body),
            **staffing_openapi.staffing_paths(_json, _body),
            **voicemail_openapi.voicemail_paths(_json, _body),
            **monitoring_openapi.monitoring_paths(_json, _body),
            **incidents_openapi.incident_paths(_json, _body),
            **duty_openapi.duty_paths(_json, _body),
            **stats_openapi.stats_paths(_json),
            "/api/agi/step-samples": {
                "get": {"summary": "The backend's time per FastAGI step, raw samples (admin; "
                                   "kept only with agi.keep_step_samples, for benchmarks)",
                        "responses": {"200": {"description": "samples in seconds by route"},
                                      "401": unauthorized}},
                "delete": {"summary": "Forget the samples (admin)",
                           "responses": {"204": {"description": "cleared"},
                                         "401": unauthorized}},
            },
            "/metrics": {"get": {
                "summary": "Prometheus metrics: hotline_agi_step_seconds, "
                           "hotline_agi_db_queries_total (SQL on the routing path: 0), "
                           "hotline_db_statements_total, hotline_agi_sessions. Open from "
                           "loopback; otherwise admin or supervisor",
                "responses": {"200": {"description": "text/plain; version=0.0.4"}}}},
            "/api/openapi.json": {"get": {"summary": "This document", "security": [],
                                          "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        },
    }


async def openapi(_request: web.Request) -> web.Response:
    return web.json_response(build_openapi())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi)
