"""GET /api/openapi.json, built from the same pydantic models the handlers return."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from hotline.calls.http import CallQuery
from hotline.calls.schemas import CallDetail, CallList, ErrorOut
from hotline.web.health import Health


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def build_openapi() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(m, "serialization") for m in (CallList, CallDetail, ErrorOut, Health)],
        ref_template="#/components/schemas/{model}",
    )
    query_schema = CallQuery.model_json_schema()["properties"]
    unauthorized = _json(ErrorOut, "missing or invalid bearer token")
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
                              "400": _json(ErrorOut, "invalid query"), "401": unauthorized},
            }},
            "/api/calls/{call_id}": {"get": {
                "summary": "One call: route, menu digits, queue, wait, who answered, outcome, "
                           "and its journey step by step",
                "parameters": [{"name": "call_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": _json(CallDetail, "the call"),
                              "404": _json(ErrorOut, "no such call"), "401": unauthorized},
            }},
            "/api/openapi.json": {"get": {"summary": "This document", "security": [],
                                          "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        },
    }


async def openapi(_request: web.Request) -> web.Response:
    return web.json_response(build_openapi())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi)
