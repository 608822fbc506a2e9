"""AMI helpers for transfers: list a call's channels, blind-transfer, attended-transfer.

Plain functions around AmiConnection.action, with no business logic: which channel may
transfer, and where to, is decided by the caller (hotline.calls.transfer_http). Both
actions need only the `call` write class (manager.conf); the channel listing needs
`reporting`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from panoramisk.message import Message

from hotline.calls.transfers import CallChannel


class AmiActions(Protocol):
    async def action(self, action: Mapping[str, str | list[str]], *,
                     as_list: bool | None = None,
                     timeout: float | None = None,  # noqa: ASYNC109  (AmiConnection's API)
                     ) -> Message | list[Message]: ...


@dataclass(frozen=True)
class AmiAnswer:
    """Asterisk's answer to an action: accepted or refused, with its message."""

    ok: bool
    message: str


def _text(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    return value if isinstance(value, str) else ""


def _answer(reply: Message | list[Message]) -> AmiAnswer:
    first = reply[0] if isinstance(reply, list) else reply
    ok = _text(first, "Response").lower() == "success"
    return AmiAnswer(ok, _text(first, "Message"))


async def call_channels(ami: AmiActions, linkedid: str, *,
                        timeout: float = 10) -> list[CallChannel]:  # noqa: ASYNC109
    """The live channels of one call (its linkedid), from CoreShowChannels."""
    reply = await ami.action({"Action": "CoreShowChannels"}, as_list=True, timeout=timeout)
    messages = reply if isinstance(reply, list) else [reply]
    return [
        CallChannel(name=_text(m, "Channel"), uniqueid=_text(m, "Uniqueid"),
                    linkedid=_text(m, "Linkedid"), bridge_id=_text(m, "BridgeId"))
        for m in messages
        if _text(m, "Event") == "CoreShowChannel" and _text(m, "Linkedid") == linkedid
    ]


async def blind_transfer(ami: AmiActions, *, channel: str, context: str,
                         exten: str) -> AmiAnswer:
    """Send whoever is bridged with `channel` to `exten`@`context`; `channel` leaves."""
    return _answer(await ami.action({"Action": "BlindTransfer", "Channel": channel,
                                     "Context": context, "Exten": exten}, as_list=False))


async def attended_transfer(ami: AmiActions, *, channel: str, context: str,
                            exten: str) -> AmiAnswer:
    """Start an attended transfer from `channel` (as if its phone pressed the atxfer code and
    `exten`): the other party waits on hold while `channel` talks to the destination."""
    return _answer(await ami.action({"Action": "Atxfer", "Channel": channel,
                                     "Context": context, "Exten": exten}, as_list=False))
