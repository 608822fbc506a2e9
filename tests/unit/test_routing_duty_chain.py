"""The duty alert chain (routing/duty_chain.py): a night roster crossing midnight, the first
duty officer rung at once and every 2 minutes, the next one after 5, the chain wrapping, an
acknowledgement ending it, a hole in the roster reported instead of calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.duty_chain import (
    Action,
    AlertState,
    Call,
    ChainPolicy,
    Delivery,
    Escalate,
    EscalationReason,
    Exhausted,
    Gap,
    NobodyOnDuty,
    RosterEntry,
    next_actions,
    next_check_at,
    on_duty,
    roster_gaps,
)
from tests.unit.routing_support import shanghai

POLICY = ChainPolicy()  # repeat every 2 minutes, escalate after 5
UNACKNOWLEDGED, OFF_DUTY = EscalationReason.UNACKNOWLEDGED, EscalationReason.OFF_DUTY
ZHANG, LI, WANG, ZHAO = 1, 2, 3, 4
PHONE = {ZHANG: "13800000001", LI: "13900000002", WANG: "+8613700000003", ZHAO: "13600000004"}

FRIDAY_20, SATURDAY_08 = shanghai(2026, 10, 16, 20), shanghai(2026, 10, 17, 8)


def night(minute: int, second: int = 0) -> datetime:
    """Minutes past 02:00 on Saturday 17 October 2026."""
    return shanghai(2026, 10, 17, 2) + timedelta(minutes=minute, seconds=second)


def entry(person: int, starts_at: datetime, ends_at: datetime) -> RosterEntry:
    return RosterEntry(person, PHONE[person], starts_at, ends_at)


# The night's roster, in escalation order: duty officer, deputy, supervisor.
NIGHT = [entry(ZHANG, FRIDAY_20, SATURDAY_08), entry(LI, FRIDAY_20, SATURDAY_08),
         entry(WANG, FRIDAY_20, SATURDAY_08)]
RAISED = night(10)


def call(person: int, attempt: int, lap: int = 1) -> Call:
    return Call(person, PHONE[person], attempt, lap)


Log = list[tuple[datetime, Action]]


def run(state: AlertState, roster: list[RosterEntry], start: datetime, end: datetime,
        step: timedelta = timedelta(seconds=30)) -> tuple[AlertState, Log]:
    """A watchdog ticking every `step` from `start` to `end` (included), doing what it is
    told and recording it."""
    done: Log = []
    now = start
    while now <= end:
        actions = next_actions(state, roster, now, POLICY)
        done += [(now, action) for action in actions]
        state = state.recorded(actions, now)
        now += step
    return state, done


# -- the roster --------------------------------------------------------------------------

def test_a_roster_entry_crossing_midnight() -> None:
    for at in (FRIDAY_20, shanghai(2026, 10, 16, 23, 59), shanghai(2026, 10, 17),
               SATURDAY_08 - timedelta(microseconds=1)):
        assert [e.person_id for e in on_duty(NIGHT, at)] == [ZHANG, LI, WANG]
    assert on_duty(NIGHT, SATURDAY_08) == []
    assert on_duty(NIGHT, FRIDAY_20 - timedelta(seconds=1)) == []


def test_on_duty_keeps_the_roster_order_and_one_entry_per_person() -> None:
    roster = [entry(WANG, FRIDAY_20, SATURDAY_08),
              RosterEntry(ZHANG, "13800009999", night(0), night(60)),  # on call from home
              entry(ZHANG, FRIDAY_20, SATURDAY_08)]
    assert on_duty(roster, night(10)) == roster[:2]
    assert on_duty(roster, night(60)) == [roster[0], roster[2]]
    assert on_duty(reversed(roster), night(10)) == [roster[2], roster[0]]


def test_gaps_in_the_roster() -> None:
    day = [entry(ZHAO, SATURDAY_08, shanghai(2026, 10, 17, 18)),
           entry(LI, shanghai(2026, 10, 17, 12), shanghai(2026, 10, 17, 20)),
           entry(ZHANG, shanghai(2026, 10, 17, 22), shanghai(2026, 10, 18, 8))]
    gaps = roster_gaps(NIGHT + day, FRIDAY_20 - timedelta(hours=2), shanghai(2026, 10, 18, 9))
    assert gaps == [Gap(shanghai(2026, 10, 16, 18), FRIDAY_20),
                    Gap(shanghai(2026, 10, 17, 20), shanghai(2026, 10, 17, 22)),
                    Gap(shanghai(2026, 10, 18, 8), shanghai(2026, 10, 18, 9))]
    assert gaps[1].summary == "2026-10-17 20:00 至 2026-10-17 22:00 值班表无人值班"
    assert roster_gaps(NIGHT + day, FRIDAY_20, shanghai(2026, 10, 17, 20)) == []
    assert roster_gaps([], FRIDAY_20, SATURDAY_08) == [Gap(FRIDAY_20, SATURDAY_08)]
    # Instants in another zone are the same instants.
    assert roster_gaps(NIGHT, FRIDAY_20.astimezone(UTC), SATURDAY_08.astimezone(UTC)) == []
    with pytest.raises(ValueError, match="ends after"):
        roster_gaps(NIGHT, SATURDAY_08, FRIDAY_20)


def test_bad_entries_are_refused() -> None:
    with pytest.raises(ValueError, match="ends after"):
        entry(ZHANG, SATURDAY_08, FRIDAY_20)
    with pytest.raises(ValueError, match="aware"):
        RosterEntry(ZHANG, PHONE[ZHANG], datetime(2026, 10, 16, 20), SATURDAY_08)
    for number in ("", "12", "138 0000 0001", "13800000001\r\nAction: Originate", "110,t"):
        with pytest.raises(ValueError, match="digits"):
            RosterEntry(ZHANG, number, FRIDAY_20, SATURDAY_08)
    with pytest.raises(ValueError, match="positive"):
        ChainPolicy(repeat_every=timedelta(0))
    with pytest.raises(ValueError, match="aware"):
        next_actions(AlertState(RAISED), NIGHT, datetime(2026, 10, 17, 2, 10), POLICY)


# -- the chain ---------------------------------------------------------------------------

def test_rung_at_once_repeated_every_two_minutes_escalated_after_five_then_wrapped() -> None:
    state, done = run(AlertState(RAISED), NIGHT, RAISED, night(25))
    assert done == [
        (night(10), call(ZHANG, 1)),
        (night(12), call(ZHANG, 2)),
        (night(14), call(ZHANG, 3)),
        (night(15), Escalate(ZHANG, LI, 1, UNACKNOWLEDGED)),
        (night(15), call(LI, 1)),
        (night(17), call(LI, 2)),
        (night(19), call(LI, 3)),
        (night(20), Escalate(LI, WANG, 1, UNACKNOWLEDGED)),
        (night(20), call(WANG, 1)),
        (night(22), call(WANG, 2)),
        (night(24), call(WANG, 3)),
        # Nobody answered: flagged, and the chain starts again from the top.
        (night(25), Exhausted(1)),
        (night(25), Escalate(WANG, ZHANG, 2, UNACKNOWLEDGED)),
        (night(25), call(ZHANG, 1, lap=2)),
    ]
    assert [d.lap for d in state.deliveries] == [1] * 9 + [2]
    _, more = run(state, NIGHT, night(25, 30), night(31))
    assert more == [(night(27), call(ZHANG, 2, lap=2)), (night(29), call(ZHANG, 3, lap=2)),
                    (night(30), Escalate(ZHANG, LI, 2, UNACKNOWLEDGED)),
                    (night(30), call(LI, 1, lap=2))]


def test_an_acknowledged_alert_needs_nothing_more() -> None:
    state, _ = run(AlertState(RAISED), NIGHT, RAISED, night(16))
    acknowledged = AlertState(RAISED, night(16), state.deliveries)
    for now in (night(16), night(17), night(20), night(300)):
        assert next_actions(acknowledged, NIGHT, now, POLICY) == []
    assert next_check_at(acknowledged, NIGHT, night(16), POLICY) is None
    # Acknowledged before anyone was rung (in the API, on the webhook's message).
    early = AlertState(RAISED, acknowledged_at=RAISED)
    assert next_actions(early, NIGHT, RAISED, POLICY) == []


def test_when_to_look_again() -> None:
    state = AlertState(RAISED).recorded([call(ZHANG, 1)], RAISED)
    assert next_check_at(state, NIGHT, RAISED, POLICY) == night(12)
    assert next_check_at(state, NIGHT, night(11), POLICY) == night(12)
    assert next_check_at(state, NIGHT, night(12), POLICY) == night(12)  # due now
    state, _ = run(state, NIGHT, night(12), night(14))
    assert next_check_at(state, NIGHT, night(14), POLICY) == night(15)  # the escalation
    # A shift change comes before the next repeat.
    short = [entry(ZHANG, FRIDAY_20, night(11)), *NIGHT[1:]]
    fresh = AlertState(RAISED).recorded([call(ZHANG, 1)], RAISED)
    assert next_check_at(fresh, short, RAISED, POLICY) == night(11)
    assert next_check_at(AlertState(RAISED), NIGHT, RAISED, POLICY) == RAISED


def test_a_late_tick_moves_one_step_only() -> None:
    state = AlertState(RAISED).recorded([call(ZHANG, 1)], RAISED)
    assert next_actions(state, NIGHT, night(40), POLICY) == [
        Escalate(ZHANG, LI, 1, UNACKNOWLEDGED), call(LI, 1)]


def test_escalation_wins_over_a_repeat_due_at_the_same_time() -> None:
    policy = ChainPolicy(repeat_every=timedelta(minutes=5), escalate_after=timedelta(minutes=5))
    state = AlertState(RAISED).recorded([call(ZHANG, 1)], RAISED)
    assert next_actions(state, NIGHT, night(15), policy) == [
        Escalate(ZHANG, LI, 1, UNACKNOWLEDGED), call(LI, 1)]


def test_a_roster_gap_is_reported_instead_of_calls() -> None:
    evening = [entry(ZHAO, SATURDAY_08, shanghai(2026, 10, 17, 20)),
               entry(ZHANG, shanghai(2026, 10, 17, 22), shanghai(2026, 10, 18, 8)),
               entry(LI, shanghai(2026, 10, 17, 22), shanghai(2026, 10, 18, 8))]
    raised = shanghai(2026, 10, 17, 21)
    state, done = run(AlertState(raised), evening, raised, shanghai(2026, 10, 17, 22, 1))
    unstaffed = [at for at, action in done if isinstance(action, NobodyOnDuty)]
    # Reported at once and every 2 minutes while the hole lasts; the caller alerts some
    # other way. The first person of the night shift is rung the moment it starts.
    assert unstaffed == [raised + timedelta(minutes=2 * n) for n in range(30)]
    assert [(at, a) for at, a in done if isinstance(a, Call)] == [
        (shanghai(2026, 10, 17, 22), call(ZHANG, 1))]
    assert state.unstaffed_reported_at == shanghai(2026, 10, 17, 21, 58)


def test_a_shift_ending_during_the_alert_moves_the_chain_on_at_once() -> None:
    # Zhang's night ends at 06:00 and Zhao's day starts; the alert came at 05:58.
    morning = [entry(ZHANG, FRIDAY_20, shanghai(2026, 10, 17, 6)),
               entry(ZHAO, shanghai(2026, 10, 17, 6), shanghai(2026, 10, 17, 18))]
    raised = shanghai(2026, 10, 17, 5, 58)
    _, done = run(AlertState(raised), morning, raised, shanghai(2026, 10, 17, 6, 3))
    assert done == [(raised, call(ZHANG, 1)),
                    (shanghai(2026, 10, 17, 6), Escalate(ZHANG, ZHAO, 1, OFF_DUTY)),
                    (shanghai(2026, 10, 17, 6), call(ZHAO, 1)),
                    (shanghai(2026, 10, 17, 6, 2), call(ZHAO, 2))]


def test_someone_coming_on_duty_joins_the_round() -> None:
    # Wang comes on at 02:12, ahead of Li in the roster: the next one rung.
    roster = [NIGHT[0], entry(WANG, night(12), SATURDAY_08), NIGHT[1]]
    _, done = run(AlertState(RAISED), roster, RAISED, night(20))
    assert [(at, a.person_id) for at, a in done if isinstance(a, Call) and a.attempt == 1] == [
        (night(10), ZHANG), (night(15), WANG), (night(20), LI)]


def test_a_chain_of_one_keeps_ringing_and_says_it_is_exhausted() -> None:
    alone = NIGHT[:1]
    _, done = run(AlertState(RAISED), alone, RAISED, night(21))
    assert [a for _, a in done if not isinstance(a, Call)] == [
        Exhausted(1), Escalate(ZHANG, ZHANG, 2, UNACKNOWLEDGED),
        Exhausted(2), Escalate(ZHANG, ZHANG, 3, UNACKNOWLEDGED)]
    assert [(at, a.attempt, a.lap) for at, a in done if isinstance(a, Call)] == [
        (night(10), 1, 1), (night(12), 2, 1), (night(14), 3, 1),
        (night(15), 1, 2), (night(17), 2, 2), (night(19), 3, 2), (night(20), 1, 3)]


def test_deliveries_recorded_out_of_order_or_in_another_zone() -> None:
    deliveries = (Delivery(LI, PHONE[LI], night(15).astimezone(UTC)),
                  Delivery(ZHANG, PHONE[ZHANG], night(10)),
                  Delivery(ZHANG, PHONE[ZHANG], night(12)),
                  Delivery(LI, PHONE[LI], night(17)))
    state = AlertState(RAISED, deliveries=deliveries)
    assert next_actions(state, NIGHT, night(18), POLICY) == []
    assert next_actions(state, NIGHT, night(19), POLICY) == [call(LI, 3)]
    assert next_actions(state, NIGHT, night(20), POLICY) == [
        Escalate(LI, WANG, 1, UNACKNOWLEDGED), call(WANG, 1)]


# -- properties --------------------------------------------------------------------------

_ENTRIES = st.builds(
    lambda person, start, minutes: entry(person, RAISED + timedelta(minutes=start),
                                         RAISED + timedelta(minutes=start + minutes)),
    st.sampled_from(list(PHONE)), st.integers(-120, 90), st.integers(1, 180))
_POLICIES = st.builds(ChainPolicy,
                      repeat_every=st.integers(10, 300).map(lambda s: timedelta(seconds=s)),
                      escalate_after=st.integers(10, 900).map(lambda s: timedelta(seconds=s)))
_TICKS = st.lists(st.integers(0, 120 * 60), max_size=40)


def _simulate(roster: list[RosterEntry], policy: ChainPolicy, ticks: list[int]) -> AlertState:
    state = AlertState(RAISED)
    for tick in sorted(ticks):
        now = RAISED + timedelta(seconds=tick)
        state = state.recorded(next_actions(state, roster, now, policy), now)
    return state


@given(st.lists(_ENTRIES, max_size=6), _POLICIES, _TICKS, st.integers(0, 150 * 60))
def test_never_the_same_delivery_twice_and_quiet_until_the_next_check(
        roster: list[RosterEntry], policy: ChainPolicy, ticks: list[int], at: int) -> None:
    state = _simulate(roster, policy, ticks)
    now = RAISED + timedelta(seconds=max([at, *ticks]))
    actions = next_actions(state, roster, now, policy)
    calls = [a for a in actions if isinstance(a, Call)]
    assert len(calls) <= 1
    assert all(c.person_id in {e.person_id for e in on_duty(roster, now)} for c in calls)
    if any(isinstance(a, Escalate | Exhausted) for a in actions):
        assert isinstance(actions[-1], Call)
    done = state.recorded(actions, now)
    # Asked again at the same instant with what was done recorded: nothing new.
    assert next_actions(done, roster, now, policy) == []
    wake = next_check_at(done, roster, now, policy)
    assert wake is not None and wake > now
    for quiet in (now + (wake - now) / 2, wake - timedelta(microseconds=1)):
        if quiet > now:
            assert next_actions(done, roster, quiet, policy) == []


@given(st.lists(_ENTRIES, max_size=6), _POLICIES, _TICKS, st.integers(0, 150 * 60),
       st.integers(0, 150 * 60))
def test_an_acknowledged_alert_gets_no_action(
        roster: list[RosterEntry], policy: ChainPolicy, ticks: list[int], acknowledged: int,
        at: int) -> None:
    state = _simulate(roster, policy, ticks)
    acked = AlertState(RAISED, RAISED + timedelta(seconds=acknowledged), state.deliveries,
                       state.unstaffed_reported_at)
    now = RAISED + timedelta(seconds=at)
    assert next_actions(acked, roster, now, policy) == []
    assert next_check_at(acked, roster, now, policy) is None
