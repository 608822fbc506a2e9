"""Queries for users and tokens. Plain functions on a session; the caller commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.db.models import ApiToken, AuditEntry, Role, User


@dataclass(frozen=True)
class TokenRow:
    """What the auth middleware needs of a token and its user (one query)."""

    token_id: int
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    user_id: int
    username: str
    role: Role
    active: bool


async def token_row(session: AsyncSession, digest: str) -> TokenRow | None:
    row = (await session.execute(
        select(ApiToken.id, ApiToken.expires_at, ApiToken.revoked_at, ApiToken.last_used_at,
               User.id, User.username, User.role, User.active)
        .join(User, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == digest)
    )).first()
    return None if row is None else TokenRow(*row)


async def touch_token(session: AsyncSession, token_id: int, at: datetime) -> None:
    await session.execute(update(ApiToken).where(ApiToken.id == token_id)
                          .values(last_used_at=at))


async def user_by_id(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def user_by_username(session: AsyncSession, username: str) -> User | None:
    return await session.scalar(select(User).where(User.username == username))


async def all_users(session: AsyncSession) -> Sequence[User]:
    return (await session.scalars(select(User).order_by(User.username))).all()


async def active_admin_ids(session: AsyncSession) -> list[int]:
    """Ids of the active admins, locked (PostgreSQL) until the transaction ends.

    Two admins demoting each other at once then queue up instead of both seeing the other.
    """
    return list((await session.scalars(
        select(User.id).where(User.role == Role.ADMIN, User.active.is_(True))
        .order_by(User.id).with_for_update()
    )).all())


async def tokens_of(session: AsyncSession, user_id: int) -> Sequence[ApiToken]:
    return (await session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )).all()


async def token_of(session: AsyncSession, user_id: int, token_id: int) -> ApiToken | None:
    return await session.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id))


async def revoke_tokens_of(session: AsyncSession, user_id: int, at: datetime) -> int:
    """Revoke every token of the user not revoked yet; how many were."""
    ids = (await session.scalars(
        select(ApiToken.id).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    )).all()
    if ids:
        await session.execute(update(ApiToken).where(ApiToken.id.in_(ids)).values(revoked_at=at))
    return len(ids)


async def recent_audit_times(session: AsyncSession, *, action: str, target: str,
                             since: datetime, limit: int) -> list[datetime]:
    """When `action` on `target` was audited after `since`, newest first, at most `limit`."""
    return list((await session.scalars(
        select(AuditEntry.at)
        .where(AuditEntry.action == action, AuditEntry.target == target, AuditEntry.at > since)
        .order_by(AuditEntry.at.desc()).limit(limit)
    )).all())
