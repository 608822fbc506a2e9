"""People: users, passwords, API tokens, sign-in with lock-out; every change audited.

One `People` per application (or CLI command). Each method is one unit of work: it opens
its own session, writes the change with its audit entry, and commits both together.
Audit entries never hold a password, a password hash or a token.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotline.audit import Actor, record_audit
from hotline.clock import Clock
from hotline.db.models import ApiToken, Role, User
from hotline.people import storage
from hotline.people.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, Passwords
from hotline.people.tokens import looks_like_token, new_token, token_digest

log = structlog.get_logger(__name__)

USERNAME_PATTERN = r"[a-z0-9_.-]{2,64}"
LANGUAGE_PATTERN = r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?"
LOGIN_FAILED = "auth.login_failed"


@dataclass(frozen=True)
class Policy:
    # Lock-out: this many failed sign-ins for one username within the window.
    max_failures: int = 5
    lockout_window: timedelta = timedelta(minutes=15)
    # Tokens from POST /api/auth/login expire; tokens an admin issues expire when asked.
    login_token_ttl: timedelta = timedelta(hours=12)
    # How long a resolved token is trusted without asking the database again: revoking a
    # token or deactivating a user takes effect everywhere within this time.
    cache_seconds: float = 5.0
    cache_size: int = 10_000
    touch_interval: timedelta = timedelta(minutes=1)
    # argon2 runs this many hashes at once at most; more sign-ins wait their turn.
    concurrent_hashes: int = 2


class PeopleError(Exception):
    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidInput(PeopleError):
    pass


class NotFound(PeopleError):
    pass


class Conflict(PeopleError):
    pass


class InvalidCredentials(PeopleError):
    def __init__(self) -> None:
        # One message for an unknown user, a wrong password and an inactive account.
        super().__init__("invalid username or password")


class LockedOut(PeopleError):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__("too many failed sign-ins; try again later",
                         {"retry_after_seconds": retry_after_seconds})
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class Authenticated:
    actor: Actor
    token_id: int


@dataclass(frozen=True)
class IssuedToken:
    token: str  # the secret: shown once, stored only as its SHA-256
    row: ApiToken


@dataclass(frozen=True)
class SignedIn:
    issued: IssuedToken
    user: User


def check_username(username: str) -> None:
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise InvalidInput("a username is 2 to 64 characters of a-z 0-9 _ . -",
                           {"username": username})


def check_language(language: str) -> None:
    if not re.fullmatch(LANGUAGE_PATTERN, language):
        raise InvalidInput("a language is a tag such as zh or zh-CN", {"language": language})


def check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} "
                           "characters")


def actor_for(user: User) -> Actor:
    return Actor(username=user.username, role=user.role.value, user_id=user.id)


def _public(user: User) -> dict[str, Any]:
    """A user as the audit log shows them: never the password hash."""
    return {"id": user.id, "username": user.username, "display_name": user.display_name,
            "role": user.role.value, "language": user.language, "active": user.active}


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


@dataclass
class _Cached:
    authenticated: Authenticated
    user_id: int
    expires_at: datetime | None
    last_used_at: datetime | None
    fetched_at: float


class TokenCache:
    """Resolved tokens, trusted for `ttl` seconds; bounded in size. Keys are SHA-256 digests."""

    def __init__(self, *, ttl: float, size: int,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self._monotonic = monotonic
        self._entries: dict[str, _Cached] = {}

    def get(self, digest: str) -> _Cached | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if self._monotonic() - entry.fetched_at >= self.ttl:
            del self._entries[digest]
            return None
        return entry

    def put(self, digest: str, entry: _Cached) -> None:
        if len(self._entries) >= self.size:
            now = self._monotonic()
            self._entries = {k: e for k, e in self._entries.items()
                             if now - e.fetched_at < self.ttl}
            while len(self._entries) >= self.size:
                del self._entries[next(iter(self._entries))]
        self._entries[digest] = entry

    def now(self) -> float:
        return self._monotonic()

    def forget_token(self, token_id: int) -> None:
        self._forget(lambda entry: entry.authenticated.token_id == token_id)

    def forget_user(self, user_id: int) -> None:
        self._forget(lambda entry: entry.user_id == user_id)

    def _forget(self, match: Callable[[_Cached], bool]) -> None:
        for digest in [k for k, entry in self._entries.items() if match(entry)]:
            del self._entries[digest]

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class People:
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    passwords: Passwords = field(default_factory=Passwords)
    policy: Policy = field(default_factory=Policy)
    cache: TokenCache = field(init=False)
    _hashing: asyncio.Semaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.cache = TokenCache(ttl=self.policy.cache_seconds, size=self.policy.cache_size)
        self._hashing = asyncio.Semaphore(self.policy.concurrent_hashes)

    # -- tokens on every request -----------------------------------------------------------

    async def authenticate(self, token: str) -> Authenticated | None:
        """The actor a bearer token stands for, or None (unknown, revoked, expired, inactive)."""
        if not looks_like_token(token):
            return None
        digest = token_digest(token)
        now = self.clock.now()
        entry = self.cache.get(digest)
        if entry is None:
            async with self.sessions() as session:
                row = await storage.token_row(session, digest)
            if row is None or row.revoked_at is not None or not row.active:
                return None
            entry = _Cached(
                authenticated=Authenticated(
                    actor=Actor(username=row.username, role=row.role.value, user_id=row.user_id),
                    token_id=row.token_id),
                user_id=row.user_id, expires_at=row.expires_at, last_used_at=row.last_used_at,
                fetched_at=self.cache.now())
            self.cache.put(digest, entry)
        if entry.expires_at is not None and entry.expires_at <= now:
            return None
        if entry.last_used_at is None or now - entry.last_used_at >= self.policy.touch_interval:
            entry.last_used_at = now  # before the write: concurrent requests write once
            await self._touch(entry.authenticated.token_id, now)
        return entry.authenticated

    async def _touch(self, token_id: int, now: datetime) -> None:
        try:
            async with self.sessions() as session:
                await storage.touch_token(session, token_id, now)
                await session.commit()
        except SQLAlchemyError as error:
            # Bookkeeping only: a busy database must not refuse an authenticated request.
            log.warning("token last_used_at not written", token_id=token_id, error=repr(error))

    # -- signing in and out ----------------------------------------------------------------

    async def login(self, username: str, password: str, *, token_name: str | None = None,
                    remote: str | None = None) -> SignedIn:
        username = username.strip().lower()
        target = f"user:{username}"
        anonymous = Actor(username="anonymous", role="anonymous")
        now = self.clock.now()
        async with self.sessions() as session:
            user = await storage.user_by_username(session, username)
            since = now - self.policy.lockout_window
            if user is not None and user.last_login_at is not None and user.last_login_at > since:
                since = user.last_login_at  # a successful sign-in clears earlier failures
            failures = await storage.recent_audit_times(
                session, action=LOGIN_FAILED, target=target, since=since,
                limit=self.policy.max_failures)
        if len(failures) >= self.policy.max_failures:
            unlock = failures[-1] + self.policy.lockout_window
            await self._audit(actor=anonymous, at=now, action="auth.login_locked",
                              target=target, after={"remote": remote})
            raise LockedOut(max(1, math.ceil((unlock - now).total_seconds())))
        # No database connection is held while argon2 works (or waits for its turn).
        ok = await self._verify(None if user is None else user.password_hash, password)
        if user is None or not ok or not user.active:
            reason = ("unknown_user" if user is None else
                      "wrong_password" if not ok else "inactive")
            await self._audit(actor=anonymous, at=now, action=LOGIN_FAILED, target=target,
                              after={"reason": reason, "remote": remote})
            raise InvalidCredentials()
        rehash = (await self._hash(password)
                  if self.passwords.needs_rehash(user.password_hash) else None)
        async with self.sessions() as session:
            user = await self._user(session, user.id)
            if rehash is not None:
                user.password_hash = rehash
            user.last_login_at = now
            issued = self._new_token(user, name=token_name or "login", now=now,
                                     expires_at=now + self.policy.login_token_ttl)
            session.add(issued.row)
            await session.flush()
            record_audit(session, actor=actor_for(user), at=now, action="auth.login",
                         target=target, after={"token_id": issued.row.id,
                                               "token_name": issued.row.name,
                                               "expires_at": _iso(issued.row.expires_at),
                                               "remote": remote})
            await session.commit()
        return SignedIn(issued=issued, user=user)

    async def logout(self, actor: Actor, token_id: int) -> None:
        now = self.clock.now()
        async with self.sessions() as session:
            row = await session.get(ApiToken, token_id)
            if row is not None and row.revoked_at is None:
                row.revoked_at = now
                record_audit(session, actor=actor, at=now, action="auth.logout",
                             target=f"token:{token_id}", after={"revoked_at": _iso(now)})
                await session.commit()
        self.cache.forget_token(token_id)

    # -- users -----------------------------------------------------------------------------

    async def list_users(self) -> list[User]:
        async with self.sessions() as session:
            return list(await storage.all_users(session))

    async def get_user(self, user_id: int) -> User:
        async with self.sessions() as session:
            return await self._user(session, user_id)

    async def user_named(self, username: str) -> User:
        async with self.sessions() as session:
            user = await storage.user_by_username(session, username)
        if user is None:
            raise NotFound("no such user", {"username": username})
        return user

    async def create_user(self, actor: Actor, *, username: str, role: Role, password: str,
                          display_name: str = "", language: str = "zh") -> User:
        check_username(username)
        check_password(password)
        check_language(language)
        password_hash = await self._hash(password)
        now = self.clock.now()
        async with self.sessions() as session:
            if await storage.user_by_username(session, username) is not None:
                raise Conflict("this username is taken", {"username": username})
            user = User(username=username, display_name=display_name.strip(), role=Role(role),
                        password_hash=password_hash, language=language, active=True,
                        created_at=now)
            session.add(user)
            try:
                await session.flush()
                record_audit(session, actor=actor, at=now, action="user.create",
                             target=f"user:{username}", after=_public(user))
                await session.commit()
            except IntegrityError as error:  # created by someone else in the meantime
                raise Conflict("this username is taken", {"username": username}) from error
        return user

    async def update_user(self, actor: Actor, user_id: int, *, display_name: str | None = None,
                          role: Role | None = None, active: bool | None = None,
                          password: str | None = None, language: str | None = None) -> User:
        """Change what is given (None leaves a field alone). Deactivating revokes every token;
        the last active admin can be neither deactivated nor demoted."""
        if password is not None:
            check_password(password)
        if language is not None:
            check_language(language)
        password_hash = None if password is None else await self._hash(password)
        now = self.clock.now()
        async with self.sessions() as session:
            user = await self._user(session, user_id)
            was = _public(user)
            stays_admin = ((role is None or role == Role.ADMIN)
                           and (active is None or active))
            if user.role == Role.ADMIN and user.active and not stays_admin:
                others = [i for i in await storage.active_admin_ids(session) if i != user.id]
                if not others:
                    raise Conflict("the last active admin can be neither deactivated nor "
                                   "demoted; make another admin first", {"user_id": user.id})
            if display_name is not None:
                user.display_name = display_name.strip()
            if role is not None:
                user.role = Role(role)
            if active is not None:
                user.active = active
            if language is not None:
                user.language = language
            if password_hash is not None:
                user.password_hash = password_hash
            now_is = _public(user)
            before = {k: v for k, v in was.items() if now_is[k] != v}
            after = {k: now_is[k] for k in before}
            if password_hash is not None:
                after["password_changed"] = True
            if was["active"] and not user.active:
                after["tokens_revoked"] = await storage.revoke_tokens_of(session, user.id, now)
            if after:
                record_audit(session, actor=actor, at=now, action="user.update",
                             target=f"user:{user.username}", before=before, after=after)
                await session.commit()
        self.cache.forget_user(user_id)
        return user

    # -- tokens an admin (or the CLI) issues -----------------------------------------------

    async def issue_token(self, actor: Actor, user_id: int, *, name: str,
                          expires_in_days: int | None = None) -> IssuedToken:
        name = name.strip()
        if not 1 <= len(name) <= 100:
            raise InvalidInput("a token name has 1 to 100 characters")
        if expires_in_days is not None and expires_in_days < 1:
            raise InvalidInput("expires_in_days is at least 1")
        now = self.clock.now()
        async with self.sessions() as session:
            user = await self._user(session, user_id)
            if not user.active:
                raise Conflict("this user is inactive", {"user_id": user_id})
            expires_at = None if expires_in_days is None else now + timedelta(days=expires_in_days)
            issued = self._new_token(user, name=name, now=now, expires_at=expires_at)
            session.add(issued.row)
            await session.flush()
            record_audit(session, actor=actor, at=now, action="token.issue",
                         target=f"token:{issued.row.id}",
                         after={"user": user.username, "name": name,
                                "expires_at": _iso(expires_at)})
            await session.commit()
        return issued

    async def list_tokens(self, user_id: int) -> list[ApiToken]:
        async with self.sessions() as session:
            await self._user(session, user_id)
            return list(await storage.tokens_of(session, user_id))

    async def revoke_token(self, actor: Actor, user_id: int, token_id: int) -> ApiToken:
        """Revoke one token of the user; revoking it again changes nothing."""
        now = self.clock.now()
        async with self.sessions() as session:
            user = await self._user(session, user_id)
            row = await storage.token_of(session, user_id, token_id)
            if row is None:
                raise NotFound("no such token", {"user_id": user_id, "token_id": token_id})
            if row.revoked_at is None:
                row.revoked_at = now
                record_audit(session, actor=actor, at=now, action="token.revoke",
                             target=f"token:{token_id}",
                             before={"user": user.username, "name": row.name, "revoked_at": None},
                             after={"user": user.username, "name": row.name,
                                    "revoked_at": _iso(now)})
                await session.commit()
        self.cache.forget_token(token_id)
        return row

    # -- helpers ---------------------------------------------------------------------------

    async def _audit(self, **entry: Any) -> None:
        async with self.sessions() as session:
            record_audit(session, **entry)
            await session.commit()

    @staticmethod
    async def _user(session: AsyncSession, user_id: int) -> User:
        user = await storage.user_by_id(session, user_id)
        if user is None:
            raise NotFound("no such user", {"user_id": user_id})
        return user

    @staticmethod
    def _new_token(user: User, *, name: str, now: datetime,
                   expires_at: datetime | None) -> IssuedToken:
        token = new_token()
        return IssuedToken(token=token, row=ApiToken(
            user_id=user.id, name=name, token_hash=token_digest(token), created_at=now,
            expires_at=expires_at))

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(self.passwords.hash, password)

    async def _verify(self, password_hash: str | None, password: str) -> bool:
        async with self._hashing:
            return await asyncio.to_thread(self.passwords.verify, password_hash, password)
