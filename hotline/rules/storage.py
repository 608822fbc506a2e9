"""Database access for rule set versions, the catalogue a rule set is checked against, the
admin-entered calendar years, and caller flags. One session per request, passed in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from hotline.db.models import (
    CalendarYear,
    CallerFlag,
    Prompt,
    RuleSetVersion,
    RuleStatus,
    Site,
)
from hotline.rules.calendar_source import YearDates, entered_year


async def site_by_code(session: AsyncSession, code: str) -> Site | None:
    return await session.scalar(
        select(Site).where(Site.code == code)
        .options(selectinload(Site.queues), selectinload(Site.oncall_numbers)))


async def all_sites(session: AsyncSession) -> Sequence[Site]:
    return (await session.scalars(
        select(Site).options(selectinload(Site.queues), selectinload(Site.oncall_numbers))
        .order_by(Site.id))).all()


async def version_by_number(session: AsyncSession, site_id: int,
                            version: int) -> RuleSetVersion | None:
    return await session.scalar(select(RuleSetVersion).where(
        RuleSetVersion.site_id == site_id, RuleSetVersion.version == version))


async def version_with_status(session: AsyncSession, site_id: int,
                              status: RuleStatus) -> RuleSetVersion | None:
    return await session.scalar(
        select(RuleSetVersion).where(RuleSetVersion.site_id == site_id,
                                     RuleSetVersion.status == status)
        .order_by(RuleSetVersion.version.desc()).limit(1))


async def published_versions(session: AsyncSession) -> Sequence[RuleSetVersion]:
    return (await session.scalars(
        select(RuleSetVersion).where(RuleSetVersion.status == RuleStatus.PUBLISHED))).all()


async def versions(session: AsyncSession, site_id: int) -> Sequence[RuleSetVersion]:
    return (await session.scalars(
        select(RuleSetVersion).where(RuleSetVersion.site_id == site_id)
        .order_by(RuleSetVersion.version.desc()))).all()


async def next_version_number(session: AsyncSession, site_id: int) -> int:
    highest = await session.scalar(
        select(func.max(RuleSetVersion.version)).where(RuleSetVersion.site_id == site_id))
    return (highest or 0) + 1


async def site_prompt_names(session: AsyncSession, site_id: int) -> set[str]:
    """Names of the site's uploaded or generated prompts that have at least one version."""
    prompts = (await session.scalars(
        select(Prompt).where(Prompt.site_id == site_id).options(selectinload(Prompt.versions))
    )).all()
    return {prompt.name for prompt in prompts if prompt.versions}


async def entered_years(session: AsyncSession) -> dict[int, YearDates]:
    rows = (await session.scalars(select(CalendarYear))).all()
    return {row.year: entered_year(row.holidays, row.workdays, row.source or "administrator")
            for row in rows}


async def calendar_year(session: AsyncSession, year: int) -> CalendarYear | None:
    return await session.get(CalendarYear, year)


async def active_flags(session: AsyncSession, now: datetime) -> Sequence[CallerFlag]:
    return (await session.scalars(
        select(CallerFlag).where(CallerFlag.revoked_at.is_(None),
                                 or_(CallerFlag.expires_at.is_(None),
                                     CallerFlag.expires_at > now))
        .order_by(CallerFlag.created_at.desc()))).all()


async def flags_for(session: AsyncSession, number: str | None) -> Sequence[CallerFlag]:
    query = select(CallerFlag).order_by(CallerFlag.created_at.desc())
    if number:
        query = query.where(CallerFlag.number == number)
    return (await session.scalars(query.limit(500))).all()
