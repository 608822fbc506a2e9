"""The period a statistic covers, from the API's `from`/`to` texts. Pure.

A bound is a date (a whole site-local day: `from` is its first instant, `to` includes it)
or an ISO datetime (naive ones are site-local). Without `to` the period ends now; without
`from` it starts at the beginning of the site-local day `to` falls in ("today so far").
The period is half-open: [start, end).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_DAYS = 400

# "…T10:00:00+08:00" sent unencoded arrives as "…T10:00:00 08:00" (a query's "+" is a space).
_SPACED_OFFSET = re.compile(r"^(.*T[0-9:.]+) (\d{2}(?::?\d{2})?)$")


class PeriodError(ValueError):
    """A bound that cannot be read, or a period the API refuses."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


@dataclass(frozen=True)
class Period:
    start: datetime  # aware, inclusive
    end: datetime  # aware, exclusive

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400


def parse_bound(text: str, *, field: str) -> date | datetime:
    """A date, or an ISO datetime (aware or naive), from an API parameter."""
    value = text.strip()
    spaced = _SPACED_OFFSET.match(value)
    if spaced:
        value = f"{spaced.group(1)}+{spaced.group(2)}"
    try:
        return date.fromisoformat(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise PeriodError(f"{field} must be a date (2026-11-30) or an ISO datetime "
                          f"(2026-11-30T08:00:00+08:00), not {text!r}", field=field) from None


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _instant(value: datetime, zone: ZoneInfo) -> datetime:
    return value.replace(tzinfo=zone) if value.tzinfo is None else value


def resolve_period(from_text: str | None, to_text: str | None, *, now: datetime,
                   zone: ZoneInfo, max_days: int = MAX_DAYS) -> Period:
    """The period [start, end) the texts name; PeriodError when it cannot be served."""
    to_bound: date | datetime | None = None
    from_bound: date | datetime | None = None
    try:
        if to_text:
            to_bound = parse_bound(to_text, field="to")
            if isinstance(to_bound, datetime):
                end = _instant(to_bound, zone)
                end_day = end.astimezone(zone).date()
            else:
                end = _midnight(to_bound + timedelta(days=1), zone)
                end_day = to_bound
        else:
            end = now
            end_day = now.astimezone(zone).date()
        if from_text:
            from_bound = parse_bound(from_text, field="from")
            start = (_instant(from_bound, zone) if isinstance(from_bound, datetime)
                     else _midnight(from_bound, zone))
        else:
            start = _midnight(end_day, zone)
        period = Period(start.astimezone(UTC), end.astimezone(UTC))
    except OverflowError:
        raise PeriodError("the period is outside the calendar") from None
    # Two dates: from the 2nd to the 1st is refused, though its instants would be empty.
    days_reversed = (type(from_bound) is date and type(to_bound) is date
                     and from_bound > to_bound)
    if period.start > period.end or days_reversed:
        raise PeriodError(f"from ({from_text or start.isoformat()}) is after to "
                          f"({to_text or end.isoformat()})")
    if period.end - period.start > timedelta(days=max_days):
        raise PeriodError(f"the period is {period.days:.1f} days long; at most {max_days} days "
                          "per request")
    return period
