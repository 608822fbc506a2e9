"""The audit log: who did what, when, with the before and after of the change.

Call `record_audit` inside the same session (and transaction) as the change it describes,
so a change and its trace are committed together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hotline.db.models import AuditEntry


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user, or a command-line / system actor (user_id None)."""

    username: str
    role: str
    user_id: int | None = None

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(username=name, role="system")


def record_audit(session: AsyncSession, *, actor: Actor, at: datetime, action: str,
                 target: str = "", before: dict[str, Any] | None = None,
                 after: dict[str, Any] | None = None) -> AuditEntry:
    entry = AuditEntry(at=at, actor=actor.username, actor_user_id=actor.user_id,
                       action=action, target=target, before=before, after=after)
    session.add(entry)
    return entry
