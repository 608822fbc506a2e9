"""The one place where everything is wired: `hotline serve` runs this aiohttp application.

Each long-lived resource (database engine, Redis, call journal, AMI listener, FastAGI
server) is a cleanup context: started in order, stopped in reverse, every task it owns
cancelled and awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from agi.fastagi import FastAgiServer
from agi.ivr import IvrRoute
from agi.metrics import AgiMetrics
from agi.police_ready import PoliceReadyRoute
from agi.queue_callback import QueueCallbackRoute
from agi.seat import SeatRoute
from agi.survey import SurveyRoute
from ami_listener.agent_state import LiveStaffing
from ami_listener.call_tracking import CallTracker
from ami_listener.connection import AmiConnection
from ami_listener.lockouts import LockoutRecorder
from ami_listener.queue_members import QueueMemberSync
from ami_listener.queue_view import QueueView
from crisis import duty_http, monitoring_http, police_http
from crisis import http as incidents_http
from crisis.attendant import NightAttendant
from crisis.call_signals import CrisisCalls
from crisis.deadline_watchdog import DeadlineWatchdog
from crisis.duty_calls import DutyCalls, chain_policy
from crisis.incidents import Incidents, deadline_policy
from crisis.monitoring import MonitorOutcomes
from crisis.police import PoliceBridge
from crisis.police_fallback import FallbackPoliceCalls
from crisis.police_records import PoliceRecords
from crisis.roster import DutyRoster
from crisis.webhook import WebhookNotifier
from hotline.alerts import http as alerts_http
from hotline.alerts.services import Alerts, LogNotifier, RedisNotifier
from hotline.alerts.watchdog import LineWatchdog
from hotline.calls import http as calls_http
from hotline.calls import transfer_http as calls_transfer_http
from hotline.calls.storage import CallJournal
from hotline.clock import Clock
from hotline.config import Settings
from hotline.db.engine import create_engine_for, session_factory
from hotline.live import LiveState
from hotline.people import http as people_http
from hotline.prompts import http as prompts_http
from hotline.rules import http as rules_http
from hotline.rules.bus import RulesBus
from hotline.rules.published import RoutingTable
from hotline.rules.services import RulesService
from hotline.rules.snapshot_files import write_fallback_files
from hotline.staffing import http as staffing_http
from hotline.staffing.roster import Roster
from hotline.staffing.services import Staffing
from hotline.stats import http as stats_http
from hotline.web import health as health_http
from hotline.web import metrics as metrics_http
from hotline.web import openapi as openapi_http
from hotline.web.auth import bearer_auth, json_errors
from hotline.web.keys import COMPONENTS, SESSIONS, SETTINGS
from routing.keywords import KeywordList
from routing.snapshot import RulesSnapshot
from voicemail import http as voicemail_http
from voicemail.dialer import CallbackDialer
from voicemail.ingest import SpoolIngester
from voicemail.processing import MessageProcessor, keyword_list
from voicemail.queue_callbacks import QueueCallbacks
from voicemail.services import Voicemail
from voicemail.store import MessageStore
from voicemail.transcription import Transcriber

log = structlog.get_logger(__name__)


@dataclass
class Components:
    engine: AsyncEngine
    journal: CallJournal
    live: LiveState
    ami: AmiConnection
    fastagi: FastAgiServer
    tracker: CallTracker
    roster: Roster
    staffing: Staffing
    queue_view: QueueView
    member_sync: QueueMemberSync
    live_staffing: LiveStaffing
    alerts: Alerts
    alert_channel: RedisNotifier
    webhook: WebhookNotifier
    watchdog: LineWatchdog
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    routing: RoutingTable
    rules: RulesService
    rules_bus: RulesBus
    agi_metrics: AgiMetrics
    lockouts: LockoutRecorder
    voicemail: Voicemail
    messages: MessageParts
    # Incidents: crisis signals, timelines, deadlines (crisis/).
    incidents: Incidents
    crisis_calls: CrisisCalls
    deadline_watchdog: DeadlineWatchdog
    # The duty roster, and the duty officer's phone rung for crisis alerts.
    duty_roster: DutyRoster
    duty_calls: DutyCalls
    police: PoliceBridge
    police_fallback: FallbackPoliceCalls
    # The night attendant: live crisis keywords in a listening caller's speech.
    attendant: NightAttendant


@dataclass
class MessageParts:
    """Voicemail in the background: the spool read, messages processed, callbacks dialled
    (over their own AMI user: Originate only)."""

    ingester: SpoolIngester
    processor: MessageProcessor
    transcriber: Transcriber
    dialer: CallbackDialer
    dialer_ami: AmiConnection


def voicemail_spool_dir(settings: Settings) -> Path:
    """Asterisk's voicemail spool as this process reaches it (the sandbox's by default)."""
    if settings.voicemail.spool_dir is not None:
        return settings.voicemail.spool_dir
    return settings.asterisk.chroot_dir / settings.asterisk.voicemail_spool.lstrip("/")


def police_recording_dir(settings: Settings) -> Path:
    """Where Asterisk records police calls, as this process reaches it (the sandbox's by
    default)."""
    if settings.crisis.recording_local_dir is not None:
        return settings.crisis.recording_local_dir
    return settings.asterisk.chroot_dir / settings.crisis.recording_dir.lstrip("/")


def build_components(settings: Settings) -> Components:
    clock = Clock.from_settings(settings.clock)
    engine = create_engine_for(settings.database_url, echo=settings.database.echo)
    # /metrics: AGI step times, and every SQL statement — those run inside a FastAGI
    # session counted apart (routing reads memory only: that count stays 0).
    agi_metrics = AgiMetrics(keep_samples=settings.agi.keep_step_samples)
    agi_metrics.watch_engine(engine)
    journal = CallJournal(engine=engine, node=settings.asterisk.node_name)
    live = LiveState(url=settings.redis.url, prefix=settings.redis.key_prefix,
                     timeout=settings.redis.timeout_seconds)
    sessions = session_factory(engine)
    # Counsellors, shifts and presence in memory: no AMI event or call waits on the database.
    roster = Roster(sessions=sessions, clock=clock)

    async def write_fallback(snapshots: list[tuple[RulesSnapshot, bool]]) -> None:
        # The classic AGI fallback reads these where Asterisk runs; a failure to write them
        # must not stop the backend from routing.
        try:
            await asyncio.to_thread(write_fallback_files, settings, snapshots)
        except OSError as error:
            log.error("classic AGI snapshot not written", error=repr(error))

    routing = RoutingTable(sessions=sessions, clock=clock, default_site=settings.demo.site_code,
                           crisis_priority=settings.ivr.crisis_priority,
                           node=settings.asterisk.node_name, on_loaded=write_fallback,
                           staffed_by=roster)

    async def routing_changed() -> None:
        # Rules or staffing changed on some node: reload both here.
        await routing.reload_quietly()
        await roster.reload_quietly()
        member_sync.poke()

    rules_bus = RulesBus(url=settings.redis.url, prefix=settings.redis.key_prefix,
                         node=settings.asterisk.node_name, timeout=settings.redis.timeout_seconds,
                         on_change=routing_changed,
                         refresh_seconds=settings.rules.refresh_seconds)

    async def rules_published(site: str | None) -> None:
        # This node at once; the others through the bus (or their refresh timer).
        await routing.reload_quietly()
        await rules_bus.announce(site)

    rules = RulesService(sessions=sessions, clock=clock,
                         crisis_priority=settings.ivr.crisis_priority, on_change=rules_published)
    ami = AmiConnection(
        host=settings.ami.host, port=settings.ami.port, username=settings.ami.username,
        secret=settings.ami.secret, action_timeout=settings.ami.action_timeout_seconds,
        reconnect_min=settings.ami.reconnect_min_seconds,
        reconnect_max=settings.ami.reconnect_max_seconds,
    )
    tracker = CallTracker(journal=journal, clock=clock, live=live, directory=roster)
    tracker.subscribe(ami)
    # Whether a supervisor's monitoring phone answered: an event of the monitored call.
    MonitorOutcomes(sessions=sessions, journal=journal, clock=clock).subscribe(ami)
    alert_channel = RedisNotifier(url=settings.redis.url, prefix=settings.redis.key_prefix,
                                  timeout=settings.redis.timeout_seconds)
    # The signed duty webhook (an SMS gateway, a chat bot); the duty officer's phone joins
    # these with the crisis capability.
    webhook = WebhookNotifier.from_settings(settings.webhook)
    alerts = Alerts(sessions=sessions, clock=clock,
                    notifiers=[LogNotifier(), alert_channel, webhook])
    # SIP lock-outs fail2ban announces: audit entries and alerts.
    lockouts = LockoutRecorder(sessions=sessions, clock=clock, node=settings.asterisk.node_name,
                               alerts=alerts)
    lockouts.subscribe(ami)
    queue_view = QueueView(clock=clock)
    queue_view.subscribe(ami)

    async def staffing_changed() -> None:
        await roster.reload_quietly()
        member_sync.poke()
        await rules_bus.announce(None)

    staffing = Staffing(sessions=sessions, clock=clock, roster=roster, on_change=staffing_changed)
    member_sync = QueueMemberSync(ami=ami, view=queue_view, roster=roster, clock=clock,
                                  tick_seconds=settings.staffing.tick_seconds,
                                  min_pass_interval=settings.staffing.min_pass_seconds,
                                  on_crisis_call_done=staffing.start_debrief)
    member_sync.subscribe()
    live_staffing = LiveStaffing(view=queue_view, roster=roster, live=live, clock=clock,
                                 default_wrapup_seconds=settings.queues.wrapup_seconds,
                                 refresh_seconds=settings.staffing.live_refresh_seconds)
    live_staffing.subscribe()
    watchdog = LineWatchdog(alerts=alerts, roster=roster, routing=routing, view=queue_view,
                            clock=clock, interval_seconds=settings.staffing.watchdog_seconds,
                            wait_alert_seconds=settings.staffing.wait_alert_seconds,
                            trunk_alert_seconds=settings.staffing.trunk_alert_seconds)
    fastagi = FastAgiServer(host=settings.agi.host, port=settings.agi.port,
                            header_timeout=settings.agi.header_timeout_seconds,
                            command_timeout=settings.agi.command_timeout_seconds,
                            metrics=agi_metrics)

    async def attendant_signal(**signal: Any) -> object:
        return await incidents.signal(**signal)  # defined below; called only once running

    attendant = build_attendant(settings, sessions=sessions, clock=clock, ami=ami,
                                journal=journal, agi_metrics=agi_metrics,
                                crisis_signal=attendant_signal)
    fastagi.add_route("ivr", IvrRoute(journal=journal, clock=clock, routing=routing,
                                      attendant=attendant))
    fastagi.add_route("survey", SurveyRoute(journal=journal, clock=clock, routing=routing))
    fastagi.add_route("seat", SeatRoute(staffing=staffing, roster=roster))
    fastagi.add_route("queue-callback", QueueCallbackRoute(
        requests=QueueCallbacks(sessions=sessions, clock=clock), journal=journal, clock=clock,
        routing=routing))
    # The counsellor's police key asks first whether the call can be moved (else the
    # dialplan brings 110 in by itself).
    fastagi.add_route("police-ready", PoliceReadyRoute(ami_connected=lambda: ami.connected))
    # Messages callers left: the backend's copies (originals and web copies) live here.
    message_store = MessageStore(
        root=settings.voicemail.store_dir or settings.var_dir / "voicemail")
    voicemail = Voicemail(sessions=sessions, clock=clock, store=message_store)
    incidents = Incidents(sessions=sessions, clock=clock, alerts=alerts,
                          policy=deadline_policy(settings.crisis),
                          default_site=settings.demo.site_code)
    # The crisis route opens an incident, off the call path: after the journal wrote it.
    crisis_calls = CrisisCalls(incidents=incidents, sessions=sessions,
                               default_site=settings.demo.site_code)
    journal.on_route.append(crisis_calls.on_route)
    deadline_watchdog = DeadlineWatchdog(sessions=sessions, clock=clock, alerts=alerts,
                                         incidents=incidents,
                                         interval_seconds=settings.crisis.tick_seconds)
    messages = build_message_parts(settings, sessions=sessions, clock=clock, ami=ami,
                                   store=message_store, view=queue_view, roster=roster,
                                   routing=routing, alerts=alerts, incidents=incidents)
    duty_roster = DutyRoster(sessions=sessions, clock=clock)
    # The duty phone rings for every open crisis alert, over the dialler's Originate-only
    # AMI user; what happened on the call arrives as events on the reading connection.
    duty_calls = DutyCalls(sessions=sessions, clock=clock, ami=messages.dialer_ami,
                           roster=duty_roster, alerts=alerts,
                           policy=chain_policy(settings.crisis),
                           default_site=settings.demo.site_code,
                           tick_seconds=settings.crisis.tick_seconds,
                           ring_seconds=settings.crisis.duty_ring_seconds, timeline=incidents)
    duty_calls.subscribe(ami)
    alerts.notifiers.append(duty_calls)  # a new crisis alert rings at once
    police_records = PoliceRecords(sessions=sessions, clock=clock, incidents=incidents,
                                   alerts=alerts, webhook=webhook,
                                   default_site=settings.demo.site_code)
    police = build_police(settings, clock=clock, ami=ami, dialer=messages.dialer_ami,
                          records=police_records, duty_roster=duty_roster)
    # Police calls the dialplan made alone while this process was unreachable.
    police_fallback = FallbackPoliceCalls(
        sessions=sessions, clock=clock, records=police_records, timeline=incidents,
        folder=police_recording_dir(settings), asterisk_folder=settings.crisis.recording_dir,
        interval_seconds=settings.crisis.fallback_scan_seconds)
    return Components(engine=engine, journal=journal, live=live, ami=ami, fastagi=fastagi,
                      tracker=tracker, roster=roster, staffing=staffing, queue_view=queue_view,
                      member_sync=member_sync, live_staffing=live_staffing, alerts=alerts,
                      alert_channel=alert_channel, webhook=webhook, watchdog=watchdog,
                      sessions=sessions,
                      clock=clock, routing=routing,
                      rules=rules, rules_bus=rules_bus, agi_metrics=agi_metrics,
                      lockouts=lockouts, voicemail=voicemail, messages=messages,
                      incidents=incidents, crisis_calls=crisis_calls,
                      deadline_watchdog=deadline_watchdog, duty_roster=duty_roster,
                      duty_calls=duty_calls, police=police, police_fallback=police_fallback,
                      attendant=attendant)


def build_attendant(settings: Settings, *, sessions: async_sessionmaker[AsyncSession],
                    clock: Clock, ami: AmiConnection, journal: CallJournal,
                    agi_metrics: AgiMetrics,
                    crisis_signal: Callable[..., Awaitable[object]]) -> NightAttendant:
    """The night attendant's AudioSocket server; its model is the voicemail one unless set."""

    async def keywords() -> KeywordList:
        async with sessions() as session:
            return await keyword_list(session)

    crisis = settings.crisis
    return NightAttendant(
        host=crisis.attendant_host, port=crisis.attendant_port,
        model_dir=crisis.attendant_model_dir or settings.voicemail.model_dir, ami=ami,
        journal=journal, clock=clock, keywords=keywords, crisis_signal=crisis_signal,
        listen_seconds=crisis.attendant_listen_seconds, threads=crisis.attendant_threads,
        enabled=crisis.attendant_enabled, registry=agi_metrics.registry,
        inject_text=crisis.attendant_inject_text,
        inject_after_seconds=crisis.attendant_inject_after_seconds)


