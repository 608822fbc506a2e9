"""Caller identity as the hotline keeps it. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def display_name_from_sip(raw: str) -> str:
    """The caller's name as they sent it: SIP quoted-pairs (RFC 3261 §25.1) unescaped.

    Asterisk keeps a From display name as it appeared between the quotes, so
    `"O\\"Brien"` arrives as `O\\"Brien`; the person's name is `O"Brien`.
    """
    return _QUOTED_PAIR.sub(r"\1", raw)


class CallerKind(StrEnum):
    MOBILE = "mobile"
    LANDLINE = "landline"
    SERVICE = "service"          # short numbers: 110, 12355, 95xxx
    INTERNATIONAL = "international"
    WITHHELD = "withheld"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CallerNumber:
    """A caller number in one national form, so flags and callbacks match however the
    carrier presented it (+86 138…, 0086 138…, 86138…, 138-0000-0001)."""

    number: str          # "" when withheld
    kind: CallerKind

    @property
    def dialable(self) -> bool:
        return self.kind in (CallerKind.MOBILE, CallerKind.LANDLINE, CallerKind.INTERNATIONAL)


_WITHHELD = {"", "anonymous", "unknown", "unavailable", "restricted", "private", "withheld",
             "asterisk"}
_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
# Area codes: 010 and 02x (two digits after the 0), others three; subscriber 7–8 digits.
_LANDLINE = re.compile(r"^0(10|2[0-9]|[3-9][0-9]{2})[0-9]{7,8}$")
_SERVICE = re.compile(r"^(1[0-9]{2}|1[0-9]{4}|9[0-9]{4})$")
# E.164 after the "+": a country code (never 0) and the number, 7 to 15 digits in all.
_INTERNATIONAL = re.compile(r"^[1-9][0-9]{6,14}$")


def normalise_number(raw: str) -> CallerNumber:
    text = raw.strip()
    if text.lower() in _WITHHELD:
        return CallerNumber("", CallerKind.WITHHELD)
    international = text.startswith("+") or text.startswith("00")
    digits = re.sub(r"[^0-9]", "", text)
    if not digits:
        return CallerNumber("", CallerKind.UNKNOWN)
    if international:
        digits = digits[2:] if text.startswith("00") else digits
        if not digits.startswith("86"):
            if not _INTERNATIONAL.match(digits):
                return CallerNumber(digits, CallerKind.UNKNOWN)
            return CallerNumber("+" + digits, CallerKind.INTERNATIONAL)
        digits = digits[2:]
        # +86 drops the trunk 0 of landlines: +86 10 1234 5678 is 010 1234 5678.
        trunk = "0" + digits.lstrip("0")
        if not _MOBILE.match(digits) and _LANDLINE.match(trunk):
            digits = trunk
    elif digits.startswith("86") and _MOBILE.match(digits[2:]):
        digits = digits[2:]
    if _MOBILE.match(digits):
        return CallerNumber(digits, CallerKind.MOBILE)
    if _LANDLINE.match(digits):
        return CallerNumber(digits, CallerKind.LANDLINE)
    if _SERVICE.match(digits):
        return CallerNumber(digits, CallerKind.SERVICE)
    return CallerNumber(digits, CallerKind.UNKNOWN)
