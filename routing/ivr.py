"""The main menu decision: which digit the caller pressed → which route, queue and priority.

Pure: the FastAGI route plays prompts and collects digits, then asks `decide()` what the
inputs so far mean. The default menu follows DESIGN §4: 1 psychological counselling,
2 legal help, 3 "I am in danger" (crisis, top priority); 0 or no input → a human;
an invalid digit is explained and the menu repeated, and a second one → a human.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class RouteKind(StrEnum):
    QUEUE = "queue"
    CRISIS = "crisis"


class Reason(StrEnum):
    CHOSEN = "chosen"
    ZERO = "operator"
    NO_INPUT = "no_input"
    INVALID = "invalid"


@dataclass(frozen=True)
class Destination:
    route: RouteKind
    queue: str
    priority: int = 0


@dataclass(frozen=True)
class Menu:
    options: Mapping[str, Destination]
    # Where a caller goes who presses 0, nothing, or too many invalid digits: a human.
    human: Destination
    max_invalid: int = 2
    valid_digits: str = field(default="0123456789*#")


@dataclass(frozen=True)
class RouteDecision:
    destination: Destination
    reason: Reason
    digit: str | None


@dataclass(frozen=True)
class Reprompt:
    """Play the 'invalid input' prompt and the menu again, then collect another digit."""

    invalid_count: int


Decision = RouteDecision | Reprompt


def default_menu(*, crisis_queue: str = "crisis", psych_queue: str = "psych",
                 legal_queue: str = "legal", crisis_priority: int = 10,
                 normal_priority: int = 0) -> Menu:
    psych = Destination(RouteKind.QUEUE, psych_queue, normal_priority)
    return Menu(
        options={
            "1": psych,
            "2": Destination(RouteKind.QUEUE, legal_queue, normal_priority),
            "3": Destination(RouteKind.CRISIS, crisis_queue, crisis_priority),
        },
        human=psych,
    )


def decide(menu: Menu, inputs: Sequence[str | None]) -> Decision:
    """Decide from the digits collected so far (None = nothing pressed before the timeout).

    Always returns a route after at most `menu.max_invalid` inputs: no caller loops forever.
    """
    if not inputs:
        raise ValueError("decide() needs at least one input")
    latest = inputs[-1]
    if latest is None or latest == "":
        return RouteDecision(menu.human, Reason.NO_INPUT, None)
    if latest in menu.options:
        return RouteDecision(menu.options[latest], Reason.CHOSEN, latest)
    if latest == "0":
        return RouteDecision(menu.human, Reason.ZERO, latest)
    invalid_count = sum(1 for digit in inputs
                        if digit and digit not in menu.options and digit != "0")
    if invalid_count >= menu.max_invalid:
        return RouteDecision(menu.human, Reason.INVALID, latest)
    return Reprompt(invalid_count)
