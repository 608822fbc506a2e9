"""The duty chain adapter's own small decisions: the caller's number as the duty phone
hears it, the chain policy from settings, and which alerts wake the chain."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crisis.duty_calls import DUTY_KINDS, DutyCalls, caller_digits, chain_policy
from hotline.alerts.services import AlertView
from hotline.clock import Clock
from hotline.config import CrisisSettings


@pytest.mark.parametrize(("details", "heard"), [
    ({"caller_number": "+86 139-1234-5678"}, "8613912345678"),
    ({"caller_number": "139\r\nAction: Originate"}, "139"),
    ({"caller_number": None}, ""),
    ({}, ""),
    (None, ""),
    ({"caller_number": "1" * 40}, "1" * 20),
])
def test_the_duty_phone_hears_the_callers_digits_only(details: Any, heard: str) -> None:
    assert caller_digits(details) == heard


def test_the_chain_policy_comes_from_the_crisis_settings() -> None:
    policy = chain_policy(CrisisSettings(repeat_seconds=30, escalate_seconds=8))
    assert (policy.repeat_every, policy.escalate_after) == (timedelta(seconds=30),
                                                            timedelta(seconds=8))
    with pytest.raises(ValueError):
        chain_policy(CrisisSettings(repeat_seconds=0))


def _alert(kind: str) -> AlertView:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    return AlertView(1, "k", kind, "default", "critical", "s", {}, "open", now, now, None,
                     None, None)


async def test_only_crisis_alerts_wake_the_chain() -> None:
    calls = DutyCalls(sessions=None, clock=Clock(), ami=None, roster=None,  # type: ignore[arg-type]
                      alerts=None, policy=chain_policy(CrisisSettings()),  # type: ignore[arg-type]
                      default_site="default")
    wake: asyncio.Event = calls._wake  # what notify sets
    for kind in ("line_unstaffed", "trunk_down", "long_wait"):
        await calls.notify(_alert(kind))
        assert not wake.is_set()
    for kind in DUTY_KINDS:
        await calls.notify(_alert(kind))
        assert wake.is_set()
        wake.clear()
