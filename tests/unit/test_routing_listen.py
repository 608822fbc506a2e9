"""The night attendant's listen step in the rules: offered at night by key 4, a crisis
keyword's route decided in advance, the crisis option by key where nothing can listen (no
model, the classic AGI fallback), validation of listen nodes, and the dialplan variables."""

from __future__ import annotations

from routing.defaults import default_rules
from routing.menu import Collect, MenuWalk, Reason, Route, RouteKind, run_scripted
from routing.rules import ListenNode, node_targets
from routing.validation import Problem, validate
from routing.variables import VARIABLE_NAMES, route_variables
from tests.unit.routing_support import CALENDAR, catalogue_for, shanghai

NIGHT = shanghai(2026, 3, 10, 23, 30)
DEFAULT = default_rules()


def walk(*, listening: bool, staffed: bool = True) -> MenuWalk:
    return MenuWalk(rules=DEFAULT, at=NIGHT, calendar=CALENDAR, listening=listening,
                    staffed=lambda _queue: staffed)


def test_key_4_at_night_listens_with_the_crisis_route_ready() -> None:
    route = run_scripted(walk(listening=True), ["4"])
    assert route == Route(RouteKind.LISTEN, "night-listen", Reason.CHOSEN, queue="crisis",
                          priority=DEFAULT.crisis_priority, prompt="hotline/attendant-listen",
                          resume="night-menu", on_keyword="crisis",
                          on_failure="night-listen-off")


def test_a_keyword_with_nobody_on_duty_goes_to_the_on_call_phones() -> None:
    route = run_scripted(walk(listening=True, staffed=False), ["4"])
    assert isinstance(route, Route) and route.on_keyword == "oncall"


def test_without_listening_key_4_offers_the_crisis_option_by_key() -> None:
    night = walk(listening=False)
    assert run_scripted(night, ["4"], menus_allowed=1) == Collect(
        "hotline/attendant-unavailable", 5000, "night-listen-off")
    route = night.collected("3")
    assert isinstance(route, Route) and route.kind is RouteKind.CRISIS
    # Silence there is a human too, and 9 goes back to the night menu.
    silent = run_scripted(walk(listening=False), ["4", None])
    assert isinstance(silent, Route) and silent.kind is RouteKind.CRISIS
    back = run_scripted(walk(listening=False), ["4", "9"], menus_allowed=2)
    assert back == Collect("hotline/night-menu", 5000, "night-menu")


def test_the_walk_never_listens_unless_told_so() -> None:
    # The classic AGI fallback and validation build walks without `listening`.
    default = MenuWalk(rules=DEFAULT, at=NIGHT, calendar=CALENDAR)
    assert not default.listening
    route = run_scripted(default, ["4", "3"])
    assert isinstance(route, Route) and route.kind is RouteKind.CRISIS


def test_after_listening_the_caller_resumes_at_the_night_menu() -> None:
    again = walk(listening=True)
    assert again.start(resume="night-menu") == Collect("hotline/night-menu", 5000, "night-menu")


def test_the_default_rules_with_the_listen_step_are_valid() -> None:
    assert validate(DEFAULT, catalogue_for(DEFAULT)) == []
    assert node_targets(DEFAULT.nodes["night-listen"]) == {
        "next": "night-menu", "crisis": "crisis", "unavailable": "night-listen-off"}


def _with_listen(**changes: str) -> list[Problem]:
    node = DEFAULT.nodes["night-listen"]
    assert isinstance(node, ListenNode)
    rules = DEFAULT.model_copy(update={"nodes": {
        **DEFAULT.nodes, "night-listen": node.model_copy(update=changes)}})
    return validate(rules, catalogue_for(rules))


def test_a_keyword_must_lead_to_a_crisis_node() -> None:
    assert Problem("night-listen", "a crisis keyword must lead to a crisis node, not to "
                                   "'psych'") in _with_listen(crisis="psych")


def test_listening_must_end_in_a_menu() -> None:
    assert Problem("night-listen", "after listening the caller must return to a menu, not "
                                   "to 'voicemail'") in _with_listen(next="voicemail")


def test_where_nothing_listens_the_caller_gets_a_menu_or_the_crisis_route() -> None:
    problems = _with_listen(unavailable="voicemail")
    assert [p.node for p in problems] == ["night-listen"]
    assert "crisis" in problems[0].reason
    assert _with_listen(unavailable="crisis") == []


def test_a_listen_route_hands_its_id_and_both_ways_out_to_the_dialplan() -> None:
    route = run_scripted(walk(listening=True), ["4"])
    assert isinstance(route, Route)
    values = route_variables(call_id="c1", route=route, digits=["4"], rules_version=3,
                             sound=lambda name: f"{name}-v2", listen_id="0f0e")
    assert list(values)[-1] == "HOTLINE_ROUTE" and values["HOTLINE_ROUTE"] == "listen"
    assert values["HOTLINE_LISTEN_ID"] == "0f0e"
    assert values["HOTLINE_LISTEN_HIT"] == "crisis"
    assert values["HOTLINE_LISTEN_FAILED"] == "night-listen-off"
    assert values["HOTLINE_RESUME"] == "night-menu"
    assert values["HOTLINE_QUEUE"] == "crisis"
    assert values["HOTLINE_PROMPT"] == "hotline/attendant-listen-v2"
    assert set(values) <= set(VARIABLE_NAMES)


def test_other_routes_clear_the_listen_variables() -> None:
    route = run_scripted(walk(listening=True), ["3"])
    assert isinstance(route, Route)
    values = route_variables(call_id="c1", route=route, digits=["3"], rules_version=3,
                             sound=str)
    assert values["HOTLINE_LISTEN_ID"] == values["HOTLINE_LISTEN_HIT"] == ""
    assert values["HOTLINE_LISTEN_FAILED"] == ""
