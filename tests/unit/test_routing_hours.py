"""Service hours: intervals across midnight, holidays and make-up workdays (调休) from
chinese-calendar's own data, per-site overrides, uncovered years, time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from routing.hours import (
    EMPTY_CALENDAR,
    DayKind,
    HolidayCalendar,
    day_intervals,
    is_open,
    local_time,
    overrides_by_date,
)
from routing.menu import MenuWalk
from routing.rules import ALL_DAY, DateOverride, Hours, Interval, OffHours, RuleSet, WeeklyHours
from tests.unit.routing_support import CALENDAR, SHANGHAI, official_calendar, shanghai

DESK = Interval(start="19:00", end="02:00")          # the high-risk desk (Inner Mongolia)
OFFICE = Interval(start="08:00", end="22:00")
HIGH_RISK_DESK = WeeklyHours.every_day(DESK)
WORKWEEK = WeeklyHours(mon=(OFFICE,), tue=(OFFICE,), wed=(OFFICE,), thu=(OFFICE,),
                       fri=(Interval(start="09:00", end="17:00"),))

NATIONAL_DAY = date(2026, 10, 1)
NATIONAL_DAY_EVE = date(2026, 9, 30)


def _makeup_day(year: int, weekday: int) -> date:
    """A make-up workday of `year` falling on `weekday` (5 Saturday, 6 Sunday), from
    chinese-calendar's data rather than from memory."""
    return min(day for day in chinese_calendar.constants.workdays
               if day.year == year and day.weekday() == weekday)


def _open(weekly: WeeklyHours, at: datetime, calendar: HolidayCalendar = CALENDAR,
          overrides: tuple[DateOverride, ...] = ()) -> bool:
    return is_open(weekly, calendar, at, overrides_by_date(overrides))


# -- the calendar data the tests rely on ----------------------------------------------------

def test_the_tests_use_real_official_dates():
    assert chinese_calendar.is_holiday(NATIONAL_DAY)
    assert not chinese_calendar.is_holiday(NATIONAL_DAY_EVE)
    saturday = _makeup_day(2026, 5)
    sunday = _makeup_day(2026, 6)
    assert chinese_calendar.is_workday(saturday) and chinese_calendar.is_workday(sunday)
    assert CALENDAR.kind(saturday) is DayKind.MAKEUP_WORKDAY
    assert CALENDAR.kind(sunday) is DayKind.MAKEUP_WORKDAY
    assert CALENDAR.kind(NATIONAL_DAY) is DayKind.HOLIDAY
    assert CALENDAR.kind(NATIONAL_DAY_EVE) is DayKind.WORKDAY
    assert CALENDAR.kind(date(2026, 10, 17)) is DayKind.WEEKEND


def test_every_official_date_is_classified_like_chinese_calendar_does():
    day = date(2024, 1, 1)
    while day.year <= 2026:
        expected_holiday = chinese_calendar.is_holiday(day)
        kind = CALENDAR.kind(day)
        assert (kind in (DayKind.HOLIDAY, DayKind.WEEKEND)) == expected_holiday, day
        day += timedelta(days=1)


# -- intervals ------------------------------------------------------------------------------

def test_the_high_risk_desk_is_open_at_0130_the_next_day_and_closed_at_0230():
    monday = date(2026, 3, 9)
    assert CALENDAR.kind(monday) is DayKind.WORKDAY
    tuesday = monday + timedelta(days=1)
    assert _open(HIGH_RISK_DESK, shanghai(2026, 3, 10, 1, 30))
    assert not _open(HIGH_RISK_DESK, shanghai(2026, 3, 10, 2, 30))
    assert tuesday == date(2026, 3, 10)


@pytest.mark.parametrize(("hour", "minute", "expected"), [
    (18, 59, False), (19, 0, True), (23, 59, True), (0, 0, True), (1, 59, True),
    (2, 0, False), (12, 0, False),
])
def test_the_desk_opens_at_its_start_and_closes_at_its_end(hour, minute, expected):
    assert _open(HIGH_RISK_DESK, shanghai(2026, 3, 11, hour, minute)) is expected


def test_all_day_is_00_00_to_24_00():
    all_day = WeeklyHours.every_day(*ALL_DAY)
    for hour, minute in ((0, 0), (0, 1), (12, 0), (23, 59)):
        assert _open(all_day, shanghai(2026, 3, 11, hour, minute))
    assert not ALL_DAY[0].crosses_midnight


