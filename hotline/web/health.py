"""GET /api/health: the state of Asterisk, AMI, Redis and the database."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy import text

from hotline.web.keys import COMPONENTS, SESSIONS, SETTINGS
from hotline.web.responses import json_model
from routing.hours import zone

State = Literal["ok", "warn", "down", "unknown"]


class ComponentHealth(BaseModel):
    status: State
    detail: dict[str, Any] = {}


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    components: dict[str, ComponentHealth]


async def _database(request: web.Request) -> ComponentHealth:
    try:
        async with request.app[SESSIONS]() as session:
            await asyncio.wait_for(session.execute(text("SELECT 1")), 3)
    except Exception as error:
        return ComponentHealth(status="down", detail={"error": repr(error)})
    journal = request.app[COMPONENTS].journal
    return ComponentHealth(status="ok", detail={
        "journal_pending": journal.pending, "journal_failures": journal.stats.failures,
        "journal_dropped": journal.stats.dropped,
        "journal_last_error": journal.stats.last_error,
    })


async def _redis(request: web.Request) -> ComponentHealth:
    live = request.app[COMPONENTS].live
    ok = await live.ping()
    return ComponentHealth(status="ok" if ok else "down",
                           detail={"dropped_updates": live.dropped, "error": live.last_error})


async def _ami_and_asterisk(request: web.Request) -> tuple[ComponentHealth, ComponentHealth]:
    ami = request.app[COMPONENTS].ami
    ami_health = ComponentHealth(
        status="ok" if ami.connected else "down",
        detail={"reconnects": ami.reconnects, "error": ami.last_error},
    )
    if not ami.connected:
        return ami_health, ComponentHealth(status="unknown",
                                           detail={"reason": "AMI is not connected"})
    try:
        reply = await ami.action({"Action": "CoreStatus"}, timeout=3)
    except Exception as error:
        return ami_health, ComponentHealth(status="down", detail={"error": repr(error)})
    message = reply[0] if isinstance(reply, list) else reply
    if message.get("Response") != "Success":
        return ami_health, ComponentHealth(status="down", detail={"reply": dict(message)})
    return ami_health, ComponentHealth(status="ok", detail={
        "startup": f"{message.get('CoreStartupDate', '')} {message.get('CoreStartupTime', '')}",
        "reload": f"{message.get('CoreReloadDate', '')} {message.get('CoreReloadTime', '')}",
        "current_calls": message.get("CoreCurrentCalls"),
    })


def _rules(request: web.Request) -> tuple[ComponentHealth, ComponentHealth]:
    """The rules this node routes with, and whether the holiday calendar covers the coming
    days (chinese-calendar knows a year only once the State Council has published it)."""
    components = request.app[COMPONENTS]
    routing = components.routing
    settings = request.app[SETTINGS]
    rules = ComponentHealth(
        status="ok" if routing.state.loaded else "warn",
        detail={"versions": {code: site.version for code, site in routing.state.sites.items()},
                "reloads": routing.reloads, "error": routing.last_error})
    days = settings.rules.calendar_warning_days
    today = components.clock.now().astimezone(zone(settings.clock.timezone)).date()
    uncovered = routing.state.calendar.uncovered_days(today, days)
    if not uncovered:
        return rules, ComponentHealth(status="ok", detail={"covered_days_ahead": days})
    return rules, ComponentHealth(status="warn", detail={
        "message": f"no official holidays for {uncovered[0].year}: enter them with "
                   f"PUT /api/calendar/{uncovered[0].year}; until then weekends are treated "
                   "as days off and weekdays as workdays",
        "uncovered_from": uncovered[0].isoformat(), "uncovered_days": len(uncovered),
        "days_ahead": days})


def _queues(request: web.Request) -> ComponentHealth:
    """Whether Asterisk's queue members follow the roster (a sync pass since the last
    AMI connect), and the open line-health alerts' count is in /api/alerts."""
    components = request.app[COMPONENTS]
    sync, view = components.member_sync, components.queue_view
    detail = {"passes": sync.passes, "actions_sent": sync.actions_sent,
              "view_rebuilds": view.rebuilds, "roster_reloads": components.roster.reloads,
              "roster_error": components.roster.last_error, "error": sync.last_error}
    if not components.ami.connected:
        return ComponentHealth(status="unknown", detail={**detail,
                                                        "reason": "AMI is not connected"})
    in_step = view.ready and sync.synced_since_connect and sync.last_error is None
    return ComponentHealth(status="ok" if in_step else "warn", detail=detail)


def _voicemail(request: web.Request) -> ComponentHealth:
    """Messages read from Asterisk's spool, processed, and callbacks dialled. A warning when
    a step keeps failing, or no model is configured (messages flow untranscribed)."""
    parts = request.app[COMPONENTS].messages
    ingester, processor, dialer = parts.ingester, parts.processor, parts.dialer
    detail = {"spool": str(ingester.spool_dir), "ingested": ingester.ingested,
              "ingest_failures": ingester.failures, "ingest_error": ingester.last_error,
              "processed": processor.processed, "processing_failures": processor.failures,
              "processing_error": processor.last_error,
              "transcription": parts.transcriber.unavailable or "ready",
              "callbacks_dialled": dialer.dialled, "dialer_error": dialer.last_error,
              "dialer_ami": "connected" if parts.dialer_ami.connected else "not connected"}
    failing = ingester.last_error or processor.last_error or dialer.last_error
    return ComponentHealth(status="warn" if failing or parts.transcriber.unavailable
                           else "ok", detail=detail)


def _webhook(request: web.Request) -> ComponentHealth:
    """The signed duty webhook: deliveries failing or dropped are a warning (the alerts are
    still in /api/alerts and on the other notifiers)."""
    detail = request.app[COMPONENTS].webhook.health()
    if not detail["enabled"]:
        return ComponentHealth(status="ok", detail={**detail, "reason": "no URL configured"})
    return ComponentHealth(status="warn" if detail["last_error"] or detail["dropped"] else "ok",
                           detail=detail)


async def health(request: web.Request) -> web.Response:
    database, redis_health, (ami, asterisk) = await asyncio.gather(
        _database(request), _redis(request), _ami_and_asterisk(request))
    fastagi = request.app[COMPONENTS].fastagi
    components = {
        "asterisk": asterisk, "ami": ami, "redis": redis_health, "database": database,
        "fastagi": ComponentHealth(status="ok", detail={
            "active_sessions": fastagi.active_sessions, "sessions": fastagi.sessions_total,
            "errors": fastagi.errors_total}),
    }
    components["rules"], components["calendar"] = _rules(request)
    components["queues"] = _queues(request)
    components["voicemail"] = _voicemail(request)
    components["webhook"] = _webhook(request)
    # A warning (e.g. next year's holidays not entered yet) is not an outage.
    healthy = all(component.status in ("ok", "warn") for component in components.values())
    body = Health(status="ok" if healthy else "degraded", components=components)
    return json_model(body, status=200 if healthy else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/health", health)
