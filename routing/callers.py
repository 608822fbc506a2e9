"""Caller identity as the hotline keeps it. Pure."""

from __future__ import annotations

import re

_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def display_name_from_sip(raw: str) -> str:
    """The caller's name as they sent it: SIP quoted-pairs (RFC 3261 §25.1) unescaped.

    Asterisk keeps a From display name as it appeared between the quotes, so
    `"O\\"Brien"` arrives as `O\\"Brien`; the person's name is `O"Brien`.
    """
    return _QUOTED_PAIR.sub(r"\1", raw)
