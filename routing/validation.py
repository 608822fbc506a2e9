"""Checks a rule set before it is published: no caller left in silence, in a loop, or hung up.

Pure. `validate(rules, catalogue)` returns problems, each naming the node and the reason;
an empty list means the rule set may be published. What is checked:
- every node a rule refers to exists, and every queue, prompt and number it uses;
- every path from an entry ends at a human (queue, crisis), a voicemail or a forward:
  a caller who presses nothing can never go round a loop (the "no input" edges form no
  cycle), and a self-help programme returns to a menu;
- the night attendant's listen node: a keyword leads to a crisis node, listening ends in a
  menu, and where nothing can listen the caller gets a menu or the crisis route (the walks
  below are those of a call nobody listens to: the crisis option by key);
- the crisis option is offered by the first menu at every hour (open, closed, on public
  holidays, make-up workdays and each date override), for abusive callers too;
- the off-hours mode matches what a silent caller gets outside service hours.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from routing.hours import HolidayCalendar, local_time, overrides_by_date, zone
from routing.menu import CallerContext, Collect, MenuWalk, RouteKind, hours_state, run_scripted
from routing.rules import (
    ALL_DIGITS,
    CrisisNode,
    ListenNode,
    MenuNode,
    QueueNode,
    RuleSet,
    SelfHelpNode,
    WeeklyHours,
    default_edges,
    node_prompts,
    node_targets,
)

RULES = "(rules)"


@dataclass(frozen=True)
class Problem:
    node: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"node": self.node, "reason": self.reason}


@dataclass(frozen=True)
class Catalogue:
    """What exists outside the rules: the site's queues (name → kind), the prompts that
    can be played, and how many on-call numbers the site has."""

    queues: Mapping[str, str]
    prompts: frozenset[str]
    oncall_numbers: int = 1
    extra: Mapping[str, str] = field(default_factory=dict)


def validate(rules: RuleSet, catalogue: Catalogue) -> list[Problem]:
    problems = _references(rules, catalogue)
    if problems:
        # The walks below need every reference to resolve.
        return problems
    problems += _silent_loops(rules)
    if problems:
        return problems
    problems += _selfhelp_returns(rules)
    problems += _listen_targets(rules)
    every_hour = moments(rules)
    problems += _crisis_everywhere(rules, every_hour)
    problems += _off_hours_mode(rules, every_hour)
    return _unique(problems)


# -- references -------------------------------------------------------------------------

def _references(rules: RuleSet, catalogue: Catalogue) -> list[Problem]:
    problems: list[Problem] = []
    nodes = rules.nodes
    for label, target in (("entry", rules.entry), ("off_hours.entry", rules.off_hours.entry),
                          ("callers.abusive_entry", rules.callers.abusive_entry)):
        if target is not None and target not in nodes:
            problems.append(Problem(RULES, f"{label} refers to an unknown node {target!r}"))
    for node_id, node in nodes.items():
        for edge, target in node_targets(node).items():
            if target not in nodes:
                problems.append(Problem(node_id, f"{edge} leads to an unknown node {target!r}"))
        for prompt in node_prompts(node):
            if prompt not in catalogue.prompts:
                problems.append(Problem(node_id, f"prompt {prompt!r} does not exist"))
        queue = getattr(node, "queue", None)
        if queue is not None and queue not in catalogue.queues:
            problems.append(Problem(node_id, f"queue {queue!r} does not exist"))
        if isinstance(node, CrisisNode) and catalogue.queues.get(node.queue, "crisis") != "crisis":
            problems.append(Problem(node_id, f"queue {node.queue!r} is not a crisis queue"))
        if isinstance(node, CrisisNode) and catalogue.oncall_numbers < 1:
            problems.append(Problem(node_id, "the site has no on-call numbers for the hours "
                                             "when nobody on duty can take a crisis call"))
        if (isinstance(node, QueueNode) and node.queue in rules.hours.queues
                and node.closed is None):
            problems.append(Problem(node_id, f"queue {node.queue!r} has service hours but the "
                                             "node has no 'closed' route for outside them"))
    for queue in rules.hours.queues:
        if queue not in catalogue.queues:
            problems.append(Problem(RULES, f"hours are set for an unknown queue {queue!r}"))
    if survey_prompts := [p for p in (rules.survey.prompt, rules.survey.thanks_prompt,
                                      rules.survey.invalid_prompt)
                          if rules.survey.enabled and p not in catalogue.prompts]:
        problems += [Problem(RULES, f"survey prompt {p!r} does not exist") for p in survey_prompts]
    if not any(isinstance(node, CrisisNode) for node in nodes.values()):
        problems.append(Problem(RULES, "no crisis node: the crisis route must be offered"))
    return problems


# -- loops ------------------------------------------------------------------------------

def _silent_loops(rules: RuleSet) -> list[Problem]:
    """A caller who presses nothing follows the default edges: they must end somewhere."""
    problems: list[Problem] = []
    done: set[str] = set()
    for start in rules.nodes:
        if start in done:
            continue
        stack: list[tuple[str, Iterator[str]]] = [
            (start, iter(default_edges(rules.nodes[start])))]
        on_stack = [start]
        while stack:
            node_id, edges = stack[-1]
            following = next(edges, None)
            if following is None:
                stack.pop()
                on_stack.pop()
                done.add(node_id)
                continue
            if following in on_stack:
                cycle = [*on_stack[on_stack.index(following):], following]
                problems.append(Problem(following, "loop without an exit: a caller who "
                                        f"presses nothing goes round {' → '.join(cycle)}"))
                continue
            if following not in done:
                stack.append((following, iter(default_edges(rules.nodes[following]))))
                on_stack.append(following)
    return problems


def _selfhelp_returns(rules: RuleSet) -> list[Problem]:
    return [Problem(node_id, f"after the programme the caller must return to a menu, "
                             f"not to {node.next!r}")
            for node_id, node in rules.nodes.items()
            if isinstance(node, SelfHelpNode)
            and not isinstance(rules.nodes[node.next], MenuNode)]


def _listen_targets(rules: RuleSet) -> list[Problem]:
    problems = []
    for node_id, node in rules.nodes.items():
        if not isinstance(node, ListenNode):
            continue
        if not isinstance(rules.nodes[node.crisis], CrisisNode):
            problems.append(Problem(node_id, f"a crisis keyword must lead to a crisis node, "
                                             f"not to {node.crisis!r}"))
        if not isinstance(rules.nodes[node.next], MenuNode):
            problems.append(Problem(node_id, f"after listening the caller must return to a "
                                             f"menu, not to {node.next!r}"))
        if not isinstance(rules.nodes[node.unavailable], MenuNode | CrisisNode):
            problems.append(Problem(node_id, "when nothing can listen the caller must get a "
                                             "menu offering the crisis option or the crisis "
                                             f"route, not {node.unavailable!r}"))
    return problems


# -- every hour -------------------------------------------------------------------------

@dataclass(frozen=True)
class Moment:
    at: datetime
    calendar: HolidayCalendar
    label: str


# Reference days come from the fortnight starting on this Monday (or a later one that no
# override touches), with made-up holidays and make-up workdays around them.
_REFERENCE_MONDAY = date(2024, 1, 1)
_NO_HOLIDAYS = HolidayCalendar()
_KIND_NAMES = {"holiday": "public holiday", "makeup": "make-up workday"}

Day = tuple[date, HolidayCalendar, str]


def _calendar(kinds: Mapping[date, str]) -> HolidayCalendar:
    return HolidayCalendar(
        holidays={day: "holiday" for day, kind in kinds.items() if kind == "holiday"},
        makeup_workdays=frozenset(day for day, kind in kinds.items() if kind == "makeup"))


def _day_after_day(day: date, eve_kind: str, kind: str, note: str = "") -> Day:
    """`day` as a `kind` of day ("" ordinary, "holiday", "makeup") after an `eve_kind` day:
    an interval crossing midnight belongs to the day it starts, so an hour's state depends
    on both."""
    eve = day - timedelta(1)
    parts = [note] if note else []
    parts += [_KIND_NAMES[kind]] if kind else []
    parts += [f"after a {_KIND_NAMES[eve_kind]}"] if eve_kind else []
    return (day, _calendar({eve: eve_kind, day: kind}), f" ({', '.join(parts)})" if parts else "")


def _reference_days(monday: date) -> list[Day]:
    """Every kind of day after every kind of day it can follow (make-up workdays are
    weekend days): each weekday after the one before it, after a public holiday and after a
    make-up workday; a public holiday and a make-up workday after each of those."""
    week = [monday + timedelta(n) for n in range(7)]
    sat, sun = week[5], week[6]
    days = [_day_after_day(day, "", "") for day in week]
    days += [_day_after_day(day, "", "holiday") for day in week]
    days += [_day_after_day(day, "holiday", "") for day in week]
    days += [_day_after_day(week[2], "holiday", "holiday"),
             _day_after_day(sat, "", "makeup"), _day_after_day(sun, "", "makeup"),
             _day_after_day(sun, "makeup", ""), _day_after_day(sun + timedelta(1), "makeup", ""),
             _day_after_day(sun, "holiday", "makeup"), _day_after_day(sun, "makeup", "holiday"),
             _day_after_day(sun, "makeup", "makeup")]
    return days


def _override_days(override: date) -> list[Day]:
    """An override date and the day after it (its intervals may run into it), whatever the
    official calendar makes of them: the site follows the override, queues the calendar."""
    days = []
    after = override + timedelta(1)
    for day, note in ((override, "override"), (after, "the day after an override")):
        for eve_kind in _possible_kinds(day - timedelta(1)):
            for kind in _possible_kinds(day):
                days.append(_day_after_day(day, eve_kind, kind, note))
    return days


def _possible_kinds(day: date) -> tuple[str, ...]:
    return ("", "holiday", "makeup") if day.weekday() >= 5 else ("", "holiday")


def _reference_monday(rules: RuleSet) -> date:
    taken = {override.date for override in rules.hours.overrides}
    monday = _REFERENCE_MONDAY
    while any(monday + timedelta(n) in taken for n in range(-1, 9)):
        monday += timedelta(weeks=2)
    return monday


def moments(rules: RuleSet) -> list[Moment]:
    """Instants covering every combination of open and closed the rules can produce: one
    instant for each combination (site, and each queue with its own hours) that occurs."""
    minutes = {0, 1}
    weeklies: list[WeeklyHours] = [rules.hours.site, *rules.hours.queues.values()]
    intervals = [i for w in weeklies for day in
                 (w.mon, w.tue, w.wed, w.thu, w.fri, w.sat, w.sun, w.holiday) for i in day]
    intervals += [i for override in rules.hours.overrides for i in override.hours]
    for interval in intervals:
        for minute in (interval.start_minute, interval.end_minute):
            minutes.update({minute % 1440, (minute - 1) % 1440, (minute + 1) % 1440})
    tz = zone(rules.timezone)
    overrides = overrides_by_date(rules.hours.overrides)
    days = _reference_days(_reference_monday(rules))
    for override in rules.hours.overrides:
        days += _override_days(override.date)
    result: list[Moment] = []
    seen: set[tuple[bool, ...]] = set()
    for day, calendar, note in days:
        for minute in sorted(minutes):
            local = datetime.combine(day, time(minute // 60, minute % 60), tz)
            at = local.astimezone(UTC)
            state = hours_state(rules, calendar, local_time(at, rules.timezone), overrides)
            if state not in seen:
                seen.add(state)
                result.append(Moment(at, calendar, f"{local:%a %Y-%m-%d %H:%M}{note}"))
    return result


def _crisis_everywhere(rules: RuleSet, every_hour: list[Moment]) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for moment in every_hour:
        for caller in (CallerContext(), CallerContext(abusive=True)):
            if caller.abusive and not rules.callers.abusive_entry:
                continue
            problem = _crisis_offered(rules, moment, caller)
            if problem and (problem.node, problem.reason) not in seen:
                seen.add((problem.node, problem.reason))
                problems.append(Problem(problem.node, f"{problem.reason} (at {moment.label})"))
    return problems


def _crisis_offered(rules: RuleSet, moment: Moment, caller: CallerContext) -> Problem | None:
    def walk() -> MenuWalk:
        return MenuWalk(rules=rules, at=moment.at, calendar=moment.calendar, caller=caller)

    probe = walk()
    entry = probe.entry()
    first = run_scripted(probe, [], menus_allowed=0)
    if not isinstance(first, Collect):
        if first.kind in (RouteKind.CRISIS, RouteKind.ONCALL):
            return None
        return Problem(entry, "a caller reaches no menu offering the crisis option "
                              f"(they go straight to {first.kind.value} at {first.node!r})")
    for digit in ALL_DIGITS:
        route = run_scripted(walk(), [digit], menus_allowed=1)
        if not isinstance(route, Collect) and route.kind in (RouteKind.CRISIS, RouteKind.ONCALL):
            return None
    return Problem(first.node, "the first menu offers no option that leads to the crisis route")


def _off_hours_mode(rules: RuleSet, every_hour: list[Moment]) -> list[Problem]:
    mode = rules.off_hours.mode
    expected = {"voicemail": RouteKind.VOICEMAIL, "forward": RouteKind.FORWARD}.get(mode)
    for moment in every_hour:
        walk = MenuWalk(rules=rules, at=moment.at, calendar=moment.calendar)
        if walk.site_open:
            continue
        silent = run_scripted(walk, [])
        if isinstance(silent, Collect):
            continue
        if expected and silent.kind != expected:
            return [Problem(rules.off_hours.entry,
                            f"the off-hours mode is {mode}, but a caller who presses nothing "
                            f"outside service hours gets {silent.kind.value} "
                            f"(at {moment.label})")]
        if mode == "attendant" and not _offers_kind(rules, moment,
                                                   {RouteKind.SELFHELP, RouteKind.VOICEMAIL}):
            return [Problem(rules.off_hours.entry,
                            "the night attendant's menu offers neither a self-help programme "
                            f"nor a message (at {moment.label})")]
    return []


def _offers_kind(rules: RuleSet, moment: Moment, kinds: set[RouteKind]) -> bool:
    for digit in ALL_DIGITS:
        walk = MenuWalk(rules=rules, at=moment.at, calendar=moment.calendar)
        route = run_scripted(walk, [digit], menus_allowed=1)
        if not isinstance(route, Collect) and route.kind in kinds:
            return True
    return False


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    result = []
    for problem in problems:
        if problem not in seen:
            seen.add(problem)
            result.append(problem)
    return result


def referenced_prompts(rules: RuleSet) -> set[str]:
    prompts = {p for node in rules.nodes.values() for p in node_prompts(node)}
    if rules.survey.enabled:
        prompts |= {rules.survey.prompt, rules.survey.thanks_prompt, rules.survey.invalid_prompt}
    return prompts