def test_an_interval_ending_at_midnight_closes_at_midnight():
    evening = WeeklyHours.every_day(Interval(start="22:00", end="00:00"))
    assert evening.mon[0].crosses_midnight
    assert _open(evening, shanghai(2026, 3, 11, 23, 59))
    assert not _open(evening, shanghai(2026, 3, 12, 0, 0))
    until_24 = WeeklyHours.every_day(Interval(start="22:00", end="24:00"))
    assert not until_24.mon[0].crosses_midnight
    assert _open(until_24, shanghai(2026, 3, 11, 23, 59))
    assert not _open(until_24, shanghai(2026, 3, 12, 0, 0))


def test_a_crossing_interval_belongs_to_the_day_it_starts():
    # Friday 19:00–02:00 only: open early on Saturday, not early on Friday.
    friday_night = WeeklyHours(fri=(DESK,))
    assert _open(friday_night, shanghai(2026, 3, 14, 1, 0))        # Saturday
    assert not _open(friday_night, shanghai(2026, 3, 13, 1, 0))    # Friday
    assert day_intervals(friday_night, CALENDAR, date(2026, 3, 13)) == (DESK,)
    assert day_intervals(friday_night, CALENDAR, date(2026, 3, 14)) == ()


def test_several_intervals_a_day():
    split = WeeklyHours.every_day(Interval(start="08:00", end="12:00"),
                                  Interval(start="14:00", end="18:00"))
    assert _open(split, shanghai(2026, 3, 11, 11, 59))
    assert not _open(split, shanghai(2026, 3, 11, 12, 0))
    assert not _open(split, shanghai(2026, 3, 11, 13, 59))
    assert _open(split, shanghai(2026, 3, 11, 14, 0))


# -- holidays and make-up workdays ------------------------------------------------------------

def test_a_public_holiday_is_closed_unless_holiday_hours_are_given():
    daily = WeeklyHours.every_day(OFFICE)
    assert not _open(daily, shanghai(2026, 10, 1, 10, 0))
    assert _open(daily, shanghai(2026, 9, 30, 10, 0))
    with_holidays = WeeklyHours.every_day(OFFICE, holidays_too=True)
    assert _open(with_holidays, shanghai(2026, 10, 1, 10, 0))
    short = daily.model_copy(update={"holiday": (Interval(start="09:00", end="12:00"),)})
    assert _open(short, shanghai(2026, 10, 1, 11, 0))
    assert not _open(short, shanghai(2026, 10, 1, 13, 0))


def test_every_day_of_the_national_day_week_is_closed_without_holiday_hours():
    daily = WeeklyHours.every_day(OFFICE)
    for offset in range(7):
        at = shanghai(2026, 10, 1, 10, 0) + timedelta(days=offset)
        assert CALENDAR.kind(at.date()) is DayKind.HOLIDAY
        assert not _open(daily, at)
    assert _open(daily, shanghai(2026, 10, 8, 10, 0))


@pytest.mark.parametrize("weekday", [5, 6])
def test_a_makeup_workday_keeps_the_weekday_hours_it_is_worked_as(weekday):
    makeup = _makeup_day(2026, weekday)
    at = datetime.combine(makeup, datetime.min.time(), SHANGHAI).replace(hour=10)
    assert _open(WORKWEEK, at)                                      # Monday's 08:00–22:00
    assert _open(WORKWEEK, at.replace(hour=21))
    as_friday = WORKWEEK.model_copy(update={"makeup_workday_as": "fri"})
    assert _open(as_friday, at)
    assert not _open(as_friday, at.replace(hour=21))                # Friday closes at 17:00
    # The same weekday some weeks later is an ordinary weekend day: closed.
    later = at + timedelta(days=7)
    while CALENDAR.kind(later.date()) is not DayKind.WEEKEND:
        later += timedelta(days=7)
    assert not _open(WORKWEEK, later)


def test_a_makeup_workday_ignores_its_own_weekend_hours():
    weekend_desk = WORKWEEK.model_copy(update={"sat": (Interval(start="20:00", end="23:00"),),
                                               "sun": (Interval(start="20:00", end="23:00"),)})
    saturday = _makeup_day(2026, 5)
    at = datetime.combine(saturday, datetime.min.time(), SHANGHAI)
    assert not _open(weekend_desk, at.replace(hour=22, minute=30))   # Monday's hours end 22:00
    assert day_intervals(weekend_desk, CALENDAR, saturday) == (OFFICE,)


