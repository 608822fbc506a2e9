"""What the FastAGI server measures about itself (a production metric, always on).

- ``hotline_agi_step_seconds{route}``: the backend's own time per AGI step: from the
  moment Asterisk's answer line (for the first step, the end of the AGI headers) has been
  read to the moment the next command line is written (for the last step, to the end of
  the route). Asterisk's and the caller's time are not in it.
- ``hotline_agi_db_queries_total{route}``: SQL statements executed inside a FastAGI
  session. Routes read the rules from memory (DESIGN §2), so this stays at 0; the call
  journal writes from its own task, which does not carry the session's context.
- ``hotline_agi_sessions``: FastAGI sessions being served now.
- ``hotline_db_statements_total``: every SQL statement the engine executed, whoever ran
  it (the journal, the web API, the rules reload): it shows the listener is live.

The session is known to the SQL listener through a context variable that the session
sets in its own task: a task inherits a copy of the context when it is created, so tasks
created before the session (the journal's writer, the AMI listener) never see it.
"""

from __future__ import annotations

from collections import deque
from contextvars import ContextVar, Token
from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

# 0.1 ms … 50 ms: an AGI step's decision is expected well under 5 ms.
STEP_BUCKETS = (0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003,
                0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05)
DEFAULT_MAX_SAMPLES = 200_000
END = "end"  # the step kind of the last step: from the last answer to the route's return

# How many words of an AGI command name it ("STREAM FILE", "EXEC MSet"); one otherwise.
_COMMAND_WORDS = {"STREAM": 2, "GET": 2, "SET": 2, "EXEC": 2, "WAIT": 3, "CHANNEL": 2,
                  "DATABASE": 2, "SAY": 2, "RECORD": 2, "SPEECH": 2, "CONTROL": 3,
                  "RECEIVE": 2, "SEND": 2}

# A step sample: (route, step number in the session from 1, command that ended it, seconds).
Sample = tuple[str, int, str, float]

_SESSION: ContextVar[StepTimer | None] = ContextVar("hotline_agi_session", default=None)


def enter_session(timer: StepTimer) -> Token[StepTimer | None]:
    """Mark the current task as running ``timer``'s session (call it in the session's task)."""
    return _SESSION.set(timer)


def leave_session(token: Token[StepTimer | None]) -> None:
    _SESSION.reset(token)


def command_kind(line: str) -> str:
    """The name of the AGI command a line sends: 'STREAM FILE', 'GET DATA', 'EXEC MSet'."""
    words = line.split(" ", 3)
    return " ".join(words[:_COMMAND_WORDS.get(words[0], 1)])


class StepTimer:
    """The step clock of one FastAGI session; also what the SQL listener sees of it."""

    __slots__ = ("_observe", "_queries", "_samples", "_started", "active", "queries", "route",
                 "steps")

    def __init__(self, metrics: AgiMetrics, route: str, started: float) -> None:
        self.route = route
        self._observe = metrics.step_seconds.labels(route).observe
        self._queries = metrics.db_queries.labels(route)
        self._samples = metrics.samples
        self._started: float | None = started
        self.steps = 0
        self.queries = 0
        self.active = True

    def answer_read(self) -> None:
        """A line from Asterisk has been read: the backend's turn starts (again)."""
        self._started = perf_counter()

    def command_written(self, line: str) -> None:
        """A command line has been written: the backend's turn ends."""
        if self._started is not None:
            self._end(perf_counter(), line)

    def session_ended(self) -> None:
        if self._started is not None:
            self._end(perf_counter(), None)
        self.active = False

    def _end(self, now: float, line: str | None) -> None:
        elapsed = now - self._started  # type: ignore[operator]
        self._started = None
        self.steps += 1
        self._observe(elapsed)
        if self._samples is not None:
            self._samples.append((self.route, self.steps,
                                  END if line is None else command_kind(line), elapsed))

    def query(self) -> None:
        self.queries += 1
        self._queries.inc()


class AgiMetrics:
    """The FastAGI server's metrics, on a registry of their own (``/metrics`` serves it).

    With ``keep_samples``, every step duration is also kept (the last ``max_samples``) for
    exact percentiles in benchmarks; the histogram alone only gives bucket bounds.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 keep_samples: bool = False, max_samples: int = DEFAULT_MAX_SAMPLES) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.step_seconds = Histogram(
            "hotline_agi_step_seconds",
            "Backend time per AGI step: answer read (or headers end) to next command written",
            ["route"], buckets=STEP_BUCKETS, registry=self.registry)
        self.db_queries = Counter(
            "hotline_agi_db_queries_total",
            "SQL statements executed inside a FastAGI session's task (should stay 0)",
            ["route"], registry=self.registry)
        self.sessions = Gauge("hotline_agi_sessions", "FastAGI sessions being served",
                              registry=self.registry)
        self.db_statements = Counter(
            "hotline_db_statements_total",
            "SQL statements executed by the backend's engine, by any task",
            registry=self.registry)
        self.samples: deque[Sample] | None = (
            deque(maxlen=max_samples) if keep_samples else None)

    def session(self, route: str, started: float) -> StepTimer:
        """The timer of a new session; ``started`` is when its headers had been read."""
        return StepTimer(self, route, started)

    def watch_engine(self, engine: AsyncEngine | Engine) -> None:
        """Count the statements of ``engine`` (before_cursor_execute on its sync engine)."""
        target = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
        event.listen(target, "before_cursor_execute", self._before_cursor_execute)

    def unwatch_engine(self, engine: AsyncEngine | Engine) -> None:
        target = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
        event.remove(target, "before_cursor_execute", self._before_cursor_execute)

    def _before_cursor_execute(self, *_args: Any) -> None:
        # SQLAlchemy's asyncio layer runs this in a greenlet that carries the calling
        # task's context, so the session variable is the caller's.
        self.db_statements.inc()
        timer = _SESSION.get()
        if timer is not None and timer.active:
            timer.query()

    def clear_samples(self) -> None:
        if self.samples is not None:
            self.samples.clear()
