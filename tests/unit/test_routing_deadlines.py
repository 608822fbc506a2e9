"""Deadlines (routing/deadlines.py): a crisis at 02:10 due at 02:40, a 48-hour case across a
weekend, the watchdog's warnings and escalations made once each, and met/missed counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.deadlines import (
    BreachCount,
    Deadline,
    DeadlineKind,
    DeadlinePolicy,
    DeadlineRecord,
    DeadlineState,
    DueEscalation,
    EscalationLevel,
    OpenItem,
    breach_counts,
    deadline_for,
    deadline_state,
    due_escalations,
)
from tests.unit.routing_support import shanghai

POLICY = DeadlinePolicy()
CRISIS, CASE, CONSULTATION = DeadlineKind.CRISIS, DeadlineKind.CASE, DeadlineKind.CONSULTATION
WARN, ESCALATE = EscalationLevel.WARN, EscalationLevel.ESCALATE

# Saturday 17 October 2026, 02:10 in Shanghai: the first crisis signal.
SIGNAL = shanghai(2026, 10, 17, 2, 10)


def night(minute: int, second: int = 0) -> datetime:
    """Minutes past 02:00 on the night of the crisis."""
    return shanghai(2026, 10, 17, 2) + timedelta(minutes=minute, seconds=second)


# -- deadline_for / deadline_state -------------------------------------------------------

def test_the_default_promises() -> None:
    assert deadline_for(CRISIS, SIGNAL, POLICY).due_at == night(40)
    assert deadline_for(CONSULTATION, SIGNAL, POLICY).due_at == shanghai(2026, 10, 18, 2, 10)
    assert deadline_for(CASE, SIGNAL, POLICY).due_at == shanghai(2026, 10, 19, 2, 10)


@pytest.mark.parametrize(("now", "state", "left"), [
    (night(10), DeadlineState.OK, timedelta(minutes=30)),
    (night(33, 59), DeadlineState.OK, timedelta(minutes=6, seconds=1)),
    # 80 % of the 30 minutes: 6 minutes before.
    (night(34), DeadlineState.NEAR, timedelta(minutes=6)),
    (night(35), DeadlineState.NEAR, timedelta(minutes=5)),
    # The deadline itself is still in time …
    (night(40), DeadlineState.NEAR, timedelta(0)),
    # … and is missed right after.
    (night(40) + timedelta(microseconds=1), DeadlineState.MISSED, -timedelta(microseconds=1)),
    (night(41), DeadlineState.MISSED, -timedelta(minutes=1)),
])
def test_a_crisis_at_0210(now: datetime, state: DeadlineState, left: timedelta) -> None:
    status = deadline_state(deadline_for(CRISIS, SIGNAL, POLICY), now, POLICY)
    assert (status.state, status.left) == (state, left)


def test_a_case_opened_on_friday_evening_is_due_on_sunday_evening() -> None:
    friday = shanghai(2026, 10, 16, 18, 30)
    case = deadline_for(CASE, friday, POLICY)
    assert case.due_at == shanghai(2026, 10, 18, 18, 30)  # hours of real time, weekend or not
    # Near after 38.4 of the 48 hours: Sunday 08:54, 9.6 hours before.
    assert case.near_at(POLICY) == shanghai(2026, 10, 18, 8, 54)
    saturday = deadline_state(case, shanghai(2026, 10, 17, 12), POLICY)
    assert (saturday.state, saturday.left) == (DeadlineState.OK, timedelta(hours=30, minutes=30))
    assert deadline_state(case, shanghai(2026, 10, 18, 9), POLICY).state is DeadlineState.NEAR
    monday = deadline_state(case, shanghai(2026, 10, 19, 9), POLICY)
    assert (monday.state, monday.left) == (DeadlineState.MISSED, -timedelta(hours=14, minutes=30))


def test_a_site_sets_its_own_promises() -> None:
    policy = DeadlinePolicy(crisis=timedelta(minutes=20), case=timedelta(hours=72),
                            near_fraction=0.75)
    crisis = deadline_for(CRISIS, SIGNAL, policy)
    assert (crisis.due_at, crisis.near_at(policy)) == (night(30), night(25))
    assert deadline_for(CASE, SIGNAL, policy).due_at == shanghai(2026, 10, 20, 2, 10)
    assert policy.allowed("consultation") == timedelta(hours=24)  # type: ignore[arg-type]


def test_an_item_keeps_its_span_when_the_policy_changes() -> None:
    opened = deadline_for(CRISIS, SIGNAL, POLICY)
    longer = DeadlinePolicy(crisis=timedelta(hours=1))
    assert opened.near_at(longer) == night(34)
    assert deadline_state(opened, night(41), longer).state is DeadlineState.MISSED


def test_instants_keep_their_zone_and_compare_across_zones() -> None:
    in_utc = deadline_for(CRISIS, SIGNAL.astimezone(UTC), POLICY)
    assert in_utc.due_at.tzinfo is UTC and in_utc.due_at == night(40)
    assert deadline_state(in_utc, night(35), POLICY).state is DeadlineState.NEAR
    assert deadline_for("case", SIGNAL, POLICY).kind is CASE  # type: ignore[arg-type]


def test_bad_policies_and_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="crisis"):
        DeadlinePolicy(crisis=timedelta(0))
    with pytest.raises(ValueError, match="consultation"):
        DeadlinePolicy(consultation=-timedelta(hours=1))
    for fraction in (0, 1, 1.5):
        with pytest.raises(ValueError, match="near_fraction"):
            DeadlinePolicy(near_fraction=fraction)
    with pytest.raises(ValueError, match="aware"):
        deadline_for(CRISIS, datetime(2026, 10, 17, 2, 10), POLICY)
    with pytest.raises(ValueError, match="aware"):
        deadline_state(deadline_for(CRISIS, SIGNAL, POLICY), datetime(2026, 10, 17, 3), POLICY)
    with pytest.raises(ValueError, match="after"):
        Deadline(CRISIS, SIGNAL, SIGNAL)


# -- the watchdog ------------------------------------------------------------------------

def _crisis_item(escalated: frozenset[EscalationLevel] = frozenset()) -> OpenItem:
    return OpenItem("incident:7", deadline_for(CRISIS, SIGNAL, POLICY), escalated)


def test_the_crisis_is_warned_once_then_escalated_once() -> None:
    item = _crisis_item()
    assert due_escalations([item], night(20), POLICY) == []
    assert due_escalations([item], night(35), POLICY) == [
        DueEscalation("incident:7", CRISIS, WARN, night(40), timedelta(minutes=5))]
    warned = _crisis_item(frozenset({WARN}))
    for now in (night(35), night(38), night(40)):
        assert due_escalations([warned], now, POLICY) == []
    assert due_escalations([warned], night(41), POLICY) == [
        DueEscalation("incident:7", CRISIS, ESCALATE, night(40), -timedelta(minutes=1))]
    escalated = _crisis_item(frozenset({WARN, ESCALATE}))
    for now in (night(41), night(50), night(180)):
        assert due_escalations([escalated], now, POLICY) == []


def test_an_item_first_seen_after_its_deadline_is_escalated_without_a_warning() -> None:
    assert [e.level for e in due_escalations([_crisis_item()], night(45), POLICY)] == [ESCALATE]
    # An escalation recorded covers the warning too.
    assert due_escalations([_crisis_item(frozenset({ESCALATE}))], night(36), POLICY) == []


def test_missed_deadlines_come_first_then_the_closest() -> None:
    items = [
        OpenItem(1, deadline_for(CONSULTATION, night(-23 * 60), POLICY)),    # near
        OpenItem(2, deadline_for(CRISIS, night(0), POLICY)),                  # missed 02:30
        OpenItem(3, deadline_for(CRISIS, SIGNAL, POLICY)),                    # near, 02:40
        OpenItem(4, deadline_for(CASE, night(-49 * 60), POLICY)),             # missed earlier
        OpenItem(5, deadline_for(CASE, night(0), POLICY)),                    # ok
        OpenItem(6, deadline_for(CRISIS, night(-10), POLICY), frozenset({ESCALATE})),
    ]
    due = due_escalations(items, night(36), POLICY)
    assert [(e.item_id, e.level) for e in due] == [
        (4, ESCALATE), (2, ESCALATE), (3, WARN), (1, WARN)]


# -- statistics --------------------------------------------------------------------------

def test_met_and_missed_per_kind_over_a_month() -> None:
    october, november = shanghai(2026, 10, 1), shanghai(2026, 11, 1)
    now = shanghai(2026, 10, 31, 12)

    def record(kind: DeadlineKind, opened: datetime, done: datetime | None) -> DeadlineRecord:
        return DeadlineRecord(deadline_for(kind, opened, POLICY), done)

    opened = shanghai(2026, 10, 17, 2, 10)
    records = [
        record(CRISIS, opened, opened + timedelta(minutes=12)),          # met
        record(CRISIS, opened, opened + timedelta(minutes=30)),          # met on the dot
        record(CRISIS, opened, opened + timedelta(minutes=31)),          # late
        record(CRISIS, opened, None),                                    # never started
        record(CASE, shanghai(2026, 10, 30, 20), None),                  # due 1 Nov: next month
        record(CASE, shanghai(2026, 10, 29, 23), None),                  # due tonight: pending
        record(CASE, shanghai(2026, 9, 29, 12), shanghai(2026, 10, 1, 9)),  # due 1 Oct, met
        record(CONSULTATION, shanghai(2026, 9, 30, 0, 30), None),        # due 1 Oct 00:30
        record(CONSULTATION, shanghai(2026, 9, 29, 12), None),           # due in September
    ]
    counts = breach_counts(records, start=october, end=november, now=now)
    assert counts == {CRISIS: BreachCount(met=2, missed=2), CASE: BreachCount(met=1, pending=1),
                      CONSULTATION: BreachCount(missed=1)}
    assert breach_counts([], start=october, end=november, now=now) == dict.fromkeys(
        DeadlineKind, BreachCount())
    # Later, the pending case was answered in time.
    answered = [*records[:5], record(CASE, shanghai(2026, 10, 29, 23),
                                     shanghai(2026, 10, 31, 20)), *records[6:]]
    assert breach_counts(answered, start=october, end=november,
                         now=shanghai(2026, 11, 2))[CASE] == BreachCount(met=2)
    with pytest.raises(ValueError, match="ends after"):
        breach_counts(records, start=november, end=october, now=now)


# -- properties --------------------------------------------------------------------------

_OFFSETS = st.integers(min_value=-3 * 24 * 3600, max_value=3 * 24 * 3600)
_POLICIES = st.builds(
    DeadlinePolicy,
    crisis=st.integers(1, 120).map(lambda m: timedelta(minutes=m)),
    case=st.integers(1, 96).map(lambda h: timedelta(hours=h)),
    consultation=st.integers(1, 48).map(lambda h: timedelta(hours=h)),
    near_fraction=st.floats(0.05, 0.95))
_RANK = {DeadlineState.OK: 0, DeadlineState.NEAR: 1, DeadlineState.MISSED: 2}


@given(_POLICIES, st.sampled_from(list(DeadlineKind)), _OFFSETS, _OFFSETS)
def test_the_state_only_moves_forward_and_agrees_with_the_time_left(
        policy: DeadlinePolicy, kind: DeadlineKind, a: int, b: int) -> None:
    deadline = deadline_for(kind, SIGNAL, policy)
    earlier, later = sorted((SIGNAL + timedelta(seconds=a), SIGNAL + timedelta(seconds=b)))
    first, second = (deadline_state(deadline, at, policy) for at in (earlier, later))
    assert _RANK[first.state] <= _RANK[second.state]
    assert (second.state is DeadlineState.MISSED) == (second.left < timedelta(0))
    assert first.left - second.left == later - earlier


@given(_POLICIES, st.lists(st.tuples(st.sampled_from(list(DeadlineKind)), _OFFSETS,
                                     st.sets(st.sampled_from([WARN, ESCALATE]))), max_size=8),
       st.lists(_OFFSETS, min_size=1, max_size=6))
def test_a_watchdog_acting_on_what_is_due_escalates_each_level_at_most_once(
        policy: DeadlinePolicy, specs: list[tuple[DeadlineKind, int, set[EscalationLevel]]],
        ticks: list[int]) -> None:
    items = {n: OpenItem(n, deadline_for(kind, SIGNAL + timedelta(seconds=opened), policy),
                         frozenset(done))
             for n, (kind, opened, done) in enumerate(specs)}
    made: list[tuple[int | str, EscalationLevel]] = []
    for tick in sorted(ticks):
        now = SIGNAL + timedelta(seconds=tick)
        for escalation in due_escalations(items.values(), now, policy):
            item = items[int(escalation.item_id)]
            assert escalation.level not in item.escalated
            made.append((escalation.item_id, escalation.level))
            items[int(escalation.item_id)] = OpenItem(
                item.item_id, item.deadline, item.escalated | {escalation.level})
        assert due_escalations(items.values(), now, policy) == []
    assert len(made) == len(set(made))
