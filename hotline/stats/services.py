"""Use case: the answer-rate report of one site over a period, grouped by site, queue,
shift slot or counsellor. Reads only; one session per report."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotline.clock import Clock
from hotline.stats import storage
from hotline.stats.figures import (
    CounsellorFigures,
    Figures,
    OfferedCall,
    by_queue,
    by_shift,
    counsellor_figures,
    figures,
    parse_slot_start,
    shift_slots,
)
from hotline.stats.periods import Period, PeriodError, resolve_period
from routing.deadlines import BreachCount, DeadlineKind, DeadlineRecord, breach_counts


class Group(enum.StrEnum):
    SITE = "site"
    QUEUE = "queue"
    SHIFT = "shift"
    COUNSELLOR = "counsellor"


class StatsError(Exception):
    status = 400

    def __init__(self, message: str, detail: object = None) -> None:
        super().__init__(message)
        self.message, self.detail = message, detail


class NotFound(StatsError):
    status = 404


class InvalidPeriod(StatsError):
    status = 400


@dataclass(frozen=True)
class GroupFigures:
    key: str
    label: str
    figures: Figures


@dataclass(frozen=True)
class CounsellorLine:
    counsellor_id: int | None
    name: str
    figures: CounsellorFigures


@dataclass(frozen=True)
class DeadlineFigures:
    """Promises whose deadline falls in the period: crisis intervention within the crisis
    deadline (incidents), callbacks within their reply deadline."""

    crisis: BreachCount
    callbacks: BreachCount


@dataclass(frozen=True)
class AnswerRateReport:
    site: str
    timezone: str
    start: datetime  # site-local
    end: datetime  # site-local
    group: Group
    short_abandon_seconds: int
    generated_at: datetime
    total: Figures
    groups: list[GroupFigures]
    counsellors: list[CounsellorLine]
    deadlines: DeadlineFigures


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def _no_rings(interface: str) -> CounsellorFigures:
    return CounsellorFigures(interface=interface, offered=0, rings=0, answered=0,
                             missed_rings=0, talk_seconds=0.0, crisis_answered=0,
                             answer_rate=None)


def _breaches(records: list[DeadlineRecord], period: Period, now: datetime,
              kind: DeadlineKind) -> BreachCount:
    if period.end <= period.start:  # an empty period holds no deadline
        return BreachCount()
    return breach_counts(records, start=period.start, end=period.end, now=now)[kind]


class AnswerRates:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 default_site: str) -> None:
        self._sessions = sessions
        self._clock = clock
        self._default_site = default_site

    async def report(self, *, site: str | None = None, group: Group = Group.SITE,
                     from_text: str | None = None, to_text: str | None = None
                     ) -> AnswerRateReport:
        code = site or self._default_site
        async with self._sessions() as session:
            facts = await storage.site_facts(session, code)
            if facts is None:
                raise NotFound("no such site", {"site": code})
            zone = _zone(facts.timezone)
            now = self._clock.now()
            try:
                period = resolve_period(from_text, to_text, now=now, zone=zone)
            except PeriodError as error:
                raise InvalidPeriod("invalid period", {
                    "field": error.field, "reason": error.reason,
                    "from": from_text, "to": to_text}) from error
            queues = await storage.site_queues(session, facts.id)
            calls = await storage.offered_calls(session, facts.code, list(queues),
                                                period.start, period.end)
            threshold = facts.short_abandon_seconds
            groups: list[GroupFigures] = []
            lines: list[CounsellorLine] = []
            if group is Group.SITE:
                groups = [GroupFigures(facts.code, facts.code, figures(calls, threshold))]
            elif group is Group.QUEUE:
                groups = [GroupFigures(name, name, result)
                          for name, result in by_queue(calls, list(queues), threshold)]
            elif group is Group.SHIFT:
                slots = shift_slots(await self._slot_starts(session, facts.id, period, zone))
                groups = [GroupFigures(slot.start.strftime("%H:%M"), slot.label, result)
                          for slot, result in by_shift(calls, slots, zone, threshold)]
            else:
                lines = await self._counsellors(session, facts, queues, period, calls)
            crisis, callbacks = await storage.deadline_records(session, facts.code,
                                                               period.start, period.end)
        deadlines = DeadlineFigures(crisis=_breaches(crisis, period, now, DeadlineKind.CRISIS),
                                    callbacks=_breaches(callbacks, period, now,
                                                        DeadlineKind.CONSULTATION))
        return AnswerRateReport(
            site=facts.code, timezone=zone.key, start=period.start.astimezone(zone),
            end=period.end.astimezone(zone), group=group, short_abandon_seconds=threshold,
            generated_at=now.astimezone(zone), total=figures(calls, threshold), groups=groups,
            counsellors=lines, deadlines=deadlines)

    @staticmethod
    async def _slot_starts(session: AsyncSession, site_id: int, period: Period,
                           zone: ZoneInfo) -> list[time]:
        last = period.end - timedelta(microseconds=1) if period.end > period.start else period.end
        texts = await storage.shift_starts(session, site_id, period.start.astimezone(zone).date(),
                                           last.astimezone(zone).date())
        # A malformed template cannot bound a slot.
        return [start for start in map(parse_slot_start, texts) if start is not None]

    @staticmethod
    async def _counsellors(session: AsyncSession, facts: storage.SiteFacts,
                           queues: dict[str, str], period: Period,
                           calls: list[OfferedCall]) -> list[CounsellorLine]:
        events = await storage.leg_events(session, facts.code, list(queues), period.start,
                                          period.end)
        crisis = frozenset(name for name, kind in queues.items() if kind == "crisis")
        per_interface = counsellor_figures(calls, events, crisis)
        people = await storage.counsellors(session, facts.id, list(per_interface))
        known = {person.interface: person for person in people}
        lines = [CounsellorLine(person.id, person.name,
                                per_interface.get(person.interface)
                                or _no_rings(person.interface))
                 for person in people]
        # Members we cannot name (a desk phone, a removed counsellor) still count.
        lines += [CounsellorLine(None, interface, result)
                  for interface, result in sorted(per_interface.items())
                  if interface not in known]
        return lines
