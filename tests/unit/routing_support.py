"""Shared pieces of the routing core's unit tests: the official calendar and a catalogue."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

import chinese_calendar

from routing.hours import HolidayCalendar
from routing.menu import Action, MenuWalk, Play, Route
from routing.rules import RuleSet
from routing.validation import Catalogue, referenced_prompts

SHANGHAI = ZoneInfo("Asia/Shanghai")
QUEUES = {"crisis": "crisis", "psych": "psych", "legal": "legal"}


def official_calendar(years: Iterable[int] = (2024, 2025, 2026)) -> HolidayCalendar:
    """The State Council's dates for `years`, as chinese-calendar ships them (it knows
    2004–2026; a later year stays uncovered, like 2027 until an admin enters it)."""
    wanted = set(years)
    return HolidayCalendar(
        holidays={day: str(name) for day, name in chinese_calendar.constants.holidays.items()
                  if day.year in wanted},
        makeup_workdays=frozenset(day for day in chinese_calendar.constants.workdays
                                  if day.year in wanted),
        covered_years=frozenset(wanted),
    )


CALENDAR = official_calendar()


def shanghai(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def catalogue_for(rules: RuleSet, *, queues: dict[str, str] | None = None,
                  oncall_numbers: int = 1, missing_prompts: Iterable[str] = ()) -> Catalogue:
    """Everything the rules refer to exists (minus `missing_prompts`)."""
    return Catalogue(queues=QUEUES if queues is None else queues,
                     prompts=frozenset(referenced_prompts(rules) - set(missing_prompts)),
                     oncall_numbers=oncall_numbers)


def press(walk: MenuWalk, action: Action, digit: str | None) -> Action:
    """Answer one action as the FastAGI route would: a Play ends (with the digit that
    stopped it), a Collect returns what the caller pressed."""
    assert not isinstance(action, Route), "the walk already ended"
    return walk.played(digit) if isinstance(action, Play) else walk.collected(digit)
