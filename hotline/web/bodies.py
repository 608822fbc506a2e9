"""What every JSON handler needs: read and validate a body, read a query, and turn a
service's errors into the API's error shape (`{"error": ..., "detail": ...}`)."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from hotline.web.responses import json_error

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    def __init__(self, status: int, error: str, detail: object = None) -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail


ErrorResponse = Callable[[Exception], web.StreamResponse]


def answers_errors(errors: Mapping[type[Exception], int | ErrorResponse]
                   ) -> Callable[[Handler], Handler]:
    """A decorator: BadRequest, and the service errors in `errors` (matched by class in
    order, so list the most derived first), become the API's JSON errors. A status gives
    `{"error": error.message or str(error), "detail": error.detail or null}`; a function
    builds the response itself."""

    kinds = tuple(errors)

    def respond(error: Exception) -> web.StreamResponse:
        for kind, answer in errors.items():
            if isinstance(error, kind):
                if callable(answer):
                    return answer(error)
                return json_error(answer, str(getattr(error, "message", None) or error),
                                  getattr(error, "detail", None))
        raise error  # unreachable: only `kinds` are caught

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except BadRequest as error:
                return json_error(error.status, error.error, error.detail)
            except kinds as error:
                return respond(error)

        return wrapper

    return decorate


async def read_body(request: web.Request, model: type[M]) -> M:
    """The JSON body as `model`: 400 when it is not JSON, 422 with the field errors when it
    does not fit (the input is never echoed back: it may hold a password)."""
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(400, "the body must be a JSON object") from error
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise BadRequest(422, "invalid body", error.errors(
            include_url=False, include_context=False, include_input=False)) from error


def read_query(request: web.Request, model: type[M]) -> M:
    """The query string as `model`: 400 with the field errors when it does not fit."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as error:
        raise BadRequest(400, "invalid query", error.errors(
            include_url=False, include_context=False, include_input=False)) from error


def path_int(request: web.Request, name: str) -> int:
    return int(request.match_info[name])
