"""FastAGI route `ivr`: play the main menu, collect a digit, set the route and return.

The dialplan passes: linkedid, site code, base64 caller number, base64 caller name, the
dialled number. This route only plays prompts and reads digits (short steps); the queue,
the dial and every wait on a person run in the dialplan after it returns.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import structlog

from agi.fastagi import AgiChannel, AgiHangup
from hotline.calls.storage import CallJournal
from hotline.clock import Clock
from routing.callers import display_name_from_sip
from routing.ivr import Menu, Reprompt, RouteDecision, decide

log = structlog.get_logger(__name__)

ALL_DIGITS = "0123456789*#"
WELCOME = "hotline/welcome"
MENU = "hotline/menu"
INVALID = "hotline/invalid"


def decode_b64(value: str) -> str:
    """Decode a base64 argument from the dialplan; keep what can be kept of a broken one."""
    if not value:
        return ""
    try:
        raw = base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        return ""
    return raw.decode("utf-8", errors="replace")


class IvrRoute:
    def __init__(self, *, journal: CallJournal, clock: Clock,
                 menus: Callable[[], Mapping[str, Menu]], default_site: str,
                 digit_timeout_ms: int) -> None:
        self._journal = journal
        self._clock = clock
        self._menus = menus
        self._default_site = default_site
        self._digit_timeout_ms = digit_timeout_ms

    async def __call__(self, channel: AgiChannel) -> None:
        args = [*channel.args, "", "", "", "", ""]
        linkedid = args[0] or channel.headers.get("agi_uniqueid", "")
        menus = self._menus()
        site = args[1] if args[1] in menus else self._default_site
        menu = menus[site]
        caller: dict[str, Any] = {
            "site_code": site, "caller_number": decode_b64(args[2]),
            "caller_name": display_name_from_sip(decode_b64(args[3])),
            "dialed_number": args[4] or None,
        }
        # The IVR's steps are kept here and written once, with the route: one journal
        # change per call instead of one per digit.
        steps: list[tuple[str, datetime, dict[str, Any]]] = [
            ("ivr_start", self._clock.now(), {"channel": channel.headers.get("agi_channel", "")})
        ]
        digits: list[str | None] = []
        try:
            decision = await self._collect(channel, menu, digits, steps)
        except AgiHangup:
            self._journal.record(linkedid, self._clock.now(), event="ivr_hangup", source="agi",
                                 data={}, steps=steps, **caller,
                                 digits="".join(d for d in digits if d) or None)
            return
        destination = decision.destination
        # One round trip for every variable the dialplan reads (DESIGN §4).
        await channel.set_variables({
            "HOTLINE_CALL_ID": self._journal.call_id(linkedid),
            "HOTLINE_QUEUE": destination.queue,
            "HOTLINE_PRIORITY": str(destination.priority),
            "HOTLINE_ROUTE": destination.route.value,
        })
        self._journal.record(
            linkedid, self._clock.now(), event="route", source="agi", steps=steps,
            data={"route": destination.route.value, "queue": destination.queue,
                  "priority": destination.priority, "reason": decision.reason.value},
            route=destination.route.value, queue=destination.queue,
            priority=destination.priority,
            digits="".join(d for d in digits if d) or None, **caller,
        )

    async def _collect(self, channel: AgiChannel, menu: Menu, digits: list[str | None],
                       steps: list[tuple[str, datetime, dict[str, Any]]]) -> RouteDecision:
        # A digit pressed during the welcome or the "invalid" prompt counts as the choice.
        early = await channel.stream_file(WELCOME, ALL_DIGITS)
        while True:
            digit = early if early is not None else await channel.get_data(
                MENU, self._digit_timeout_ms, 1)
            digits.append(digit)
            steps.append(("digit", self._clock.now(), {"digit": digit, "attempt": len(digits)}))
            decision = decide(menu, digits)
            if not isinstance(decision, Reprompt):
                return decision
            early = await channel.stream_file(INVALID, ALL_DIGITS)
