"""The duty roster: duty officers (a name and a phone through the carrier) and the stretches
they are on duty, in escalation order. Admins and supervisors edit it (audited); the duty
alert chain (crisis/duty_calls.py) reads it through `chain_at`.

Each method is one unit of work: its own session, the change and its audit entry committed
together. Windows and numbers are checked by routing/duty_chain.RosterEntry, the same type
the chain decides with, so nothing the API accepts can break the chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import contains_eager

from hotline.audit import Actor, record_audit
from hotline.clock import Clock
from hotline.db.models import DutyOfficer, DutyRosterEntry, Site, User
from routing.duty_chain import Gap, RosterEntry, roster_gaps

# A 24/7 entry for a year is fine; a typo of a decade is not.
MAX_ENTRY = timedelta(days=366)


class RosterError(Exception):
    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidInput(RosterError):
    pass


class NotFound(RosterError):
    pass


@dataclass(frozen=True)
class OfficerView:
    id: int
    name: str
    number: str
    user_id: int | None
    active: bool

    @classmethod
    def of(cls, row: DutyOfficer) -> OfficerView:
        return cls(row.id, row.name, row.number, row.user_id, row.active)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "number": self.number,
                "user_id": self.user_id, "active": self.active}


@dataclass(frozen=True)
class EntryView:
    id: int
    officer_id: int
    officer_name: str
    number: str
    officer_active: bool
    site: str | None
    starts_at: datetime
    ends_at: datetime
    position: int

    @classmethod
    def of(cls, row: DutyRosterEntry) -> EntryView:
        return cls(row.id, row.officer_id, row.officer.name, row.officer.number,
                   row.officer.active, row.site_code, row.starts_at, row.ends_at, row.position)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "officer_id": self.officer_id, "officer_name": self.officer_name,
                "number": self.number, "site": self.site, "starts_at": self.starts_at,
                "ends_at": self.ends_at, "position": self.position}

    def chain_entry(self) -> RosterEntry:
        return RosterEntry(self.officer_id, self.number, self.starts_at, self.ends_at)


_ANY_INSTANT = datetime(2026, 1, 1, tzinfo=UTC)


def _check_number(number: str) -> None:
    """The chain's own check (digits, an optional +): the number goes into an Originate."""
    try:
        RosterEntry(0, number, _ANY_INSTANT, _ANY_INSTANT + timedelta(seconds=1))
    except ValueError as error:
        raise InvalidInput(str(error), {"field": "number"}) from None


