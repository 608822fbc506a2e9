"""Transfers of a caller by a counsellor: the dial codes, the API body, and which channel
transfers. Pure: no database, no AMI, no Asterisk.

What a counsellor dials after the transfer feature code (features.conf: ``blindxfer=##``,
``atxfer=*2``) in the site's transfer context (``hotline-transfer-<site>``):

- ``7`` and the queue's menu digit: ``70`` duty, ``71`` psych, ``72`` legal, ``73`` crisis
  (the first queue of each kind of the site);
- a colleague's extension (``Counsellor.extension``, e.g. ``1002``);
- ``9`` and the code of one of the site's outside lines (``TransferTarget.code``: ``91`` the
  12345 government line in the demo). Only configured numbers: there is no free dialling.

Nothing else exists in the context, so Asterisk refuses any other code and the counsellor
stays with the caller.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

QUEUE_PREFIX = "7"
EXTERNAL_PREFIX = "9"
#: The queue kinds' digits, as in the default menu (0 a human, 1 psych, 2 legal, 3 crisis).
QUEUE_KIND_DIGITS: Mapping[str, str] = {"duty": "0", "psych": "1", "legal": "2", "crisis": "3"}
#: Where a site's transfer destinations live; TRANSFER_CONTEXT names it for the counsellor.
TRANSFER_CONTEXT_PREFIX = "hotline-transfer-"

Kind = Literal["queue", "counsellor", "external"]
Mode = Literal["blind", "attended"]

_DIGITS = re.compile(r"[0-9]{1,16}")


def transfer_context(site_code: str) -> str:
    return f"{TRANSFER_CONTEXT_PREFIX}{site_code}"


def queue_codes(queues: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Dial code → queue name for a site's queues given as (name, kind), in their order:
    the first queue of each kind gets the kind's code."""
    codes: dict[str, str] = {}
    for name, kind in queues:
        digit = QUEUE_KIND_DIGITS.get(kind)
        if digit is not None:
            codes.setdefault(QUEUE_PREFIX + digit, name)
    return codes


def external_code(code: str) -> str:
    """The dial code of an outside line: 9 and the line's code."""
    if not _DIGITS.fullmatch(code):
        raise ValueError(f"an outside line's code must be digits: {code!r}")
    return EXTERNAL_PREFIX + code


def is_extension(value: str) -> bool:
    """Whether a counsellor extension can be dialled: digits, not starting with the queue
    or outside-line prefix (7, 9)."""
    return bool(_DIGITS.fullmatch(value)) and value[0] not in (QUEUE_PREFIX, EXTERNAL_PREFIX)


@dataclass(frozen=True)
class Destination:
    """Where a dialled transfer code leads, as far as the code alone tells."""

    kind: Kind
    target: str  # the queue kind, the colleague's extension, or the outside line's code

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "target": self.target}


def describe(exten: str) -> Destination | None:
    """What a dialled code means (for the call journal); None for what is not a code."""
    if not _DIGITS.fullmatch(exten):
        return None
    if exten.startswith(QUEUE_PREFIX):
        kind = next((k for k, d in QUEUE_KIND_DIGITS.items() if QUEUE_PREFIX + d == exten),
                    None)
        return Destination("queue", kind) if kind else None
    if exten.startswith(EXTERNAL_PREFIX):
        return Destination("external", exten[1:]) if len(exten) > 1 else None
    return Destination("counsellor", exten)


def exten_of_local_channel(channel: str) -> str | None:
    """``Local/1001@hotline-transfer-default-0000002a;1`` → ``1001``."""
    if not channel.startswith("Local/") or "@" not in channel:
        return None
    return channel[len("Local/"):].split("@", 1)[0] or None


# -- the API body -----------------------------------------------------------------------

class TransferTo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind = Field(description="queue (by name: psych, legal, crisis, duty), counsellor "
                                   "(by extension: 1002) or external (an outside line's code "
                                   "from the site's transfer targets: 1)")
    target: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")

    @model_validator(mode="after")
    def _digits_for_numbers(self) -> TransferTo:
        if self.kind != "queue" and not _DIGITS.fullmatch(self.target):
            raise ValueError(f"a {self.kind} target is digits only (an extension or a code)")
        return self


class TransferIn(BaseModel):
    """POST /api/calls/{call_id}/transfer."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode = Field(description="blind: the caller goes straight to the destination; "
                                   "attended: the counsellor talks to the destination first "
                                   "and hangs up to hand the caller over (*1 returns)")
    to: TransferTo


class TransferOut(BaseModel):
    call_id: str
    mode: Mode
    to: TransferTo
    context: str = Field(description="the transfer context of the call's site")
    exten: str = Field(description="the dial code sent to Asterisk")
    channel: str = Field(description="the counsellor's channel that transfers")
    counsellor: str = Field(description="who transfers (their SIP username)")
    status: Literal["started"] = "started"


# -- which channel transfers -------------------------------------------------------------

@dataclass(frozen=True)
class CallChannel:
    """One live channel of a call, as Asterisk lists it (CoreShowChannels)."""

    name: str
    uniqueid: str
    linkedid: str
    bridge_id: str = ""


class NotTransferable(Exception):
    """The call cannot be transferred now; the message says why (HTTP 409)."""


def endpoint_of(channel: str) -> str | None:
    """``PJSIP/c1002-0000000a`` → ``c1002``; None for other technologies."""
    if not channel.startswith("PJSIP/"):
        return None
    name = channel[len("PJSIP/"):]
    endpoint, dash, _serial = name.rpartition("-")
    return endpoint if dash else None


def transferer(channels: Sequence[CallChannel], linkedid: str, counsellors: Collection[str],
               *, only: str | None = None) -> CallChannel:
    """The counsellor's channel bridged with the caller of call `linkedid`.

    `counsellors` are the SIP usernames of counsellors; `only` restricts to one of them (a
    counsellor may transfer only their own call). Raises NotTransferable.
    """
    caller = next((c for c in channels if c.uniqueid == linkedid), None)
    if caller is None:
        raise NotTransferable("the call is not live on Asterisk")
    if not caller.bridge_id:
        raise NotTransferable("the caller is not talking to anyone now (waiting, in the menu "
                              "or on hold)")
    bridged = [c for c in channels if c.linkedid == linkedid and c is not caller
               and c.bridge_id == caller.bridge_id and endpoint_of(c.name) in counsellors]
    if only is not None:
        bridged = [c for c in bridged if endpoint_of(c.name) == only]
        if not bridged:
            raise NotTransferable("you are not talking to this caller")
    if not bridged:
        raise NotTransferable("no counsellor is talking to this caller")
    return bridged[0]
