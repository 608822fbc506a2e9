"""The snapshot of a site's published rules that the classic AGI fallback routes with.

When the FastAGI server is unreachable, the dialplan runs a classic AGI script
(`agi/classic.py`) on the Asterisk host. It cannot reach the database or Redis, so at every
publish the backend writes what a call's route depends on into a directory Asterisk can
read (`settings.rules.snapshot_dir`; in the sandbox `/var/lib/hotline12355/rules` inside
the chroot). Pure: this module is the format and what it means; the backend writes the
files (`hotline/rules/snapshot_files.py`) and the classic script reads them.

Files of the snapshot directory:

- `<site code>.json`: a `RulesSnapshot`, replaced atomically (temp file, fsync, rename).
- `_default.json`: a *relative* symlink to the default site's file, so that it resolves
  the same on the host and inside the chroot. The classic script reads it when the site
  code it is given is empty, malformed or has no file of its own. Site codes cannot start
  with `_`, so the name never collides with a site.
- `clock.json`: the backend's clock setting (`ClockSetting`), written when the backend
  starts, so the fallback decides hours and holidays at the same "now" as the backend
  (a fixed instant or an offset in tests and spot checks). Missing: real time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from routing.callers import normalise_number
from routing.hours import HolidayCalendar, zone
from routing.menu import CallerContext
from routing.rules import RuleSet

SNAPSHOT_FORMAT = 1
DEFAULT_SITE_FILE = "_default.json"
CLOCK_FILE = "clock.json"

_SITE_CODE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
SiteCode = Annotated[str, Field(pattern=_SITE_CODE)]
# A sound as Asterisk plays it (no extension): one AGI argument, so no blanks, quotes,
# backslashes or control characters.
SoundName = Annotated[str, Field(pattern=r'^[^\s"\\\x00-\x1f\x7f]{1,255}$')]


def is_site_code(text: str) -> bool:
    return re.fullmatch(_SITE_CODE, text) is not None


def snapshot_file_name(site_code: str) -> str:
    """`<site>.json`; refuses anything that is not a site code (no paths, no `_default`)."""
    if not is_site_code(site_code):
        raise ValueError(f"not a site code: {site_code!r}")
    return f"{site_code}.json"


class ClockSetting(BaseModel):
    """The backend's clock (`hotline.config.ClockSettings`, `hotline.clock.Clock`) as data:
    a fixed instant (the clock stands still; a naive one is read in `timezone`), or an
    offset in seconds from real time (the clock runs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fixed: datetime | None = None
    offset_seconds: float = 0.0
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfoNotFoundError

        try:
            zone(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value

    def now(self, real_now: datetime | None = None) -> datetime:
        """Aware datetime in UTC; `real_now` stands for the system clock (default: read it)."""
        if self.fixed is not None:
            fixed = self.fixed
            if fixed.tzinfo is None:
                fixed = fixed.replace(tzinfo=zone(self.timezone))
            return fixed.astimezone(UTC)
        real = real_now if real_now is not None else datetime.now(UTC)
        return real.astimezone(UTC) + timedelta(seconds=self.offset_seconds)


class RulesSnapshot(BaseModel):
    """What the classic AGI fallback needs to route one site's calls like the backend does.

    `staffed` is not in it: the fallback cannot see shifts and treats every queue as
    staffed (the dialplan's queue timeout then reaches the on-call numbers anyway).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal[1] = 1  # SNAPSHOT_FORMAT
    site_code: SiteCode
    rules_version: int = Field(ge=0)
    rules: RuleSet
    # Prompt name used in the rules → the Asterisk sound actually played (pinned versions
    # of uploaded prompts); a prompt missing here is played under its own name.
    sounds: dict[str, SoundName] = Field(default_factory=dict)
    # The official calendar (routing.hours.HolidayCalendar) for the years around now.
    holidays: dict[date, str] = Field(default_factory=dict)
    makeup_workdays: tuple[date, ...] = ()
    covered_years: tuple[int, ...] = ()
    # Normalised caller numbers (routing.callers.normalise_number) flagged at write time:
    # high-risk within the site's `callers.high_risk_days`, and abusive.
    high_risk_numbers: tuple[str, ...] = ()
    abusive_numbers: tuple[str, ...] = ()
    # The backend node name: with Asterisk's linkedid it makes the call id (routing.ids).
    node: str = Field(min_length=1, max_length=100)
    written_at: datetime

    @field_validator("written_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("written_at must carry a time zone")
        return value

    @classmethod
    def create(cls, *, site_code: str, rules_version: int, rules: RuleSet, node: str,
               written_at: datetime, calendar: HolidayCalendar,
               sounds: Mapping[str, str] | None = None,
               high_risk_numbers: Iterable[str] = (),
               abusive_numbers: Iterable[str] = ()) -> RulesSnapshot:
        return cls(
            site_code=site_code, rules_version=rules_version, rules=rules,
            sounds=dict(sounds or {}),
            holidays=dict(calendar.holidays),
            makeup_workdays=tuple(sorted(calendar.makeup_workdays)),
            covered_years=tuple(sorted(calendar.covered_years)),
            high_risk_numbers=_normalised(high_risk_numbers),
            abusive_numbers=_normalised(abusive_numbers),
            node=node, written_at=written_at)

    def holiday_calendar(self) -> HolidayCalendar:
        return HolidayCalendar(holidays=dict(self.holidays),
                               makeup_workdays=frozenset(self.makeup_workdays),
                               covered_years=frozenset(self.covered_years))

    def sound(self, prompt: str) -> str:
        return self.sounds.get(prompt, prompt)

    def caller(self, raw_number: str) -> CallerContext:
        """The caller's flags, from the number as Asterisk presented it (any form)."""
        number = normalise_number(raw_number).number
        if not number:
            return CallerContext()
        return CallerContext(high_risk=number in _normalised(self.high_risk_numbers),
                             abusive=number in _normalised(self.abusive_numbers))


def _normalised(numbers: Iterable[str]) -> tuple[str, ...]:
    found = {normalise_number(number).number for number in numbers}
    return tuple(sorted(found - {""}))
