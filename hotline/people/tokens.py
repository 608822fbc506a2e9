"""API tokens: `h12355_<43 URL-safe characters>` (32 random bytes); only their SHA-256 is stored.

A SHA-256 is enough for a 256-bit random secret (no dictionary to guess from) and lets the
auth middleware find a token with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import re
import secrets

PREFIX = "h12355_"
_SHAPE = re.compile(r"h12355_[A-Za-z0-9_-]{43}")


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The SHA-256 (hex) stored in `api_tokens.token_hash`."""
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    """Whether `value` has the shape of one of our tokens (anything else needs no lookup)."""
    return _SHAPE.fullmatch(value) is not None
