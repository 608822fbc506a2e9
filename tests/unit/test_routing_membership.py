from datetime import UTC, datetime, timedelta

from routing.membership import (
    CRISIS_CAP,
    OFFLINE,
    RESERVED,
    SHIFT_END,
    ActualMember,
    Change,
    CounsellorOnDuty,
    Seat,
    ShiftWindow,
    desired_members,
    on_duty_ids,
    plan_changes,
    queue_members,
)

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


# -- desired members and the changes that get Asterisk there -------------------------------

def seat(counsellor, **kwargs):
    return Seat(counsellor, on_duty=kwargs.pop("on_duty", True), **kwargs)


def test_only_counsellors_on_duty_are_members_with_their_tier_penalty():
    wanted = desired_members("crisis", [seat(SPECIALIST), seat(PSYCH, on_duty=False)])
    assert {i: m.penalty for i, m in wanted.items()} == {"PJSIP/c1001": 0}


def test_pause_reasons_in_order_own_then_offline_then_cap_then_reserved():
    own = desired_members("crisis", [seat(SPECIALIST, pause_reason="break", registered=False)])
    assert own["PJSIP/c1001"].reason == "break"
    offline = desired_members("crisis", [seat(SPECIALIST, registered=False)])
    assert offline["PJSIP/c1001"].reason == OFFLINE and offline["PJSIP/c1001"].paused
    capped = desired_members("crisis", [seat(PSYCH, crisis_calls=2)], crisis_cap=2)
    assert capped["PJSIP/c1002"].reason == CRISIS_CAP
    # The cap is about crisis calls: the same counsellor still takes consultations.
    assert not desired_members("psych", [seat(PSYCH, crisis_calls=2)], crisis_cap=2)[
        "PJSIP/c1002"].paused
    reserved = desired_members("psych", [seat(SPECIALIST)], crisis_waiting=True)
    assert reserved["PJSIP/c1001"].reason == RESERVED
    assert not desired_members("psych", [seat(SPECIALIST)])["PJSIP/c1001"].paused
    assert not desired_members("crisis", [seat(SPECIALIST)], crisis_waiting=True)[
        "PJSIP/c1001"].paused


def test_an_unknown_registration_is_not_an_offline_pause():
    assert not desired_members("psych", [seat(PSYCH, registered=None)])["PJSIP/c1002"].paused


def test_a_shift_change_adds_the_newcomer_before_removing_the_leaver():
    desired = {"psych": desired_members("psych", [seat(PSYCH_ONLY)])}
    actual = {"psych": {"PJSIP/c1002": ActualMember("PJSIP/c1002", 0, False)}}
    changes = plan_changes(desired, actual)
    assert [(c.action, c.interface) for c in changes] == [
        ("add", "PJSIP/c1003"), ("remove", "PJSIP/c1002")]


def test_a_leaver_in_a_call_is_paused_not_removed_then_removed_after_the_hang_up():
    desired: dict = {"psych": {}}
    in_call = {"psych": {"PJSIP/c1002": ActualMember("PJSIP/c1002", 0, False, in_call=True)}}
    assert plan_changes(desired, in_call) == [
        Change("pause", "psych", "PJSIP/c1002", penalty=0, reason=SHIFT_END)]
    paused = {"psych": {"PJSIP/c1002": ActualMember("PJSIP/c1002", 0, True, SHIFT_END,
                                                    in_call=True)}}
    assert plan_changes(desired, paused) == []
    hung_up = {"psych": {"PJSIP/c1002": ActualMember("PJSIP/c1002", 0, True, SHIFT_END)}}
    assert [c.action for c in plan_changes(desired, hung_up)] == ["remove"]


def test_nothing_to_do_when_asterisk_already_matches():
    desired = {"crisis": desired_members("crisis", [seat(SPECIALIST), seat(PSYCH)])}
    actual = {"crisis": {i: ActualMember(i, m.penalty, m.paused, m.reason)
                         for i, m in desired["crisis"].items()}}
    assert plan_changes(desired, actual) == []


def test_penalty_pause_and_unpause_follow_the_roster():
    desired = {"crisis": desired_members("crisis", [seat(SPECIALIST, pause_reason="debrief"),
                                                    seat(PSYCH)])}
    actual = {"crisis": {"PJSIP/c1001": ActualMember("PJSIP/c1001", 0, False),
                         "PJSIP/c1002": ActualMember("PJSIP/c1002", 0, True, "break")}}
    changes = {(c.action, c.interface, c.reason, c.penalty) for c in plan_changes(desired, actual)}
    assert changes == {("pause", "PJSIP/c1001", "debrief", 0), ("penalty", "PJSIP/c1002", "", 5),
                       ("unpause", "PJSIP/c1002", "", 5)}


def test_a_new_member_who_should_be_paused_is_added_paused():
    desired = {"psych": desired_members("psych", [seat(PSYCH, registered=False)])}
    changes = plan_changes(desired, {})
    assert changes[0].action == "add" and changes[0].reason == OFFLINE


def test_a_mobile_seat_is_rung_through_a_local_channel_to_the_carrier():
    mobile = CounsellorOnDuty(4, "c1004", "赵老师", "consultation", frozenset({"psych"}),
                              mobile=True)
    wanted = desired_members("psych", [seat(mobile, registered=None)])
    assert list(wanted) == ["Local/c1004@hotline-mobile-seat"]
    assert not wanted["Local/c1004@hotline-mobile-seat"].paused
