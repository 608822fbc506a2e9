"""The published rules in memory: what the FastAGI server routes with.

Loaded from the database at start, after every publish (a Redis message reaches every
node), and every `refresh_seconds` as a backstop. A call reads only this memory: no call
waits on the database for its route. A reload builds a new state and swaps it in one
assignment, so a call never sees half of one version and half of another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotline.clock import Clock
from hotline.db.models import Counsellor, FlagKind, Shift
from hotline.rules import storage
from hotline.rules.calendar_source import build_calendar, years_around
from routing.callers import CallerNumber
from routing.defaults import default_rules
from routing.hours import HolidayCalendar, is_open, local_time, overrides_by_date
from routing.membership import CounsellorOnDuty, queue_members
from routing.menu import CallerContext
from routing.rules import RuleSet
from routing.snapshot import RulesSnapshot

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SiteRouting:
    code: str
    version: int
    rules: RuleSet
    # Prompt name in the rules → the Asterisk sound played (pinned prompt versions).
    sounds: Mapping[str, str]
    queue_kinds: Mapping[str, str]

    def sound(self, prompt: str) -> str:
        return self.sounds.get(prompt, prompt)


@dataclass(frozen=True)
class DutyWindow:
    """A counsellor's shift and the queues they answer during it."""

    site_code: str
    starts_at: datetime
    ends_at: datetime
    queues: frozenset[str]


@dataclass(frozen=True)
class RoutingState:
    sites: Mapping[str, SiteRouting]
    calendar: HolidayCalendar
    # Normalised number → when it was last flagged high-risk.
    high_risk: Mapping[str, datetime] = field(default_factory=dict)
    abusive: frozenset[str] = frozenset()
    duty: tuple[DutyWindow, ...] = ()
    loaded: bool = False


def fallback_site(code: str, queue_kinds: Mapping[str, str], crisis_priority: int) -> SiteRouting:
    """A site with nothing published yet routes with the default 12355 rules."""
    by_kind = {kind: name for name, kind in queue_kinds.items()}
    rules = default_rules(crisis_queue=by_kind.get("crisis", "crisis"),
                          psych_queue=by_kind.get("psych", "psych"),
                          legal_queue=by_kind.get("legal", "legal"),
                          crisis_priority=crisis_priority)
    return SiteRouting(code, 0, rules, {}, queue_kinds)


class StaffedBy(Protocol):
    """Who is on duty for which queue now (the roster: shifts, log in / out)."""

    @property
    def loaded(self) -> bool: ...

    def on_duty_queues(self, site_code: str, at: datetime) -> set[str]: ...


