"""GET /metrics (Prometheus text format) and the raw AGI step samples for benchmarks.

/metrics is open to this machine and needs an admin's or a supervisor's token from
anywhere else (hotline/web/auth.py). /api/agi/step-samples is for admins: every AGI step
duration kept since the last DELETE, when `agi.keep_step_samples` is on.
"""

from __future__ import annotations

import json

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agi.metrics import AgiMetrics
from hotline.web.auth import METRICS_PATH, METRICS_ROLES, is_loopback, require_role

AGI_METRICS: web.AppKey[AgiMetrics] = web.AppKey("agi_metrics", AgiMetrics)


async def metrics(request: web.Request) -> web.Response:
    if not is_loopback(request.remote):
        require_role(request, *METRICS_ROLES)
    body = generate_latest(request.app[AGI_METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def step_samples(request: web.Request) -> web.Response:
    """{"enabled", "max", "samples": [[route, step number, command, seconds], ...]}."""
    require_role(request, "admin")
    samples = request.app[AGI_METRICS].samples
    document = {"enabled": samples is not None,
                "max": samples.maxlen if samples is not None else 0,
                "samples": list(samples) if samples is not None else []}
    return web.json_response(document, dumps=lambda value: json.dumps(value,
                                                                       separators=(",", ":")))


async def clear_step_samples(request: web.Request) -> web.Response:
    require_role(request, "admin")
    request.app[AGI_METRICS].clear_samples()
    return web.Response(status=204)


def add_routes(app: web.Application, agi_metrics: AgiMetrics) -> None:
    app[AGI_METRICS] = agi_metrics
    app.router.add_get(METRICS_PATH, metrics)
    app.router.add_get("/api/agi/step-samples", step_samples)
    app.router.add_delete("/api/agi/step-samples", clear_step_samples)
