from datetime import UTC, datetime, timedelta

from routing.membership import CounsellorOnDuty, ShiftWindow, on_duty_ids, queue_members

SPECIALIST = CounsellorOnDuty(1, "c1001", "张老师", "high_risk", frozenset({"psych"}))
PSYCH = CounsellorOnDuty(2, "c1002", "李老师", "consultation", frozenset({"psych", "legal"}))
PSYCH_ONLY = CounsellorOnDuty(3, "c1003", "王老师", "consultation", frozenset({"psych"}))
ALL = [SPECIALIST, PSYCH, PSYCH_ONLY]


def test_crisis_rings_specialists_before_consultation():
    members = queue_members("crisis", ALL)
    penalties = {m.interface: m.penalty for m in members}
    assert penalties["PJSIP/c1001"] < penalties["PJSIP/c1002"]
    assert penalties["PJSIP/c1002"] == penalties["PJSIP/c1003"]


def test_legal_prefers_legal_skill_and_keeps_specialists_last():
    penalties = {m.interface: m.penalty for m in queue_members("legal", ALL)}
    assert penalties["PJSIP/c1002"] < penalties["PJSIP/c1003"] < penalties["PJSIP/c1001"]


def test_duty_queue_holds_everyone_on_duty_equally():
    assert {m.penalty for m in queue_members("duty", ALL)} == {0}
    assert len(queue_members("duty", ALL)) == 3


def test_on_duty_is_half_open_interval():
    start = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    shifts = [ShiftWindow(1, start, start + timedelta(hours=3))]
    assert on_duty_ids(shifts, start) == {1}
    assert on_duty_ids(shifts, start + timedelta(hours=3)) == set()
