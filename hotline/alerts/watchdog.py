"""The line watchdog: every few seconds, is each site's line healthy? An alert (and the duty
notification) when a site's line is open and nobody can answer for the site's threshold,
when a caller has waited longer than the queue's threshold, or when the carrier trunk is
unreachable; the alert is resolved when the problem is gone. The decisions are pure
(routing/line_health.py); this task gathers the snapshot and writes the alerts.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from sqlalchemy.exc import SQLAlchemyError

from ami_listener.queue_view import UNREACHABLE_STATES, QueueView
from hotline.alerts.services import Alerts
from hotline.clock import Clock
from hotline.rules.published import RoutingTable
from hotline.staffing.roster import Roster
from hotline.tasks import cancel_and_wait
from routing.line_health import LineProblem, QueueWait, SiteLine, due, line_problems

log = structlog.get_logger(__name__)

KINDS = ("unstaffed", "long_wait", "trunk_down")


class LineWatchdog:
    def __init__(self, *, alerts: Alerts, roster: Roster, routing: RoutingTable,
                 view: QueueView, clock: Clock, interval_seconds: float = 5.0,
                 wait_alert_seconds: int = 120, trunk_alert_seconds: float = 30.0,
                 trunk_interface: str = "PJSIP/carrier") -> None:
        self._alerts = alerts
        self._roster = roster
        self._routing = routing
        self._view = view
        self._clock = clock
        self._interval = interval_seconds
        self._wait_alert = wait_alert_seconds
        self._trunk_alert = trunk_alert_seconds
        self._trunk = trunk_interface
        self._first_seen: dict[str, float] = {}
        self._raised: set[str] | None = None
        self._task: asyncio.Task[None] | None = None
        self.checks = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="line-watchdog")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check_once()
            except (SQLAlchemyError, OSError) as error:
                log.warning("line watchdog could not write alerts", error=repr(error))

    def snapshot(self) -> list[SiteLine]:
        now = self._clock.now()
        lines = []
        for site in self._roster.state.sites.values():
            seats = self._roster.seats(site.code, now, self._view.registered)
            on_duty = [seat for seat in seats if seat.on_duty]
            reachable = [seat for seat in on_duty
                         if self._view.registered(seat.counsellor.interface)
                         is not False and not seat.pause_reason]
            waits = [QueueWait(queue.name, self._view.longest_wait(queue.name, now),
                               queue.wait_alert_seconds or self._wait_alert)
                     for queue in self._roster.state.queues.values()
                     if queue.site_code == site.code]
            lines.append(SiteLine(site.code, self._routing.is_open(site.code, now),
                                  len(on_duty), len(reachable), site.unstaffed_alert_seconds,
                                  waits))
        return lines

    def problems(self) -> list[LineProblem]:
        device = self._view.devices.get(self._trunk)
        trunk = None if device is None else device not in UNREACHABLE_STATES
        return line_problems(self.snapshot(), trunk_reachable=trunk,
                             trunk_alert_seconds=self._trunk_alert)

    async def check_once(self) -> None:
        # Without the AMI view nothing is known: no alert from ignorance (health shows AMI).
        if not (self._view.ready and self._roster.loaded):
            return
        if self._raised is None:
            self._raised = await self._alerts.open_keys(KINDS)
        problems = self.problems()
        ready, _cleared = due(problems, self._first_seen, time.monotonic())
        for problem in ready:
            await self._alerts.raise_alert(key=problem.key, kind=problem.kind,
                                           summary=problem.summary, site=problem.site,
                                           severity=problem.severity, details=problem.details)
            self._raised.add(problem.key)
        current = {problem.key for problem in problems}
        for key in sorted(self._raised - current):
            await self._alerts.resolve(key)
            self._raised.discard(key)
        self.checks += 1
