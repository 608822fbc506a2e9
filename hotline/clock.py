"""The one clock every time-based decision reads (DESIGN §2, principle 5).

Config sets either a fixed instant (the clock stands still: unit tests) or an offset from
real time (the clock runs: integration tests and spot checks "as if it were 03:00").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hotline.config import ClockSettings


class Clock:
    def __init__(self, *, fixed: datetime | None = None, offset: timedelta = timedelta(0),
                 timezone: str = "Asia/Shanghai") -> None:
        self.zone = ZoneInfo(timezone)
        if fixed is not None and fixed.tzinfo is None:
            fixed = fixed.replace(tzinfo=self.zone)
        self._fixed = fixed
        self._offset = offset

    @classmethod
    def from_settings(cls, settings: ClockSettings) -> Clock:
        return cls(fixed=settings.fixed, offset=timedelta(seconds=settings.offset_seconds),
                   timezone=settings.timezone)

    def now(self) -> datetime:
        """Aware datetime in UTC."""
        if self._fixed is not None:
            return self._fixed.astimezone(UTC)
        return datetime.now(UTC) + self._offset

    def from_real(self, instant: datetime) -> datetime:
        """A real-world instant another system stamped (Asterisk's clock: a recording's
        name) on this clock's time line: shifted by the offset. A fixed clock has no tie
        to real time: the instant stays as stamped."""
        return instant.astimezone(UTC) + (self._offset if self._fixed is None else timedelta(0))

    def local_now(self) -> datetime:
        """Aware datetime in the hotline's time zone, for hours, holidays and shifts."""
        return self.now().astimezone(self.zone)
