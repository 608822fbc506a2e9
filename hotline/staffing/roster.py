"""The roster in memory: counsellors, their duty windows and what they said about their
availability, loaded from the database. Queue membership, the routing table's "is anyone
on duty" and the live state read it without a query; it is reloaded after every change
(on this node at once, on the others through Redis) and every minute as a backstop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from hotline.clock import Clock
from hotline.db.models import (
    Call,
    Counsellor,
    CounsellorPresence,
    QueueKind,
    Shift,
    ShiftKind,
    ShiftTemplate,
    Site,
)
from routing.membership import CounsellorOnDuty, DesiredMember, Seat, desired_members
from routing.shifts import (
    DatedShift,
    DutyWindow,
    SelfService,
    WeeklyShift,
    duty_windows,
    on_duty,
    parse_start,
    window_at,
)

log = structlog.get_logger(__name__)

# Duty windows are expanded this far around "now"; a reload every minute keeps them fresh.
WINDOW_BEHIND = timedelta(days=1)
WINDOW_AHEAD = timedelta(days=2)


@dataclass(frozen=True)
class QueueInfo:
    name: str
    kind: str
    site_code: str
    wrapup_seconds: int | None
    wait_alert_seconds: int | None


@dataclass(frozen=True)
class SiteInfo:
    code: str
    zone: ZoneInfo
    debrief_seconds: int
    crisis_cap_per_shift: int | None
    unstaffed_alert_seconds: int


@dataclass(frozen=True)
class CounsellorInfo:
    id: int
    site_code: str
    name: str
    tier: str
    seat: str
    skills: frozenset[str]
    sip_username: str
    extension: str | None
    user_id: int | None

    mobile_number: str | None = None

    @property
    def interface(self) -> str:
        return self.on_duty_view().interface

    def on_duty_view(self) -> CounsellorOnDuty:
        return CounsellorOnDuty(self.id, self.sip_username, self.name, self.tier, self.skills,
                                mobile=self.seat == "mobile" and bool(self.mobile_number))


@dataclass(frozen=True)
class RosterState:
    sites: Mapping[str, SiteInfo] = field(default_factory=dict)
    queues: Mapping[str, QueueInfo] = field(default_factory=dict)
    counsellors: Mapping[int, CounsellorInfo] = field(default_factory=dict)
    windows: tuple[DutyWindow, ...] = ()
    own: Mapping[int, SelfService] = field(default_factory=dict)
    # Crisis calls answered in the counsellor's current shift (for the cap).
    crisis_calls: Mapping[int, int] = field(default_factory=dict)
    loaded: bool = False

    def by_interface(self) -> dict[str, CounsellorInfo]:
        return {c.interface: c for c in self.counsellors.values()}


class Roster:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 on_loaded: Callable[[], Awaitable[None] | None] | None = None) -> None:
        self._sessions = sessions
        self._clock = clock
        self._on_loaded = on_loaded
        self.state = RosterState()
        self._interfaces: dict[str, CounsellorInfo] = {}
        self.reloads = 0
        self.last_error: str | None = None
        # Crisis calls answered since the last load (the database catches up on reload).
        self._recent_crisis: dict[int, int] = {}

    # -- reads ------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self.state.loaded

    def counsellor_for_interface(self, interface: str) -> tuple[int, str] | None:
        """The call journal's directory: an interface → (counsellor id, name)."""
        counsellor = self._interfaces.get(interface)
        return (counsellor.id, counsellor.name) if counsellor else None

    def counsellor(self, interface: str) -> CounsellorInfo | None:
        return self._interfaces.get(interface)

    def counsellor_by_extension(self, extension: str) -> CounsellorInfo | None:
        for counsellor in self.state.counsellors.values():
            if counsellor.extension == extension:
                return counsellor
        return None

    def counsellor_of_user(self, user_id: int) -> CounsellorInfo | None:
        for counsellor in self.state.counsellors.values():
            if counsellor.user_id == user_id:
                return counsellor
        return None

    def shift_of(self, counsellor_id: int, at: datetime) -> DutyWindow | None:
        return window_at(self.state.windows, counsellor_id, at)

    def crisis_calls(self, counsellor_id: int) -> int:
        return self.state.crisis_calls.get(counsellor_id, 0) + self._recent_crisis.get(
            counsellor_id, 0)

    def note_crisis_call(self, counsellor_id: int) -> None:
        self._recent_crisis[counsellor_id] = self._recent_crisis.get(counsellor_id, 0) + 1

    def seats(self, site_code: str, at: datetime,
              registered: Callable[[str], bool | None]) -> list[Seat]:
        state = self.state
        seats = []
        for counsellor in state.counsellors.values():
            if counsellor.site_code != site_code:
                continue
            own = state.own.get(counsellor.id, SelfService())
            seats.append(Seat(
                counsellor.on_duty_view(),
                on_duty=on_duty(counsellor.id, state.windows, own, at),
                pause_reason=own.pause_at(at),
                registered=registered(counsellor.interface),
                crisis_calls=self.crisis_calls(counsellor.id)))
        return seats

    def desired(self, at: datetime, registered: Callable[[str], bool | None],
                crisis_waiting: Callable[[str], bool] = lambda _site: False,
                ) -> dict[str, dict[str, DesiredMember]]:
        """Every managed queue → the members it should have now."""
        result: dict[str, dict[str, DesiredMember]] = {}
        seats_by_site = {code: self.seats(code, at, registered) for code in self.state.sites}
        for queue in self.state.queues.values():
            site = self.state.sites[queue.site_code]
            result[queue.name] = desired_members(
                queue.kind, seats_by_site[queue.site_code], crisis_cap=site.crisis_cap_per_shift,
                crisis_waiting=crisis_waiting(queue.site_code))
        return result

    def on_duty_queues(self, site_code: str, at: datetime) -> set[str]:
        """The site's queues someone is on duty for now (registered or not)."""
        desired = self.desired(at, lambda _interface: None)
        return {name for name, members in desired.items()
                if members and self.state.queues[name].site_code == site_code}

    # -- loading ----------------------------------------------------------------------------

    async def load(self) -> None:
        now = self._clock.now()
        async with self._sessions() as session:
            state = await _read(session, now)
        self.state = state
        self._interfaces = state.by_interface()
        self._recent_crisis = {}
        self.reloads += 1
        self.last_error = None
        if self._on_loaded is not None:
            result = self._on_loaded()
            if result is not None:
                await result

    async def windows_between(self, start: datetime, end: datetime) -> list[DutyWindow]:
        """The schedule over any period (the rota view), read from the database."""
        async with self._sessions() as session:
            return await _expand(session, self.state.sites, self.state.counsellors, start, end)

    async def reload_quietly(self) -> bool:
        """Reload; on a database error keep the roster in memory (calls go on)."""
        try:
            await self.load()
        except (SQLAlchemyError, OSError) as error:
            self.last_error = repr(error)
            log.warning("roster not reloaded; keeping the one in memory", error=repr(error))
            return False
        return True


