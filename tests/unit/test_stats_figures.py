"""The answer-rate arithmetic (hotline/stats/figures.py) and periods (periods.py): pure."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from hotline.stats.figures import (
    JourneyEvent,
    LegEvent,
    OfferedCall,
    Result,
    ShiftSlot,
    by_queue,
    by_shift,
    counsellor_figures,
    figures,
    from_journey,
    parse_slot_start,
    result_of,
    shift_slots,
    slot_of,
    wait_of,
)
from hotline.stats.periods import PeriodError, parse_bound, resolve_period

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")
_ids = iter(range(1_000_000))


def call(outcome: str, wait: float | None = None, *, queue: str = "psych",
         at: datetime = T0, route: str | None = "queue", **fields: object) -> OfferedCall:
    return OfferedCall(call_id=f"c{next(_ids)}", started_at=at, queue=queue, outcome=outcome,
                       route=route, wait_seconds=wait, **fields)  # type: ignore[arg-type]


def answered(wait: float | None = 3.0, **fields: object) -> OfferedCall:
    return call("answered", wait, **fields)


def abandoned(wait: float | None, **fields: object) -> OfferedCall:
    return call("abandoned", wait, **fields)


# -- figures ----------------------------------------------------------------------------------

def test_zero_offered_divides_by_nothing() -> None:
    result = figures([], 5)
    assert (result.offered, result.counted, result.answered) == (0, 0, 0)
    assert result.answer_rate is None
    assert result.counsellor_answer_rate is None
    assert result.abandon_rate is None
    assert result.service_level_15s is None and result.service_level_20s is None
    assert result.average_speed_of_answer_seconds is None


def test_all_short_abandons_leave_no_denominator() -> None:
    result = figures([abandoned(1.0), abandoned(4.9), abandoned(0.0)], 5)
    assert (result.offered, result.abandoned, result.short_abandoned) == (3, 3, 3)
    assert result.counted == 0
    assert result.answer_rate is None and result.abandon_rate is None
    assert result.service_level_15s is None


def test_the_threshold_itself_is_not_a_short_abandon() -> None:
    assert result_of(abandoned(4.999), 5) is Result.SHORT_ABANDONED
    assert result_of(abandoned(5.0), 5) is Result.ABANDONED
    assert result_of(abandoned(5.001), 5) is Result.ABANDONED
    # A site with threshold 0 has no short abandons at all.
    assert result_of(abandoned(0.0), 0) is Result.ABANDONED


def test_answer_rate_excludes_short_abandons_from_the_denominator() -> None:
    calls = [*(answered(2.0) for _ in range(7)), abandoned(30.0), abandoned(2.0),
             abandoned(1.5)]
    result = figures(calls, 5)
    assert (result.offered, result.answered, result.abandoned, result.short_abandoned) == (
        10, 7, 3, 2)
    assert result.counted == 8
    assert result.answer_rate == 7 / 8
    assert result.abandon_rate == 1 / 8
    assert result.lost == 0


def test_a_caller_who_chose_a_callback_is_neither_answered_nor_abandoned() -> None:
    calls = [*(answered(2.0) for _ in range(3)), call("callback_requested", 40.0),
             abandoned(30.0)]
    result = figures(calls, 5)
    assert (result.offered, result.callback_requested, result.counted) == (5, 1, 4)
    assert result.answer_rate == 3 / 4 and result.abandon_rate == 1 / 4
    assert result.abandoned == 1 and result.lost == 0


def test_service_level_counts_exactly_15_and_20_seconds() -> None:
    calls = [answered(15.0), answered(15.000001), answered(20.0), answered(20.5), abandoned(60)]
    result = figures(calls, 5)
    assert result.answered_within_15s == 1
    assert result.answered_within_20s == 3
    assert result.service_level_15s == 1 / 5
    assert result.service_level_20s == 3 / 5
    assert result.average_speed_of_answer_seconds == round((15 + 15.000001 + 20 + 20.5) / 4, 3)


def test_oncall_answers_count_and_are_reported_apart() -> None:
    entered = T0 + timedelta(seconds=20)
    oncall = call("answered_oncall", 25.0, entered_at=entered,
                  answered_at=entered + timedelta(seconds=40))
    result = figures([answered(4.0), oncall, abandoned(12.0)], 5)
    assert (result.answered, result.answered_by_counsellor, result.answered_oncall) == (2, 1, 1)
    assert result.answer_rate == 2 / 3
    assert result.counsellor_answer_rate == 1 / 3
    # The on-call answer waited from the queue entry to the answer, not the queue part only.
    assert wait_of(oncall) == 40.0
    assert result.average_speed_of_answer_seconds == 22.0
    assert result.answered_within_20s == 1


def test_unknown_waits_are_neither_fast_nor_short() -> None:
    # No wait and no times to derive it from: answered but not within 15 s; abandoned,
    # but not a short abandon.
    blind = [call("answered", None, entered_at=None), call("abandoned", None)]
    result = figures(blind, 5)
    assert result.answered == 1 and result.answered_within_15s == 0
    assert result.average_speed_of_answer_seconds is None
    assert (result.abandoned, result.short_abandoned) == (1, 0)


def test_waits_are_derived_from_the_journal_times_when_missing() -> None:
    entered = T0 + timedelta(seconds=10)
    left_at_connecting = call("ivr_hangup", None, entered_at=entered,
                              ended_at=entered + timedelta(seconds=2))
    assert wait_of(left_at_connecting) == 2.0
    assert result_of(left_at_connecting, 5) is Result.SHORT_ABANDONED
    answered_late = call("answered", None, entered_at=entered,
                         answered_at=entered + timedelta(seconds=16))
    assert wait_of(answered_late) == 16.0
    # Clock trouble never makes a negative wait.
    assert wait_of(call("abandoned", -3.0)) == 0.0


def test_lost_and_unknown_outcomes_are_offered_but_neither_answered_nor_abandoned() -> None:
    result = figures([call("lost"), call("transferred_elsewhere"), answered()], 5)
    assert (result.offered, result.lost, result.answered, result.abandoned) == (3, 2, 1, 0)
    assert result.answer_rate == 1 / 3


def test_by_queue_lists_every_queue_then_the_others() -> None:
    calls = [answered(queue="psych"), abandoned(9, queue="psych"), answered(queue="old")]
    rows = by_queue(calls, ["crisis", "legal", "psych"], 5)
    assert [name for name, _ in rows] == ["crisis", "legal", "psych", "old"]
    assert rows[0][1].offered == 0 and rows[0][1].answer_rate is None
    assert (rows[2][1].offered, rows[2][1].answered) == (2, 1)
    assert rows[3][1].offered == 1


def step(kind: str, seconds: float, queue: str = "", wait: float | None = None) -> JourneyEvent:
    return JourneyEvent(kind, T0 + timedelta(seconds=seconds), queue, wait)


def test_a_transfer_moves_neither_the_queue_nor_the_wait() -> None:
    # Answered in psych after 4 s, then transferred into legal and answered there after 2 s:
    # the record names legal and 2 s, the statistics psych and 4 s.
    record = call("answered", 2.0, queue="legal")
    seen = from_journey(record, [step("route", 8, "psych"), step("queue_join", 11, "psych"),
                                 step("connect", 15, "psych", 4.0),
                                 step("queue_join", 80, "legal"),
                                 step("connect", 82, "legal", 2.0)])
    assert (seen.queue, seen.wait_seconds, seen.entered_at) == ("psych", 4.0, T0 + timedelta(
        seconds=11))


def test_an_overflow_counts_in_the_queue_first_sent_to() -> None:
    # Nobody in psych (no join), the on-call phones did not answer, the duty queue did.
    record = call("answered", 3.0, queue="duty")
    seen = from_journey(record, [step("route", 8, "psych"), step("queue_join", 70, "duty"),
                                 step("connect", 73, "duty", 3.0)])
    assert (seen.queue, seen.wait_seconds) == ("psych", 3.0)
    # The backend down: the fallback route names no queue; the duty queue's join does.
    fallback = from_journey(call("abandoned", 9.0, queue="duty"),
                            [step("fallback", 5), step("queue_join", 9, "duty")])
    assert (fallback.queue, fallback.entered_at) == ("duty", T0 + timedelta(seconds=9))
    # Never joined: entered at the last routing decision (a self-help programme first).
    never = from_journey(call("ivr_hangup", None, ended_at=T0 + timedelta(seconds=42)),
                         [step("route", 10), step("route", 40, "psych")])
    assert never.entered_at == T0 + timedelta(seconds=40) and wait_of(never) == 2.0
    # No journey at all: the record as it is.
    assert from_journey(record, []) == record


# -- shift slots ------------------------------------------------------------------------------

def test_slots_default_to_three_hours_from_midnight() -> None:
    slots = shift_slots([])
    assert [slot.label for slot in slots] == [
        "00:00–03:00", "03:00–06:00", "06:00–09:00", "09:00–12:00", "12:00–15:00",
        "15:00–18:00", "18:00–21:00", "21:00–00:00"]


def test_slots_follow_the_shift_starts_and_wrap_past_midnight() -> None:
    slots = shift_slots([time(19), time(8), time(14), time(8)])
    assert [slot.label for slot in slots] == ["08:00–14:00", "14:00–19:00", "19:00–08:00"]
    assert slot_of(slots, time(8)) == ShiftSlot(time(8), time(14))
    assert slot_of(slots, time(13, 59, 59)) == ShiftSlot(time(8), time(14))
    assert slot_of(slots, time(23, 30)) == ShiftSlot(time(19), time(8))
    assert slot_of(slots, time(2)) == ShiftSlot(time(19), time(8))
    assert slot_of(slots, time(7, 59, 59, 999999)) == ShiftSlot(time(19), time(8))
    assert [slot.label for slot in shift_slots([time(8)])] == ["08:00–08:00"]


def test_slot_starts_are_read_leniently() -> None:
    assert parse_slot_start("07:30") == time(7, 30)
    assert [parse_slot_start(text) for text in ("7:30", "24:00", "12:60", "", "ab:cd")] == [
        None] * 5


def test_by_shift_uses_the_site_local_start_time() -> None:
    slots = shift_slots([time(8), time(19)])
    calls = [
        answered(at=datetime(2026, 11, 30, 0, 30, tzinfo=UTC)),  # 08:30 Shanghai
        abandoned(20, at=datetime(2026, 11, 30, 11, 0, tzinfo=UTC)),  # 19:00 Shanghai
        answered(at=datetime(2026, 11, 29, 23, 59, tzinfo=UTC)),  # 07:59 Shanghai
    ]
    rows = by_shift(calls, slots, SHANGHAI, 5)
    assert [(slot.label, result.offered, result.answered) for slot, result in rows] == [
        ("08:00–19:00", 1, 1), ("19:00–08:00", 2, 1)]


# -- counsellors ------------------------------------------------------------------------------

def leg(call_id: str, kind: str, seconds: float, interface: str = "", member: str = "",
        talk: float | None = None) -> LegEvent:
    return LegEvent(call_id, kind, T0 + timedelta(seconds=seconds), interface, member, talk)


def test_counsellor_rings_answers_misses_and_talk_time() -> None:
    li, wang = "PJSIP/c1002", "PJSIP/c1003"
    first = answered(at=T0, ended_at=T0 + timedelta(seconds=100))
    crisis = answered(queue="crisis", route="crisis", ended_at=T0 + timedelta(seconds=300))
    gone = abandoned(12)
    ongoing = answered()
    events = [
        # first: 李 rings out, 王 rings and answers, talks 60 s (AgentComplete).
        leg(first.call_id, "ring", 1, li, "李老师"),
        leg(first.call_id, "ring_no_answer", 16, li, "李老师"),
        leg(first.call_id, "ring", 18, wang, "王老师"),
        leg(first.call_id, "connect", 20, wang, "王老师"),
        leg(first.call_id, "complete", 80, member="王老师", talk=60.0),
        # crisis: 李 answers; no AgentComplete: from the connect to the hang-up.
        leg(crisis.call_id, "ring", 2, li, "李老师"),
        leg(crisis.call_id, "connect", 100, li, "李老师"),
        # gone: rang 李 twice, the caller hung up during the second ring.
        leg(gone.call_id, "ring", 3, li, "李老师"),
        leg(gone.call_id, "ring_no_answer", 18, li, "李老师"),
        leg(gone.call_id, "ring", 20, li, "李老师"),
        # ongoing: 王 is still talking; no talk time yet.
        leg(ongoing.call_id, "ring", 5, wang, "王老师"),
        leg(ongoing.call_id, "connect", 6, wang, "王老师"),
        # a call outside the report is ignored.
        leg("elsewhere", "connect", 1, li, "李老师"),
    ]
    result = counsellor_figures([first, crisis, gone, ongoing], events, frozenset({"crisis"}))
    li_row, wang_row = result[li], result[wang]
    assert (li_row.offered, li_row.rings, li_row.answered, li_row.missed_rings) == (3, 4, 1, 2)
    assert li_row.talk_seconds == 200.0
    assert li_row.crisis_answered == 1
    assert li_row.answer_rate == 1 / 3
    assert (wang_row.offered, wang_row.rings, wang_row.answered, wang_row.missed_rings) == (
        2, 2, 2, 0)
    assert wang_row.talk_seconds == 60.0
    assert wang_row.crisis_answered == 0


def test_a_complete_under_another_name_goes_to_the_only_connection() -> None:
    one = answered(ended_at=T0 + timedelta(seconds=50))
    events = [leg(one.call_id, "connect", 5, "PJSIP/c1002", "李老师"),
              leg(one.call_id, "complete", 40, member="Li", talk=35.0)]
    assert counsellor_figures([one], events)["PJSIP/c1002"].talk_seconds == 35.0


# -- periods ----------------------------------------------------------------------------------

NOW = datetime(2026, 11, 30, 2, 30, tzinfo=UTC)  # 10:30 in Shanghai


def test_default_period_is_today_so_far_in_the_site_zone() -> None:
    period = resolve_period(None, None, now=NOW, zone=SHANGHAI)
    assert period.start == datetime(2026, 11, 30, tzinfo=SHANGHAI)
    assert period.end == NOW


def test_dates_are_whole_site_local_days() -> None:
    period = resolve_period("2026-11-01", "2026-11-30", now=NOW, zone=SHANGHAI)
    assert period.start == datetime(2026, 11, 1, tzinfo=SHANGHAI)
    assert period.end == datetime(2026, 12, 1, tzinfo=SHANGHAI)
    only_to = resolve_period(None, "2026-11-15", now=NOW, zone=SHANGHAI)
    assert (only_to.start, only_to.end) == (datetime(2026, 11, 15, tzinfo=SHANGHAI),
                                            datetime(2026, 11, 16, tzinfo=SHANGHAI))


def test_datetimes_aware_naive_and_with_a_decoded_plus() -> None:
    period = resolve_period("2026-11-30T10:00:00+08:00", "2026-11-30T03:00:00Z", now=NOW,
                            zone=SHANGHAI)
    assert period.start == datetime(2026, 11, 30, 2, tzinfo=UTC)
    assert period.end == datetime(2026, 11, 30, 3, tzinfo=UTC)
    naive = resolve_period("2026-11-30T09:00", None, now=NOW, zone=SHANGHAI)
    assert naive.start == datetime(2026, 11, 30, 1, tzinfo=UTC)
    # An unencoded "+" in a query string arrives as a space.
    assert parse_bound("2026-11-30T10:00:00 08:00", field="from") == datetime(
        2026, 11, 30, 2, tzinfo=UTC)
    assert parse_bound("2026-11-30", field="to") == date(2026, 11, 30)


@pytest.mark.parametrize(("start", "end", "reason"), [
    ("2026-12-01", "2026-11-30", "after"),
    ("2026-11-30T11:00", "2026-11-30T10:00", "after"),
    ("2025-01-01", "2026-02-05", "400 days"),
    ("yesterday", None, "from must be a date"),
    (None, "2026-13-01", "to must be a date"),
    ("0001-01-01T00:00:00+08:00", None, "outside the calendar"),
])
def test_refused_periods(start: str | None, end: str | None, reason: str) -> None:
    with pytest.raises(PeriodError, match=reason):
        resolve_period(start, end, now=NOW, zone=SHANGHAI)


def test_exactly_400_days_and_an_empty_period_are_fine() -> None:
    period = resolve_period("2025-01-01", "2026-02-04", now=NOW, zone=SHANGHAI)
    assert period.days == 400
    empty = resolve_period("2026-11-30T10:00", "2026-11-30T10:00", now=NOW, zone=SHANGHAI)
    assert empty.start == empty.end
