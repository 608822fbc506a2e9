"""The pure parts of incidents: the deadline policy from settings, and which routes the call
journal hands over become crisis signals (once per call, bounded memory)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from crisis.call_signals import CrisisCalls
from crisis.incidents import deadline_policy
from hotline.config import CrisisSettings


def test_the_deadline_policy_follows_the_crisis_settings() -> None:
    policy = deadline_policy(CrisisSettings())
    assert policy.crisis == timedelta(minutes=30)
    assert (policy.case, policy.consultation) == (timedelta(hours=48), timedelta(hours=24))
    policy = deadline_policy(CrisisSettings(crisis_deadline_minutes=20,
                                            consultation_deadline_hours=12,
                                            deadline_near_fraction=0.5))
    assert policy.crisis == timedelta(minutes=20)
    assert policy.consultation == timedelta(hours=12) and policy.near_fraction == 0.5
    with pytest.raises(ValueError, match="crisis"):
        deadline_policy(CrisisSettings(crisis_deadline_minutes=0))


def queued(calls: CrisisCalls) -> list[Any]:
    items = []
    while not calls._queue.empty():
        items.append(calls._queue.get_nowait())
    return items


def test_only_crisis_routes_are_signalled_once_per_call() -> None:
    calls = CrisisCalls(incidents=None, sessions=None,  # type: ignore[arg-type]
                        default_site="default", remember=2)
    for call_id, route in (("a", "queue"), ("b", "crisis"), ("b", "crisis"),
                           ("c", "oncall"), ("d", "voicemail"), ("e", "fallback")):
        calls.on_route(call_id, f"linked-{call_id}", route)
    assert queued(calls) == [("b", "linked-b", "crisis"), ("c", "linked-c", "oncall")]
    # Memory is bounded: the oldest call is forgotten first.
    calls.on_route("f", "linked-f", "crisis")
    assert list(calls._seen) == ["c", "f"]
