"""The official holiday calendar: the chinese-calendar package, then admin-entered years.

chinese-calendar raises NotImplementedError for any year it has no data for (its 2025-11
release knows 2004–2026): this adapter asks it one year at a time and treats a refusal as
"not covered", so a missing year never reaches routing as an exception. Years an
administrator entered (the State Council publishes each autumn) replace the package's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import chinese_calendar

from routing.hours import HolidayCalendar


@dataclass(frozen=True)
class YearDates:
    holidays: Mapping[date, str]
    makeup_workdays: frozenset[date]
    source: str


@lru_cache(maxsize=64)
def package_year(year: int) -> YearDates | None:
    """The package's dates for a year, or None when it does not know the year."""
    holidays: dict[date, str] = {}
    workdays: set[date] = set()
    day = date(year, 1, 1)
    while day.year == year:
        try:
            is_holiday, name = chinese_calendar.get_holiday_detail(day)
        except NotImplementedError:
            return None
        if is_holiday and name is not None:
            holidays[day] = str(name)
        elif not is_holiday and day.weekday() >= 5:
            workdays.add(day)
        day += timedelta(days=1)
    return YearDates(holidays, frozenset(workdays), "chinese-calendar")


def entered_year(holidays: Iterable[Mapping[str, str]], workdays: Iterable[str],
                 source: str = "administrator") -> YearDates:
    return YearDates({date.fromisoformat(h["date"]): h.get("name", "") for h in holidays},
                     frozenset(date.fromisoformat(d) for d in workdays), source)


def build_calendar(years: Iterable[int], entered: Mapping[int, YearDates]) -> HolidayCalendar:
    holidays: dict[date, str] = {}
    workdays: set[date] = set()
    covered: set[int] = set()
    for year in sorted(set(years) | set(entered)):
        dates = entered.get(year) or package_year(year)
        if dates is None:
            continue
        covered.add(year)
        holidays.update(dates.holidays)
        workdays |= dates.makeup_workdays
    return HolidayCalendar(holidays, frozenset(workdays), frozenset(covered))


def years_around(today: date, *, back: int = 1, ahead: int = 2) -> range:
    return range(today.year - back, today.year + ahead + 1)