class DutyRoster:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    # -- officers --------------------------------------------------------------------------

    async def officers(self, *, include_inactive: bool = False) -> list[OfficerView]:
        async with self._sessions() as session:
            query = select(DutyOfficer).order_by(DutyOfficer.id)
            if not include_inactive:
                query = query.where(DutyOfficer.active)
            return [OfficerView.of(row) for row in (await session.scalars(query)).all()]

    async def add_officer(self, actor: Actor, *, name: str, number: str,
                          user_id: int | None = None) -> OfficerView:
        _check_number(number)
        async with self._sessions() as session:
            await self._check_user(session, user_id)
            row = DutyOfficer(name=name, number=number, user_id=user_id, active=True)
            session.add(row)
            await session.flush()
            view = OfficerView.of(row)
            record_audit(session, actor=actor, at=self._clock.now(), action="duty.officer.create",
                         target=f"duty_officer:{row.id}", after=view.as_json())
            await session.commit()
            return view

    async def update_officer(self, actor: Actor, officer_id: int,
                             changes: dict[str, Any]) -> OfficerView:
        if "number" in changes:
            _check_number(str(changes["number"]))
        async with self._sessions() as session:
            row = await session.get(DutyOfficer, officer_id)
            if row is None:
                raise NotFound(f"no duty officer {officer_id}")
            if "user_id" in changes:
                await self._check_user(session, changes["user_id"])
            before = OfficerView.of(row).as_json()
            for name in ("name", "number", "user_id", "active"):
                if name in changes:
                    setattr(row, name, changes[name])
            after = OfficerView.of(row)
            record_audit(session, actor=actor, at=self._clock.now(), action="duty.officer.update",
                         target=f"duty_officer:{officer_id}", before=before,
                         after=after.as_json())
            await session.commit()
            return after

    async def remove_officer(self, actor: Actor, officer_id: int) -> None:
        """Deactivate: the chain no longer rings them, and the calls already made for past
        alerts keep naming them."""
        await self.update_officer(actor, officer_id, {"active": False})

    async def _check_user(self, session: AsyncSession, user_id: int | None) -> None:
        if user_id is not None and await session.get(User, user_id) is None:
            raise InvalidInput(f"no user {user_id}", {"field": "user_id"})

    # -- roster entries --------------------------------------------------------------------

    async def entries(self, start: datetime, end: datetime, *,
                      site: str | None = None) -> list[EntryView]:
        """Entries overlapping [start, end) (of `site` and of every site), in escalation
        order."""
        async with self._sessions() as session:
            return await self._entries(session, start, end, site)

    async def _entries(self, session: AsyncSession, start: datetime, end: datetime,
                       site: str | None) -> list[EntryView]:
        query = (select(DutyRosterEntry).join(DutyRosterEntry.officer)
                 .options(contains_eager(DutyRosterEntry.officer))
                 .where(DutyRosterEntry.starts_at < end, DutyRosterEntry.ends_at > start)
                 .order_by(DutyRosterEntry.position, DutyRosterEntry.starts_at,
                           DutyRosterEntry.id))
        if site is not None:
            query = query.where(or_(DutyRosterEntry.site_code.is_(None),
                                    DutyRosterEntry.site_code == site))
        rows = (await session.scalars(query)).all()
        return [EntryView.of(row) for row in rows]

    async def add_entry(self, actor: Actor, *, officer_id: int, starts_at: datetime,
                        ends_at: datetime, position: int = 0,
                        site: str | None = None) -> EntryView:
        if ends_at - starts_at > MAX_ENTRY:
            raise InvalidInput("a duty window lasts at most 366 days", {"field": "ends_at"})
        async with self._sessions() as session:
            officer = await session.get(DutyOfficer, officer_id)
            if officer is None or not officer.active:
                raise InvalidInput(f"no active duty officer {officer_id}",
                                   {"field": "officer_id"})
            try:
                RosterEntry(officer_id, officer.number, starts_at, ends_at)
            except ValueError as error:
                raise InvalidInput(str(error), {"field": "ends_at"}) from None
            if site is not None and await session.scalar(
                    select(Site.id).where(Site.code == site)) is None:
                raise InvalidInput(f"no site {site!r}", {"field": "site"})
            row = DutyRosterEntry(officer_id=officer_id, site_code=site, starts_at=starts_at,
                                  ends_at=ends_at, position=position)
            row.officer = officer
            session.add(row)
            await session.flush()
            view = EntryView.of(row)
            record_audit(session, actor=actor, at=self._clock.now(), action="duty.roster.create",
                         target=f"duty_roster:{row.id}",
                         after=_entry_audit(view))
            await session.commit()
            return view

    async def delete_entry(self, actor: Actor, entry_id: int) -> None:
        async with self._sessions() as session:
            row = await session.get(DutyRosterEntry, entry_id)
            if row is None:
                raise NotFound(f"no duty roster entry {entry_id}")
            await session.refresh(row, ["officer"])
            before = _entry_audit(EntryView.of(row))
            await session.delete(row)
            record_audit(session, actor=actor, at=self._clock.now(), action="duty.roster.delete",
                         target=f"duty_roster:{entry_id}", before=before)
            await session.commit()

    # -- what the chain and the rota view need ---------------------------------------------

    async def chain_at(self, at: datetime, site: str | None) -> list[RosterEntry]:
        """The roster entries of active officers covering `at`, in escalation order: what
        routing/duty_chain.next_actions takes."""
        async with self._sessions() as session:
            views = await self._entries(session, at, at + timedelta(microseconds=1), site)
        return [view.chain_entry() for view in views if view.officer_active]

    async def on_duty(self, site: str | None = None) -> list[EntryView]:
        """Who is on duty now, in escalation order (an officer once, at their first entry)."""
        now = self._clock.now()
        async with self._sessions() as session:
            views = await self._entries(session, now, now + timedelta(microseconds=1), site)
        seen: set[int] = set()
        found = []
        for view in views:
            if view.officer_active and view.officer_id not in seen:
                seen.add(view.officer_id)
                found.append(view)
        return found

    @staticmethod
    def gaps(entries: Sequence[EntryView], start: datetime, end: datetime) -> list[Gap]:
        return roster_gaps([e.chain_entry() for e in entries if e.officer_active], start, end)


def _entry_audit(view: EntryView) -> dict[str, Any]:
    return {"officer_id": view.officer_id, "officer_name": view.officer_name,
            "site": view.site, "starts_at": view.starts_at.isoformat(),
            "ends_at": view.ends_at.isoformat(), "position": view.position}
