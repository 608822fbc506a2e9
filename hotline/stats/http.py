"""HTTP handlers for /api/stats/… (admin, supervisor, duty officer)."""

from __future__ import annotations

from aiohttp import web

from hotline.clock import Clock
from hotline.db.models import Role
from hotline.stats.schemas import (
    AnswerRateOut,
    AnswerRateQuery,
    CounsellorFiguresOut,
    CounsellorOut,
    DeadlinesOut,
    FiguresOut,
    GroupOut,
)
from hotline.stats.services import AnswerRateReport, AnswerRates, Group, StatsError
from hotline.web.auth import require_role
from hotline.web.bodies import answers_errors, read_query
from hotline.web.keys import SESSIONS, SETTINGS
from hotline.web.responses import json_error, json_model

STATS: web.AppKey[AnswerRates] = web.AppKey("answer_rates", AnswerRates)
ROLES = (Role.ADMIN, Role.SUPERVISOR, Role.DUTY_OFFICER)

def _stats_error(error: Exception) -> web.StreamResponse:
    assert isinstance(error, StatsError)
    return json_error(error.status, error.message, error.detail)


_answers_errors = answers_errors({StatsError: _stats_error})


def answer_rate_out(report: AnswerRateReport) -> AnswerRateOut:
    return AnswerRateOut(
        site=report.site, timezone=report.timezone, from_=report.start, to=report.end,
        group=report.group, short_abandon_seconds=report.short_abandon_seconds,
        generated_at=report.generated_at, total=FiguresOut.model_validate(report.total),
        groups=[GroupOut(key=g.key, label=g.label, figures=FiguresOut.model_validate(g.figures))
                for g in report.groups],
        counsellors=[CounsellorOut(counsellor_id=line.counsellor_id, name=line.name,
                                   figures=CounsellorFiguresOut.model_validate(line.figures))
                     for line in report.counsellors],
        deadlines=DeadlinesOut.model_validate(report.deadlines))


@_answers_errors
async def answer_rate(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    query = read_query(request, AnswerRateQuery)
    report = await request.app[STATS].report(site=query.site, group=Group(query.group),
                                             from_text=query.from_, to_text=query.to)
    return json_model(answer_rate_out(report))


def add_routes(app: web.Application, stats: AnswerRates | None = None) -> None:
    """Install the statistics service (`app[STATS]`) and its routes.

    Needs `app[SESSIONS]` and `app[SETTINGS]` unless `stats` is given.
    """
    if stats is None:
        settings = app[SETTINGS]
        stats = AnswerRates(sessions=app[SESSIONS], clock=Clock.from_settings(settings.clock),
                            default_site=settings.demo.site_code)
    app[STATS] = stats
    app.router.add_get("/api/stats/answer-rate", answer_rate)
