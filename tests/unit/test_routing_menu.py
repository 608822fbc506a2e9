"""Walking a site's menu for one call: the default 12355 menu, the night attendant, the
crisis route, flagged callers, terminal routes, the step limit and broken references."""

from __future__ import annotations

from datetime import datetime

import pytest

from routing.defaults import default_rules
from routing.menu import (
    MAX_STEPS,
    Action,
    CallerContext,
    Collect,
    MenuWalk,
    Play,
    Reason,
    Route,
    RouteKind,
    run_scripted,
)
from routing.rules import (
    ALL_DIGITS,
    CallerRules,
    CrisisNode,
    ForwardNode,
    Hours,
    HoursNode,
    Interval,
    MenuNode,
    OffHours,
    PlayNode,
    QueueNode,
    RuleSet,
    VoicemailNode,
    WeeklyHours,
)
from tests.unit.routing_support import CALENDAR, press, shanghai

RULES = default_rules()
OPEN = shanghai(2026, 3, 10, 10, 0)          # a Tuesday morning
NIGHT = shanghai(2026, 3, 10, 23, 30)
NATIONAL_DAY_NOON = shanghai(2026, 10, 1, 12, 0)


def walk_at(at: datetime = OPEN, rules: RuleSet = RULES, **kwargs: object) -> MenuWalk:
    return MenuWalk(rules=rules, at=at, calendar=CALENDAR, **kwargs)  # type: ignore[arg-type]


def drive(walk: MenuWalk, answers: list[str | None], *,
          resume: str | None = None) -> tuple[Route, list[Action]]:
    """Answer every action in turn (a Play's answer is the digit pressed during it);
    once the answers run out the caller stays silent."""
    actions: list[Action] = [walk.start(resume)]
    queue = list(answers)
    while not isinstance(actions[-1], Route):
        assert len(actions) < 1000, "the walk does not end"
        actions.append(press(walk, actions[-1], queue.pop(0) if queue else None))
    route = actions[-1]
    assert isinstance(route, Route)
    return route, actions


def at_main_menu(walk: MenuWalk) -> Action:
    welcome = walk.start()
    assert welcome == Play("hotline/welcome", ALL_DIGITS)
    menu = walk.played(None)
    assert menu == Collect("hotline/menu", 5000, "main")
    return menu


# -- the default menu during service hours --------------------------------------------------

def test_the_caller_hears_the_welcome_then_the_main_menu():
    walk = walk_at()
    assert walk.site_open
    at_main_menu(walk)
    assert walk.path == ["welcome", "main"]


@pytest.mark.parametrize(("digit", "node", "queue"), [
    ("1", "psych", "psych"), ("2", "legal", "legal"), ("0", "human", "psych"),
])
def test_menu_choices_reach_their_queue(digit, node, queue):
    walk = walk_at()
    at_main_menu(walk)
    route = walk.collected(digit)
    assert route == Route(RouteKind.QUEUE, node, Reason.CHOSEN, queue=queue, priority=0)
    assert walk.digits == [digit]


def test_three_is_the_crisis_route_with_top_priority():
    walk = walk_at()
    at_main_menu(walk)
    route = walk.collected("3")
    assert isinstance(route, Route)
    assert (route.kind, route.node, route.queue, route.reason) == (
        RouteKind.CRISIS, "crisis", "crisis", Reason.CHOSEN)
    assert route.priority == RULES.crisis_priority == 10
    assert route.priority > max(n.priority for n in RULES.nodes.values()
                                if isinstance(n, QueueNode))


def test_the_crisis_priority_is_the_site_setting():
    rules = default_rules(crisis_priority=42, crisis_queue="weixian")
    route, _ = drive(walk_at(rules=rules), [None, "3"])
    assert (route.kind, route.queue, route.priority) == (RouteKind.CRISIS, "weixian", 42)


def test_a_silent_caller_reaches_a_human_at_once():
    walk = walk_at()
    at_main_menu(walk)
    route = walk.collected(None)
    assert route == Route(RouteKind.QUEUE, "human", Reason.NO_INPUT, queue="psych")
    assert walk.digits == [None]
    assert walk.inputs == [("main", None)]


