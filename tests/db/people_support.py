"""Helpers for the people tests: a clock tests move by hand, cheap argon2, a People service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.audit import Actor
from hotline.clock import Clock
from hotline.db.engine import session_factory
from hotline.db.models import Role
from hotline.people.passwords import Passwords
from hotline.people.services import People, Policy, TokenCache

T0 = datetime(2026, 12, 1, 1, 2, 3, tzinfo=UTC)
ROOT = Actor.system("test")
PASSWORD = "correct horse battery staple"


class ManualClock(Clock):
    def __init__(self, at: datetime = T0) -> None:
        super().__init__()
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def cheap_passwords() -> Passwords:
    return Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def make_people(engine: AsyncEngine, clock: Clock | None = None,
                monotonic: list[float] | None = None, **policy: object) -> People:
    people = People(sessions=session_factory(engine), clock=clock or ManualClock(),
                    passwords=cheap_passwords(), policy=Policy(**policy))  # type: ignore[arg-type]
    if monotonic is not None:  # the token cache's own time, moved by the test
        people.cache = TokenCache(ttl=people.policy.cache_seconds, size=people.policy.cache_size,
                                  monotonic=lambda: monotonic[0])
    return people


async def token_per_role(people: People) -> dict[Role, str]:
    """A user of every role (u_<role>, PASSWORD) and an API token for each."""
    tokens = {}
    for role in Role:
        user = await people.create_user(ROOT, username=f"u_{role.value}", role=role,
                                        password=PASSWORD)
        tokens[role] = (await people.issue_token(ROOT, user.id, name="test")).token
    return tokens