def test_the_interval_started_on_a_holiday_eve_runs_into_the_holiday():
    assert _open(HIGH_RISK_DESK, shanghai(2026, 10, 1, 1, 30))       # started 30 Sept 19:00
    assert not _open(HIGH_RISK_DESK, shanghai(2026, 10, 1, 2, 30))
    assert not _open(HIGH_RISK_DESK, shanghai(2026, 10, 1, 19, 30))   # the holiday itself
    assert not _open(HIGH_RISK_DESK, shanghai(2026, 10, 2, 1, 30))    # nothing started on 1 Oct
    # The evening of the last holiday day has no interval either; the next day does.
    assert not _open(HIGH_RISK_DESK, shanghai(2026, 10, 8, 1, 30))
    assert _open(HIGH_RISK_DESK, shanghai(2026, 10, 8, 19, 30))


def test_holiday_hours_crossing_midnight_run_into_the_next_day():
    holiday_nights = HIGH_RISK_DESK.model_copy(
        update={"holiday": (Interval(start="20:00", end="03:00"),)})
    assert not _open(holiday_nights, shanghai(2026, 10, 1, 19, 30))
    assert _open(holiday_nights, shanghai(2026, 10, 1, 20, 0))
    assert _open(holiday_nights, shanghai(2026, 10, 2, 2, 30))        # from 1 Oct's interval
    assert _open(holiday_nights, shanghai(2026, 10, 8, 2, 30))        # from 7 Oct, a holiday
    assert not _open(holiday_nights, shanghai(2026, 10, 9, 2, 30))    # 8 Oct is 19:00–02:00


# -- per-site overrides -----------------------------------------------------------------------

def test_a_closed_override_closes_an_ordinary_day():
    closed = (DateOverride(date=date(2026, 3, 11), closed=True, note="training day"),)
    daily = WeeklyHours.every_day(OFFICE)
    assert not _open(daily, shanghai(2026, 3, 11, 10, 0), overrides=closed)
    assert _open(daily, shanghai(2026, 3, 12, 10, 0), overrides=closed)


def test_an_override_with_hours_opens_a_holiday():
    extra = (DateOverride(date=NATIONAL_DAY, hours=(Interval(start="10:00", end="16:00"),)),)
    daily = WeeklyHours.every_day(OFFICE)
    assert _open(daily, shanghai(2026, 10, 1, 12, 0), overrides=extra)
    assert not _open(daily, shanghai(2026, 10, 1, 17, 0), overrides=extra)
    assert not _open(daily, shanghai(2026, 10, 2, 12, 0), overrides=extra)


def test_an_override_replaces_the_day_hours_even_on_a_makeup_workday():
    saturday = _makeup_day(2026, 5)
    override = (DateOverride(date=saturday, hours=(Interval(start="13:00", end="15:00"),)),)
    at = datetime.combine(saturday, datetime.min.time(), SHANGHAI)
    assert not _open(WORKWEEK, at.replace(hour=10), overrides=override)
    assert _open(WORKWEEK, at.replace(hour=14), overrides=override)


def test_an_override_crossing_midnight_runs_into_the_next_morning():
    night = (DateOverride(date=date(2026, 3, 11), hours=(Interval(start="22:00", end="06:00"),)),)
    daily = WeeklyHours.every_day(OFFICE)
    assert _open(daily, shanghai(2026, 3, 12, 5, 59), overrides=night)
    assert not _open(daily, shanghai(2026, 3, 12, 6, 0), overrides=night)


def test_a_closed_override_on_the_eve_stops_the_crossing_interval():
    closed_eve = (DateOverride(date=NATIONAL_DAY_EVE, closed=True),)
    assert not _open(HIGH_RISK_DESK, shanghai(2026, 10, 1, 1, 30), overrides=closed_eve)
    assert not _open(HIGH_RISK_DESK, shanghai(2026, 9, 30, 20, 0), overrides=closed_eve)


def test_an_override_with_no_hours_is_closed():
    empty = DateOverride(date=date(2026, 3, 11))
    assert day_intervals(WORKWEEK, CALENDAR, date(2026, 3, 11), {empty.date: empty}) == ()


