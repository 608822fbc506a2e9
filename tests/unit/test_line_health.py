"""The line watchdog's decisions (routing/line_health.py) and counsellors' live states
(ami_listener/agent_state.py), pure."""

from datetime import UTC, datetime, timedelta

from ami_listener.agent_state import agent_status
from ami_listener.queue_view import MemberView
from routing.line_health import QueueWait, SiteLine, due, line_problems

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def line(**kwargs):
    values = {"site": "default", "open": True, "on_duty": 3, "reachable": 2,
              "unstaffed_alert_seconds": 60, "queues": ()}
    values.update(kwargs)
    return SiteLine(**values)


def test_an_open_line_nobody_can_answer_is_a_problem_after_the_site_threshold():
    [problem] = line_problems([line(reachable=0)], trunk_reachable=True)
    assert (problem.key, problem.kind, problem.after_seconds) == ("unstaffed:default",
                                                                  "unstaffed", 60)
    assert "无咨询员在岗" in problem.summary
    assert line_problems([line(reachable=0, open=False)], trunk_reachable=True) == []
    assert line_problems([line()], trunk_reachable=True) == []


def test_a_long_wait_alerts_at_once_past_the_queue_threshold():
    waits = (QueueWait("crisis", 46.0, 45), QueueWait("psych", 200.0, None),
             QueueWait("legal", 30.0, 45))
    [problem] = line_problems([line(queues=waits)], trunk_reachable=None)
    assert problem.key == "long_wait:crisis" and problem.after_seconds == 0


def test_an_unreachable_trunk_is_a_problem_an_unknown_one_is_not():
    assert [p.kind for p in line_problems([], trunk_reachable=False)] == ["trunk_down"]
    assert line_problems([], trunk_reachable=None) == []


def test_due_waits_for_the_duration_and_forgets_cleared_problems():
    [problem] = line_problems([line(reachable=0)], trunk_reachable=True)
    seen: dict[str, float] = {}
    assert due([problem], seen, 100.0) == ([], set())
    assert due([problem], seen, 159.0) == ([], set())
    assert due([problem], seen, 160.0) == ([problem], set())
    assert due([], seen, 161.0) == ([], {"unstaffed:default"})
    # Back again: the clock starts over.
    assert due([problem], seen, 162.0) == ([], set())


def member(queue="psych", **kwargs):
    return MemberView(queue, "PJSIP/c1002", **kwargs)


def status(memberships, device="NOT_INUSE", ringing=False, connected=False, done=None,
           wrapup=10):
    return agent_status(memberships=memberships, device=device, ringing=ringing,
                        connected=connected, last_complete_at=done, wrapup_seconds=wrapup,
                        now=NOW)


def test_agent_states_in_order_of_precedence():
    assert status([]).state == "offline"
    assert status([], device="INUSE").state == "on_call"  # a call from outside the queues
    assert status([member()], device="UNAVAILABLE").reason == "unregistered"
    assert status([member()], ringing=True).state == "ringing"
    paused = status([member(paused=True, reason="break"),
                     member("crisis", paused=True, reason="break")])
    assert (paused.state, paused.reason) == ("paused", "break")
    # Paused only in the crisis queue (the cap): still takes consultations.
    assert status([member(), member("crisis", paused=True, reason="crisis_cap")]).state == \
        "available"
    assert status([member(paused=True)], connected=True).state == "on_call"
    assert status([member()], done=NOW - timedelta(seconds=5)).state == "wrap_up"
    assert status([member()], done=NOW - timedelta(seconds=11)).state == "available"
    assert status([member()], done=NOW - timedelta(seconds=5), wrapup=0).state == "available"
