"""JSON responses: pydantic models out, one error shape for every failure."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from hotline.calls.schemas import ErrorOut


def json_model(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(text=model.model_dump_json(), status=status,
                        content_type="application/json")


def json_error(status: int, error: str, detail: Any = None) -> web.Response:
    return json_model(ErrorOut(error=error, detail=detail), status=status)
