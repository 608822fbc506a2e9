"""The channel variables an IVR decision hands to the dialplan (DESIGN §4). Pure.

The FastAGI route and the classic AGI fallback both set exactly these, so the dialplan
after either one is the same. `HOTLINE_ROUTE` comes last: the dialplan trusts the others
only when it is set, and a caller of `route_variables` sets them in this order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from routing.menu import Route

VARIABLE_NAMES = (
    "HOTLINE_CALL_ID",
    "HOTLINE_QUEUE",
    "HOTLINE_PRIORITY",
    "HOTLINE_NUMBER",
    "HOTLINE_PROMPT",
    "HOTLINE_RING",
    "HOTLINE_RESUME",
    "HOTLINE_NODE",
    "HOTLINE_REASON",
    "HOTLINE_DIGITS",
    "HOTLINE_RULES_VERSION",
    "HOTLINE_LISTEN_ID",
    "HOTLINE_LISTEN_HIT",
    "HOTLINE_LISTEN_FAILED",
    "HOTLINE_VIA",
    "HOTLINE_ROUTE",
)


def route_variables(*, call_id: str, route: Route, digits: Sequence[str | None],
                    rules_version: int, sound: Callable[[str], str],
                    via: str = "", listen_id: str = "") -> dict[str, str]:
    """Name → value, `HOTLINE_ROUTE` last. `sound` maps a prompt name to the Asterisk sound
    played (pinned versions); `digits` are the caller's answers (None: nothing pressed);
    `via` names the path that decided (`classic` for the fallback; left out when empty);
    `listen_id` is the night attendant's AudioSocket id for a listen route."""
    values = {
        "HOTLINE_CALL_ID": call_id,
        "HOTLINE_QUEUE": route.queue,
        "HOTLINE_PRIORITY": str(route.priority),
        "HOTLINE_NUMBER": route.number,
        "HOTLINE_PROMPT": sound(route.prompt) if route.prompt else "",
        "HOTLINE_RING": str(route.ring_seconds) if route.ring_seconds else "",
        "HOTLINE_RESUME": route.resume,
        "HOTLINE_NODE": route.node,
        "HOTLINE_REASON": route.reason.value,
        "HOTLINE_DIGITS": "".join(digit for digit in digits if digit),
        "HOTLINE_RULES_VERSION": str(rules_version),
    }
    values["HOTLINE_LISTEN_ID"] = listen_id
    values["HOTLINE_LISTEN_HIT"] = route.on_keyword
    values["HOTLINE_LISTEN_FAILED"] = route.on_failure
    # The path that decided, then the route: the dialplan trusts HOTLINE_ROUTE, set last.
    if via:
        values["HOTLINE_VIA"] = via
    values["HOTLINE_ROUTE"] = route.kind.value
    return values