def test_a_menu_can_ask_a_silent_caller_again():
    rules = RULES.model_copy(update={"nodes": {
        **RULES.nodes,
        "main": RULES.nodes["main"].model_copy(update={"no_input_attempts": 2}),
    }})
    walk = walk_at(rules=rules)
    at_main_menu(walk)
    # The second chance comes without the "invalid" prompt.
    assert walk.collected(None) == Collect("hotline/menu", 5000, "main")
    route = walk.collected(None)
    assert route == Route(RouteKind.QUEUE, "human", Reason.NO_INPUT, queue="psych")


def test_silences_and_invalid_digits_are_counted_apart():
    rules = RULES.model_copy(update={"nodes": {
        **RULES.nodes,
        "main": RULES.nodes["main"].model_copy(update={"no_input_attempts": 2}),
    }})
    walk = walk_at(rules=rules)
    at_main_menu(walk)
    assert walk.collected(None) == Collect("hotline/menu", 5000, "main")
    assert walk.collected("7") == Play("hotline/invalid", ALL_DIGITS)
    assert walk.played(None) == Collect("hotline/menu", 5000, "main")
    route = walk.collected("3")
    assert isinstance(route, Route) and route.kind is RouteKind.CRISIS


def test_an_empty_string_counts_as_no_input():
    route, _ = drive(walk_at(), [None, "", ""])
    assert route.reason is Reason.NO_INPUT


def test_two_invalid_digits_reach_a_human_with_reason_invalid():
    walk = walk_at()
    at_main_menu(walk)
    assert walk.collected("7") == Play("hotline/invalid", ALL_DIGITS)
    assert walk.played(None) == Collect("hotline/menu", 5000, "main")
    route = walk.collected("#")
    assert route == Route(RouteKind.QUEUE, "human", Reason.INVALID, queue="psych")
    assert walk.digits == ["7", "#"]


def test_a_digit_during_the_invalid_prompt_is_the_second_try():
    walk = walk_at()
    at_main_menu(walk)
    walk.collected("9")
    route = walk.played("3")
    assert isinstance(route, Route) and route.kind is RouteKind.CRISIS
    assert walk.digits == ["9", "3"]


def test_an_invalid_digit_then_silence_is_no_input():
    route, _ = drive(walk_at(), [None, "9", None, None])
    assert (route.node, route.reason) == ("human", Reason.NO_INPUT)


@pytest.mark.parametrize(("digit", "kind"), [
    ("1", RouteKind.QUEUE), ("2", RouteKind.QUEUE), ("3", RouteKind.CRISIS),
    ("0", RouteKind.QUEUE),
])
def test_a_digit_pressed_during_the_welcome_counts(digit, kind):
    walk = walk_at()
    walk.start()
    route = walk.played(digit)
    assert isinstance(route, Route)
    assert route.kind is kind
    assert route.reason is Reason.CHOSEN
    assert walk.path[:2] == ["welcome", "main"]


def test_an_invalid_digit_during_the_welcome_uses_one_try():
    walk = walk_at()
    walk.start()
    assert walk.played("8") == Play("hotline/invalid", ALL_DIGITS)
    assert walk.played(None) == Collect("hotline/menu", 5000, "main")
    route = walk.collected("*")
    assert isinstance(route, Route) and route.reason is Reason.INVALID


def test_a_menu_with_more_attempts_replays_more_often():
    rules = RULES.model_copy(update={"nodes": {
        **RULES.nodes,
        "main": RULES.nodes["main"].model_copy(update={"attempts": 3, "timeout_seconds": 8}),
    }})
    route, actions = drive(walk_at(rules=rules), [None, "7", None, "8", None, "9"])
    assert route.reason is Reason.INVALID
    collects = [a for a in actions if isinstance(a, Collect)]
    assert len(collects) == 3 and all(c.timeout_ms == 8000 for c in collects)
    assert sum(a == Play("hotline/invalid", ALL_DIGITS) for a in actions) == 2


def test_run_scripted_plays_every_prompt_and_answers_every_menu():
    assert run_scripted(walk_at(), ["2"]).node == "legal"
    assert run_scripted(walk_at(), []).reason is Reason.NO_INPUT
    assert run_scripted(walk_at(), ["5", "6"]).reason is Reason.INVALID
    assert run_scripted(walk_at(), [], menus_allowed=0) == Collect("hotline/menu", 5000, "main")
    assert run_scripted(walk_at(NIGHT), ["1"], menus_allowed=1) == Collect(
        "hotline/selfhelp-menu", 5000, "selfhelp-menu")


