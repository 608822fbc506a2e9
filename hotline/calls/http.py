"""HTTP handlers for /api/calls."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from hotline.calls.schemas import CallDetail, CallList, CallSummary
from hotline.db.models import Call, Role
from hotline.web.auth import require_role
from hotline.web.keys import SESSIONS
from hotline.web.responses import json_error, json_model


class CallQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0)
    outcome: str | None = None
    queue: str | None = None
    caller_number: str | None = Field(default=None, max_length=64)
    since: datetime | None = None


async def list_calls(request: web.Request) -> web.Response:
    require_role(request, Role.ADMIN, Role.SUPERVISOR)
    try:
        query = CallQuery.model_validate(dict(request.query))
    except ValidationError as error:
        return json_error(400, "invalid query", error.errors(include_url=False,
                                                             include_context=False))
    statement = select(Call)
    if query.outcome:
        statement = statement.where(Call.outcome == query.outcome)
    if query.queue:
        statement = statement.where(Call.queue == query.queue)
    if query.caller_number:
        statement = statement.where(Call.caller_number == query.caller_number)
    if query.since:
        statement = statement.where(Call.started_at >= query.since)
    async with request.app[SESSIONS]() as session:
        total = await session.scalar(select(func.count()).select_from(statement.subquery()))
        rows = (await session.scalars(
            statement.order_by(Call.started_at.desc(), Call.id).limit(query.limit)
            .offset(query.offset)
        )).all()
    return json_model(CallList(items=[CallSummary.model_validate(row) for row in rows],
                               total=total or 0, limit=query.limit, offset=query.offset))


async def get_call(request: web.Request) -> web.Response:
    require_role(request, Role.ADMIN, Role.SUPERVISOR)
    call_id = request.match_info["call_id"]
    async with request.app[SESSIONS]() as session:
        call = await session.scalar(
            select(Call).options(selectinload(Call.events)).where(Call.id == call_id)
        )
    if call is None:
        return json_error(404, "no such call", {"id": call_id})
    return json_model(CallDetail.model_validate(call))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{call_id}", get_call)
