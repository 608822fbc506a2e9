"""Walking a site's menu for one call: rules + time + caller + who is on duty → route.

Pure: the FastAGI route (and the classic AGI fallback) asks the walk what to do next,
does it (play a prompt, collect a digit), and reports what the caller pressed:

    walk = MenuWalk(rules=..., at=now, calendar=..., staffed=..., caller=...)
    action = walk.start()
    while not isinstance(action, Route):
        digit = <play or collect as the action says>
        action = walk.played(digit) if isinstance(action, Play) else walk.collected(digit)

Every walk ends with a `Route` in a bounded number of steps, whatever the caller presses:
a validated rule set has no loop a silent caller could go round, and a step limit sends
anyone who keeps pressing round a menu to a human (the site's fallback).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from routing.hours import HolidayCalendar, is_open, local_time, overrides_by_date
from routing.rules import (
    ALL_DIGITS,
    CrisisNode,
    DateOverride,
    ForwardNode,
    HoursNode,
    ListenNode,
    MenuNode,
    PlayNode,
    QueueNode,
    RuleSet,
    SelfHelpNode,
    VoicemailNode,
)

MAX_STEPS = 60


class RouteKind(StrEnum):
    QUEUE = "queue"
    CRISIS = "crisis"
    ONCALL = "oncall"
    VOICEMAIL = "voicemail"
    FORWARD = "forward"
    SELFHELP = "selfhelp"
    # The night attendant listens for crisis keywords (crisis/attendant.py).
    LISTEN = "listen"
    FALLBACK = "fallback"


class Reason(StrEnum):
    CHOSEN = "chosen"
    NO_INPUT = "no_input"
    INVALID = "invalid"
    DIRECT = "direct"
    FLAGGED_HIGH_RISK = "flagged_high_risk"
    STEP_LIMIT = "step_limit"
    # The night attendant heard a crisis keyword.
    KEYWORD = "keyword"


@dataclass(frozen=True)
class Play:
    prompt: str
    # Digits that stop the prompt; the digit then counts for the menu that follows.
    escape_digits: str = ""


@dataclass(frozen=True)
class Collect:
    prompt: str
    timeout_ms: int
    node: str


@dataclass(frozen=True)
class Route:
    kind: RouteKind
    node: str
    reason: Reason
    queue: str = ""
    priority: int = 0
    number: str = ""
    prompt: str = ""
    ring_seconds: int = 0
    # Self-help: the node the caller returns to after the programme; listen: after listening.
    resume: str = ""
    # Listen: the route a crisis keyword takes (crisis or oncall; `queue` and `priority` are
    # the crisis queue's), and the node for when the listening fails (the backend is gone).
    on_keyword: str = ""
    on_failure: str = ""


Action = Play | Collect | Route


@dataclass(frozen=True)
class CallerContext:
    high_risk: bool = False
    abusive: bool = False


@dataclass
class MenuWalk:
    rules: RuleSet
    at: datetime
    calendar: HolidayCalendar
    # Whether anyone on duty can take calls from this queue now.
    staffed: Callable[[str], bool] = lambda _queue: True
    caller: CallerContext = CallerContext()
    max_steps: int = MAX_STEPS
    # Whether the night attendant can listen (a speech model is loaded and its server runs);
    # off, a listen node leads to its `unavailable` node. The classic fallback never listens.
    listening: bool = False

    path: list[str] = field(default_factory=list)
    digits: list[str | None] = field(default_factory=list)
    # (menu node, digit) for every answer, in order.
    inputs: list[tuple[str, str | None]] = field(default_factory=list)
    site_open: bool = False
    _menu: MenuNode | None = None
    _menu_id: str = ""
    _tries: int = 0
    _silences: int = 0
    _after_play: str | None = None
    _replaying: bool = False
    _reason: Reason = Reason.DIRECT

    def __post_init__(self) -> None:
        self._local = local_time(self.at, self.rules.timezone)
        self._overrides = overrides_by_date(self.rules.hours.overrides)
        self.site_open = is_open(self.rules.hours.site, self.calendar, self._local,
                                 self._overrides)

    # -- the three calls the adapter makes ------------------------------------------------

    def start(self, resume: str | None = None) -> Action:
        """The first action; `resume` continues at a node (after a self-help programme)."""
        if self.caller.high_risk and not resume:
            return self._crisis("", _crisis_queue(self.rules), Reason.FLAGGED_HIGH_RISK)
        if resume and resume in self.rules.nodes:
            return self._enter(resume)
        return self._enter(self.entry())

    def played(self, digit: str | None) -> Action:
        """The prompt of a Play action ended (with the digit that stopped it, if any)."""
        following = self._after_play
        self._after_play = None
        if self._replaying and self._menu is not None:
            # The "invalid input" prompt ended: the same menu again, its tries kept.
            self._replaying = False
            return self.collected(digit) if digit else self._collect(self._menu)
        if following is None:
            raise RuntimeError("played() without a Play action")
        return self._enter(following, early_digit=digit or None)

    def collected(self, digit: str | None) -> Action:
        """The caller pressed `digit` at the menu, or nothing (None) before the timeout."""
        menu = self._menu
        if menu is None:
            raise RuntimeError("collected() without a Collect action")
        digit = digit or None
        self.digits.append(digit)
        self.inputs.append((self._menu_id, digit))
        if digit is not None and digit in menu.options:
            self._reason = Reason.CHOSEN
            return self._enter(menu.options[digit])
        if digit is None:
            self._silences += 1
            if self._silences < menu.no_input_attempts:
                return self._collect(menu)
            self._reason = Reason.NO_INPUT
            return self._enter(menu.no_input)
        self._tries += 1
        if self._tries < menu.attempts:
            self._replaying = True
            return Play(menu.invalid_prompt, ALL_DIGITS)
        self._reason = Reason.INVALID
        return self._enter(menu.invalid or menu.no_input)

    # -- where the caller starts -----------------------------------------------------------

    def entry(self) -> str:
        callers = self.rules.callers
        if self.caller.abusive and callers.abusive_entry:
            return callers.abusive_entry
        return self.rules.entry if self.site_open else self.rules.off_hours.entry

    def hours_state(self) -> tuple[bool, ...]:
        """All the walk reads of the time: whether the site is open and whether each queue
        with its own hours is. Two walks in the same state go the same way."""
        return hours_state(self.rules, self.calendar, self._local, self._overrides)

    # -- moving through nodes --------------------------------------------------------------

    def _enter(self, node_id: str, *, early_digit: str | None = None) -> Action:
        while True:
            if len(self.path) >= self.max_steps:
                return Route(RouteKind.FALLBACK, node_id, Reason.STEP_LIMIT)
            self.path.append(node_id)
            node = self.rules.nodes.get(node_id)
            match node:
                case None:
                    # Validation refuses unknown nodes; a human is the answer if one slips by.
                    return Route(RouteKind.FALLBACK, node_id, self._reason)
                case MenuNode():
                    self._menu, self._menu_id, self._tries, self._silences = node, node_id, 0, 0
                    if early_digit is not None:
                        self._after_play = None
                        return self.collected(early_digit)
                    return self._collect(node)
                case PlayNode():
                    self._after_play = node.next
                    following = self.rules.nodes.get(self._past_listen(node.next))
                    escape = ALL_DIGITS if isinstance(following, MenuNode) else ""
                    return Play(node.prompt, escape)
                case HoursNode():
                    node_id = node.open if self._is_open(node.queue) else node.closed
                case QueueNode():
                    if node.closed and not self._is_open(node.queue):
                        node_id = node.closed
                        continue
                    return Route(RouteKind.QUEUE, node_id, self._reason, queue=node.queue,
                                 priority=node.priority)
                case CrisisNode():
                    return self._crisis(node_id, node.queue, self._reason)
                case VoicemailNode():
                    return Route(RouteKind.VOICEMAIL, node_id, self._reason, prompt=node.prompt)
                case ForwardNode():
                    return Route(RouteKind.FORWARD, node_id, self._reason, number=node.number,
                                 prompt=node.prompt, ring_seconds=node.ring_seconds)
                case SelfHelpNode():
                    return Route(RouteKind.SELFHELP, node_id, self._reason,
                                 prompt=node.programme, resume=node.next)
                case ListenNode():
                    if not self.listening:
                        node_id = node.unavailable
                        continue
                    return self._listen(node_id, node)

    def _past_listen(self, node_id: str) -> str:
        """The node a caller entering `node_id` meets: a listen node nobody can do is its
        `unavailable` node (one step; enough to tell whether a menu follows a prompt)."""
        node = self.rules.nodes.get(node_id)
        if isinstance(node, ListenNode) and not self.listening:
            return node.unavailable
        return node_id

    def _listen(self, node_id: str, node: ListenNode) -> Route:
        crisis = self.rules.nodes.get(node.crisis)
        queue = crisis.queue if isinstance(crisis, CrisisNode) else _crisis_queue(self.rules)
        hit = self._crisis(node.crisis, queue, Reason.KEYWORD)
        return Route(RouteKind.LISTEN, node_id, self._reason, queue=queue,
                     priority=self.rules.crisis_priority, prompt=node.prompt,
                     resume=node.next, on_keyword=hit.kind.value, on_failure=node.unavailable)

    def _collect(self, menu: MenuNode) -> Collect:
        return Collect(menu.prompt, menu.timeout_seconds * 1000, self._menu_id)

    def _crisis(self, node_id: str, queue: str, reason: Reason) -> Route:
        # Counsellors when anyone on duty can take it, otherwise the on-call numbers.
        kind = RouteKind.CRISIS if self.staffed(queue) else RouteKind.ONCALL
        return Route(kind, node_id, reason, queue=queue, priority=self.rules.crisis_priority)

    def _is_open(self, queue: str | None) -> bool:
        if queue is None:
            return self.site_open
        return queue_open(self.rules, queue, self.calendar, self._local)


def queue_open(rules: RuleSet, queue: str, calendar: HolidayCalendar, local: datetime) -> bool:
    """A queue with its own hours follows them (the site's date overrides are the site's);
    a queue without is open whenever the site is."""
    weekly = rules.hours.queues.get(queue)
    return weekly is None or is_open(weekly, calendar, local)


def hours_state(rules: RuleSet, calendar: HolidayCalendar, local: datetime,
                overrides: Mapping[date, DateOverride]) -> tuple[bool, ...]:
    """See `MenuWalk.hours_state`; `overrides` is `overrides_by_date(rules.hours.overrides)`."""
    return (is_open(rules.hours.site, calendar, local, overrides),
            *(queue_open(rules, queue, calendar, local) for queue in rules.hours.queues))


def _crisis_queue(rules: RuleSet) -> str:
    for node in rules.nodes.values():
        if isinstance(node, CrisisNode):
            return node.queue
    return "crisis"


def run_scripted(walk: MenuWalk, digits: list[str | None], *, resume: str | None = None,
                 menus_allowed: int | None = None) -> Route | Collect:
    """Walk with a scripted caller: each Collect takes the next digit (None when the script
    ends), prompts are played to the end. With `menus_allowed`, stop at the Collect after
    that many menus have been answered (used by validation to see where a choice leads)."""
    action = walk.start(resume)
    script = list(digits)
    answered = 0
    while not isinstance(action, Route):
        if isinstance(action, Play):
            action = walk.played(None)
            continue
        if menus_allowed is not None and answered >= menus_allowed:
            return action
        answered += 1
        action = walk.collected(script.pop(0) if script else None)
    return action
