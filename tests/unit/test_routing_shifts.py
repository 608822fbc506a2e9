"""Weekly templates, dated overrides and self-service presence (routing/shifts.py)."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from routing.shifts import (
    DatedShift,
    SelfService,
    WeeklyShift,
    duty_windows,
    logout_until,
    next_boundary,
    on_duty,
    parse_start,
    window_at,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


# Monday 2026-11-30.
MONDAY = local("2026-11-30T00:00")


def windows(templates, overrides=(), start=MONDAY - timedelta(days=1), days=3):
    return duty_windows(templates, overrides, start=start, end=start + timedelta(days=days),
                        zone=SHANGHAI)


def test_a_weekly_shift_is_on_its_weekday_in_site_time():
    found = windows([WeeklyShift(1, 0, time(8, 0), 180)])
    assert [(w.starts_at, w.ends_at) for w in found] == [
        (local("2026-11-30T08:00"), local("2026-11-30T11:00"))]


def test_an_evening_specialist_shift_crosses_midnight():
    # Inner Mongolia's high-risk seats: 19:00–02:00.
    found = windows([WeeklyShift(1, 0, time(19, 0), 7 * 60)])
    shift = window_at(found, 1, local("2026-12-01T01:30"))
    assert shift is not None and shift.ends_at == local("2026-12-01T02:00")
    assert window_at(found, 1, local("2026-12-01T02:00")) is None


def test_a_shift_started_yesterday_is_still_seen():
    found = duty_windows([WeeklyShift(1, 6, time(22, 0), 240)], [], start=local("2026-11-30T01:00"),
                         end=local("2026-11-30T02:00"), zone=SHANGHAI)
    assert window_at(found, 1, local("2026-11-30T01:30")) is not None


def test_back_to_back_shifts_merge_so_nobody_is_removed_and_re_added():
    found = windows([WeeklyShift(1, 0, time(8, 0), 180), WeeklyShift(1, 0, time(11, 0), 180)])
    assert [(w.starts_at, w.ends_at) for w in found] == [
        (local("2026-11-30T08:00"), local("2026-11-30T14:00"))]


def test_an_off_override_cuts_a_hole_and_a_work_override_adds_duty():
    template = WeeklyShift(1, 0, time(8, 0), 8 * 60)
    off = DatedShift(1, local("2026-11-30T10:00"), local("2026-11-30T12:00"), off=True)
    extra = DatedShift(2, local("2026-11-30T20:00"), local("2026-11-30T23:00"))
    found = windows([template], [off, extra])
    spans = sorted((w.counsellor_id, w.starts_at.hour, w.ends_at.hour) for w in found)
    assert spans == [(1, 8, 10), (1, 12, 16), (2, 20, 23)]


def test_off_wins_over_an_overlapping_work_override():
    work = DatedShift(1, local("2026-11-30T08:00"), local("2026-11-30T12:00"))
    off = DatedShift(1, local("2026-11-30T07:00"), local("2026-11-30T13:00"), off=True)
    assert windows([], [work, off]) == []


def test_validity_dates_bound_a_template():
    template = WeeklyShift(1, 0, time(8, 0), 60, valid_from=date(2026, 12, 7))
    assert windows([template]) == []
    assert windows([template], start=local("2026-12-07T00:00"), days=1)


def test_next_boundary_is_the_next_start_or_end():
    found = windows([WeeklyShift(1, 0, time(8, 0), 180)])
    assert next_boundary(found, local("2026-11-30T07:00")) == local("2026-11-30T08:00")
    assert next_boundary(found, local("2026-11-30T09:00")) == local("2026-11-30T11:00")
    assert next_boundary(found, local("2026-11-30T12:00")) is None


@pytest.mark.parametrize("text", ["8:00", "24:00", "08:60", "0800", "", "ab:cd", "08:00:00"])
def test_bad_start_times_are_refused_clearly(text):
    with pytest.raises(ValueError, match="HH:MM"):
        parse_start(text)


@pytest.mark.parametrize("weekday,minutes", [(7, 60), (-1, 60), (0, 0), (0, 24 * 60 + 1)])
def test_impossible_templates_are_refused(weekday, minutes):
    with pytest.raises(ValueError):
        WeeklyShift(1, weekday, time(8, 0), minutes)


def test_log_out_lasts_until_the_shift_ends_and_log_in_works_off_shift():
    found = windows([WeeklyShift(1, 0, time(8, 0), 180)])
    at = local("2026-11-30T09:00")
    until = logout_until(1, found, at)
    assert until == local("2026-11-30T11:00")
    out = SelfService("logged_out", until)
    assert not on_duty(1, found, out, at)
    # The next shift brings them back without anyone remembering to log them in.
    later = found + windows([WeeklyShift(1, 0, time(14, 0), 60)])
    assert on_duty(1, later, out, local("2026-11-30T14:30"))
    ad_hoc = SelfService("logged_in", local("2026-11-30T20:00"))
    assert on_duty(1, found, ad_hoc, local("2026-11-30T19:00"))
    assert not on_duty(1, found, ad_hoc, local("2026-11-30T20:00"))


def test_a_pause_with_an_end_ends_by_itself():
    debrief = SelfService(pause_reason="debrief", pause_until=local("2026-11-30T10:05"))
    assert debrief.pause_at(local("2026-11-30T10:04")) == "debrief"
    assert debrief.pause_at(local("2026-11-30T10:05")) is None
    assert SelfService(pause_reason="break").pause_at(local("2030-01-01T00:00")) == "break"