async def _read(session: AsyncSession, now: datetime) -> RosterState:
    sites = (await session.scalars(
        select(Site).options(selectinload(Site.queues)).order_by(Site.id))).all()
    site_infos = {site.code: SiteInfo(site.code, ZoneInfo(site.timezone), site.debrief_seconds,
                                      site.crisis_cap_per_shift, site.unstaffed_alert_seconds)
                  for site in sites}
    code_of = {site.id: site.code for site in sites}
    queues = {queue.name: QueueInfo(queue.name, queue.kind.value, site.code,
                                    queue.wrapup_seconds, queue.wait_alert_seconds)
              for site in sites for queue in site.queues if queue.kind != QueueKind.DUTY}
    # The duty queue (the fallback route's) takes everyone on duty too.
    queues.update({queue.name: QueueInfo(queue.name, queue.kind.value, site.code,
                                         queue.wrapup_seconds, queue.wait_alert_seconds)
                   for site in sites for queue in site.queues if queue.kind == QueueKind.DUTY})
    counsellors = (await session.scalars(
        select(Counsellor).where(Counsellor.active.is_(True)).order_by(Counsellor.id))).all()
    infos = {c.id: CounsellorInfo(c.id, code_of[c.site_id], c.name, c.tier.value, c.seat.value,
                                  frozenset(c.skills or []), c.sip_username, c.extension,
                                  c.user_id, c.mobile_number)
             for c in counsellors if c.site_id in code_of}
    start, end = now - WINDOW_BEHIND, now + WINDOW_AHEAD
    windows = await _expand(session, site_infos, infos, start, end)
    presence_rows = (await session.scalars(select(CounsellorPresence))).all()
    own = {row.counsellor_id: SelfService(row.presence.value, row.presence_until,
                                          row.pause_reason.value if row.pause_reason else None,
                                          row.pause_until)
           for row in presence_rows}
    crisis_queues = [q.name for q in queues.values() if q.kind == QueueKind.CRISIS]
    crisis_calls: dict[int, int] = {}
    if crisis_queues:
        answered = (await session.execute(
            select(Call.answered_by_counsellor_id, Call.answered_at).where(
                Call.answered_by_counsellor_id.is_not(None), Call.queue.in_(crisis_queues),
                Call.answered_at >= start))).all()
        for counsellor_id, answered_at in answered:
            if counsellor_id is None or answered_at is None:
                continue
            window = window_at(windows, counsellor_id, now)
            if window is not None and answered_at >= window.starts_at:
                crisis_calls[counsellor_id] = crisis_calls.get(counsellor_id, 0) + 1
    return RosterState(site_infos, queues, infos, tuple(windows), own, crisis_calls, loaded=True)


async def _expand(session: AsyncSession, site_infos: Mapping[str, SiteInfo],
                  infos: Mapping[int, CounsellorInfo], start: datetime,
                  end: datetime) -> list[DutyWindow]:
    templates = (await session.scalars(
        select(ShiftTemplate).where(ShiftTemplate.counsellor_id.in_(list(infos))))).all()
    overrides = (await session.scalars(
        select(Shift).where(Shift.counsellor_id.in_(list(infos)), Shift.ends_at > start,
                            Shift.starts_at < end))).all()
    windows: list[DutyWindow] = []
    for code, site in site_infos.items():
        ids = {c.id for c in infos.values() if c.site_code == code}
        weekly = []
        for template in templates:
            if template.counsellor_id not in ids:
                continue
            try:
                weekly.append(WeeklyShift(template.counsellor_id, template.weekday,
                                          parse_start(template.start), template.minutes,
                                          template.valid_from, template.valid_until))
            except ValueError as error:  # a bad row must not take the whole roster down
                log.error("shift template ignored", template=template.id, error=str(error))
        dated = [DatedShift(o.counsellor_id, o.starts_at, o.ends_at, o.kind == ShiftKind.OFF)
                 for o in overrides if o.counsellor_id in ids]
        windows += duty_windows(weekly, dated, start=start, end=end, zone=site.zone)
    return windows
