"""Is the line healthy? Pure: a snapshot of each site's line in, the problems out, each with
how long it must last before someone is alerted. The watchdog (hotline/alerts/) keeps the
time each problem was first seen, raises an alert when it has lasted that long, and
resolves the alert when the problem is gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class QueueWait:
    queue: str
    longest_wait_seconds: float
    alert_after_seconds: int | None


@dataclass(frozen=True)
class SiteLine:
    site: str
    open: bool  # in service hours
    on_duty: int  # counsellors the roster has on duty
    reachable: int  # of them, with a registered phone and not paused
    unstaffed_alert_seconds: int
    queues: Sequence[QueueWait] = field(default_factory=tuple)


@dataclass(frozen=True)
class LineProblem:
    key: str  # one open alert per key
    kind: str  # unstaffed | long_wait | trunk_down
    site: str | None
    severity: str
    summary: str  # for the duty officer, in Chinese
    after_seconds: float  # how long it must last before an alert
    details: dict[str, object] = field(default_factory=dict)


def line_problems(lines: Iterable[SiteLine], *, trunk_reachable: bool | None,
                  trunk_alert_seconds: float = 30) -> list[LineProblem]:
    problems = []
    for line in lines:
        if line.open and line.reachable == 0:
            problems.append(LineProblem(
                key=f"unstaffed:{line.site}", kind="unstaffed", site=line.site,
                severity="critical",
                summary=f"站点 {line.site} 服务时间内无咨询员在岗（排班 {line.on_duty} 人，"
                        "可接听 0 人）",
                after_seconds=line.unstaffed_alert_seconds,
                details={"on_duty": line.on_duty, "reachable": 0}))
        for wait in line.queues:
            if wait.alert_after_seconds is None:
                continue
            if wait.longest_wait_seconds > wait.alert_after_seconds:
                problems.append(LineProblem(
                    key=f"long_wait:{wait.queue}", kind="long_wait", site=line.site,
                    severity="warning",
                    summary=f"队列 {wait.queue} 有来电已等待 {int(wait.longest_wait_seconds)} 秒",
                    after_seconds=0,
                    details={"queue": wait.queue,
                             "longest_wait_seconds": round(wait.longest_wait_seconds, 1),
                             "threshold_seconds": wait.alert_after_seconds}))
    if trunk_reachable is False:
        problems.append(LineProblem(
            key="trunk_down:carrier", kind="trunk_down", site=None, severity="critical",
            summary="运营商中继不可达：来电和外呼（值班手机、110）可能无法接通",
            after_seconds=trunk_alert_seconds))
    return problems


def due(problems: Iterable[LineProblem], first_seen: dict[str, float],
        now: float) -> tuple[list[LineProblem], set[str]]:
    """Which problems have lasted long enough to alert, and which keys cleared.

    `first_seen` (key → monotonic seconds) is updated in place: new problems are added,
    cleared ones removed.
    """
    current = {problem.key: problem for problem in problems}
    cleared = set(first_seen) - set(current)
    for key in cleared:
        del first_seen[key]
    ready = []
    for key, problem in current.items():
        since = first_seen.setdefault(key, now)
        if now - since >= problem.after_seconds:
            ready.append(problem)
    return ready, cleared