def build_police(settings: Settings, *, clock: Clock, ami: AmiConnection,
                 dialer: AmiConnection, records: PoliceRecords,
                 duty_roster: DutyRoster) -> PoliceBridge:
    """The one-key police alert: moves calls over the backend's AMI user (Redirect), calls a
    supervisor in over the dialler's (Originate only)."""

    async def supervisor_number() -> str:
        # The configured supervisor's phone, else the first person on the duty roster now.
        if settings.crisis.supervisor_number:
            return settings.crisis.supervisor_number
        on_duty = await duty_roster.on_duty()
        return on_duty[0].number if on_duty else ""

    police = PoliceBridge(ami=ami, dialer=dialer, incidents=records, clock=clock,
                          recording_dir=settings.crisis.recording_dir,
                          supervisor_number=supervisor_number,
                          ring_seconds=settings.crisis.duty_ring_seconds)
    police.subscribe(ami)
    return police


def build_message_parts(settings: Settings, *, sessions: async_sessionmaker[AsyncSession],
                        clock: Clock, ami: AmiConnection, store: MessageStore, view: QueueView,
                        roster: Roster, routing: RoutingTable, alerts: Alerts,
                        incidents: Incidents | None = None) -> MessageParts:
    node = settings.asterisk.node_name
    transcriber = Transcriber(model_dir=settings.voicemail.model_dir,
                              workers=settings.voicemail.workers)
    processor = MessageProcessor(sessions=sessions, clock=clock, store=store,
                                 transcriber=transcriber, routing=routing, alerts=alerts,
                                 node=node,
                                 crisis_signal=incidents.signal if incidents else None,
                                 # every worker busy, and one more message being encoded
                                 concurrency=settings.voicemail.workers + 1)
    ingester = SpoolIngester(sessions=sessions, clock=clock, store=store,
                             spool_dir=voicemail_spool_dir(settings), node=node,
                             scan_seconds=settings.voicemail.scan_seconds,
                             settle_seconds=settings.voicemail.settle_seconds,
                             stale_seconds=settings.voicemail.stale_seconds,
                             on_ingested=processor.enqueue)
    ingester.subscribe(ami, asterisk_spool=settings.asterisk.voicemail_spool)
    dialer_ami = AmiConnection(
        host=settings.ami.host, port=settings.ami.port, username=settings.ami.dialer_username,
        secret=settings.ami.dialer_secret, action_timeout=settings.ami.action_timeout_seconds,
        reconnect_min=settings.ami.reconnect_min_seconds,
        reconnect_max=settings.ami.reconnect_max_seconds)
    dialer = CallbackDialer(
        sessions=sessions, clock=clock, ami=dialer_ami, view=view, roster=roster,
        routing=routing, node=node, tick_seconds=settings.voicemail.dial_tick_seconds,
        counsellor_ring_seconds=settings.voicemail.counsellor_ring_seconds,
        lost_after_seconds=settings.voicemail.lost_after_seconds,
        max_dialing_per_site=settings.voicemail.max_dialing_per_site,
        wrapup_seconds=settings.queues.wrapup_seconds)
    # Outcomes arrive as events on the backend's own (reading) connection.
    dialer.subscribe(ami)
    return MessageParts(ingester=ingester, processor=processor, transcriber=transcriber,
                        dialer=dialer, dialer_ami=dialer_ami)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[json_errors, bearer_auth])
    components = build_components(settings)
    app[SETTINGS] = settings
    app[COMPONENTS] = components
    app[SESSIONS] = components.sessions

    async def database(app: web.Application) -> AsyncIterator[None]:
        await components.roster.reload_quietly()
        # The published rules must be in memory before the FastAGI server takes a call;
        # if the database cannot be read, the built-in default rules serve.
        await components.routing.reload_quietly()
        await components.journal.start()
        yield
        await components.journal.close()
        await components.engine.dispose()

    async def redis(_app: web.Application) -> AsyncIterator[None]:
        await components.live.start()
        await components.rules_bus.start()
        yield
        await components.rules_bus.close()
        await components.alert_channel.close()
        await components.live.close()

    async def webhook(_app: web.Application) -> AsyncIterator[None]:
        await components.webhook.start()
        yield
        await components.webhook.close()

    async def ami(_app: web.Application) -> AsyncIterator[None]:
        await components.ami.start()
        await components.member_sync.start()
        await components.live_staffing.start()
        await components.watchdog.start()
        yield
        await components.watchdog.close()
        await components.live_staffing.close()
        await components.member_sync.close()
        await components.ami.close()

    async def voicemail(_app: web.Application) -> AsyncIterator[None]:
        # Messages are read and processed with or without AMI: the spool is a directory.
        parts = components.messages
        await parts.processor.start()
        await parts.ingester.start()
        yield
        await parts.ingester.close()
        await parts.processor.close()
        await parts.transcriber.close()

    async def dialer_link(_app: web.Application) -> AsyncIterator[None]:
        # The Originate-only AMI user: callbacks, and supervisors' monitoring
        # (crisis/monitoring.py) with or without callbacks.
        await components.messages.dialer_ami.start()
        yield
        await components.messages.dialer_ami.close()

    async def dialer(_app: web.Application) -> AsyncIterator[None]:
        parts = components.messages
        await parts.dialer.start()
        yield
        await parts.dialer.close()

    async def duty_chain(_app: web.Application) -> AsyncIterator[None]:
        await components.duty_calls.start()
        yield
        await components.duty_calls.close()

    async def attendant(_app: web.Application) -> AsyncIterator[None]:
        await components.attendant.start()
        yield
        await components.attendant.close()

    async def fastagi(_app: web.Application) -> AsyncIterator[None]:
        await components.fastagi.start()
        log.info("fastagi listening", host=settings.agi.host, port=settings.agi.port)
        yield
        await components.fastagi.close()

    async def incidents(_app: web.Application) -> AsyncIterator[None]:
        await components.crisis_calls.start()
        await components.deadline_watchdog.start()
        await components.police_fallback.start()
        yield
        await components.police_fallback.close()
        await components.deadline_watchdog.close()
        await components.crisis_calls.close()
        await components.police.close()

    app.cleanup_ctx.extend([database, redis, webhook, voicemail])
    app.cleanup_ctx.append(incidents)
    if settings.ami.enabled:
        app.cleanup_ctx.extend([ami, dialer_link, duty_chain])
        if settings.voicemail.dial_callbacks:
            app.cleanup_ctx.append(dialer)
    app.cleanup_ctx.append(attendant)
    if settings.agi.enabled:
        app.cleanup_ctx.append(fastagi)
    calls_http.add_routes(app)
    calls_transfer_http.add_routes(app)
    people_http.add_routes(app)
    rules_http.add_routes(app)
    staffing_http.add_routes(app)
    alerts_http.add_routes(app)
    stats_http.add_routes(app)
    prompts_http.add_routes(app)
    voicemail_http.add_routes(app)
    incidents_http.add_routes(app)
    monitoring_http.add_routes(app)
    police_http.add_routes(app)
    duty_http.add_routes(app)
    health_http.add_routes(app)
    metrics_http.add_routes(app, components.agi_metrics)
    openapi_http.add_routes(app)
    return app