def test_played_and_collected_out_of_turn_are_errors():
    with pytest.raises(RuntimeError):
        walk_at().played(None)
    with pytest.raises(RuntimeError):
        walk_at().collected("1")


# -- outside service hours: the night attendant ---------------------------------------------

def test_outside_hours_the_night_attendant_answers():
    walk = walk_at(NIGHT)
    assert not walk.site_open
    assert walk.entry() == "night"
    assert walk.start() == Play("hotline/closed", ALL_DIGITS)
    assert walk.played(None) == Collect("hotline/night-menu", 5000, "night-menu")


@pytest.mark.parametrize("at", [NIGHT, NATIONAL_DAY_NOON, shanghai(2026, 3, 11, 7, 59)])
def test_the_night_attendant_also_answers_early_mornings_and_public_holidays(at):
    assert walk_at(at).entry() == "night"


def test_a_makeup_saturday_is_an_open_day():
    assert walk_at(shanghai(2026, 2, 28, 10, 0)).entry() == "welcome"


def test_a_self_help_programme_returns_to_the_menu():
    walk = walk_at(NIGHT)
    route, _ = drive(walk, [None, "1", "2"])
    assert route == Route(RouteKind.SELFHELP, "selfhelp-sleep", Reason.CHOSEN,
                          prompt="hotline/selfhelp-sleep", resume="selfhelp-menu")
    # After the programme the FastAGI route starts a new walk where the caller left off.
    again = walk_at(NIGHT)
    assert again.start(resume=route.resume) == Collect(
        "hotline/selfhelp-menu", 5000, "selfhelp-menu")
    assert again.collected("9") == Collect("hotline/night-menu", 5000, "night-menu")
    crisis = again.collected("3")
    assert isinstance(crisis, Route) and crisis.kind is RouteKind.CRISIS


def test_a_silent_caller_after_a_programme_still_reaches_the_crisis_duty():
    route, _ = drive(walk_at(NIGHT), [], resume="selfhelp-menu")
    assert (route.kind, route.reason) == (RouteKind.CRISIS, Reason.NO_INPUT)


def test_a_resume_at_an_unknown_node_starts_from_the_entry():
    assert walk_at(NIGHT).start(resume="gone") == Play("hotline/closed", ALL_DIGITS)


def test_leaving_a_message_at_night():
    route, _ = drive(walk_at(NIGHT), [None, "2"])
    assert route == Route(RouteKind.VOICEMAIL, "voicemail", Reason.CHOSEN,
                          prompt="hotline/voicemail-greeting")


def test_a_silent_caller_at_night_reaches_the_crisis_duty():
    route, _ = drive(walk_at(NIGHT), [])
    assert (route.kind, route.node, route.reason) == (RouteKind.CRISIS, "crisis", Reason.NO_INPUT)


# -- the crisis route -----------------------------------------------------------------------

def nobody_on_crisis(queue: str) -> bool:
    return queue != "crisis"


def test_crisis_goes_to_the_oncall_numbers_when_nobody_can_take_it():
    walk = walk_at(staffed=nobody_on_crisis)
    route, _ = drive(walk, [None, "3"])
    assert route == Route(RouteKind.ONCALL, "crisis", Reason.CHOSEN, queue="crisis",
                          priority=10)


def test_the_staffed_check_is_asked_about_the_crisis_queue():
    asked: list[str] = []

    def staffed(queue: str) -> bool:
        asked.append(queue)
        return True

    drive(walk_at(rules=default_rules(crisis_queue="weixian"), staffed=staffed), [None, "3"])
    assert asked == ["weixian"]


def test_other_queues_are_not_affected_by_staffing():
    route, _ = drive(walk_at(staffed=lambda _q: False), [None, "1"])
    assert route.kind is RouteKind.QUEUE


@pytest.mark.parametrize("at", [OPEN, NIGHT, NATIONAL_DAY_NOON])
def test_a_caller_flagged_high_risk_goes_straight_to_crisis_with_priority(at):
    walk = walk_at(at, caller=CallerContext(high_risk=True))
    route = walk.start()
    assert route == Route(RouteKind.CRISIS, "", Reason.FLAGGED_HIGH_RISK, queue="crisis",
                          priority=10)
    assert walk.path == []


