"""The chinese-calendar adapter: the package's refusal of unknown years never reaches routing."""

from __future__ import annotations

from datetime import date

import chinese_calendar
import pytest

from hotline.rules.calendar_source import build_calendar, entered_year, package_year
from routing.hours import DayKind


def test_the_package_refuses_a_year_it_does_not_know() -> None:
    # The defect being guarded: an exception for any year without data.
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_holiday(date(2031, 1, 1))


def test_an_unknown_year_is_uncovered_instead_of_an_error() -> None:
    assert package_year(2031) is None
    calendar = build_calendar(range(2030, 2032), {})
    assert 2031 not in calendar.covered_years
    # Weekday rules meanwhile: routing keeps working.
    assert calendar.kind(date(2031, 1, 1)) == DayKind.WORKDAY
    assert calendar.kind(date(2031, 1, 4)) == DayKind.WEEKEND
    assert len(calendar.uncovered_days(date(2030, 12, 1), 60)) == 60


def test_the_package_year_with_its_make_up_workdays() -> None:
    year = package_year(2026)
    assert year is not None
    assert year.holidays[date(2026, 10, 1)]  # National Day
    assert date(2026, 10, 10) in year.makeup_workdays  # a Saturday worked (调休)
    assert all(day.weekday() >= 5 for day in year.makeup_workdays)


def test_entered_dates_replace_the_package_for_their_year() -> None:
    entered = {2026: entered_year([{"date": "2026-10-01", "name": "国庆节"}], ["2026-10-11"])}
    calendar = build_calendar(range(2026, 2027), entered)
    assert calendar.kind(date(2026, 10, 1)) == DayKind.HOLIDAY
    assert calendar.kind(date(2026, 10, 2)) == DayKind.WORKDAY  # only what was entered
    assert calendar.kind(date(2026, 10, 11)) == DayKind.MAKEUP_WORKDAY
