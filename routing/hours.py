"""Service hours: weekly intervals (crossing midnight), public holidays, make-up workdays.

The holiday calendar is plain data, built by an adapter from chinese-calendar and the
dates administrators enter for years the package does not know. A date the calendar does
not cover is treated by its weekday: a missing year never breaks routing (the admin API
warns about it well before).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from routing.rules import WEEKDAYS, DateOverride, Intervals, WeeklyHours


class DayKind(StrEnum):
    WORKDAY = "workday"
    WEEKEND = "weekend"
    HOLIDAY = "holiday"
    MAKEUP_WORKDAY = "makeup_workday"


@dataclass(frozen=True)
class HolidayCalendar:
    holidays: Mapping[date, str] = field(default_factory=dict)
    # Weekend days that are working days (调休).
    makeup_workdays: frozenset[date] = frozenset()
    # Years whose official dates are known (from the package or entered by an admin).
    covered_years: frozenset[int] = frozenset()

    def kind(self, day: date) -> DayKind:
        if day in self.holidays:
            return DayKind.HOLIDAY
        if day in self.makeup_workdays:
            return DayKind.MAKEUP_WORKDAY
        return DayKind.WEEKEND if day.weekday() >= 5 else DayKind.WORKDAY

    def covers(self, day: date) -> bool:
        return day.year in self.covered_years

    def uncovered_days(self, start: date, days: int) -> list[date]:
        """Dates in [start, start + days) whose year has no official data."""
        return [start + timedelta(n) for n in range(days)
                if not self.covers(start + timedelta(n))]


EMPTY_CALENDAR = HolidayCalendar()


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def day_intervals(weekly: WeeklyHours, calendar: HolidayCalendar, day: date,
                  overrides: Mapping[date, DateOverride] | None = None) -> Intervals:
    """The intervals that start on `day`."""
    override = overrides.get(day) if overrides else None
    if override is not None:
        return () if override.closed else override.hours
    match calendar.kind(day):
        case DayKind.HOLIDAY:
            return weekly.holiday
        case DayKind.MAKEUP_WORKDAY:
            return weekly.for_weekday(WEEKDAYS.index(weekly.makeup_workday_as))
        case _:
            return weekly.for_weekday(day.weekday())


def is_open(weekly: WeeklyHours, calendar: HolidayCalendar, local: datetime,
            overrides: Mapping[date, DateOverride] | None = None) -> bool:
    """Whether `local` (a wall-clock time in the site's zone) falls in an open interval:
    one that starts today, or one that started yesterday and crosses midnight."""
    minute = local.hour * 60 + local.minute
    today = local.date()
    for interval in day_intervals(weekly, calendar, today, overrides):
        if interval.crosses_midnight:
            if minute >= interval.start_minute:
                return True
        elif interval.start_minute <= minute < interval.end_minute:
            return True
    for interval in day_intervals(weekly, calendar, today - timedelta(days=1), overrides):
        if interval.crosses_midnight and minute < interval.end_minute:
            return True
    return False


def overrides_by_date(overrides: Iterable[DateOverride]) -> dict[date, DateOverride]:
    return {override.date: override for override in overrides}


def require_aware(at: datetime, name: str) -> None:
    """Routing decides on instants, never on a wall-clock time without its zone."""
    if at.tzinfo is None:
        raise ValueError(f"{name} must be an aware datetime")


def local_time(at: datetime, timezone: str) -> datetime:
    if at.tzinfo is None:
        raise ValueError("routing needs an aware datetime")
    return at.astimezone(zone(timezone))