def test_a_high_risk_caller_goes_to_oncall_when_nobody_can_take_it():
    route = walk_at(caller=CallerContext(high_risk=True), staffed=nobody_on_crisis).start()
    assert isinstance(route, Route) and route.kind is RouteKind.ONCALL
    assert route.reason is Reason.FLAGGED_HIGH_RISK


def test_high_risk_uses_the_site_crisis_queue():
    route = walk_at(rules=default_rules(crisis_queue="weixian"),
                    caller=CallerContext(high_risk=True)).start()
    assert isinstance(route, Route) and route.queue == "weixian"


# -- abusive callers ------------------------------------------------------------------------

ABUSIVE_RULES = RULES.model_copy(update={
    "callers": CallerRules(abusive_entry="abusive"),
    "nodes": {**RULES.nodes, "abusive": MenuNode(
        prompt="hotline/abusive-menu", options={"3": "crisis", "2": "voicemail"},
        no_input="voicemail")},
})


@pytest.mark.parametrize("at", [OPEN, NIGHT])
def test_an_abusive_caller_gets_the_configured_entry_at_any_hour(at):
    walk = walk_at(at, rules=ABUSIVE_RULES, caller=CallerContext(abusive=True))
    assert walk.start() == Collect("hotline/abusive-menu", 5000, "abusive")
    assert walk.collected(None) == Route(RouteKind.VOICEMAIL, "voicemail", Reason.NO_INPUT,
                                         prompt="hotline/voicemail-greeting")


def test_an_abusive_caller_is_never_blocked_from_the_crisis_route():
    route, _ = drive(walk_at(rules=ABUSIVE_RULES, caller=CallerContext(abusive=True)), ["3"])
    assert route.kind is RouteKind.CRISIS
    flagged_both = walk_at(rules=ABUSIVE_RULES, caller=CallerContext(abusive=True,
                                                                      high_risk=True))
    assert flagged_both.start() == Route(RouteKind.CRISIS, "", Reason.FLAGGED_HIGH_RISK,
                                         queue="crisis", priority=10)


def test_an_abusive_caller_without_an_abusive_entry_gets_the_normal_menu():
    assert walk_at(caller=CallerContext(abusive=True)).entry() == "welcome"


def test_other_callers_never_get_the_abusive_entry():
    assert walk_at(rules=ABUSIVE_RULES).entry() == "welcome"


# -- forward, voicemail, hours nodes --------------------------------------------------------

DESK_HOURS = WeeklyHours.every_day(Interval(start="19:00", end="02:00"))
BRANCHING = RuleSet(
    entry="menu",
    off_hours=OffHours(mode="forward", entry="provincial"),
    hours=Hours(site=WeeklyHours.every_day(Interval(start="08:00", end="22:00")),
                queues={"highrisk": DESK_HOURS}),
    nodes={
        "menu": MenuNode(prompt="site/menu", options={
            "1": "desk", "2": "message", "3": "crisis", "4": "desk-hours", "5": "bye",
        }, no_input="desk", attempts=1),
        "desk": QueueNode(queue="highrisk", priority=5, closed="psych"),
        "psych": QueueNode(queue="psych"),
        "message": VoicemailNode(prompt="site/leave-a-message"),
        "crisis": CrisisNode(),
        "desk-hours": HoursNode(queue="highrisk", open="crisis", closed="message"),
        "provincial": ForwardNode(number="+862112355000", ring_seconds=45,
                                  prompt="site/forwarding"),
        "bye": PlayNode(prompt="site/bye", next="provincial"),
    },
)


def test_a_forward_route_carries_the_number_prompt_and_ring_time():
    route, _ = drive(walk_at(NIGHT, rules=BRANCHING), [])
    assert route == Route(RouteKind.FORWARD, "provincial", Reason.DIRECT,
                          number="+862112355000", prompt="site/forwarding", ring_seconds=45)


def test_a_voicemail_route_carries_its_greeting():
    route, _ = drive(walk_at(rules=BRANCHING), ["2"])
    assert route == Route(RouteKind.VOICEMAIL, "message", Reason.CHOSEN,
                          prompt="site/leave-a-message")


