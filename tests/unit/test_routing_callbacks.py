"""Voicemail callbacks: due at the next opening (2026 Mid-Autumn and National Day holidays,
their make-up workdays, a desk open across midnight, overrides), reply deadlines, retries
kept inside service hours, and the worklist order."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import chinese_calendar
import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.callbacks import (
    FINAL_OUTCOMES,
    CallbackSeat,
    Outcome,
    RetryPolicy,
    WorklistTask,
    callback_counsellor,
    next_attempt_at,
    next_service_start,
    reply_deadline,
    worklist_key,
)
from routing.hours import HolidayCalendar, is_open, overrides_by_date
from routing.rules import ALWAYS, DateOverride, Interval, WeeklyHours
from tests.unit.routing_support import shanghai

# 2026 as the State Council set it (checked against chinese_calendar below): Mid-Autumn
# Fri 25 – Sun 27 September, National Day Thu 1 – Wed 7 October, worked instead on
# Sunday 20 September and Saturday 10 October.
MID_AUTUMN = [date(2026, 9, day) for day in (25, 26, 27)]
NATIONAL_DAY = [date(2026, 10, day) for day in range(1, 8)]
MAKEUP = [date(2026, 9, 20), date(2026, 10, 10)]
CALENDAR = HolidayCalendar(
    holidays={**dict.fromkeys(MID_AUTUMN, "中秋节"), **dict.fromkeys(NATIONAL_DAY, "国庆节")},
    makeup_workdays=frozenset(MAKEUP), covered_years=frozenset({2026}))

OFFICE_HOURS = Interval(start="08:00", end="22:00")
OFFICE = WeeklyHours(mon=(OFFICE_HOURS,), tue=(OFFICE_HOURS,), wed=(OFFICE_HOURS,),
                     thu=(OFFICE_HOURS,), fri=(OFFICE_HOURS,))
DESK = WeeklyHours.every_day(Interval(start="19:00", end="02:00"))  # closed on holidays
SPLIT = WeeklyHours.every_day(Interval(start="08:00", end="12:00"),
                              Interval(start="14:00", end="18:00"))

FRIDAY, MONDAY, TUESDAY = (date(2026, 10, 16), date(2026, 10, 19), date(2026, 10, 20))


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return shanghai(day.year, day.month, day.day, hour, minute).replace(second=second)


def test_the_hand_built_calendar_is_the_official_one() -> None:
    official = {day for day in chinese_calendar.constants.holidays if day.year == 2026
                and day.month in (9, 10)}
    assert official == set(MID_AUTUMN) | set(NATIONAL_DAY)
    assert {day for day in chinese_calendar.constants.workdays
            if day.year == 2026 and day.month in (9, 10)} == set(MAKEUP)
    assert [day.strftime("%a") for day in MAKEUP] == ["Sun", "Sat"]


# -- next_service_start ------------------------------------------------------------------

@pytest.mark.parametrize(("left", "due"), [
    # Friday night → Monday morning.
    (at(FRIDAY, 23), at(MONDAY, 8)),
    (at(date(2026, 10, 18), 12), at(MONDAY, 8)),
    # Before the day's opening → that morning.
    (at(MONDAY, 3), at(MONDAY, 8)),
    (at(MONDAY, 7, 59, 59), at(MONDAY, 8)),
    # Closing time is closed.
    (at(MONDAY, 22), at(TUESDAY, 8)),
    # The eve of National Day → the first workday after it.
    (at(date(2026, 9, 30), 23), at(date(2026, 10, 8), 8)),
    # Friday 9 October → the make-up Saturday, with Monday's hours.
    (at(date(2026, 10, 9), 22, 30), at(date(2026, 10, 10), 8)),
    # Before Mid-Autumn → Monday 28 September; a Saturday → the make-up Sunday.
    (at(date(2026, 9, 24), 23), at(date(2026, 9, 28), 8)),
    (at(date(2026, 9, 19), 10), at(date(2026, 9, 20), 8)),
])
def test_office_callbacks_are_due_at_the_next_opening(left: datetime, due: datetime) -> None:
    assert next_service_start(OFFICE, CALENDAR, left) == due


def test_a_message_during_open_hours_is_due_at_once() -> None:
    left = at(MONDAY, 10, 15, 30)
    assert next_service_start(OFFICE, CALENDAR, left) == left
    assert next_service_start(ALWAYS, CALENDAR, at(date(2026, 10, 3), 3)) == at(
        date(2026, 10, 3), 3)


@pytest.mark.parametrize(("left", "due"), [
    (at(TUESDAY, 1, 30), at(TUESDAY, 1, 30)),   # Monday's shift runs until 02:00
    (at(TUESDAY, 2), at(TUESDAY, 19)),
    (at(TUESDAY, 18, 59, 59), at(TUESDAY, 19)),
    (at(date(2026, 9, 30), 23), at(date(2026, 9, 30), 23)),
    # The shift that began on the eve of the holiday still runs into 1 October …
    (at(date(2026, 10, 1), 1), at(date(2026, 10, 1), 1)),
    # … then the desk is closed until the evening of the first workday.
    (at(date(2026, 10, 1), 3), at(date(2026, 10, 8), 19)),
])
def test_a_desk_open_across_midnight(left: datetime, due: datetime) -> None:
    assert next_service_start(DESK, CALENDAR, left) == due


def test_overrides_close_or_open_a_date() -> None:
    overrides = overrides_by_date([
        DateOverride(date=MONDAY, closed=True),
        DateOverride(date=date(2026, 10, 17), hours=(Interval(start="10:00", end="12:00"),)),
    ])
    assert next_service_start(OFFICE, CALENDAR, at(FRIDAY, 23), overrides) == at(
        date(2026, 10, 17), 10)
    assert next_service_start(OFFICE, CALENDAR, at(date(2026, 10, 17), 12),
                              overrides) == at(TUESDAY, 8)


def test_no_opening_within_the_horizon_is_none() -> None:
    assert next_service_start(WeeklyHours(), CALENDAR, at(MONDAY, 10)) is None
    closed = overrides_by_date(DateOverride(date=MONDAY + timedelta(days=n), closed=True)
                               for n in range(61))
    assert next_service_start(OFFICE, CALENDAR, at(MONDAY, 3), closed) is None
    assert next_service_start(OFFICE, CALENDAR, at(MONDAY, 3), closed,
                              horizon_days=90) is not None


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_service_start(OFFICE, CALENDAR, datetime(2026, 10, 19, 10))


# -- reply_deadline ----------------------------------------------------------------------

@pytest.mark.parametrize(("weekly", "left", "deadline"), [
    (OFFICE, at(FRIDAY, 23), at(MONDAY, 22)),
    (OFFICE, at(MONDAY, 3), at(MONDAY, 22)),          # before the day's opening
    (OFFICE, at(MONDAY, 10), at(TUESDAY, 22)),        # while open: the next service day
    (OFFICE, at(MONDAY, 23), at(TUESDAY, 22)),
    (OFFICE, at(date(2026, 9, 30), 23), at(date(2026, 10, 8), 22)),
    (OFFICE, at(date(2026, 10, 9), 23), at(date(2026, 10, 10), 22)),   # make-up Saturday
    (DESK, at(TUESDAY, 1), at(date(2026, 10, 21), 2)),
    (DESK, at(TUESDAY, 20), at(date(2026, 10, 22), 2)),
    (DESK, at(date(2026, 10, 1), 3), at(date(2026, 10, 9), 2)),
    (SPLIT, at(MONDAY, 13), at(TUESDAY, 18)),          # lunch break: the day had begun
    (ALWAYS, at(MONDAY, 10), at(date(2026, 10, 21), 0)),
])
def test_reply_deadline_is_the_end_of_the_first_service_day_after_the_message(
        weekly: WeeklyHours, left: datetime, deadline: datetime) -> None:
    assert reply_deadline(weekly, CALENDAR, left) == deadline


def test_a_site_promising_a_reply_within_hours() -> None:
    left = at(FRIDAY, 23)
    assert reply_deadline(OFFICE, CALENDAR, left, within_hours=24) == at(
        date(2026, 10, 17), 23)
    assert reply_deadline(OFFICE, CALENDAR, left.astimezone(UTC), within_hours=12) == (
        at(date(2026, 10, 17), 11))
    with pytest.raises(ValueError, match="positive"):
        reply_deadline(OFFICE, CALENDAR, left, within_hours=0)


def test_a_deadline_with_no_service_day_is_none() -> None:
    assert reply_deadline(WeeklyHours(), CALENDAR, at(MONDAY, 10)) is None


# -- retries -----------------------------------------------------------------------------

DEFAULT_POLICY = RetryPolicy()


def _retry(attempts: int, last: datetime, outcome: Outcome,
           policy: RetryPolicy = DEFAULT_POLICY) -> datetime | None:
    return next_attempt_at(policy, attempts, last, outcome, weekly=OFFICE, calendar=CALENDAR)


def test_three_attempts_thirty_minutes_apart() -> None:
    assert _retry(1, at(MONDAY, 10), Outcome.NO_ANSWER) == at(MONDAY, 10, 30)
    assert _retry(2, at(MONDAY, 10, 30), Outcome.BUSY) == at(MONDAY, 11)
    assert _retry(3, at(MONDAY, 11), Outcome.NO_ANSWER) is None


@pytest.mark.parametrize("outcome", sorted(FINAL_OUTCOMES))
def test_reached_invalid_and_not_safe_end_the_automatic_attempts(outcome: Outcome) -> None:
    assert _retry(1, at(MONDAY, 10), outcome) is None


def test_not_safe_is_left_to_a_counsellor() -> None:
    assert Outcome.NOT_SAFE in FINAL_OUTCOMES
    assert {Outcome.NO_ANSWER, Outcome.BUSY, Outcome.FAILED}.isdisjoint(FINAL_OUTCOMES)


def test_a_failure_on_our_side_is_retried_and_counted() -> None:
    assert _retry(1, at(MONDAY, 10), Outcome.FAILED) == at(MONDAY, 10, 30)
    assert _retry(3, at(MONDAY, 10), Outcome.FAILED) is None


@pytest.mark.parametrize(("last", "retry"), [
    (at(FRIDAY, 21, 45), at(MONDAY, 8)),
    (at(date(2026, 9, 30), 21, 40), at(date(2026, 10, 8), 8)),
    (at(date(2026, 10, 9), 21, 31), at(date(2026, 10, 10), 8)),
    (at(MONDAY, 21, 29), at(MONDAY, 21, 59)),
])
def test_retries_are_pushed_to_the_next_opening(last: datetime, retry: datetime) -> None:
    assert _retry(1, last, Outcome.NO_ANSWER) == retry


def test_a_custom_policy_and_its_checks() -> None:
    policy = RetryPolicy(max_attempts=5, spacing=timedelta(hours=2))
    assert _retry(4, at(MONDAY, 9), Outcome.NO_ANSWER, policy) == at(MONDAY, 11)
    assert _retry(5, at(MONDAY, 11), Outcome.NO_ANSWER, policy) is None
    assert next_attempt_at(policy, 1, at(MONDAY, 9), "busy",  # type: ignore[arg-type]
                           weekly=OFFICE, calendar=CALENDAR) == at(MONDAY, 11)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(spacing=timedelta(0))
    with pytest.raises(ValueError, match="attempts_so_far"):
        _retry(0, at(MONDAY, 9), Outcome.NO_ANSWER)


# -- worklist ----------------------------------------------------------------------------

def test_the_worklist_order() -> None:
    def task(n: int, hour: int, *, urgent: bool = False, scanned: bool = True) -> WorklistTask:
        return WorklistTask(n, at(MONDAY, hour), urgent=urgent, scanned=scanned)

    tasks = [
        task(1, 1), task(2, 2, scanned=False), task(3, 3, urgent=True),
        task(4, 0), task(5, 4, urgent=True, scanned=False), task(6, 0, scanned=False),
        # Left at 23:30 on Sunday in Shanghai, stored in UTC: still the oldest.
        WorklistTask(7, at(date(2026, 10, 18), 23, 30).astimezone(UTC), False, True),
    ]
    assert [t.message_id for t in sorted(tasks, key=worklist_key)] == [3, 5, 6, 2, 7, 4, 1]


# -- properties --------------------------------------------------------------------------

_INSTANTS = st.datetimes(min_value=datetime(2026, 9, 15), max_value=datetime(2026, 10, 20)
                         ).map(lambda local: local.replace(tzinfo=at(MONDAY, 0).tzinfo))


@given(st.sampled_from([OFFICE, DESK, SPLIT, ALWAYS]), _INSTANTS)
def test_the_due_time_is_the_first_open_instant_and_precedes_the_deadline(
        weekly: WeeklyHours, left: datetime) -> None:
    due = next_service_start(weekly, CALENDAR, left)
    assert due is not None and due >= left
    assert is_open(weekly, CALENDAR, due)
    step = left.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while step < due:  # every hour boundary in our fixtures is a whole minute
        assert not is_open(weekly, CALENDAR, step)
        step += timedelta(minutes=30)
    deadline = reply_deadline(weekly, CALENDAR, left)
    assert deadline is not None and deadline > due


# -- who calls back ----------------------------------------------------------------------------

SPECIALIST = CallbackSeat(1, "PJSIP/c1001", "high_risk")
CONSULTANT = CallbackSeat(2, "PJSIP/c1002", "consultation")
SUPERVISOR = CallbackSeat(3, "PJSIP/c1003", "supervisor")


def test_a_routine_callback_goes_to_a_consultation_seat_and_keeps_specialists_free() -> None:
    assert callback_counsellor([SPECIALIST, CONSULTANT], urgent=False) == CONSULTANT
    assert callback_counsellor([SPECIALIST, SUPERVISOR], urgent=False) == SPECIALIST


def test_an_urgent_callback_goes_to_a_specialist_first_else_to_anyone_free() -> None:
    assert callback_counsellor([CONSULTANT, SPECIALIST], urgent=True) == SPECIALIST
    assert callback_counsellor([CONSULTANT], urgent=True) == CONSULTANT
    assert callback_counsellor([], urgent=True) is None


def test_callers_waiting_hold_back_routine_callbacks_but_not_urgent_ones() -> None:
    assert callback_counsellor([CONSULTANT], urgent=False, callers_waiting=True) is None
    assert callback_counsellor([CONSULTANT], urgent=True, callers_waiting=True) == CONSULTANT


def test_the_assigned_counsellor_makes_the_callback_when_free() -> None:
    assert callback_counsellor([SPECIALIST, CONSULTANT], urgent=False, assigned=1) == SPECIALIST
    # Not free: someone else, as for any callback.
    assert callback_counsellor([CONSULTANT], urgent=False, assigned=1) == CONSULTANT
