"""Staffing: counsellors' log in / log out / pause, the debrief pause after a crisis call,
weekly shift templates and dated overrides. Every change by a person is audited.

One `Staffing` per application. Each method is one unit of work: its own session, the
change and its audit entry committed together; then `on_change` reloads the roster here
and tells the other nodes, and the queue members follow within a second.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotline.audit import Actor, record_audit
from hotline.clock import Clock
from hotline.db.models import (
    Counsellor,
    CounsellorPresence,
    PauseReason,
    Presence,
    Seat,
    Shift,
    ShiftKind,
    ShiftTemplate,
    Site,
    Tier,
)
from hotline.secrets import new_sip_secret
from hotline.staffing.roster import CounsellorInfo, Roster
from routing.shifts import MAX_SHIFT_MINUTES, WeeklyShift, logout_until, parse_start

log = structlog.get_logger(__name__)

# A log-in outside any shift lasts until the counsellor logs out, at most this long.
AD_HOC_LOGIN = timedelta(hours=12)
MAX_OVERRIDE = timedelta(days=31)


class StaffingError(Exception):
    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidInput(StaffingError):
    pass


class NotFound(StaffingError):
    pass


class Forbidden(StaffingError):
    pass


class Conflict(StaffingError):
    pass


@dataclass(frozen=True)
class PresenceView:
    counsellor_id: int
    presence: str
    presence_until: datetime | None
    pause_reason: str | None
    pause_until: datetime | None
    on_shift: bool

    def as_json(self) -> dict[str, Any]:
        return {"counsellor_id": self.counsellor_id, "presence": self.presence,
                "presence_until": self.presence_until, "pause_reason": self.pause_reason,
                "pause_until": self.pause_until, "on_shift": self.on_shift}


def _presence_json(row: CounsellorPresence) -> dict[str, Any]:
    return {"presence": row.presence.value,
            "presence_until": row.presence_until.isoformat() if row.presence_until else None,
            "pause_reason": row.pause_reason.value if row.pause_reason else None,
            "pause_until": row.pause_until.isoformat() if row.pause_until else None}


class Staffing:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 roster: Roster, on_change: Callable[[], Awaitable[None]]) -> None:
        self._sessions = sessions
        self._clock = clock
        self._roster = roster
        self._on_change = on_change

    # -- who may act on whom ----------------------------------------------------------------

    def counsellor(self, counsellor_id: int) -> CounsellorInfo:
        counsellor = self._roster.state.counsellors.get(counsellor_id)
        if counsellor is None:
            raise NotFound(f"no active counsellor {counsellor_id}")
        return counsellor

    def check_may_act(self, actor: Actor, counsellor: CounsellorInfo) -> None:
        """Admins and supervisors act on anyone; a counsellor only on themselves."""
        if actor.role in ("admin", "supervisor", "system"):
            return
        if actor.username == f"phone:{counsellor.sip_username}":
            return  # their own phone, authenticated by SIP digest
        if actor.user_id is not None and actor.user_id == counsellor.user_id:
            return
        raise Forbidden("a counsellor may log in, log out and pause only themselves")

    # -- log in / log out / pause -----------------------------------------------------------

    async def log_in(self, actor: Actor, counsellor_id: int) -> PresenceView:
        counsellor = self.counsellor(counsellor_id)
        self.check_may_act(actor, counsellor)
        now = self._clock.now()
        shift = self._roster.shift_of(counsellor_id, now)
        # On a shift, logging in just follows the schedule again; off shift it is ad hoc.
        if shift is not None:
            return await self._write(actor, counsellor_id, "presence.login",
                                     presence=Presence.SCHEDULE, until=None)
        return await self._write(actor, counsellor_id, "presence.login",
                                 presence=Presence.LOGGED_IN, until=now + AD_HOC_LOGIN)

    async def log_out(self, actor: Actor, counsellor_id: int) -> PresenceView:
        counsellor = self.counsellor(counsellor_id)
        self.check_may_act(actor, counsellor)
        now = self._clock.now()
        until = logout_until(counsellor_id, self._roster.state.windows, now)
        return await self._write(actor, counsellor_id, "presence.logout",
                                 presence=Presence.LOGGED_OUT, until=until)

    async def pause(self, actor: Actor, counsellor_id: int, reason: str,
                    seconds: int | None = None) -> PresenceView:
        counsellor = self.counsellor(counsellor_id)
        self.check_may_act(actor, counsellor)
        try:
            pause_reason = PauseReason(reason)
        except ValueError:
            raise InvalidInput(f"unknown pause reason {reason!r}",
                               {"allowed": [r.value for r in PauseReason]}) from None
        if seconds is not None and not 0 < seconds <= 24 * 3600:
            raise InvalidInput("a pause lasts 1 second to 24 hours")
        now = self._clock.now()
        until = now + timedelta(seconds=seconds) if seconds else None
        return await self._write(actor, counsellor_id, "presence.pause",
                                 pause_reason=pause_reason, pause_until=until, paused_at=now)

    async def unpause(self, actor: Actor, counsellor_id: int) -> PresenceView:
        counsellor = self.counsellor(counsellor_id)
        self.check_may_act(actor, counsellor)
        return await self._write(actor, counsellor_id, "presence.unpause",
                                 pause_reason=None, pause_until=None, paused_at=None)

    async def start_debrief(self, counsellor_id: int, queue: str) -> PresenceView | None:
        """After a crisis call: the site's debrief pause (ends by itself, or by unpause)."""
        counsellor = self._roster.state.counsellors.get(counsellor_id)
        if counsellor is None:
            return None
        self._roster.note_crisis_call(counsellor_id)
        site = self._roster.state.sites.get(counsellor.site_code)
        seconds = site.debrief_seconds if site else 0
        if seconds <= 0:
            await self._on_change()  # the crisis cap may apply now
            return None
        now = self._clock.now()
        return await self._write(Actor.system("debrief"), counsellor_id, "presence.debrief",
                                 pause_reason=PauseReason.DEBRIEF,
                                 pause_until=now + timedelta(seconds=seconds), paused_at=now,
                                 note={"queue": queue})

    async def presence(self, counsellor_id: int) -> PresenceView:
        self.counsellor(counsellor_id)
        async with self._sessions() as session:
            row = await session.get(CounsellorPresence, counsellor_id)
        return self._view(counsellor_id, row)

    def _view(self, counsellor_id: int, row: CounsellorPresence | None) -> PresenceView:
        now = self._clock.now()
        on_shift = self._roster.shift_of(counsellor_id, now) is not None
        if row is None:
            return PresenceView(counsellor_id, Presence.SCHEDULE.value, None, None, None, on_shift)
        presence, until = row.presence.value, row.presence_until
        if until is not None and until <= now:
            presence, until = Presence.SCHEDULE.value, None
        reason, pause_until = (row.pause_reason.value if row.pause_reason else None,
                               row.pause_until)
        if pause_until is not None and pause_until <= now:
            reason, pause_until = None, None
        return PresenceView(counsellor_id, presence, until, reason, pause_until, on_shift)

    async def _write(self, actor: Actor, counsellor_id: int, action: str, *,
                     note: dict[str, Any] | None = None, **fields: Any) -> PresenceView:
        now = self._clock.now()
        async with self._sessions() as session:
            row = await session.get(CounsellorPresence, counsellor_id)
            if row is None:
                row = CounsellorPresence(counsellor_id=counsellor_id, presence=Presence.SCHEDULE)
                session.add(row)
            before = _presence_json(row)
            if "presence" in fields:
                row.presence = fields["presence"]
                row.presence_until = fields["until"]
                row.presence_since = now
            for key in ("pause_reason", "pause_until", "paused_at"):
                if key in fields:
                    setattr(row, key, fields[key])
            record_audit(session, actor=actor, at=now, action=action,
                         target=f"counsellor:{counsellor_id}", before=before,
                         after={**_presence_json(row), **(note or {})})
            await session.commit()
            view = self._view(counsellor_id, row)
        log.info("presence changed", counsellor=counsellor_id, action=action, by=actor.username)
        await self._on_change()
        return view

    # -- counsellors ------------------------------------------------------------------------

    COUNSELLOR_FIELDS = ("name", "tier", "seat", "skills", "extension", "mobile_number",
                         "user_id", "active")

    @staticmethod
    def _typed(fields: dict[str, Any]) -> dict[str, Any]:
        typed = dict(fields)
        if typed.get("tier") is not None:
            typed["tier"] = Tier(typed["tier"])
        if typed.get("seat") is not None:
            typed["seat"] = Seat(typed["seat"])
        return typed

    async def create_counsellor(self, actor: Actor, *, site: str, sip_username: str,
                                **fields: Any) -> tuple[Counsellor, str]:
        """A new counsellor and their SIP secret (shown once; Asterisk needs it rendered)."""
        now = self._clock.now()
        secret = new_sip_secret()
        async with self._sessions() as session:
            site_row = await session.scalar(select(Site).where(Site.code == site))
            if site_row is None:
                raise NotFound(f"no site {site!r}")
            row = Counsellor(site_id=site_row.id, sip_username=sip_username, sip_secret=secret,
                             **self._typed({k: v for k, v in fields.items()
                                            if k in self.COUNSELLOR_FIELDS}))
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict("that SIP username, extension or user is taken") from None
            record_audit(session, actor=actor, at=now, action="counsellor.create",
                         target=f"counsellor:{row.id}", after=_counsellor_json(row))
            await session.commit()
        await self._on_change()
        return row, secret

    async def update_counsellor(self, actor: Actor, counsellor_id: int,
                                changes: dict[str, Any]) -> Counsellor:
        unknown = set(changes) - set(self.COUNSELLOR_FIELDS)
        if unknown:
            raise InvalidInput(f"unknown fields: {sorted(unknown)}")
        now = self._clock.now()
        async with self._sessions() as session:
            row = await session.get(Counsellor, counsellor_id)
            if row is None:
                raise NotFound(f"no counsellor {counsellor_id}")
            before = _counsellor_json(row)
            for name, value in self._typed(changes).items():
                setattr(row, name, value)
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict("that extension or user is taken") from None
            record_audit(session, actor=actor, at=now, action="counsellor.update",
                         target=f"counsellor:{counsellor_id}", before=before,
                         after=_counsellor_json(row))
            await session.commit()
        await self._on_change()
        return row

    # -- site settings ----------------------------------------------------------------------

    SITE_FIELDS = ("debrief_seconds", "crisis_cap_per_shift", "short_abandon_seconds",
                   "backup_number", "unstaffed_alert_seconds", "callback_caller_id",
                   "callback_reply_hours", "callback_max_attempts", "callback_retry_minutes",
                   "crisis_deadline_minutes")

    async def site_settings(self, code: str) -> dict[str, Any]:
        async with self._sessions() as session:
            site = await session.scalar(select(Site).where(Site.code == code))
            if site is None:
                raise NotFound(f"no site {code!r}")
            return {"site": code, **{name: getattr(site, name) for name in self.SITE_FIELDS}}

    async def update_site_settings(self, actor: Actor, code: str,
                                   changes: dict[str, Any]) -> dict[str, Any]:
        unknown = set(changes) - set(self.SITE_FIELDS)
        if unknown:
            raise InvalidInput(f"unknown settings: {sorted(unknown)}")
        now = self._clock.now()
        async with self._sessions() as session:
            site = await session.scalar(select(Site).where(Site.code == code))
            if site is None:
                raise NotFound(f"no site {code!r}")
            before = {name: getattr(site, name) for name in self.SITE_FIELDS}
            for name, value in changes.items():
                setattr(site, name, value)
            after = {name: getattr(site, name) for name in self.SITE_FIELDS}
            record_audit(session, actor=actor, at=now, action="site.staffing_settings",
                         target=f"site:{code}", before=before, after=after)
            await session.commit()
        await self._on_change()
        return {"site": code, **after}

    # -- weekly templates and dated overrides -----------------------------------------------

    async def templates(self, *, site: str | None = None,
                        counsellor_id: int | None = None) -> list[ShiftTemplate]:
        async with self._sessions() as session:
            query = select(ShiftTemplate).join(Counsellor).order_by(
                ShiftTemplate.weekday, ShiftTemplate.start, ShiftTemplate.id)
            if counsellor_id is not None:
                query = query.where(ShiftTemplate.counsellor_id == counsellor_id)
            rows = list((await session.scalars(query)).all())
        if site is not None:
            ids = {c.id for c in self._roster.state.counsellors.values() if c.site_code == site}
            rows = [row for row in rows if row.counsellor_id in ids]
        return rows

    async def add_template(self, actor: Actor, *, counsellor_id: int, weekday: int, start: str,
                           minutes: int, valid_from: date | None = None,
                           valid_until: date | None = None) -> ShiftTemplate:
        self.counsellor(counsellor_id)
        try:
            WeeklyShift(counsellor_id, weekday, parse_start(start), minutes, valid_from,
                        valid_until)
        except ValueError as error:
            raise InvalidInput(str(error)) from None
        now = self._clock.now()
        async with self._sessions() as session:
            row = ShiftTemplate(counsellor_id=counsellor_id, weekday=weekday, start=start,
                                minutes=minutes, valid_from=valid_from, valid_until=valid_until)
            session.add(row)
            await session.flush()
            record_audit(session, actor=actor, at=now, action="shift_template.create",
                         target=f"shift_template:{row.id}", after=_template_json(row))
            await session.commit()
        await self._on_change()
        return row

    async def delete_template(self, actor: Actor, template_id: int) -> None:
        now = self._clock.now()
        async with self._sessions() as session:
            row = await session.get(ShiftTemplate, template_id)
            if row is None:
                raise NotFound(f"no shift template {template_id}")
            record_audit(session, actor=actor, at=now, action="shift_template.delete",
                         target=f"shift_template:{template_id}", before=_template_json(row))
            await session.delete(row)
            await session.commit()
        await self._on_change()

    async def overrides(self, *, start: datetime, end: datetime,
                        counsellor_ids: Sequence[int] | None = None) -> list[Shift]:
        async with self._sessions() as session:
            query = select(Shift).where(Shift.ends_at > start, Shift.starts_at < end)
            if counsellor_ids is not None:
                query = query.where(Shift.counsellor_id.in_(list(counsellor_ids)))
            return list((await session.scalars(query.order_by(Shift.starts_at))).all())

    async def add_override(self, actor: Actor, *, counsellor_id: int, starts_at: datetime,
                           ends_at: datetime, kind: str = "work", note: str = "") -> Shift:
        self.counsellor(counsellor_id)
        if starts_at.tzinfo is None or ends_at.tzinfo is None:
            raise InvalidInput("starts_at and ends_at need a time zone offset")
        if ends_at <= starts_at:
            raise InvalidInput("ends_at must be after starts_at")
        if ends_at - starts_at > MAX_OVERRIDE:
            raise InvalidInput("an override lasts at most 31 days")
        try:
            shift_kind = ShiftKind(kind)
        except ValueError:
            raise InvalidInput(f"kind is work or off, not {kind!r}") from None
        now = self._clock.now()
        async with self._sessions() as session:
            row = Shift(counsellor_id=counsellor_id, starts_at=starts_at, ends_at=ends_at,
                        kind=shift_kind, note=note)
            session.add(row)
            await session.flush()
            record_audit(session, actor=actor, at=now, action="shift.create",
                         target=f"shift:{row.id}", after=_shift_json(row))
            await session.commit()
        await self._on_change()
        return row

    async def delete_override(self, actor: Actor, shift_id: int) -> None:
        now = self._clock.now()
        async with self._sessions() as session:
            row = await session.get(Shift, shift_id)
            if row is None:
                raise NotFound(f"no shift {shift_id}")
            record_audit(session, actor=actor, at=now, action="shift.delete",
                         target=f"shift:{shift_id}", before=_shift_json(row))
            await session.delete(row)
            await session.commit()
        await self._on_change()


def _counsellor_json(row: Counsellor) -> dict[str, Any]:
    # Never the SIP secret.
    return {"id": row.id, "site_id": row.site_id, "name": row.name,
            "tier": Tier(row.tier).value, "seat": Seat(row.seat).value,
            "skills": list(row.skills or []), "sip_username": row.sip_username,
            "extension": row.extension, "mobile_number": row.mobile_number,
            "user_id": row.user_id, "active": row.active}


def _template_json(row: ShiftTemplate) -> dict[str, Any]:
    return {"id": row.id, "counsellor_id": row.counsellor_id, "weekday": row.weekday,
            "start": row.start, "minutes": row.minutes,
            "valid_from": row.valid_from.isoformat() if row.valid_from else None,
            "valid_until": row.valid_until.isoformat() if row.valid_until else None}


def _shift_json(row: Shift) -> dict[str, Any]:
    return {"id": row.id, "counsellor_id": row.counsellor_id,
            "starts_at": row.starts_at.isoformat(), "ends_at": row.ends_at.isoformat(),
            "kind": row.kind.value, "note": row.note}


__all__ = ["MAX_SHIFT_MINUTES", "Conflict", "Forbidden", "InvalidInput", "NotFound", "PresenceView",
           "Staffing", "StaffingError"]
