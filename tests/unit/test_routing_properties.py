"""Property tests of the routing core over generated rule sets, instants and callers.

A generated rule set is a random graph of every node kind (edges sometimes to missing
nodes), random weekly hours (some crossing midnight), random date overrides around real
holidays, a random abusive entry. "Tidy" rule sets draw the edges a silent caller follows
towards later nodes and usually offer the crisis option, so that many validate clean;
the properties of clean rule sets are what validation promises callers.

Set ROUTING_HYPOTHESIS_PROFILE=routing-thorough for a long run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st

from routing.menu import (
    MAX_STEPS,
    Action,
    CallerContext,
    MenuWalk,
    Play,
    Reason,
    Route,
    RouteKind,
)
from routing.rules import (
    ALL_DIGITS,
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
    VoicemailNode,
    WeeklyHours,
)
from routing.validation import RULES, Catalogue, Problem, moments, referenced_prompts, validate
from tests.unit.routing_support import CALENDAR, SHANGHAI

settings.register_profile(
    "routing", max_examples=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile(
    "routing-thorough", max_examples=2000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
PROFILE = settings.get_profile(os.environ.get("ROUTING_HYPOTHESIS_PROFILE", "routing"))

NODE_IDS = [f"n{i}" for i in range(10)]
GHOST = "ghost"
KINDS = ("menu", "menu", "menu", "play", "hours", "queue", "crisis", "voicemail", "forward",
         "selfhelp")
TERMINALS = {RouteKind.QUEUE, RouteKind.CRISIS, RouteKind.ONCALL, RouteKind.VOICEMAIL,
             RouteKind.FORWARD}
CRISIS_KINDS = {RouteKind.CRISIS, RouteKind.ONCALL}
QUEUE_KINDS = {"crisis": "crisis", "desk": "crisis", "psych": "psych", "legal": "legal"}
QUEUES = tuple(QUEUE_KINDS)
PROMPTS = ("p/a", "p/b", "p/c")
MISSING_PROMPT = "p/missing"
MAX_ATTEMPTS = 5
NEW_YORK = ZoneInfo("America/New_York")

# Dates around which hours change: holidays (National Day 2026, New Year 2026 followed by a
# make-up Sunday, Spring Festival 2026 after a make-up Saturday), make-up days, eves, the
# first days of 2027 (no official data), and the day after each.
INTERESTING_DATES = sorted({
    date(2026, 9, 30), date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 7),
    date(2026, 10, 8), date(2026, 10, 10), date(2026, 10, 11),
    date(2025, 12, 31), date(2026, 1, 1), date(2026, 1, 3), date(2026, 1, 4), date(2026, 1, 5),
    date(2026, 2, 13), date(2026, 2, 14), date(2026, 2, 15), date(2026, 2, 23),
    date(2026, 2, 24), date(2026, 2, 28), date(2026, 3, 1), date(2026, 9, 20),
    date(2026, 9, 21), date(2026, 12, 31), date(2027, 1, 1), date(2027, 1, 2),
    date(2027, 2, 6), date(2027, 10, 1), date(2027, 10, 2),
})


# -- strategies -----------------------------------------------------------------------------

def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# Half hours make neighbouring intervals touch and cross often.
MINUTES = st.integers(0, 47).map(lambda n: n * 30)


@st.composite
def intervals(draw: st.DrawFn) -> Interval:
    start = draw(MINUTES)
    length = draw(st.integers(1, 48))          # in half hours
    if length == 48:
        return Interval(start="00:00", end="24:00")
    end = start + 30 * length
    return Interval(start=_clock(start), end="24:00" if end == 1440 else _clock(end % 1440))


@st.composite
def weekly_hours(draw: st.DrawFn) -> WeeklyHours:
    def day() -> tuple[Interval, ...]:
        return tuple(draw(st.lists(intervals(), max_size=2)))

    shape = draw(st.sampled_from(["each day", "every day", "always"]))
    if shape == "always":
        return WeeklyHours.every_day(Interval(start="00:00", end="24:00"),
                                     holidays_too=draw(st.booleans()))
    if shape == "every day":
        return WeeklyHours.every_day(*day(), holidays_too=draw(st.booleans()))
    days = {name: day() for name in WEEKDAYS}
    return WeeklyHours(**days, holiday=day(),
                       makeup_workday_as=draw(st.sampled_from(WEEKDAYS[:5])))


@st.composite
def overrides(draw: st.DrawFn) -> tuple[DateOverride, ...]:
    days = draw(st.lists(st.one_of(st.sampled_from(INTERESTING_DATES),
                                   st.dates(date(2025, 1, 1), date(2027, 12, 31))),
                         max_size=2, unique=True))
    return tuple(DateOverride(date=day, closed=draw(st.booleans()),
                              hours=tuple(draw(st.lists(intervals(), max_size=2))))
                 for day in days)


@st.composite
def rule_sets(draw: st.DrawFn, *, tidy: bool) -> RuleSet:
    """Random rules. Tidy ones end with a crisis, a voicemail and a forward node, send a
    silent caller only to later nodes, and mostly offer the crisis route and a message in
    every menu; the others may point anywhere, to missing nodes and prompts too."""
    n = draw(st.integers(5 if tidy else 3, len(NODE_IDS)))
    ids = NODE_IDS[:n]
    kinds = [draw(st.sampled_from(KINDS)) for _ in ids]
    if tidy:
        kinds[0] = draw(st.sampled_from(["menu", "play", "hours", "hours"]))
        kinds[-3:] = ["forward", "voicemail", "crisis"]
        if n > 5 and draw(st.booleans()):
            kinds[1] = "selfhelp"
    elif "crisis" not in kinds and draw(st.integers(0, 9)):
        kinds[draw(st.integers(0, n - 1))] = "crisis"
    menus = [i for i, kind in zip(ids, kinds, strict=True) if kind == "menu"]
    crisis_ids = [i for i, kind in zip(ids, kinds, strict=True) if kind == "crisis"]
    message_ids = [i for i, kind in zip(ids, kinds, strict=True)
                   if kind in ("voicemail", "selfhelp")]
    queue_hours = {queue: draw(weekly_hours())
                   for queue in draw(st.lists(st.sampled_from(QUEUES), max_size=2, unique=True))}

    def prompt() -> str:
        if not tidy and draw(st.integers(0, 30)) == 0:
            return MISSING_PROMPT
        return draw(st.sampled_from(PROMPTS))

    def target(index: int, *, silent: bool, prefer_menus: bool = False) -> str:
        """An edge from node `index`; in tidy rules, edges a silent caller follows go on."""
        if not tidy:
            return GHOST if draw(st.integers(0, 15)) == 0 else draw(st.sampled_from(ids))
        pool = ids[index + 1:] if silent else ids
        later_menus = [i for i in pool if i in menus]
        if prefer_menus and later_menus and draw(st.integers(0, 3)):
            pool = later_menus
        return draw(st.sampled_from(pool))

    nodes: dict[str, Any] = {}
    for index, (node_id, kind) in enumerate(zip(ids, kinds, strict=True)):
        if kind == "selfhelp":
            # Back to any menu: often an earlier one, as the programme's own menu is.
            back = menus
            if back:
                nodes[node_id] = SelfHelpNode(programme=prompt(),
                                              next=draw(st.sampled_from(back)))
                continue
            kind = "voicemail"
        match kind:
            case "menu":
                digits = draw(st.lists(st.sampled_from(ALL_DIGITS), max_size=4, unique=True))
                options = {digit: target(index, silent=False) for digit in digits}
                crisis_digit, message_digit = draw(st.lists(st.sampled_from(ALL_DIGITS),
                                                            min_size=2, max_size=2, unique=True))
                if tidy and draw(st.integers(0, 9)):
                    options[crisis_digit] = draw(st.sampled_from(crisis_ids))
                if tidy and message_ids and draw(st.integers(0, 4)):
                    options[message_digit] = draw(st.sampled_from(message_ids))
                nodes[node_id] = MenuNode(
                    prompt=prompt(), options=options,
                    timeout_seconds=draw(st.integers(1, 10)),
                    attempts=draw(st.integers(1, MAX_ATTEMPTS)),
                    no_input_attempts=draw(st.integers(1, MAX_ATTEMPTS)),
                    invalid_prompt=prompt(),
                    no_input=target(index, silent=True),
                    invalid=draw(st.one_of(st.none(), st.just(target(index, silent=True)))))
            case "play":
                nodes[node_id] = PlayNode(prompt=prompt(),
                                          next=target(index, silent=True, prefer_menus=True))
            case "hours":
                # Mostly a queue with its own hours: where the hour changes the way.
                with_hours = sorted(queue_hours)
                queue = draw(st.sampled_from(with_hours)) if with_hours and draw(
                    st.integers(0, 3)) else draw(st.one_of(st.none(), st.sampled_from(QUEUES)))
                nodes[node_id] = HoursNode(
                    queue=queue,
                    open=target(index, silent=True, prefer_menus=True),
                    closed=target(index, silent=True, prefer_menus=True))
            case "queue":
                queue = draw(st.sampled_from(QUEUES))
                needs_closed = queue in queue_hours and (tidy or draw(st.integers(0, 5)))
                nodes[node_id] = QueueNode(
                    queue=queue, priority=draw(st.integers(0, 10)),
                    closed=target(index, silent=True) if needs_closed else None)
            case "crisis":
                queue = draw(st.sampled_from(["crisis", "desk"] if tidy else [*QUEUES, "ghostq"]))
                nodes[node_id] = CrisisNode(queue=queue)
            case "voicemail":
                nodes[node_id] = VoicemailNode(prompt=prompt())
            case _:
                nodes[node_id] = ForwardNode(
                    number=draw(st.from_regex(r"\A\+?[0-9]{3,20}\Z")),
                    ring_seconds=draw(st.integers(5, 120)), prompt=prompt())

    def some_entry() -> str:
        if not tidy:
            return GHOST if draw(st.integers(0, 15)) == 0 else draw(st.sampled_from(ids))
        return draw(st.sampled_from([ids[0], *menus]))

    mode = draw(st.sampled_from(["attendant", "attendant", "voicemail", "forward"]))
    off_entry = some_entry()
    if tidy and mode != "attendant" and menus and draw(st.booleans()):
        # The night entry: a menu a silent caller leaves for the mode's own route.
        off_entry = draw(st.sampled_from(menus))
        nodes[off_entry] = nodes[off_entry].model_copy(update={
            "no_input": ids[-2] if mode == "voicemail" else ids[-3], "invalid": None})
    return RuleSet(
        timezone=draw(st.sampled_from(["Asia/Shanghai"] * 4 + ["UTC", "America/New_York"])),
        entry=ids[0],
        off_hours=OffHours(mode=mode, entry=off_entry),
        crisis_priority=draw(st.integers(1, 100)),
        hours=Hours(site=draw(weekly_hours()), queues=queue_hours, overrides=draw(overrides())),
        callers=CallerRules(abusive_entry=draw(st.one_of(st.none(), st.just(some_entry())))),
        nodes=nodes,
    )


def catalogue(rules: RuleSet, *, oncall_numbers: int = 1) -> Catalogue:
    return Catalogue(queues=QUEUE_KINDS,
                     prompts=frozenset(referenced_prompts(rules) - {MISSING_PROMPT}),
                     oncall_numbers=oncall_numbers)


_CLEAN: dict[str, bool] = {}


def clean(rules: RuleSet) -> bool:
    key = rules.model_dump_json()
    if key not in _CLEAN:
        _CLEAN[key] = not validate(rules, catalogue(rules))
    return _CLEAN[key]


@st.composite
def clean_rule_sets(draw: st.DrawFn) -> RuleSet:
    rules = draw(rule_sets(tidy=True))
    assume(clean(rules))
    event("self-help programmes" if any(isinstance(node, SelfHelpNode)
                                        for node in rules.nodes.values()) else "no self-help")
    return rules


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    """Aware instants, 2024 to 2027 (2027 has no official data), often near a holiday."""
    if draw(st.booleans()):
        return draw(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31),
                                 timezones=st.sampled_from([UTC, SHANGHAI, NEW_YORK])))
    day = draw(st.sampled_from(INTERESTING_DATES))
    # Often the small hours, when intervals started the day before still run.
    minute = draw(st.one_of(MINUTES, MINUTES.map(lambda m: m // 4)))
    minute += draw(st.sampled_from([-1, 0, 1]))
    local = datetime.combine(day, time(), SHANGHAI) + timedelta(minutes=minute)
    return local.astimezone(draw(st.sampled_from([UTC, SHANGHAI])))


ORDINARY = CallerContext()
CALLERS = st.builds(CallerContext, high_risk=st.booleans(), abusive=st.booleans())
# Callers not flagged high-risk (a flagged caller skips every menu), abusive or not.
ORDINARY_CALLERS = st.builds(CallerContext, abusive=st.booleans())
STAFFED = st.frozensets(st.sampled_from(QUEUES))
PRESSES = st.one_of(st.none(), st.sampled_from([*ALL_DIGITS, "", "12", "x"]))
SCRIPTS = st.lists(PRESSES, max_size=40)


def staffed_by(queues: frozenset[str]) -> Callable[[str], bool]:
    return lambda queue: queue in queues


# -- walking --------------------------------------------------------------------------------

# Per node entered: at most `attempts` invalid digits (each but the last followed by the
# "invalid" prompt) and `no_input_attempts` silences.
ACTION_BOUND = (MAX_STEPS + 1) * 3 * MAX_ATTEMPTS


def walk(rules: RuleSet, at: datetime, script: list[str | None], *,
         staffed: frozenset[str] = frozenset(QUEUES), caller: CallerContext = ORDINARY,
         resume: str | None = None) -> tuple[Route, MenuWalk, int]:
    """A caller who answers each action with the next press of `script` (a press during a
    prompt that cannot be interrupted is lost), then stays silent."""
    menu_walk = MenuWalk(rules=rules, at=at, calendar=CALENDAR, staffed=staffed_by(staffed),
                         caller=caller)
    action: Action = menu_walk.start(resume)
    presses = list(script)
    steps = 1
    while not isinstance(action, Route):
        press = presses.pop(0) if presses else None
        if isinstance(action, Play):
            action = menu_walk.played(press if action.escape_digits else None)
        else:
            action = menu_walk.collected(press)
        steps += 1
        assert steps <= ACTION_BOUND, f"no route after {steps} actions: {menu_walk.path}"
    return action, menu_walk, steps


def silent_end(rules: RuleSet, at: datetime, *, staffed: frozenset[str],
               caller: CallerContext, resume: str | None = None) -> list[Route]:
    """The routes a caller who never presses anything gets, following self-help programmes
    back to their menu (as the FastAGI route does with a new walk)."""
    routes: list[Route] = []
    while True:
        route, _, _ = walk(rules, at, [], staffed=staffed, caller=caller, resume=resume)
        routes.append(route)
        if route.kind is not RouteKind.SELFHELP:
            return routes
        assert len(routes) <= len(rules.nodes), f"self-help loop: {routes}"
        resume = route.resume


def first_menu_offers_crisis(rules: RuleSet, at: datetime, *, staffed: frozenset[str],
                             caller: CallerContext) -> bool:
    """Through prompts to the first menu: does some digit there lead, through prompts only,
    to the crisis route (or is the caller already on it)?"""
    def to_first_menu() -> tuple[MenuWalk, Action]:
        menu_walk = MenuWalk(rules=rules, at=at, calendar=CALENDAR,
                             staffed=staffed_by(staffed), caller=caller)
        action = menu_walk.start()
        while isinstance(action, Play):
            action = menu_walk.played(None)
        return menu_walk, action

    _, first = to_first_menu()
    if isinstance(first, Route):
        return first.kind in CRISIS_KINDS
    for digit in ALL_DIGITS:
        menu_walk, _ = to_first_menu()
        action = menu_walk.collected(digit)
        while isinstance(action, Play):
            action = menu_walk.played(None)
        if isinstance(action, Route) and action.kind in CRISIS_KINDS:
            return True
    return False


# -- properties -----------------------------------------------------------------------------

@PROFILE
@given(st.one_of(rule_sets(tidy=False), rule_sets(tidy=True)), st.integers(0, 2))
def test_validate_never_raises_and_names_real_nodes(rules, oncall_numbers):
    problems = validate(rules, catalogue(rules, oncall_numbers=oncall_numbers))
    event("clean" if not problems else "with problems")
    for problem in problems:
        assert isinstance(problem, Problem)
        assert problem.node in rules.nodes or problem.node == RULES, problem
        assert problem.reason.strip()
    assert validate(rules, catalogue(rules, oncall_numbers=oncall_numbers)) == problems


@PROFILE
@given(clean_rule_sets(), instants(), SCRIPTS, STAFFED, CALLERS)
def test_every_caller_of_clean_rules_reaches_a_route(rules, at, script, staffed, caller):
    route, menu_walk, steps = walk(rules, at, script, staffed=staffed, caller=caller)
    note(f"path {menu_walk.path} → {route}")
    assert len(menu_walk.path) <= MAX_STEPS
    assert steps <= ACTION_BOUND
    if route.kind is RouteKind.FALLBACK:
        assert route.reason is Reason.STEP_LIMIT     # never an unknown node
    if route.kind in CRISIS_KINDS:
        assert route.priority == rules.crisis_priority
        assert (route.kind is RouteKind.CRISIS) == (route.queue in staffed)
    if route.kind is RouteKind.SELFHELP:
        assert isinstance(rules.nodes[route.resume], MenuNode)
    if caller.high_risk:
        assert route.kind in CRISIS_KINDS and route.reason is Reason.FLAGGED_HIGH_RISK


@PROFILE
@given(clean_rule_sets(), instants(), SCRIPTS, STAFFED, ORDINARY_CALLERS)
def test_walks_resumed_after_a_programme_end_too(rules, at, script, staffed, caller):
    # Every programme's menu, reached or not at this instant: the FastAGI route resumes
    # there with a new walk after the programme.
    for resume in sorted({node.next for node in rules.nodes.values()
                          if isinstance(node, SelfHelpNode)}):
        route, menu_walk, _ = walk(rules, at, script, staffed=staffed, caller=caller,
                                   resume=resume)
        assert menu_walk.path[0] == resume
        assert len(menu_walk.path) <= MAX_STEPS
        assert route.kind is not RouteKind.FALLBACK or route.reason is Reason.STEP_LIMIT
        assert silent_end(rules, at, staffed=staffed, caller=caller,
                          resume=resume)[-1].kind in TERMINALS


@PROFILE
@given(clean_rule_sets(), instants(), STAFFED, ORDINARY_CALLERS)
def test_a_silent_caller_always_reaches_a_human_voicemail_or_forward(rules, at, staffed,
                                                                     caller):
    routes = silent_end(rules, at, staffed=staffed, caller=caller)
    note(f"{routes}")
    assert routes[-1].kind in TERMINALS
    assert routes[-1].reason in (Reason.DIRECT, Reason.NO_INPUT)
    # Outside service hours, the off-hours mode is what a silent caller gets.
    site_open = MenuWalk(rules=rules, at=at, calendar=CALENDAR).site_open
    mode = rules.off_hours.mode
    if not site_open and mode != "attendant" and not (caller.abusive
                                                      and rules.callers.abusive_entry):
        event(f"closed, {mode} mode")
        assert routes[-1].kind is {"voicemail": RouteKind.VOICEMAIL,
                                   "forward": RouteKind.FORWARD}[mode]


@PROFILE
@given(clean_rule_sets(), instants(), STAFFED, ORDINARY_CALLERS)
def test_the_first_menu_offers_the_crisis_route_at_every_instant(rules, at, staffed, caller):
    assert first_menu_offers_crisis(rules, at, staffed=staffed, caller=caller)


@st.composite
def hours_rule_sets(draw: st.DrawFn) -> RuleSet:
    """Rules where only the time matters: the site's hours, queues with their own hours,
    date overrides (the nodes are beside the point here)."""
    queues = draw(st.lists(st.sampled_from(QUEUES), max_size=3, unique=True))
    return RuleSet(
        timezone=draw(st.sampled_from(["Asia/Shanghai", "Asia/Shanghai", "UTC"])),
        entry="crisis", off_hours=OffHours(entry="crisis"),
        hours=Hours(site=draw(weekly_hours()),
                    queues={queue: draw(weekly_hours()) for queue in queues},
                    overrides=draw(overrides())),
        nodes={"crisis": CrisisNode()})


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


# Runs of holidays with make-up weekends around them, and the turn into 2027 (no data).
SWEEP_DATES = [*_days(date(2025, 12, 27), date(2026, 1, 6)),
               *_days(date(2026, 2, 12), date(2026, 3, 2)),
               *_days(date(2026, 9, 18), date(2026, 10, 12)),
               *_days(date(2026, 12, 30), date(2027, 1, 4))]


@PROFILE
@given(hours_rule_sets(), st.lists(instants(), max_size=20))
def test_validation_tries_every_hours_state_that_can_occur(rules, ats):
    # A walk reads the time only through its hours state (the site open or not, each queue
    # with hours open or not): validation's moments must produce every state the official
    # calendar (holiday runs, make-up weekends, 2027 with no data) and the overrides can.
    # Generated hours change on the half hour: sweeping the half hours sees every state.
    tried = {MenuWalk(rules=rules, at=moment.at, calendar=moment.calendar).hours_state()
             for moment in moments(rules)}
    tz = ZoneInfo(rules.timezone)
    sweep = [datetime.combine(day, time(), tz) + timedelta(minutes=minute)
             for day in sorted({*SWEEP_DATES, *(o.date for o in rules.hours.overrides)})
             for minute in range(0, 1440, 30)]
    for at in [*ats, *sweep]:
        menu_walk = MenuWalk(rules=rules, at=at, calendar=CALENDAR)
        if menu_walk.hours_state() not in tried:
            local = at.astimezone(tz)
            raise AssertionError(
                f"state {menu_walk.hours_state()} at {local:%a %Y-%m-%d %H:%M} "
                f"({CALENDAR.kind(local.date())} after "
                f"{CALENDAR.kind(local.date() - timedelta(days=1))}) never validated; "
                f"tried {sorted(tried)}")
