"""The one place where everything is wired: `hotline serve` runs this aiohttp application.

Each long-lived resource (database engine, Redis, call journal, AMI listener, FastAGI
server) is a cleanup context: started in order, stopped in reverse, every task it owns
cancelled and awaited.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import structlog
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from agi.fastagi import FastAgiServer
from agi.ivr import IvrRoute
from ami_listener.call_tracking import CallTracker
from ami_listener.connection import AmiConnection
from hotline.calls import http as calls_http
from hotline.calls.storage import CallJournal
from hotline.clock import Clock
from hotline.config import Settings
from hotline.db.engine import create_engine_for, session_factory
from hotline.db.models import Counsellor, QueueKind, Site
from hotline.live import LiveState
from hotline.web import health as health_http
from hotline.web import openapi as openapi_http
from hotline.web.auth import bearer_auth, json_errors
from hotline.web.keys import COMPONENTS, SESSIONS, SETTINGS
from routing.ivr import Menu, default_menu

log = structlog.get_logger(__name__)


@dataclass
class Directory:
    """Sites' menus and counsellors' interfaces, loaded once: no call waits on the database."""

    menus: dict[str, Menu] = field(default_factory=dict)
    interfaces: dict[str, tuple[int, str]] = field(default_factory=dict)
    default_site: str = "default"

    def counsellor_for_interface(self, interface: str) -> tuple[int, str] | None:
        return self.interfaces.get(interface)

    def site_menus(self) -> Mapping[str, Menu]:
        return self.menus

    async def load(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        async with sessions() as session:
            sites = (await session.scalars(select(Site).options(selectinload(Site.queues)))).all()
            counsellors = (await session.scalars(select(Counsellor))).all()
        menus = {}
        for site in sites:
            by_kind = {queue.kind: queue.name for queue in site.queues}
            menus[site.code] = default_menu(
                crisis_queue=by_kind.get(QueueKind.CRISIS, "crisis"),
                psych_queue=by_kind.get(QueueKind.PSYCH, "psych"),
                legal_queue=by_kind.get(QueueKind.LEGAL, "legal"),
                crisis_priority=settings.ivr.crisis_priority,
                normal_priority=settings.ivr.normal_priority,
            )
        if settings.demo.site_code not in menus:
            # An empty database still routes every caller to a human.
            menus[settings.demo.site_code] = default_menu(
                crisis_priority=settings.ivr.crisis_priority)
        self.menus = menus
        self.default_site = settings.demo.site_code
        self.interfaces = {f"PJSIP/{c.sip_username}": (c.id, c.name) for c in counsellors}


@dataclass
class Components:
    engine: AsyncEngine
    journal: CallJournal
    live: LiveState
    ami: AmiConnection
    fastagi: FastAgiServer
    tracker: CallTracker
    directory: Directory


def build_components(settings: Settings) -> Components:
    clock = Clock.from_settings(settings.clock)
    engine = create_engine_for(settings.database_url, echo=settings.database.echo)
    journal = CallJournal(engine=engine, node=settings.asterisk.node_name)
    live = LiveState(url=settings.redis.url, prefix=settings.redis.key_prefix,
                     timeout=settings.redis.timeout_seconds)
    directory = Directory(default_site=settings.demo.site_code)
    ami = AmiConnection(
        host=settings.ami.host, port=settings.ami.port, username=settings.ami.username,
        secret=settings.ami.secret, action_timeout=settings.ami.action_timeout_seconds,
        reconnect_min=settings.ami.reconnect_min_seconds,
        reconnect_max=settings.ami.reconnect_max_seconds,
    )
    tracker = CallTracker(journal=journal, clock=clock, live=live, directory=directory)
    tracker.subscribe(ami)
    fastagi = FastAgiServer(host=settings.agi.host, port=settings.agi.port,
                            header_timeout=settings.agi.header_timeout_seconds,
                            command_timeout=settings.agi.command_timeout_seconds)
    fastagi.add_route("ivr", IvrRoute(
        journal=journal, clock=clock, menus=directory.site_menus,
        default_site=settings.demo.site_code,
        digit_timeout_ms=int(settings.ivr.digit_timeout_seconds * 1000),
    ))
    return Components(engine=engine, journal=journal, live=live, ami=ami, fastagi=fastagi,
                      tracker=tracker, directory=directory)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[json_errors, bearer_auth(settings.web.api_token)])
    components = build_components(settings)
    app[SETTINGS] = settings
    app[COMPONENTS] = components
    app[SESSIONS] = session_factory(components.engine)

    async def database(app: web.Application) -> AsyncIterator[None]:
        await components.directory.load(app[SESSIONS], settings)
        await components.journal.start()
        yield
        await components.journal.close()
        await components.engine.dispose()

    async def redis(_app: web.Application) -> AsyncIterator[None]:
        await components.live.start()
        yield
        await components.live.close()

    async def ami(_app: web.Application) -> AsyncIterator[None]:
        await components.ami.start()
        yield
        await components.ami.close()

    async def fastagi(_app: web.Application) -> AsyncIterator[None]:
        await components.fastagi.start()
        log.info("fastagi listening", host=settings.agi.host, port=settings.agi.port)
        yield
        await components.fastagi.close()

    app.cleanup_ctx.extend([database, redis])
    if settings.ami.enabled:
        app.cleanup_ctx.append(ami)
    if settings.agi.enabled:
        app.cleanup_ctx.append(fastagi)
    calls_http.add_routes(app)
    health_http.add_routes(app)
    openapi_http.add_routes(app)
    return app
