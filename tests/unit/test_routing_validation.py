"""Validation before publish: each kind of problem names the node and the reason; the
default rules are clean; malformed documents are refused by the model itself."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from routing.defaults import default_rules
from routing.hours import DayKind
from routing.menu import Collect, MenuWalk, run_scripted
from routing.rules import (
    ALL_DAY,
    ALWAYS,
    WEEKDAYS,
    CallerRules,
    CrisisNode,
    DateOverride,
    ForwardNode,
    Hours,
    HoursNode,
    Interval,
    MenuNode,
    OffHours,
    PlayNode,
    QueueNode,
    RuleSet,
    SelfHelpNode,
    Survey,
    VoicemailNode,
    WeeklyHours,
)
from routing.validation import RULES, Catalogue, Problem, moments, referenced_prompts, validate
from tests.unit.routing_support import CALENDAR, catalogue_for, shanghai

DEFAULT = default_rules()
DESK = WeeklyHours.every_day(Interval(start="19:00", end="02:00"))


def with_nodes(rules: RuleSet = DEFAULT, **nodes: Any) -> RuleSet:
    """The rules with nodes replaced (None removes one)."""
    merged = {**rules.nodes, **nodes}
    return rules.model_copy(update={"nodes": {k: v for k, v in merged.items() if v is not None}})


def problems_of(rules: RuleSet, **catalogue: Any) -> list[Problem]:
    return validate(rules, catalogue_for(rules, **catalogue))


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


# -- clean rule sets ------------------------------------------------------------------------

def test_the_default_rules_validate_clean():
    assert problems_of(DEFAULT) == []


@pytest.mark.parametrize("kwargs", [
    {"opens": "00:00", "closes": "24:00"},
    {"opens": "19:00", "closes": "02:00"},
    {"crisis_queue": "weixian", "psych_queue": "xinli", "legal_queue": "falv"},
])
def test_variants_of_the_default_rules_validate_clean(kwargs):
    rules = default_rules(**kwargs)
    queues = {rules.nodes["crisis"].queue: "crisis",                 # type: ignore[union-attr]
              rules.nodes["psych"].queue: "psych",                   # type: ignore[union-attr]
              rules.nodes["legal"].queue: "legal"}                   # type: ignore[union-attr]
    assert problems_of(rules, queues=queues) == []


def test_the_default_rules_survive_a_json_round_trip():
    document = json.loads(DEFAULT.model_dump_json())
    assert RuleSet.model_validate(document) == DEFAULT


def test_an_entry_straight_to_the_crisis_route_needs_no_menu():
    rules = RuleSet(entry="crisis", off_hours=OffHours(mode="attendant", entry="crisis"),
                    nodes={"crisis": CrisisNode()})
    assert problems_of(rules) == []
    # With service hours, the night attendant's own check wants a programme or a message.
    closed_at_night = rules.model_copy(update={"hours": Hours(
        site=WeeklyHours.every_day(Interval(start="08:00", end="22:00")))})
    problem = only(problems_of(closed_at_night))
    assert problem.node == "crisis"
    assert "neither a self-help programme nor a message" in problem.reason


def test_referenced_prompts_lists_every_sound_the_caller_can_hear():
    prompts = referenced_prompts(DEFAULT)
    assert {"hotline/welcome", "hotline/menu", "hotline/invalid", "hotline/night-menu",
            "hotline/selfhelp-sleep", "hotline/voicemail-greeting"} <= prompts
    survey = DEFAULT.model_copy(update={"survey": Survey(enabled=True)})
    assert "hotline/survey-ask" in referenced_prompts(survey)


# -- references -----------------------------------------------------------------------------

def test_an_option_to_an_unknown_node_names_the_menu():
    rules = with_nodes(main=DEFAULT.nodes["main"].model_copy(
        update={"options": {"1": "psychology", "3": "crisis"}}))
    assert only(problems_of(rules)) == Problem(
        "main", "option 1 leads to an unknown node 'psychology'")


@pytest.mark.parametrize(("field", "label"), [
    ("no_input", "no_input"), ("invalid", "invalid"),
])
def test_a_menu_default_edge_to_an_unknown_node(field, label):
    rules = with_nodes(main=DEFAULT.nodes["main"].model_copy(update={field: "nobody"}))
    assert only(problems_of(rules)) == Problem("main", f"{label} leads to an unknown node 'nobody'")


def test_edges_of_every_node_kind_are_checked():
    rules = with_nodes(
        welcome=PlayNode(prompt="hotline/welcome", next="gone-1"),
        gate=HoursNode(open="gone-2", closed="main"),
        desk=QueueNode(queue="psych", closed="gone-3"),
        selfhelp_exam=None,
        **{"selfhelp-exam": SelfHelpNode(programme="hotline/selfhelp-exam", next="gone-4")},
    )
    rules = rules.model_copy(update={"hours": rules.hours.model_copy(
        update={"queues": {"psych": DESK}})})
    found = problems_of(rules)
    assert Problem("welcome", "next leads to an unknown node 'gone-1'") in found
    assert Problem("gate", "open leads to an unknown node 'gone-2'") in found
    assert Problem("desk", "closed leads to an unknown node 'gone-3'") in found
    assert Problem("selfhelp-exam", "next leads to an unknown node 'gone-4'") in found


@pytest.mark.parametrize(("update", "label"), [
    ({"entry": "start"}, "entry"),
    ({"off_hours": OffHours(entry="start")}, "off_hours.entry"),
    ({"callers": CallerRules(abusive_entry="start")}, "callers.abusive_entry"),
])
def test_an_entry_to_an_unknown_node_is_a_rules_problem(update, label):
    rules = DEFAULT.model_copy(update=update)
    assert only(problems_of(rules)) == Problem(RULES, f"{label} refers to an unknown node 'start'")


def test_an_unknown_prompt_names_the_node():
    found = problems_of(DEFAULT, missing_prompts={"hotline/selfhelp-sleep", "hotline/invalid"})
    assert Problem("selfhelp-sleep", "prompt 'hotline/selfhelp-sleep' does not exist") in found
    assert Problem("main", "prompt 'hotline/invalid' does not exist") in found
    assert {p.node for p in found} == {"selfhelp-sleep", "main", "night-menu", "selfhelp-menu",
                                        "night-listen-off"}


def test_a_missing_survey_prompt_is_a_rules_problem_only_when_the_survey_is_on():
    rules = DEFAULT.model_copy(update={"survey": Survey(enabled=True)})
    catalogue = catalogue_for(DEFAULT)       # knows no survey prompt
    found = validate(rules, catalogue)
    assert Problem(RULES, "survey prompt 'hotline/survey-ask' does not exist") in found
    assert validate(DEFAULT, catalogue) == []


def test_an_unknown_queue_names_the_node():
    found = problems_of(DEFAULT, queues={"crisis": "crisis", "psych": "psych"})
    assert only(found) == Problem("legal", "queue 'legal' does not exist")


def test_hours_for_an_unknown_queue():
    rules = DEFAULT.model_copy(update={"hours": DEFAULT.hours.model_copy(
        update={"queues": {"highrisk": DESK}})})
    assert only(problems_of(rules)) == Problem(
        RULES, "hours are set for an unknown queue 'highrisk'")


def test_an_hours_node_on_an_unknown_queue():
    rules = with_nodes(welcome=PlayNode(prompt="hotline/welcome", next="gate"),
                       gate=HoursNode(queue="night-desk", open="main", closed="main"))
    assert only(problems_of(rules)) == Problem("gate", "queue 'night-desk' does not exist")


def test_a_crisis_node_on_a_queue_that_is_not_a_crisis_queue():
    rules = with_nodes(crisis=CrisisNode(queue="psych"))
    assert only(problems_of(rules)) == Problem("crisis", "queue 'psych' is not a crisis queue")


def test_a_site_without_oncall_numbers():
    problem = only(problems_of(DEFAULT, oncall_numbers=0))
    assert problem.node == "crisis"
    assert "no on-call numbers" in problem.reason


def test_rules_without_any_crisis_node():
    rules = with_nodes(crisis=None, main=DEFAULT.nodes["main"].model_copy(
        update={"options": {"1": "psych", "2": "legal", "0": "human"}}),
        **{"night-menu": DEFAULT.nodes["night-menu"].model_copy(update={
            "options": {"1": "selfhelp-menu", "2": "voicemail"},
            "no_input": "voicemail", "invalid": "voicemail"}),
           "night-listen": None, "night-listen-off": None})
    assert only(problems_of(rules)) == Problem(
        RULES, "no crisis node: the crisis route must be offered")


def test_a_queue_with_hours_needs_a_closed_route():
    rules = DEFAULT.model_copy(update={"hours": DEFAULT.hours.model_copy(
        update={"queues": {"legal": DESK}})})
    problem = only(problems_of(rules))
    assert problem.node == "legal"
    assert "has service hours but the node has no 'closed' route" in problem.reason
    fixed = with_nodes(rules, legal=QueueNode(queue="legal", closed="voicemail"))
    assert problems_of(fixed) == []


# -- loops ----------------------------------------------------------------------------------

def test_a_silent_loop_between_two_prompts():
    rules = with_nodes(welcome=PlayNode(prompt="hotline/welcome", next="again"),
                       again=PlayNode(prompt="hotline/welcome", next="welcome"))
    problem = only(problems_of(rules))
    assert problem.node in {"welcome", "again"}
    assert "loop without an exit" in problem.reason
    assert "welcome → again → welcome" in problem.reason or \
        "again → welcome → again" in problem.reason


def test_a_menu_whose_no_input_goes_round():
    rules = with_nodes(
        main=DEFAULT.nodes["main"].model_copy(update={"no_input": "more"}),
        more=MenuNode(prompt="hotline/menu", options={"3": "crisis"}, no_input="main"))
    problem = only(problems_of(rules))
    assert problem.node in {"main", "more"}
    assert "a caller who presses nothing goes round" in problem.reason
    assert "main" in problem.reason and "more" in problem.reason


def test_a_menu_whose_invalid_edge_points_to_itself():
    rules = with_nodes(main=DEFAULT.nodes["main"].model_copy(update={"invalid": "main"}))
    assert only(problems_of(rules)) == Problem(
        "main", "loop without an exit: a caller who presses nothing goes round main → main")


def test_an_hours_node_whose_closed_edge_loops_back():
    rules = with_nodes(welcome=PlayNode(prompt="hotline/welcome", next="gate"),
                       gate=HoursNode(open="main", closed="welcome"))
    assert "loop without an exit" in only(problems_of(rules)).reason


def test_a_loop_through_digits_is_allowed():
    # The caller chooses to go round (sub-menu "back" options): the step limit guards it.
    rules = with_nodes(main=DEFAULT.nodes["main"].model_copy(
        update={"options": {**DEFAULT.nodes["main"].options, "9": "welcome"}}))  # type: ignore[union-attr]
    assert problems_of(rules) == []


def test_a_selfhelp_programme_must_return_to_a_menu():
    rules = with_nodes(**{"selfhelp-sleep": SelfHelpNode(programme="hotline/selfhelp-sleep",
                                                         next="voicemail")})
    assert only(problems_of(rules)) == Problem(
        "selfhelp-sleep", "after the programme the caller must return to a menu, "
                          "not to 'voicemail'")


# -- the crisis option at every hour --------------------------------------------------------

NIGHT_MENU_WITHOUT_CRISIS = DEFAULT.nodes["night-menu"].model_copy(
    update={"options": {"1": "selfhelp-menu", "2": "voicemail"}})


def test_the_off_hours_entry_without_the_crisis_option():
    problem = only(problems_of(with_nodes(**{"night-menu": NIGHT_MENU_WITHOUT_CRISIS})))
    assert problem.node == "night-menu"
    assert "the first menu offers no option that leads to the crisis route" in problem.reason
    assert "(at " in problem.reason


def test_the_open_hours_menu_without_the_crisis_option():
    rules = with_nodes(main=DEFAULT.nodes["main"].model_copy(
        update={"options": {"1": "psych", "2": "legal"}}))
    problem = only(problems_of(rules))
    assert problem.node == "main"
    assert "offers no option that leads to the crisis route" in problem.reason


def test_a_crisis_option_behind_a_second_menu_does_not_count():
    rules = with_nodes(
        main=DEFAULT.nodes["main"].model_copy(update={"options": {"1": "psych", "9": "more"}}),
        more=MenuNode(prompt="hotline/menu", options={"3": "crisis"}, no_input="human"))
    assert only(problems_of(rules)).node == "main"


def test_a_crisis_option_behind_a_prompt_counts():
    rules = with_nodes(
        main=DEFAULT.nodes["main"].model_copy(
            update={"options": {**DEFAULT.nodes["main"].options, "3": "warn"}}),  # type: ignore[union-attr]
        warn=PlayNode(prompt="hotline/welcome", next="crisis"))
    assert problems_of(rules) == []


def test_an_entry_that_skips_every_menu_reaches_no_crisis_option():
    rules = DEFAULT.model_copy(update={"entry": "psych"})
    problem = only(problems_of(rules))
    assert problem.node == "psych"
    assert "reaches no menu offering the crisis option" in problem.reason
    assert "straight to queue" in problem.reason


def test_a_crisis_option_that_depends_on_a_desk_hours():
    # 3 leads to the crisis route only while the 19:00–02:00 desk is open.
    rules = with_nodes(main=DEFAULT.nodes["main"].model_copy(
        update={"options": {**DEFAULT.nodes["main"].options, "3": "desk"}}),  # type: ignore[union-attr]
        desk=HoursNode(queue="crisis", open="crisis", closed="psych"))
    rules = rules.model_copy(update={"hours": rules.hours.model_copy(
        update={"queues": {"crisis": DESK}})})
    problem = only(problems_of(rules))
    assert problem.node == "main"
    assert "offers no option that leads to the crisis route" in problem.reason


def _open_all_year(rules: RuleSet, *, holidays_too: bool) -> RuleSet:
    site = WeeklyHours.every_day(*ALL_DAY, holidays_too=holidays_too)
    return rules.model_copy(update={"hours": Hours(site=site)})


def test_the_crisis_option_missing_only_on_public_holidays():
    # Open around the clock except on public holidays, when the night attendant (here
    # without the crisis option) answers: only the holiday moments show the problem.
    rules = _open_all_year(with_nodes(**{"night-menu": NIGHT_MENU_WITHOUT_CRISIS}),
                           holidays_too=False)
    problem = only(problems_of(rules))
    assert problem.node == "night-menu"
    assert "public holiday" in problem.reason
    assert problems_of(_open_all_year(rules, holidays_too=True)) == []


def test_the_crisis_option_missing_only_on_a_closed_date():
    rules = _open_all_year(with_nodes(**{"night-menu": NIGHT_MENU_WITHOUT_CRISIS}),
                           holidays_too=True)
    closed = rules.model_copy(update={"hours": rules.hours.model_copy(update={
        "overrides": (DateOverride(date=date(2026, 10, 1), closed=True),)})})
    problem = only(problems_of(closed))
    assert problem.node == "night-menu"
    assert "2026-10-01" in problem.reason


def test_the_crisis_option_missing_only_in_the_extra_hours_of_an_override():
    # A site closed every night opens on one evening with a different entry; the entry
    # for open hours lacks the crisis option, the night attendant has it.
    rules = with_nodes(main=DEFAULT.nodes["main"].model_copy(
        update={"options": {"1": "psych", "2": "legal"}}))
    never_open = rules.model_copy(update={"hours": Hours(
        site=WeeklyHours(),
        overrides=(DateOverride(date=date(2026, 12, 31),
                                hours=(Interval(start="20:00", end="02:00"),)),))})
    problem = only(problems_of(never_open))
    assert problem.node == "main"
    assert "2026-12-31" in problem.reason or "2027-01-01" in problem.reason


def test_the_crisis_option_missing_on_holidays_through_holiday_hours_of_a_queue():
    # An hours node on the desk: the desk keeps no hours on public holidays, so on a
    # holiday the caller lands in a menu without the crisis option.
    rules = with_nodes(
        welcome=PlayNode(prompt="hotline/welcome", next="gate"),
        gate=HoursNode(queue="crisis", open="main", closed="holiday-menu"),
        **{"holiday-menu": MenuNode(prompt="hotline/menu", options={"1": "psych"},
                                    no_input="human")})
    rules = _open_all_year(rules, holidays_too=True).model_copy(update={"hours": Hours(
        site=WeeklyHours.every_day(*ALL_DAY, holidays_too=True),
        queues={"crisis": WeeklyHours.every_day(*ALL_DAY)})})
    problem = only(problems_of(rules))
    assert problem.node == "holiday-menu"
    assert "public holiday" in problem.reason


def _gated(desk: WeeklyHours) -> RuleSet:
    """Open around the clock; the first menu offers the crisis option only while the crisis
    desk keeps hours, else the caller lands in a menu without it."""
    rules = with_nodes(
        welcome=PlayNode(prompt="hotline/welcome", next="gate"),
        gate=HoursNode(queue="crisis", open="main", closed="no-crisis"),
        **{"no-crisis": MenuNode(prompt="hotline/menu", options={"1": "psych"},
                                 no_input="human")})
    return rules.model_copy(update={"hours": Hours(site=ALWAYS, queues={"crisis": desk})})


def _first_menu(rules: RuleSet, at: datetime) -> str:
    first = run_scripted(MenuWalk(rules=rules, at=at, calendar=CALENDAR), [], menus_allowed=0)
    assert isinstance(first, Collect)
    return first.node


def test_the_crisis_option_missing_on_the_second_day_of_a_holiday():
    # The desk: all day, and nights until 05:00 after every weekday; on holidays only from
    # 05:00. Early on a holiday that follows a weekday, the weekday's night still runs;
    # early on the second day of the National Day week nothing does.
    night = Interval(start="20:00", end="05:00")
    desk = WeeklyHours(**{day: (*ALL_DAY, night) for day in WEEKDAYS},
                       holiday=(Interval(start="05:00", end="24:00"),))
    rules = _gated(desk)
    assert _first_menu(rules, shanghai(2026, 10, 1, 1, 0)) == "main"
    assert _first_menu(rules, shanghai(2026, 10, 2, 1, 0)) == "no-crisis"
    problem = only(problems_of(rules))
    assert problem.node == "no-crisis"
    assert "(public holiday, after a public holiday)" in problem.reason


def test_the_crisis_option_missing_the_day_after_a_makeup_saturday():
    # Saturday nights run until 06:00 on Sunday, holiday nights too; a make-up Saturday
    # keeps Monday's hours, whose night does not cross midnight: early on the Sunday after
    # it the desk has no hours.
    night = Interval(start="22:00", end="06:00")
    desk = WeeklyHours.every_day(*ALL_DAY).model_copy(update={
        "sat": (*ALL_DAY, night), "sun": (Interval(start="06:00", end="24:00"),),
        "holiday": (*ALL_DAY, night)})
    rules = _gated(desk)
    assert CALENDAR.kind(date(2026, 2, 28)) is DayKind.MAKEUP_WORKDAY
    assert _first_menu(rules, shanghai(2026, 3, 8, 3, 0)) == "main"
    assert _first_menu(rules, shanghai(2026, 3, 1, 3, 0)) == "no-crisis"
    problem = only(problems_of(rules))
    assert problem.node == "no-crisis"
    assert "(after a make-up workday)" in problem.reason


def test_an_override_is_tried_as_a_holiday_too():
    # The site opens on 1 October by override (the rest of the year it is always open);
    # the desk keeps no hours on public holidays: that day, whatever the override says,
    # the caller gets the menu without the crisis option.
    rules = _gated(WeeklyHours.every_day(*ALL_DAY))
    rules = rules.model_copy(update={"hours": rules.hours.model_copy(update={
        "overrides": (DateOverride(date=date(2030, 10, 1), hours=ALL_DAY),)})})
    problem = only(problems_of(rules))
    assert problem.node == "no-crisis"
    assert "public holiday" in problem.reason


def test_moments_keep_one_instant_per_state():
    assert len(moments(DEFAULT)) == 2                    # the site open, the site closed
    rules = _gated(DESK)
    states = {MenuWalk(rules=rules, at=m.at, calendar=m.calendar).hours_state()
              for m in moments(rules)}
    assert len(states) == len(moments(rules)) == 2


def test_many_overrides_stay_quick_to_validate():
    overrides = tuple(DateOverride(date=date(2026, 1, 1) + timedelta(days=3 * n),
                                   hours=(Interval(start=f"{n % 24:02d}:00", end="23:30"),))
                      for n in range(100))
    rules = DEFAULT.model_copy(update={"hours": DEFAULT.hours.model_copy(
        update={"overrides": overrides, "queues": {"crisis": DESK}})})
    rules = with_nodes(rules, crisis=CrisisNode())
    # Validation walks the menu once per distinct moment: 100 overrides collapse to the few
    # states they produce (no timing here: speed is measured in bench/, not in tests).
    assert len(moments(rules)) <= 8
    assert problems_of(rules) == []


def test_an_abusive_entry_without_the_crisis_option():
    rules = with_nodes(DEFAULT.model_copy(update={"callers": CallerRules(abusive_entry="short")}),
                       short=MenuNode(prompt="hotline/menu", options={"2": "voicemail"},
                                      no_input="voicemail"))
    problem = only(problems_of(rules))
    assert problem.node == "short"
    assert "offers no option that leads to the crisis route" in problem.reason


def test_an_abusive_entry_straight_to_voicemail():
    rules = DEFAULT.model_copy(update={"callers": CallerRules(abusive_entry="voicemail")})
    problem = only(problems_of(rules))
    assert problem.node == "voicemail"
    assert "straight to voicemail" in problem.reason


def test_an_abusive_entry_with_the_crisis_option_is_fine():
    rules = with_nodes(DEFAULT.model_copy(update={"callers": CallerRules(abusive_entry="short")}),
                       short=MenuNode(prompt="hotline/menu",
                                      options={"2": "voicemail", "3": "crisis"},
                                      no_input="voicemail"))
    assert problems_of(rules) == []


# -- the off-hours mode ---------------------------------------------------------------------

def test_off_hours_voicemail_whose_silent_path_ends_at_a_queue():
    rules = DEFAULT.model_copy(update={"off_hours": OffHours(mode="voicemail", entry="main")})
    problem = only(problems_of(rules))
    assert problem.node == "main"
    assert "the off-hours mode is voicemail" in problem.reason
    assert "gets queue" in problem.reason


def test_off_hours_voicemail_done_right():
    rules = with_nodes(
        DEFAULT.model_copy(update={"off_hours": OffHours(mode="voicemail", entry="closed")}),
        closed=MenuNode(prompt="hotline/closed", options={"3": "crisis"},
                        no_input="voicemail"))
    assert problems_of(rules) == []


def test_off_hours_forward_whose_silent_path_ends_at_voicemail():
    rules = with_nodes(
        DEFAULT.model_copy(update={"off_hours": OffHours(mode="forward", entry="closed")}),
        closed=MenuNode(prompt="hotline/closed", options={"3": "crisis", "1": "provincial"},
                        no_input="voicemail"),
        provincial=ForwardNode(number="+8657112355"))
    problem = only(problems_of(rules))
    assert (problem.node, "the off-hours mode is forward" in problem.reason) == ("closed", True)


def test_off_hours_mode_mismatch_at_some_closed_hours_only():
    # Off-hours voicemail, but while the 19:00–02:00 desk is open the night entry
    # (silently) leads to the crisis desk instead: reported whichever closed hour comes first.
    rules = with_nodes(
        DEFAULT.model_copy(update={
            "off_hours": OffHours(mode="voicemail", entry="closed"),
            "hours": Hours(site=WeeklyHours.every_day(Interval(start="08:00", end="22:00")),
                           queues={"crisis": DESK})}),
        closed=MenuNode(prompt="hotline/closed", options={"3": "crisis"}, no_input="gate"),
        gate=HoursNode(queue="crisis", open="voicemail", closed="human"))
    problem = only(problems_of(rules))
    assert problem.node == "closed"
    assert "the off-hours mode is voicemail" in problem.reason


def test_the_night_attendant_needs_a_programme_or_a_message():
    night = DEFAULT.nodes["night-menu"].model_copy(update={"options": {"3": "crisis"}})
    problem = only(problems_of(with_nodes(**{"night-menu": night})))
    assert problem.node == "night"
    assert "offers neither a self-help programme nor a message" in problem.reason


def test_problems_serialise_for_the_api():
    assert Problem("main", "why").as_dict() == {"node": "main", "reason": "why"}


def test_catalogue_defaults():
    catalogue = Catalogue(queues={}, prompts=frozenset())
    assert catalogue.oncall_numbers == 1


# -- malformed documents --------------------------------------------------------------------

def document(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = json.loads(DEFAULT.model_dump_json())
    base.update(changes)
    return base


def refused(doc: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        RuleSet.model_validate(doc)
    return [dict(e) for e in caught.value.errors()]


@pytest.mark.parametrize(("start", "end", "message"), [
    ("25:00", "02:00", "'25:00' is not a time of day HH:MM"),
    ("08:00", "24:30", "'24:30' is not a time of day HH:MM"),
    ("8:00", "22:00", "'8:00' is not a time of day HH:MM"),
    ("08:60", "22:00", "'08:60' is not a time of day HH:MM"),
    ("24:00", "02:00", "cannot start at 24:00"),
    ("08:00", "08:00", "08:00–08:00 is empty; use 00:00–24:00 for all day"),
    ("00:00", "00:00", "is empty"),
])
def test_bad_hours_are_refused_with_a_clear_message(start, end, message):
    doc = document()
    doc["hours"]["site"]["mon"] = [{"start": start, "end": end}]
    errors = refused(doc)
    assert len(errors) == 1
    assert errors[0]["loc"][:3] == ("hours", "site", "mon")
    assert message in errors[0]["msg"]


@pytest.mark.parametrize("key", ["10", "a", "", "1 ", "**"])
def test_a_bad_digit_key_is_refused(key):
    doc = document()
    doc["nodes"]["main"]["options"] = {key: "psych"}
    errors = refused(doc)
    assert errors[0]["loc"][:4] == ("nodes", "main", "menu", "options")
    assert "should match pattern" in errors[0]["msg"]


def test_an_unknown_node_type_is_refused():
    doc = document()
    doc["nodes"]["bye"] = {"type": "hangup"}
    errors = refused(doc)
    assert errors[0]["loc"] == ("nodes", "bye")
    assert "Input tag 'hangup'" in errors[0]["msg"] and "'selfhelp'" in errors[0]["msg"]


@pytest.mark.parametrize("where", ["top", "node", "hours", "interval", "override"])
def test_extra_fields_are_refused(where):
    doc = document()
    target = {"top": doc, "node": doc["nodes"]["main"], "hours": doc["hours"],
              "interval": doc["hours"]["site"]["mon"][0],
              "override": {"date": "2026-10-01", "closed": True}}[where]
    if where == "override":
        doc["hours"]["overrides"] = [target]
    target["colour"] = "red"
    errors = refused(doc)
    assert errors[0]["msg"] == "Extra inputs are not permitted"
    assert errors[0]["loc"][-1] == "colour"


@pytest.mark.parametrize(("path", "value", "fragment"), [
    (("entry",), "Main Menu", "should match pattern"),
    (("timezone",), "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    (("crisis_priority",), 0, "greater than or equal to 1"),
    (("schema_version",), 2, "Input should be 1"),
    (("off_hours", "mode"), "hangup", "'attendant', 'voicemail' or 'forward'"),
    (("hours", "site", "makeup_workday_as"), "sat", "'mon', 'tue', 'wed', 'thu' or 'fri'"),
    # A node's errors are located under its type tag too: nodes.main.menu.attempts.
    (("nodes", "main", "menu", "attempts"), 0, "greater than or equal to 1"),
    (("nodes", "main", "menu", "timeout_seconds"), 600, "less than or equal to 30"),
    (("nodes", "welcome", "play", "prompt"), "../../etc/passwd", "should match pattern"),
    (("nodes", "crisis", "crisis", "queue"), "crisis queue", "should match pattern"),
])
def test_bad_values_are_refused_at_their_place(path, value, fragment):
    doc = document()
    # The type tag of a node's location is not a key of the document.
    keys = [k for i, k in enumerate(path[:-1]) if not (path[0] == "nodes" and i == 2)]
    target = doc
    for key in keys:
        target = target[key]
    target[path[-1]] = value
    errors = refused(doc)
    assert any(e["loc"][:len(path)] == path and fragment in e["msg"] for e in errors), errors


def test_a_forward_number_must_be_digits():
    with pytest.raises(ValidationError, match="should match pattern"):
        ForwardNode(number="12355; hangup")
    with pytest.raises(ValidationError, match="should match pattern"):
        ForwardNode(number="+86 571 12355")


def test_a_node_id_must_be_a_plain_name():
    doc = document()
    doc["nodes"]["Main Menu"] = doc["nodes"].pop("main")
    errors = refused(doc)
    assert errors[0]["loc"][:2] == ("nodes", "Main Menu")


def test_duplicate_override_dates_are_refused():
    doc = document()
    doc["hours"]["overrides"] = [{"date": "2026-10-01", "closed": True},
                                 {"date": "2026-10-01", "hours": [{"start": "09:00",
                                                                   "end": "12:00"}]}]
    errors = refused(doc)
    assert "more than one override for 2026-10-01" in errors[0]["msg"]


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1999-12-31", "2200-01-01"])
def test_an_override_date_out_of_range_is_refused(day):
    doc = document()
    doc["hours"]["overrides"] = [{"date": day, "closed": True}]
    errors = refused(doc)
    assert errors[0]["loc"] == ("hours", "overrides", 0, "date")
    assert "2000-01-01" in errors[0]["msg"] or "2199-12-31" in errors[0]["msg"]


def test_a_node_missing_a_required_field():
    doc = document()
    del doc["nodes"]["main"]["no_input"]
    errors = refused(doc)
    assert errors[0]["loc"] == ("nodes", "main", "menu", "no_input")
    assert errors[0]["msg"] == "Field required"


def test_rule_sets_are_immutable():
    with pytest.raises(ValidationError):
        DEFAULT.entry = "main"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        VoicemailNode().prompt = "x"  # type: ignore[misc]