class RoutingTable:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 default_site: str, crisis_priority: int, node: str = "sandbox",
                 on_loaded: Callable[[list[tuple[RulesSnapshot, bool]]], Awaitable[None]]
                 | None = None, staffed_by: StaffedBy | None = None) -> None:
        self._sessions = sessions
        self._clock = clock
        self.default_site = default_site
        self._crisis_priority = crisis_priority
        self._node = node
        # Called with the classic AGI fallback's snapshots after every load.
        self._on_loaded = on_loaded
        self._staffed_by = staffed_by
        default = fallback_site(default_site, {"crisis": "crisis", "psych": "psych",
                                               "legal": "legal"}, crisis_priority)
        self.state = RoutingState({default_site: default}, HolidayCalendar())
        self.reloads = 0
        self.last_error: str | None = None

    # -- what a call reads ------------------------------------------------------------------

    def site(self, code: str) -> SiteRouting:
        sites = self.state.sites
        return sites.get(code) or sites.get(self.default_site) or next(iter(sites.values()))

    def caller(self, site: SiteRouting, number: CallerNumber, now: datetime) -> CallerContext:
        if not number.number:
            return CallerContext()
        flagged_at = self.state.high_risk.get(number.number)
        window = timedelta(days=site.rules.callers.high_risk_days)
        return CallerContext(high_risk=flagged_at is not None and now - flagged_at <= window,
                             abusive=number.number in self.state.abusive)

    def is_open(self, site_code: str, now: datetime) -> bool:
        """Whether the site's line is in service hours now (the watchdog's "line open")."""
        rules = self.site(site_code).rules
        local = local_time(now, rules.timezone)
        return is_open(rules.hours.site, self.state.calendar, local,
                       overrides_by_date(rules.hours.overrides))

    def staffed(self, site_code: str, now: datetime) -> Callable[[str], bool]:
        if self._staffed_by is not None:
            if not self._staffed_by.loaded:
                return lambda _queue: True
            return self._staffed_by.on_duty_queues(site_code, now).__contains__
        if not self.state.loaded:
            # Shifts unknown (nothing read yet): try the queue; the dialplan leaves an empty
            # queue at once for the on-call numbers.
            return lambda _queue: True
        queues: set[str] = set()
        for window in self.state.duty:
            if window.site_code == site_code and window.starts_at <= now < window.ends_at:
                queues |= window.queues
        return queues.__contains__

    # -- loading --------------------------------------------------------------------------

    async def load(self) -> None:
        now = self._clock.now()
        async with self._sessions() as session:
            state = await self._read(session, now)
        self.state = state
        self.reloads += 1
        self.last_error = None
        log.info("routing rules loaded", sites={c: s.version for c, s in state.sites.items()})
        if self._on_loaded is not None:
            await self._on_loaded(self.snapshots(now))

    def snapshots(self, now: datetime) -> list[tuple[RulesSnapshot, bool]]:
        """What the classic AGI fallback routes with: one snapshot per site (and whether it
        is the default site's), flags resolved against each site's high-risk window."""
        state = self.state
        result = []
        for code, site in state.sites.items():
            window = timedelta(days=site.rules.callers.high_risk_days)
            result.append((RulesSnapshot.create(
                site_code=code, rules_version=site.version, rules=site.rules, node=self._node,
                written_at=now, calendar=state.calendar, sounds=site.sounds,
                high_risk_numbers=[n for n, at in state.high_risk.items() if now - at <= window],
                abusive_numbers=state.abusive), code == self.default_site))
        return result

    async def reload_quietly(self) -> None:
        """Reload, keeping the rules in memory when the database cannot be read."""
        try:
            await self.load()
        except Exception as error:
            self.last_error = repr(error)
            log.warning("routing rules reload failed; the loaded rules keep serving",
                        error=repr(error))

    async def _read(self, session: AsyncSession, now: datetime) -> RoutingState:
        from hotline.prompts.services import sounds_for_versions

        sites = await storage.all_sites(session)
        published = {v.site_id: v for v in await storage.published_versions(session)}
        routing: dict[str, SiteRouting] = {}
        for site in sites:
            kinds = {queue.name: queue.kind.value for queue in site.queues}
            version = published.get(site.id)
            if version is None:
                routing[site.code] = fallback_site(site.code, kinds, self._crisis_priority)
                continue
            try:
                rules = RuleSet.model_validate(version.document)
            except ValidationError as error:
                # Only validated documents are published; a hand-edited row must not stop
                # every site from loading.
                log.error("published rules unreadable; default rules serve the site",
                          site=site.code, version=version.version, error=str(error))
                routing[site.code] = fallback_site(site.code, kinds, self._crisis_priority)
                continue
            sounds = await sounds_for_versions(session, site.id, version.prompt_versions or {})
            routing[site.code] = SiteRouting(site.code, version.version, rules, sounds, kinds)
        if self.default_site not in routing:
            routing[self.default_site] = self.site(self.default_site)
        calendar = build_calendar(years_around(now.date()), await storage.entered_years(session))
        high_risk: dict[str, datetime] = {}
        abusive: set[str] = set()
        for flag in await storage.active_flags(session, now):
            if flag.kind == FlagKind.HIGH_RISK:
                high_risk[flag.number] = max(flag.created_at,
                                             high_risk.get(flag.number, flag.created_at))
            else:
                abusive.add(flag.number)
        duty = await self._duty_windows(session, sites_by_id={s.id: s for s in sites}, now=now,
                                        routing=routing)
        return RoutingState(routing, calendar, high_risk, frozenset(abusive), duty, loaded=True)

    async def _duty_windows(self, session: AsyncSession, *, sites_by_id: Mapping[int, object],
                            now: datetime,
                            routing: Mapping[str, SiteRouting]) -> tuple[DutyWindow, ...]:
        rows = (await session.execute(
            select(Shift, Counsellor).join(Counsellor, Shift.counsellor_id == Counsellor.id)
            .where(Shift.ends_at > now - timedelta(hours=1),
                   Shift.starts_at < now + timedelta(days=14),
                   Counsellor.active.is_(True)))).all()
        windows = []
        for shift, counsellor in rows:
            site = sites_by_id.get(counsellor.site_id)
            code = getattr(site, "code", None)
            if code is None or code not in routing:
                continue
            on_duty = CounsellorOnDuty(counsellor.id, counsellor.sip_username, counsellor.name,
                                       counsellor.tier.value, frozenset(counsellor.skills or []))
            queues = frozenset(name for name, kind in routing[code].queue_kinds.items()
                               if queue_members(kind, [on_duty]))
            windows.append(DutyWindow(code, shift.starts_at, shift.ends_at, queues))
        return tuple(windows)
