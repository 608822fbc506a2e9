"""The statistics endpoints in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from hotline.calls.schemas import ErrorOut
from hotline.stats.schemas import AnswerRateOut, AnswerRateQuery

OUTPUTS: tuple[type[BaseModel], ...] = (AnswerRateOut,)
INPUTS: tuple[type[BaseModel], ...] = ()

Schema = Callable[[type[BaseModel], str], dict[str, Any]]


def stats_paths(json: Schema) -> dict[str, Any]:
    properties = AnswerRateQuery.model_json_schema(by_alias=True)["properties"]
    parameters = [
        {"name": name, "in": "query", "required": False,
         "description": schema.pop("description", ""), "schema": schema}
        for name, schema in properties.items()
    ]
    return {
        "/api/stats/answer-rate": {"get": {
            "summary": "Answer rate, abandons, speed of answer and service level of a site over "
                       "a period, per site, queue, shift slot or counsellor (admin, supervisor, "
                       "duty officer). Definitions: docs/statistics.md",
            "parameters": parameters,
            "responses": {
                "200": json(AnswerRateOut, "the figures"),
                "400": json(ErrorOut, "a malformed parameter, from after to, or a period "
                                      "longer than 400 days (detail says which)"),
                "401": json(ErrorOut, "missing or invalid bearer token"),
                "403": json(ErrorOut, "needs the role admin, supervisor or duty_officer"),
                "404": json(ErrorOut, "no such site"),
            },
        }},
    }