def test_one_override_per_date():
    with pytest.raises(ValueError, match="more than one override for 2026-10-01"):
        Hours(overrides=(DateOverride(date=NATIONAL_DAY, closed=True),
                         DateOverride(date=NATIONAL_DAY, hours=ALL_DAY)))


# -- years nobody has entered yet -----------------------------------------------------------

def test_an_uncovered_year_falls_back_to_weekday_rules():
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_holiday(date(2027, 1, 1))
    # 1 January 2027 is a Friday: without data it is an ordinary Friday, never an error.
    assert not CALENDAR.covers(date(2027, 1, 1))
    assert CALENDAR.kind(date(2027, 1, 1)) is DayKind.WORKDAY
    assert CALENDAR.kind(date(2027, 1, 2)) is DayKind.WEEKEND
    assert _open(WORKWEEK, shanghai(2027, 1, 1, 10, 0))            # Friday 09:00–17:00
    assert not _open(WORKWEEK, shanghai(2027, 1, 1, 18, 0))
    assert not _open(WORKWEEK, shanghai(2027, 1, 2, 10, 0))
    assert _open(HIGH_RISK_DESK, shanghai(2027, 1, 1, 1, 30))        # from 31 Dec 2026


def test_the_empty_calendar_has_no_holidays_at_all():
    assert EMPTY_CALENDAR.kind(NATIONAL_DAY) is DayKind.WORKDAY
    assert _open(WeeklyHours.every_day(OFFICE), shanghai(2026, 10, 1, 10, 0),
                 calendar=EMPTY_CALENDAR)


def test_uncovered_days_lists_what_the_admin_must_enter():
    assert CALENDAR.uncovered_days(date(2026, 10, 1), 60) == []
    missing = CALENDAR.uncovered_days(date(2026, 12, 1), 60)
    assert missing[0] == date(2027, 1, 1)
    assert len(missing) == 60 - 31
    assert official_calendar([2026]).covers(date(2026, 6, 1))
    assert not official_calendar([2026]).covers(date(2025, 6, 1))


# -- time zones -----------------------------------------------------------------------------

def test_utc_instants_are_read_on_the_site_wall_clock():
    # 17:30 UTC on 30 Sept is 01:30 on 1 Oct in Shanghai: inside the eve's desk interval.
    at = datetime(2026, 9, 30, 17, 30, tzinfo=UTC)
    local = local_time(at, "Asia/Shanghai")
    assert (local.date(), local.hour, local.minute) == (NATIONAL_DAY, 1, 30)
    assert _open(HIGH_RISK_DESK, local)
    assert not _open(HIGH_RISK_DESK, local_time(at + timedelta(hours=1), "Asia/Shanghai"))


def _desk_rules(timezone: str) -> RuleSet:
    return RuleSet.model_validate({
        "timezone": timezone, "entry": "crisis", "off_hours": {"entry": "crisis"},
        "hours": {"site": HIGH_RISK_DESK.model_dump()},
        "nodes": {"crisis": {"type": "crisis"}},
    })


def test_the_walk_judges_the_same_instant_by_the_site_time_zone():
    at = datetime(2026, 3, 10, 17, 30, tzinfo=UTC)          # 01:30 in Shanghai, 17:30 in UTC
    in_shanghai = MenuWalk(rules=_desk_rules("Asia/Shanghai"), at=at, calendar=CALENDAR)
    in_utc = MenuWalk(rules=_desk_rules("UTC"), at=at, calendar=CALENDAR)
    assert in_shanghai.site_open
    assert not in_utc.site_open
    same_instant = at.astimezone(ZoneInfo("America/New_York"))
    assert MenuWalk(rules=_desk_rules("Asia/Shanghai"), at=same_instant,
                    calendar=CALENDAR).site_open


def test_the_default_time_zone_is_shanghai():
    rules = RuleSet(entry="x", off_hours=OffHours(entry="x"), nodes={})
    assert rules.timezone == "Asia/Shanghai"


def test_a_naive_datetime_is_rejected():
    with pytest.raises(ValueError, match="aware"):
        local_time(datetime(2026, 10, 1, 10, 0), "Asia/Shanghai")
    with pytest.raises(ValueError, match="aware"):
        MenuWalk(rules=_desk_rules("Asia/Shanghai"), at=datetime(2026, 10, 1, 10, 0),
                 calendar=CALENDAR)


def test_an_unknown_time_zone_is_refused_by_the_rules():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        _desk_rules("Mars/Olympus")