def test_a_play_not_followed_by_a_menu_cannot_be_interrupted():
    walk = walk_at(rules=BRANCHING)
    walk.start()
    assert walk.collected("5") == Play("site/bye", "")
    route = walk.played(None)
    assert isinstance(route, Route) and route.kind is RouteKind.FORWARD


@pytest.mark.parametrize(("at", "node", "queue"), [
    (shanghai(2026, 3, 10, 19, 30), "desk", "highrisk"),
    (shanghai(2026, 3, 10, 21, 0), "desk", "highrisk"),
    (shanghai(2026, 3, 10, 12, 0), "psych", "psych"),
])
def test_a_queue_outside_its_own_hours_takes_its_closed_route(at, node, queue):
    route, _ = drive(walk_at(at, rules=BRANCHING), ["1"])
    assert (route.kind, route.node, route.queue) == (RouteKind.QUEUE, node, queue)


def test_an_hours_node_follows_the_queue_hours_not_the_site_hours():
    # An hours node on a queue reads the desk's 19:00–02:00 hours, not the site's.
    open_walk = walk_at(shanghai(2026, 3, 11, 21, 30), rules=BRANCHING)
    route, _ = drive(open_walk, ["4"])
    assert route.kind is RouteKind.CRISIS
    route, _ = drive(walk_at(shanghai(2026, 3, 11, 12, 0), rules=BRANCHING), ["4"])
    assert route.kind is RouteKind.VOICEMAIL


def test_an_invalid_digit_with_one_attempt_goes_to_no_input_when_no_invalid_node():
    route, _ = drive(walk_at(rules=BRANCHING), ["9"])
    assert (route.node, route.reason) == ("psych", Reason.INVALID)


# -- the step limit and broken references -------------------------------------------------

ROUND_AND_ROUND = RuleSet(
    entry="a",
    off_hours=OffHours(entry="a"),
    nodes={
        "a": MenuNode(prompt="p/a", options={"1": "b", "3": "crisis"}, no_input="crisis"),
        "b": MenuNode(prompt="p/b", options={"1": "intro"}, no_input="crisis"),
        "intro": PlayNode(prompt="p/intro", next="a"),
        "crisis": CrisisNode(),
    },
)


def test_a_caller_who_keeps_pressing_round_the_menus_reaches_the_fallback():
    walk = walk_at(rules=ROUND_AND_ROUND)
    route, actions = drive(walk, ["1"] * 500)
    assert route.kind is RouteKind.FALLBACK
    assert route.reason is Reason.STEP_LIMIT
    assert len(walk.path) == MAX_STEPS
    assert len(actions) <= 2 * MAX_STEPS


def test_the_step_limit_can_be_set():
    walk = walk_at(rules=ROUND_AND_ROUND, max_steps=5)
    route, _ = drive(walk, ["1"] * 50)
    assert (route.kind, route.reason) == (RouteKind.FALLBACK, Reason.STEP_LIMIT)
    assert walk.path == ["a", "b", "intro", "a", "b"]


def test_a_caller_who_stops_pressing_leaves_the_loop():
    route, _ = drive(walk_at(rules=ROUND_AND_ROUND), ["1", "1", "1"])
    assert (route.kind, route.reason) == (RouteKind.CRISIS, Reason.NO_INPUT)


def test_an_unknown_node_is_the_fallback():
    broken = RULES.model_copy(update={"nodes": {
        **RULES.nodes,
        "main": RULES.nodes["main"].model_copy(update={"options": {"1": "gone"}}),
    }})
    route, _ = drive(walk_at(rules=broken), [None, "1"])
    assert route == Route(RouteKind.FALLBACK, "gone", Reason.CHOSEN)


def test_an_unknown_entry_is_the_fallback():
    broken = RULES.model_copy(update={"entry": "nowhere"})
    assert walk_at(rules=broken).start() == Route(RouteKind.FALLBACK, "nowhere", Reason.DIRECT)


def test_a_play_into_an_unknown_node_is_the_fallback():
    broken = RULES.model_copy(update={"nodes": {
        **RULES.nodes, "welcome": PlayNode(prompt="hotline/welcome", next="gone")}})
    walk = walk_at(rules=broken)
    assert walk.start() == Play("hotline/welcome", "")
    assert walk.played(None) == Route(RouteKind.FALLBACK, "gone", Reason.DIRECT)
