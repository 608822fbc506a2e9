"""Use cases on routing rules: drafts, publish, rollback, the official calendar, caller flags.

Every change is written with its audit entry (who, when, the difference as a JSON patch)
in one transaction; after a publish every node reloads its rules in memory (`on_change`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import jsonpatch
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotline.audit import Actor, record_audit
from hotline.clock import Clock
from hotline.db.models import (
    CalendarYear,
    CallerFlag,
    FlagKind,
    RuleSetVersion,
    RuleStatus,
    Site,
)
from hotline.rules import storage
from hotline.rules.calendar_source import build_calendar, package_year
from hotline.rules.published import fallback_site
from routing.callers import normalise_number
from routing.rules import RuleSet
from routing.validation import Catalogue, Problem, referenced_prompts, validate

SECTIONS = ("nodes", "hours", "off_hours", "callers", "survey", "entry", "timezone",
            "crisis_priority")


class NotFound(LookupError):
    pass


class RulesRefused(ValueError):
    """The rules cannot be saved or published; `problems` name the node and the reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.node}: {p.reason}" for p in problems))
        self.problems = problems


class InvalidInput(ValueError):
    pass


def problems_from_validation_error(error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors():
        location = [str(part) for part in item["loc"]]
        node = location[1] if len(location) > 1 and location[0] == "nodes" else "(rules)"
        problems.append(Problem(node, f"{'.'.join(location)}: {item['msg']}"))
    return problems


def parse_rules(document: Mapping[str, Any]) -> RuleSet:
    try:
        return RuleSet.model_validate(document)
    except ValidationError as error:
        raise RulesRefused(problems_from_validation_error(error)) from error


def _diff(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[dict[str, Any]]:
    patch: list[dict[str, Any]] = jsonpatch.make_patch(dict(before or {}), dict(after)).patch
    return patch


def builtin_prompt_names() -> frozenset[str]:
    from hotline.asterisk.prompts import BUILTIN_PROMPTS

    return frozenset(BUILTIN_PROMPTS)


@dataclass(frozen=True)
class VersionView:
    site: str
    version: int
    status: str
    document: dict[str, Any]
    prompt_versions: dict[str, Any]
    note: str
    created_by: str
    created_at: datetime
    published_by: str | None
    published_at: datetime | None
    problems: list[Problem]

    @classmethod
    def of(cls, site: str, row: RuleSetVersion, problems: list[Problem] | None = None
           ) -> VersionView:
        return cls(site, row.version, row.status.value, row.document, row.prompt_versions or {},
                   row.note, row.created_by, row.created_at, row.published_by,
                   row.published_at, problems or [])


class RulesService:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 crisis_priority: int,
                 on_change: Callable[[str | None], Awaitable[None]]) -> None:
        self._sessions = sessions
        self._clock = clock
        self._crisis_priority = crisis_priority
        self._on_change = on_change

    # -- reading --------------------------------------------------------------------------

    async def state(self, site_code: str) -> tuple[VersionView | None, VersionView | None]:
        async with self._sessions() as session:
            site = await self._site(session, site_code)
            published = await storage.version_with_status(session, site.id, RuleStatus.PUBLISHED)
            draft = await storage.version_with_status(session, site.id, RuleStatus.DRAFT)
            draft_problems = (await self._check(session, site, draft.document)
                              if draft is not None else [])
            return (VersionView.of(site_code, published) if published else None,
                    VersionView.of(site_code, draft, draft_problems) if draft else None)

    async def versions(self, site_code: str) -> list[VersionView]:
        async with self._sessions() as session:
            site = await self._site(session, site_code)
            return [VersionView.of(site_code, row)
                    for row in await storage.versions(session, site.id)]

    async def version(self, site_code: str, number: int) -> VersionView:
        async with self._sessions() as session:
            site = await self._site(session, site_code)
            row = await storage.version_by_number(session, site.id, number)
            if row is None:
                raise NotFound(f"site {site_code} has no rules version {number}")
            return VersionView.of(site_code, row)

    async def check(self, site_code: str, document: Mapping[str, Any]) -> list[Problem]:
        async with self._sessions() as session:
            site = await self._site(session, site_code)
            return await self._check(session, site, document)

    # -- drafts ---------------------------------------------------------------------------

    async def save_draft(self, site_code: str, document: Mapping[str, Any], *, actor: Actor,
                         note: str = "") -> VersionView:
        """Store the site's draft (one per site); malformed documents are refused, rule
        problems are reported with the draft (publishing refuses them)."""
        rules = parse_rules(document)
        clean = rules.model_dump(mode="json")
        now = self._clock.now()
        async with self._sessions() as session, session.begin():
            site = await self._site(session, site_code, lock=True)
            draft = await storage.version_with_status(session, site.id, RuleStatus.DRAFT)
            published = await storage.version_with_status(session, site.id,
                                                          RuleStatus.PUBLISHED)
            before = draft.document if draft else (published.document if published else None)
            if draft is None:
                draft = RuleSetVersion(
                    site_id=site.id, version=await storage.next_version_number(session, site.id),
                    status=RuleStatus.DRAFT, document=clean, prompt_versions={}, note=note,
                    created_by=actor.username, created_at=now)
                session.add(draft)
            else:
                draft.document = clean
                draft.note = note or draft.note
            record_audit(session, actor=actor, at=now, action="rules.draft",
                         target=f"site:{site_code}/rules:{draft.version}",
                         after={"version": draft.version, "diff": _diff(before, clean)})
            await session.flush()
            problems = await self._check(session, site, clean)
            return VersionView.of(site_code, draft, problems)

    async def save_draft_section(self, site_code: str, section: str, value: Any, *,
                                 actor: Actor) -> VersionView:
        if section not in SECTIONS:
            raise NotFound(f"unknown rules section {section!r}; one of {', '.join(SECTIONS)}")
        async with self._sessions() as session:
            site = await self._site(session, site_code)
            base = (await storage.version_with_status(session, site.id, RuleStatus.DRAFT)
                    or await storage.version_with_status(session, site.id, RuleStatus.PUBLISHED))
            document = dict(base.document) if base else fallback_site(
                site_code, {q.name: q.kind.value for q in site.queues}, self._crisis_priority
            ).rules.model_dump(mode="json")
        document[section] = value
        return await self.save_draft(site_code, document, actor=actor)

    async def discard_draft(self, site_code: str, *, actor: Actor) -> None:
        async with self._sessions() as session, session.begin():
            site = await self._site(session, site_code, lock=True)
            draft = await storage.version_with_status(session, site.id, RuleStatus.DRAFT)
            if draft is None:
                raise NotFound(f"site {site_code} has no draft")
            record_audit(session, actor=actor, at=self._clock.now(), action="rules.discard",
                         target=f"site:{site_code}/rules:{draft.version}",
                         before={"version": draft.version})
            await session.delete(draft)

    # -- publishing -----------------------------------------------------------------------

    async def publish(self, site_code: str, *, actor: Actor, version: int | None = None,
                      note: str = "") -> VersionView:
        """Publish the draft (or a given draft version); refused with the problems found."""
        now = self._clock.now()
        async with self._sessions() as session, session.begin():
            site = await self._site(session, site_code, lock=True)
            target = (await storage.version_by_number(session, site.id, version)
                      if version is not None
                      else await storage.version_with_status(session, site.id, RuleStatus.DRAFT))
            if target is None:
                raise NotFound(f"site {site_code} has no draft to publish" if version is None
                               else f"site {site_code} has no rules version {version}")
            if target.status != RuleStatus.DRAFT:
                raise InvalidInput(f"version {target.version} is {target.status.value}; "
                                   "roll back to it instead")
            view = await self._make_published(session, site, target, actor=actor, now=now,
                                              note=note, action="rules.publish")
        await self._on_change(site_code)
        return view

    async def rollback(self, site_code: str, *, to_version: int, actor: Actor,
                       note: str = "") -> VersionView:
        """Publish a copy of an earlier version (with the prompts it was published with)."""
        now = self._clock.now()
        async with self._sessions() as session, session.begin():
            site = await self._site(session, site_code, lock=True)
            old = await storage.version_by_number(session, site.id, to_version)
            if old is None:
                raise NotFound(f"site {site_code} has no rules version {to_version}")
            copy = RuleSetVersion(
                site_id=site.id, version=await storage.next_version_number(session, site.id),
                status=RuleStatus.DRAFT, document=old.document,
                prompt_versions=dict(old.prompt_versions or {}),
                note=note or f"rollback to version {to_version}", created_by=actor.username,
                created_at=now)
            session.add(copy)
            await session.flush()
            view = await self._make_published(session, site, copy, actor=actor, now=now,
                                              note=copy.note, action="rules.rollback",
                                              keep_pins=True, rolled_back_to=to_version)
        await self._on_change(site_code)
        return view

    async def _make_published(self, session: AsyncSession, site: Site, target: RuleSetVersion,
                              *, actor: Actor, now: datetime, note: str, action: str,
                              keep_pins: bool = False,
                              rolled_back_to: int | None = None) -> VersionView:
        from hotline.prompts.services import latest_prompt_versions

        problems = await self._check(session, site, target.document)
        if problems:
            raise RulesRefused(problems)
        rules = parse_rules(target.document)
        builtins = builtin_prompt_names()
        referenced = referenced_prompts(rules) - builtins
        latest = await latest_prompt_versions(session, site.id)
        pins = {name: version for name, (version, _sound) in latest.items() if name in referenced}
        if keep_pins:
            pins.update({name: version for name, version in (target.prompt_versions or {}).items()
                         if name in referenced})
        previous = await storage.version_with_status(session, site.id, RuleStatus.PUBLISHED)
        if previous is not None:
            previous.status = RuleStatus.SUPERSEDED
            await session.flush()
        target.status = RuleStatus.PUBLISHED
        target.published_by = actor.username
        target.published_at = now
        target.prompt_versions = pins
        if note:
            target.note = note
        after: dict[str, Any] = {
            "version": target.version, "prompt_versions": pins,
            "diff": _diff(previous.document if previous else None, target.document)}
        if rolled_back_to is not None:
            after["rolled_back_to"] = rolled_back_to
        record_audit(session, actor=actor, at=now, action=action,
                     target=f"site:{site.code}/rules:{target.version}",
                     before={"version": previous.version} if previous else None, after=after)
        await session.flush()
        return VersionView.of(site.code, target)

    async def seed_defaults(self, site_code: str, *, actor: Actor) -> bool:
        """Publish the default rules for a site that has none yet; False if it has some."""
        async with self._sessions() as session, session.begin():
            site = await self._site(session, site_code, lock=True)
            seeded = await self.seed_default(session, site, actor=actor)
        if seeded:
            await self._on_change(site_code)
        return seeded

    async def seed_default(self, session: AsyncSession, site: Site, *, actor: Actor) -> bool:
        """Publish the default 12355 rules for a site that has none (demo, new sites)."""
        if await storage.version_with_status(session, site.id, RuleStatus.PUBLISHED):
            return False
        kinds = {queue.name: queue.kind.value for queue in site.queues}
        document = fallback_site(site.code, kinds, self._crisis_priority).rules.model_dump(
            mode="json")
        row = RuleSetVersion(site_id=site.id,
                             version=await storage.next_version_number(session, site.id),
                             status=RuleStatus.DRAFT, document=document, prompt_versions={},
                             note="default 12355 rules", created_by=actor.username,
                             created_at=self._clock.now())
        session.add(row)
        await session.flush()
        await self._make_published(session, site, row, actor=actor, now=self._clock.now(),
                                   note=row.note, action="rules.publish")
        return True

    # -- the official calendar ------------------------------------------------------------

    async def calendar_coverage(self, *, days: int = 60) -> dict[str, Any]:
        today = self._clock.now().date()
        async with self._sessions() as session:
            entered = await storage.entered_years(session)
        years = range(today.year - 1, today.year + 3)
        calendar = build_calendar(years, entered)
        uncovered = calendar.uncovered_days(today, days)
        return {
            "today": today.isoformat(),
            "package_years": [y for y in years if package_year(y) is not None],
            "entered_years": sorted(entered),
            "covered_years": sorted(calendar.covered_years),
            "days_ahead": days,
            "uncovered_from": uncovered[0].isoformat() if uncovered else None,
            "uncovered_days": len(uncovered),
        }

    async def calendar_year(self, year: int) -> dict[str, Any]:
        async with self._sessions() as session:
            row = await storage.calendar_year(session, year)
        if row is not None:
            return {"year": year, "source": row.source or "administrator",
                    "holidays": row.holidays, "workdays": row.workdays,
                    "entered_by": row.entered_by, "entered_at": row.entered_at.isoformat()}
        dates = package_year(year)
        if dates is None:
            raise NotFound(f"no official dates for {year}: enter them (PUT /api/calendar/{year})")
        return {"year": year, "source": dates.source,
                "holidays": [{"date": d.isoformat(), "name": n}
                             for d, n in sorted(dates.holidays.items())],
                "workdays": [d.isoformat() for d in sorted(dates.makeup_workdays)],
                "entered_by": None, "entered_at": None}

    async def put_calendar_year(self, year: int, *, holidays: list[tuple[date, str]],
                                workdays: list[date], source: str, actor: Actor) -> None:
        problems = [f"{d} is not in {year}" for d, _ in holidays if d.year != year]
        problems += [f"{d} is not in {year}" for d in workdays if d.year != year]
        problems += [f"{d} is a make-up workday but not a Saturday or Sunday"
                     for d in workdays if d.weekday() < 5]
        both = sorted({d for d, _ in holidays} & set(workdays))
        problems += [f"{d} is both a holiday and a make-up workday" for d in both]
        if problems:
            raise InvalidInput("; ".join(problems))
        now = self._clock.now()
        holiday_rows = [{"date": d.isoformat(), "name": name} for d, name in sorted(holidays)]
        workday_rows = [d.isoformat() for d in sorted(set(workdays))]
        async with self._sessions() as session, session.begin():
            row = await session.get(CalendarYear, year)
            before = ({"holidays": row.holidays, "workdays": row.workdays, "source": row.source}
                      if row else None)
            if row is None:
                row = CalendarYear(year=year, entered_at=now)
                session.add(row)
            row.holidays, row.workdays, row.source = holiday_rows, workday_rows, source
            row.entered_by, row.entered_at = actor.username, now
            record_audit(session, actor=actor, at=now, action="calendar.year",
                         target=f"calendar:{year}", before=before,
                         after={"holidays": holiday_rows, "workdays": workday_rows,
                                "source": source})
        await self._on_change(None)

    # -- caller flags ---------------------------------------------------------------------

    async def add_flag(self, *, number: str, kind: FlagKind, reason: str, actor: Actor,
                       expires_in_days: int | None = None,
                       call_id: str | None = None) -> CallerFlag:
        normalised = normalise_number(number)
        if not normalised.number:
            raise InvalidInput("a withheld or empty number cannot be flagged")
        now = self._clock.now()
        flag = CallerFlag(number=normalised.number, kind=kind, reason=reason, call_id=call_id,
                          created_by=actor.username, created_at=now,
                          expires_at=(now + timedelta(days=expires_in_days)
                                      if expires_in_days else None))
        async with self._sessions() as session, session.begin():
            session.add(flag)
            await session.flush()
            record_audit(session, actor=actor, at=now, action="caller.flag",
                         target=f"caller:{normalised.number}",
                         after={"id": flag.id, "kind": kind.value, "reason": reason,
                                "expires_at": flag.expires_at.isoformat()
                                if flag.expires_at else None})
        await self._on_change(None)
        return flag

    async def revoke_flag(self, flag_id: int, *, actor: Actor) -> CallerFlag:
        now = self._clock.now()
        async with self._sessions() as session, session.begin():
            flag = await session.get(CallerFlag, flag_id)
            if flag is None:
                raise NotFound(f"no caller flag {flag_id}")
            if flag.revoked_at is None:
                flag.revoked_at, flag.revoked_by = now, actor.username
                record_audit(session, actor=actor, at=now, action="caller.unflag",
                             target=f"caller:{flag.number}",
                             before={"id": flag.id, "kind": flag.kind.value})
        await self._on_change(None)
        return flag

    async def flags(self, number: str | None) -> list[CallerFlag]:
        normalised = normalise_number(number).number if number else None
        async with self._sessions() as session:
            return list(await storage.flags_for(session, normalised))

    # -- helpers --------------------------------------------------------------------------

    async def _site(self, session: AsyncSession, code: str, *, lock: bool = False) -> Site:
        if lock:
            # Serialises publishes of one site across nodes (row lock on PostgreSQL; SQLite
            # serialises writers anyway).
            await session.execute(select(Site.id).where(Site.code == code).with_for_update())
        site = await storage.site_by_code(session, code)
        if site is None:
            raise NotFound(f"no site {code!r}")
        return site

    async def _check(self, session: AsyncSession, site: Site,
                     document: Mapping[str, Any]) -> list[Problem]:
        try:
            rules = RuleSet.model_validate(document)
        except ValidationError as error:
            return problems_from_validation_error(error)
        catalogue = Catalogue(
            queues={queue.name: queue.kind.value for queue in site.queues},
            prompts=builtin_prompt_names() | await storage.site_prompt_names(session, site.id),
            oncall_numbers=len(site.oncall_numbers))
        return validate(rules, catalogue)
