"""Who is on duty when: weekly shift templates, dated overrides, and the counsellor's own
log in / log out. Pure: data in, windows and answers out.

A template says "every Monday from 19:00 for 7 hours" in the site's time zone (a shift
may cross midnight). A dated override adds a stretch of duty (`work`: an extra shift, a
swap) or takes one away (`off`: leave, a swap) whatever the templates say. Back-to-back
shifts of one counsellor merge into one window, so a shift change never removes and
re-adds someone who simply stays on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_SHIFT_MINUTES = 24 * 60


@dataclass(frozen=True)
class WeeklyShift:
    counsellor_id: int
    weekday: int  # 0 Monday … 6 Sunday
    start: time
    minutes: int
    valid_from: date | None = None
    valid_until: date | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), not {self.weekday}")
        if not 0 < self.minutes <= MAX_SHIFT_MINUTES:
            raise ValueError(f"a shift lasts 1 to {MAX_SHIFT_MINUTES} minutes, not {self.minutes}")
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            raise ValueError("valid_until is before valid_from")


@dataclass(frozen=True)
class DatedShift:
    counsellor_id: int
    starts_at: datetime
    ends_at: datetime
    off: bool = False


@dataclass(frozen=True)
class DutyWindow:
    counsellor_id: int
    starts_at: datetime
    ends_at: datetime

    def covers(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


def parse_start(text: str) -> time:
    """ "HH:MM" → time; a clear error for anything else."""
    try:
        hours, minutes = text.split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"a shift start is HH:MM (00:00 to 23:59), not {text!r}") from None


def template_occurrences(templates: Iterable[WeeklyShift], *, start: datetime, end: datetime,
                         zone: ZoneInfo) -> list[DutyWindow]:
    """Every occurrence of the templates that overlaps [start, end)."""
    windows = []
    # A shift that began up to a day before `start` may still be running.
    first_day = start.astimezone(zone).date() - timedelta(days=1)
    last_day = end.astimezone(zone).date()
    templates = list(templates)
    day = first_day
    while day <= last_day:
        for template in templates:
            if template.weekday != day.weekday():
                continue
            if template.valid_from and day < template.valid_from:
                continue
            if template.valid_until and day > template.valid_until:
                continue
            begins = datetime.combine(day, template.start, tzinfo=zone)
            ends = begins + timedelta(minutes=template.minutes)
            if begins < end and ends > start:
                windows.append(DutyWindow(template.counsellor_id, begins, ends))
        day += timedelta(days=1)
    return windows


def _subtract(window: DutyWindow, off: Sequence[DatedShift]) -> list[DutyWindow]:
    pieces = [window]
    for gap in off:
        if gap.counsellor_id != window.counsellor_id:
            continue
        remaining = []
        for piece in pieces:
            if gap.ends_at <= piece.starts_at or gap.starts_at >= piece.ends_at:
                remaining.append(piece)
                continue
            if piece.starts_at < gap.starts_at:
                remaining.append(DutyWindow(piece.counsellor_id, piece.starts_at, gap.starts_at))
            if gap.ends_at < piece.ends_at:
                remaining.append(DutyWindow(piece.counsellor_id, gap.ends_at, piece.ends_at))
        pieces = remaining
    return pieces


def _merge(windows: Iterable[DutyWindow]) -> list[DutyWindow]:
    merged: list[DutyWindow] = []
    for window in sorted(windows, key=lambda w: (w.counsellor_id, w.starts_at)):
        last = merged[-1] if merged else None
        if (last is not None and last.counsellor_id == window.counsellor_id
                and window.starts_at <= last.ends_at):
            merged[-1] = DutyWindow(last.counsellor_id, last.starts_at,
                                    max(last.ends_at, window.ends_at))
        else:
            merged.append(window)
    return merged


def duty_windows(templates: Iterable[WeeklyShift], overrides: Iterable[DatedShift], *,
                 start: datetime, end: datetime, zone: ZoneInfo) -> list[DutyWindow]:
    """The merged stretches of duty overlapping [start, end): templates minus `off`
    overrides, plus `work` overrides. An `off` override wins over a `work` one it overlaps."""
    overrides = [o for o in overrides if o.starts_at < end and o.ends_at > start]
    off = [o for o in overrides if o.off]
    planned = [DutyWindow(o.counsellor_id, o.starts_at, o.ends_at)
               for o in overrides if not o.off]
    planned += template_occurrences(templates, start=start, end=end, zone=zone)
    pieces = [piece for window in planned for piece in _subtract(window, off)]
    return _merge(pieces)


def window_at(windows: Iterable[DutyWindow], counsellor_id: int,
              at: datetime) -> DutyWindow | None:
    for window in windows:
        if window.counsellor_id == counsellor_id and window.covers(at):
            return window
    return None


def next_boundary(windows: Iterable[DutyWindow], after: datetime) -> datetime | None:
    """The next instant a shift starts or ends after `after`: when membership changes."""
    boundaries = [edge for window in windows for edge in (window.starts_at, window.ends_at)
                  if edge > after]
    return min(boundaries) if boundaries else None


@dataclass(frozen=True)
class SelfService:
    """What the counsellor said: log in / log out (until a moment), pause with a reason."""

    presence: str = "schedule"  # schedule | logged_in | logged_out
    presence_until: datetime | None = None
    pause_reason: str | None = None
    pause_until: datetime | None = None

    def presence_at(self, at: datetime) -> str:
        if self.presence_until is not None and at >= self.presence_until:
            return "schedule"
        return self.presence

    def pause_at(self, at: datetime) -> str | None:
        if self.pause_reason is None:
            return None
        if self.pause_until is not None and at >= self.pause_until:
            return None
        return self.pause_reason


def on_duty(counsellor_id: int, windows: Sequence[DutyWindow], own: SelfService,
            at: datetime) -> bool:
    presence = own.presence_at(at)
    if presence == "logged_in":
        return True
    if presence == "logged_out":
        return False
    return window_at(windows, counsellor_id, at) is not None


def logout_until(counsellor_id: int, windows: Sequence[DutyWindow], at: datetime) -> datetime:
    """A log-out lasts until the end of the current shift (the next shift brings them back),
    or 12 hours when they are not on a shift."""
    window = window_at(windows, counsellor_id, at)
    return window.ends_at if window is not None else at + timedelta(hours=12)
