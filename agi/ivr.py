"""FastAGI route `ivr`: walk the site's published menu, set the route and return.

The dialplan passes: linkedid, site code, base64 caller number, base64 caller name, the
dialled number, and the node to resume at (after a self-help programme, else empty).
The rules come from memory (`RoutingTable`): no call waits on the database. This route
only plays prompts and reads digits (short steps); the queue, the dial, the programme and
every wait on a person run in the dialplan after it returns.

A `listen` route (the night attendant) is offered only while the attendant can listen; the
call is then registered with it under a fresh AudioSocket id the dialplan passes on.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Protocol

import structlog

from agi.fastagi import AgiChannel, AgiCommandError, AgiHangup
from hotline.calls.storage import CallJournal
from hotline.clock import Clock
from hotline.rules.published import RoutingTable, SiteRouting
from routing.callers import display_name_from_sip, normalise_number
from routing.menu import MenuWalk, Play, Route, RouteKind
from routing.variables import route_variables

log = structlog.get_logger(__name__)


def decode_b64(value: str) -> str:
    """Decode a base64 argument from the dialplan; keep what can be kept of a broken one."""
    if not value:
        return ""
    try:
        raw = base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        return ""
    return raw.decode("utf-8", errors="replace")


class Attendant(Protocol):
    """The night attendant as the IVR sees it (crisis/attendant.py)."""

    @property
    def available(self) -> bool: ...

    def expect(self, *, channel: str, linkedid: str, call_id: str, site: str,
               caller_number: str, hit_route: str, queue: str, priority: int,
               node: str) -> str: ...


class IvrRoute:
    def __init__(self, *, journal: CallJournal, clock: Clock, routing: RoutingTable,
                 attendant: Attendant | None = None) -> None:
        self._journal = journal
        self._clock = clock
        self._routing = routing
        self._attendant = attendant

    async def __call__(self, channel: AgiChannel) -> None:
        args = [*channel.args, "", "", "", "", "", ""]
        linkedid = args[0] or channel.headers.get("agi_uniqueid", "")
        site = self._routing.site(args[1])
        raw_number = decode_b64(args[2])
        number = normalise_number(raw_number)
        resume = args[5] or None
        now = self._clock.now()
        caller = self._routing.caller(site, number, now)
        walk = MenuWalk(rules=site.rules, at=now, calendar=self._routing.state.calendar,
                        staffed=self._routing.staffed(site.code, now), caller=caller,
                        listening=self._attendant is not None and self._attendant.available)
        call: dict[str, Any] = {
            "site_code": site.code, "caller_number": raw_number, "caller_kind": number.kind.value,
            "caller_name": display_name_from_sip(decode_b64(args[3])),
            "dialed_number": args[4] or None, "rules_version": site.version,
        }
        # The IVR's steps are kept here and written once, with the route: one journal
        # change per call step instead of one per digit.
        steps: list[tuple[str, datetime, dict[str, Any]]] = [("ivr_start", now, {
            "channel": channel.headers.get("agi_channel", ""), "rules_version": site.version,
            "site_open": walk.site_open, "resume": resume,
            "flags": [name for name, on in (("high_risk", caller.high_risk),
                                            ("abusive", caller.abusive)) if on]})]
        try:
            route = await self._walk(channel, walk, site, resume, steps)
        except AgiHangup:
            self._journal.record(linkedid, self._clock.now(), event="ivr_hangup", source="agi",
                                 data={"path": walk.path}, steps=steps, **call,
                                 digits=_digits(walk) or None)
            return
        digits = _digits(walk)
        call_id = self._journal.call_id(linkedid)
        listen_id = ""
        if route.kind is RouteKind.LISTEN and self._attendant is not None:
            listen_id = self._attendant.expect(
                channel=channel.headers.get("agi_channel", ""), linkedid=linkedid,
                call_id=call_id, site=site.code, caller_number=raw_number,
                hit_route=route.on_keyword, queue=route.queue, priority=route.priority,
                node=route.node)
        # One round trip for every variable the dialplan reads (DESIGN §4), the same set
        # the classic AGI fallback writes.
        try:
            await channel.set_variables(route_variables(
                call_id=call_id, route=route, digits=walk.digits,
                rules_version=site.version, sound=site.sound, listen_id=listen_id))
        except AgiHangup:
            # Gone during the last menu (GET DATA answers a hang-up as a failed prompt, so
            # the walk ended): the steps are still the call's story.
            self._journal.record(linkedid, self._clock.now(), event="ivr_hangup", source="agi",
                                 data={"path": walk.path}, steps=steps, **call,
                                 digits=digits or None)
            return
        self._journal.record(
            linkedid, self._clock.now(), event="route", source="agi", steps=steps,
            data={"route": route.kind.value, "queue": route.queue, "priority": route.priority,
                  "reason": route.reason.value, "node": route.node, "path": walk.path,
                  "number": route.number or None},
            route=route.kind.value, queue=route.queue or None, priority=route.priority,
            digits=digits or None, **call,
        )

    async def _walk(self, channel: AgiChannel, walk: MenuWalk, site: SiteRouting,
                    resume: str | None,
                    steps: list[tuple[str, datetime, dict[str, Any]]]) -> Route:
        action = walk.start(resume)
        while not isinstance(action, Route):
            sound = site.sound(action.prompt)
            # What the caller heard is part of the record (which recording, which version).
            if isinstance(action, Play):
                played = True
                try:
                    digit = await channel.stream_file(sound, action.escape_digits)
                except AgiCommandError:
                    # A missing prompt must not stop the call: carry on without it.
                    log.warning("prompt could not be played", sound=sound)
                    digit, played = None, False
                steps.append(("prompt", self._clock.now(),
                              {"sound": sound, "played": played, "digit": digit}))
                pressed_before = len(walk.digits)
                action = walk.played(digit)
                if len(walk.digits) > pressed_before:
                    # A digit pressed during the prompt answered the menu that follows it.
                    steps.append(("digit", self._clock.now(), {
                        "digit": digit, "node": walk.inputs[-1][0],
                        "attempt": len(walk.digits), "prompt": sound, "played": played,
                        "during_prompt": True}))
                continue
            played = True
            try:
                digit = await channel.get_data(sound, action.timeout_ms, 1)
            except AgiCommandError:
                log.warning("menu prompt could not be played", sound=sound)
                digit, played = None, False
            steps.append(("digit", self._clock.now(),
                          {"digit": digit, "node": action.node, "attempt": len(walk.digits) + 1,
                           "prompt": sound, "played": played}))
            action = walk.collected(digit)
        return action


def _digits(walk: MenuWalk) -> str:
    # The column holds 64; a caller pressing round menus for long keeps the last ones.
    return "".join(d for d in walk.digits if d)[-64:]
