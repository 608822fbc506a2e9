"""Password hashing with argon2id (argon2-cffi): hash, verify, and when to re-hash.

Hashing costs tens of milliseconds of CPU on purpose; async callers run it in a thread
(see `services.People`) so a sign-in never stalls the event loop that answers calls.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_LENGTH = 12
# Bounds the work one request can ask of the hasher.
MAX_PASSWORD_LENGTH = 1024


def generate_password() -> str:
    """A strong password for a new account: 24 URL-safe characters (144 random bits)."""
    return secrets.token_urlsafe(18)


class Passwords:
    """argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile) unless told otherwise.

    Tests pass a cheap `PasswordHasher`; hashes made with other parameters still verify and
    report `needs_rehash`, so raising the cost later upgrades hashes at the next sign-in.
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches `password_hash`.

        With no hash (an unknown user) it verifies against a dummy hash all the same, so the
        answer takes as long as for a real user and the time does not tell who exists.
        """
        if password_hash is None:
            self._check(self.dummy_hash, password)
            return False
        return self._check(password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    @property
    def dummy_hash(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError, ValueError):
            return False
