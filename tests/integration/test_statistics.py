"""The answer rate from real calls: sipp callers press 1 for the psych queue, sipp softphones
answer seven of them, three callers hang up while every counsellor is busy (two within the
site's 5-second short-abandon threshold), and /api/stats/answer-rate counts exactly that."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from hotline.asterisk.sandbox import AsteriskSandbox
from hotline.config import load_settings
from tests.integration.conftest import Backend
from tests.integration.sipp import Caller, CallResult, softphone
from tests.integration.test_calls import caller_number

pytestmark = pytest.mark.integration

PSYCH_MEMBERS = ("c1002", "c1003")  # 李老师 and 王老师: consultation, psych first
# From the caller's answer to joining the queue: the key at 1.5 s, the "connecting" prompt
# (about 3.4 s). A caller's hold_ms starts at the key press, so a caller who holds H ms
# waits about H/1000 − 3.7 s in the queue.
SHORT_HOLD_MS = 6000  # ≈ 2.3 s in the queue: a short abandon (under 5 s)
LONG_HOLD_MS = 12000  # ≈ 8.3 s in the queue: an abandon
TALKING_HOLD_MS = 24000  # the first two callers talk until the abandoners have left


def _sandbox() -> AsteriskSandbox:
    settings = load_settings()
    return AsteriskSandbox(settings=settings.asterisk, ami=settings.ami,
                           var_dir=settings.var_dir)


def backend_now(backend: Backend) -> datetime:
    """The backend's clock (the harness runs it at an offset)."""
    offset = float(backend.env["HOTLINE_CLOCK__OFFSET_SECONDS"])
    return datetime.now(UTC) + timedelta(seconds=offset)


def wait_members_ready(sandbox: AsteriskSandbox, users: tuple[str, ...],
                       timeout: float = 30) -> None:
    """Until each softphone is a psych member Asterisk may ring (registered, not paused)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = sandbox.cli("queue show psych")
        lines = [next((line for line in text.splitlines() if f"PJSIP/{user})" in line), "")
                 for user in users]
        if all("Not in use" in line and "paused" not in line.lower() for line in lines):
            return
        time.sleep(0.3)
    raise AssertionError(f"psych members not ready: {text}")


def wait_answered(backend: Backend, number: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    found: Any = None
    while time.monotonic() < deadline:
        status, page = backend.api(f"/api/calls?caller_number={number}&limit=1")
        assert status == 200, page
        found = page["items"][0] if page["items"] else None
        if found and found["outcome"] == "answered":
            return
        time.sleep(0.3)
    raise AssertionError(f"the call from {number} was not answered: {found}")


def answer_rate(backend: Backend, since: datetime, group: str) -> dict[str, Any]:
    query = urlencode({"site": backend.settings.demo.site_code, "group": group,
                       "from": since.isoformat()})
    status, body = backend.api(f"/api/stats/answer-rate?{query}")
    assert status == 200, body
    return dict(body)


def test_answer_rate_of_ten_real_calls(backend: Backend, counsellors: dict[str, str],
                                       workdir: Path) -> None:
    # After a call a counsellor is offered the next one only after the wrap-up time.
    wrapup = float(getattr(backend.settings.queues, "wrapup_seconds", 0) or 0)
    next_hold_ms = int((max(wrapup, 5.5) + 4) * 1000)
    answered = [caller_number() for _ in range(7)]
    short = [caller_number() for _ in range(2)]
    long = caller_number()
    results: list[CallResult] = []
    with softphone(workdir, user="c1002", password=counsellors["c1002"], ring_ms=500), \
            softphone(workdir, user="c1003", password=counsellors["c1003"], ring_ms=500):
        wait_members_ready(_sandbox(), PSYCH_MEMBERS)
        since = backend_now(backend)
        # Both counsellors take a call; meanwhile three callers wait and give up.
        talking = [Caller(workdir, caller=number, keys="1", hold_ms=TALKING_HOLD_MS).start()
                   for number in answered[:2]]
        for number in answered[:2]:
            wait_answered(backend, number)
        leaving = [Caller(workdir, caller=number, keys="1", hold_ms=SHORT_HOLD_MS).start()
                   for number in short]
        leaving.append(Caller(workdir, caller=long, keys="1", hold_ms=LONG_HOLD_MS).start())
        results += [caller.wait() for caller in (*talking, *leaving)]
        # The other five, at most two at a time, each joining while the counsellors wrap up.
        for batch in (answered[2:4], answered[4:6], answered[6:]):
            callers = [Caller(workdir, caller=number, keys="1", hold_ms=next_hold_ms).start()
                       for number in batch]
            results += [caller.wait() for caller in callers]
    assert all(result.ok for result in results), [r.errors[-1000:] for r in results if not r.ok]

    calls = {number: backend.find_call(number) for number in (*answered, *short, long)}
    journey = {number: (call["outcome"], call["wait_seconds"], call["answered_by"])
               for number, call in calls.items()}
    assert all(calls[number]["outcome"] == "answered" for number in answered), journey
    assert all(calls[number]["outcome"] == "abandoned" for number in (*short, long)), journey

    by_site = answer_rate(backend, since, "site")
    total = by_site["total"]
    assert (total["offered"], total["answered"], total["answered_by_counsellor"],
            total["answered_oncall"]) == (10, 7, 7, 0), (total, journey)
    assert (total["abandoned"], total["short_abandoned"], total["lost"], total["counted"]) == (
        3, 2, 0, 8), (total, journey)
    assert total["answer_rate"] == 7 / 8
    assert total["abandon_rate"] == 1 / 8
    assert total["average_speed_of_answer_seconds"] is not None
    assert total["service_level_20s"] <= 7 / 8

    by_queue = {group["key"]: group["figures"]
                for group in answer_rate(backend, since, "queue")["groups"]}
    assert (by_queue["psych"]["offered"], by_queue["psych"]["answered"]) == (10, 7)
    assert by_queue["crisis"]["offered"] == 0

    by_shift = answer_rate(backend, since, "shift")["groups"]
    assert sum(group["figures"]["offered"] for group in by_shift) == 10

    people = {line["name"]: line["figures"]
              for line in answer_rate(backend, since, "counsellor")["counsellors"]}
    assert people["李老师"]["answered"] + people["王老师"]["answered"] == 7, people
    for name in ("李老师", "王老师"):
        assert people[name]["answered"] >= 1 and people[name]["talk_seconds"] > 0, people
        assert people[name]["offered"] >= people[name]["answered"]
