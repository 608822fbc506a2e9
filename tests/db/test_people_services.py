import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from hotline.db.engine import session_factory
from hotline.db.models import ApiToken, AuditEntry, Role, User
from hotline.people.passwords import Passwords
from hotline.people.services import (
    Conflict,
    InvalidCredentials,
    InvalidInput,
    LockedOut,
    NotFound,
    actor_for,
)
from tests.db.people_support import PASSWORD, ROOT, ManualClock, make_people


async def _audit(engine, action=None):
    async with session_factory(engine)() as session:
        statement = select(AuditEntry).order_by(AuditEntry.id)
        if action:
            statement = statement.where(AuditEntry.action == action)
        return list((await session.scalars(statement)).all())


async def test_create_and_sign_in(engine):
    clock = ManualClock()
    people = make_people(engine, clock)
    user = await people.create_user(ROOT, username="li.wei", role=Role.SUPERVISOR,
                                    password=PASSWORD, display_name=" 李伟 ")
    assert (user.username, user.role, user.display_name, user.active) == (
        "li.wei", Role.SUPERVISOR, "李伟", True)
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash

    clock.advance(minutes=1)
    signed_in = await people.login(" Li.Wei ", PASSWORD, token_name="laptop", remote="10.0.0.5")
    assert signed_in.user.id == user.id and signed_in.user.last_login_at == clock.at
    assert signed_in.issued.row.name == "laptop"
    assert signed_in.issued.row.expires_at == clock.at + timedelta(hours=12)
    authenticated = await people.authenticate(signed_in.issued.token)
    assert authenticated is not None
    assert authenticated.actor.username == "li.wei"
    assert authenticated.actor.role == "supervisor" and authenticated.actor.user_id == user.id

    created, login = await _audit(engine)
    assert (created.action, created.actor, created.target) == ("user.create", "test",
                                                               "user:li.wei")
    assert (login.action, login.actor, login.actor_user_id) == ("auth.login", "li.wei", user.id)
    assert login.after["remote"] == "10.0.0.5"


async def test_usernames_and_passwords_are_checked(engine):
    people = make_people(engine)
    await people.create_user(ROOT, username="admin", role=Role.ADMIN, password=PASSWORD)
    with pytest.raises(Conflict):
        await people.create_user(ROOT, username="admin", role=Role.ADMIN, password=PASSWORD)
    for username in ("A", "Admin2", "has space", "x" * 65, "名字"):
        with pytest.raises(InvalidInput):
            await people.create_user(ROOT, username=username, role=Role.ADMIN,
                                     password=PASSWORD)
    with pytest.raises(InvalidInput):
        await people.create_user(ROOT, username="shorty", role=Role.ADMIN, password="elevenchars")
    with pytest.raises(NotFound):
        await people.user_named("nobody")


async def test_unknown_user_wrong_password_and_inactive_fail_alike(engine):
    people = make_people(engine)
    user = await people.create_user(ROOT, username="wang", role=Role.COUNSELLOR,
                                    password=PASSWORD)
    await people.create_user(ROOT, username="admin", role=Role.ADMIN, password=PASSWORD)
    errors = []
    for username, password in (("nobody", PASSWORD), ("wang", "wrong password!!")):
        with pytest.raises(InvalidCredentials) as caught:
            await people.login(username, password)
        errors.append(str(caught.value))
    await people.update_user(ROOT, user.id, active=False)
    with pytest.raises(InvalidCredentials) as caught:
        await people.login("wang", PASSWORD)
    errors.append(str(caught.value))
    assert len(set(errors)) == 1
    failed = await _audit(engine, "auth.login_failed")
    assert [(e.target, e.after["reason"]) for e in failed] == [
        ("user:nobody", "unknown_user"), ("user:wang", "wrong_password"),
        ("user:wang", "inactive")]
    assert all(e.actor == "anonymous" and e.actor_user_id is None for e in failed)


async def test_five_failures_in_fifteen_minutes_lock_the_username_out(engine):
    clock = ManualClock()
    people = make_people(engine, clock)
    await people.create_user(ROOT, username="zhang", role=Role.ADMIN, password=PASSWORD)
    for _ in range(5):
        clock.advance(minutes=2)
        with pytest.raises(InvalidCredentials):
            await people.login("zhang", "not the password")
    clock.advance(minutes=1)
    with pytest.raises(LockedOut) as locked:
        await people.login("zhang", PASSWORD)  # even the right password
    # The oldest of the five leaves the window 15 minutes after it happened.
    assert locked.value.retry_after_seconds == 6 * 60
    clock.advance(minutes=6)
    signed_in = await people.login("zhang", PASSWORD)
    assert signed_in.user.username == "zhang"
    assert len(await _audit(engine, "auth.login_locked")) == 1

    # Unknown usernames lock out the same way: the answer tells nothing about who exists.
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            await people.login("ghost", "not the password")
    with pytest.raises(LockedOut):
        await people.login("ghost", "not the password")


async def test_a_successful_sign_in_clears_earlier_failures(engine):
    clock = ManualClock()
    people = make_people(engine, clock)
    await people.create_user(ROOT, username="zhao", role=Role.ADMIN, password=PASSWORD)
    for _ in range(4):
        clock.advance(seconds=10)
        with pytest.raises(InvalidCredentials):
            await people.login("zhao", "typo typo typo")
    clock.advance(seconds=10)
    await people.login("zhao", PASSWORD)
    for _ in range(4):
        clock.advance(seconds=10)
        with pytest.raises(InvalidCredentials):
            await people.login("zhao", "typo typo typo")
    clock.advance(seconds=10)
    await people.login("zhao", PASSWORD)


async def test_revoked_tokens_stop_working_within_the_cache_ttl(engine):
    clock = ManualClock()
    seconds = [0.0]
    # Two processes (or nodes) over one database: each caches resolved tokens.
    node_a = make_people(engine, clock, monotonic=seconds)
    node_b = make_people(engine, clock, monotonic=seconds)
    user = await node_a.create_user(ROOT, username="sup", role=Role.SUPERVISOR,
                                    password=PASSWORD)
    issued = await node_a.issue_token(ROOT, user.id, name="script")
    assert issued.row.expires_at is None
    assert await node_a.authenticate(issued.token) is not None
    assert await node_b.authenticate(issued.token) is not None

    revoked = await node_a.revoke_token(ROOT, user.id, issued.row.id)
    assert revoked.revoked_at == clock.at
    assert await node_a.authenticate(issued.token) is None  # this node forgot at once
    assert await node_b.authenticate(issued.token) is not None  # still cached elsewhere…
    seconds[0] += node_b.policy.cache_seconds
    assert await node_b.authenticate(issued.token) is None  # …for a few seconds only

    again = await node_a.revoke_token(ROOT, user.id, issued.row.id)
    assert again.revoked_at == revoked.revoked_at
    assert len(await _audit(engine, "token.revoke")) == 1
    with pytest.raises(NotFound):
        await node_a.revoke_token(ROOT, user.id, 9999)


async def test_tokens_expire_and_bad_tokens_are_refused(engine):
    clock = ManualClock()
    people = make_people(engine, clock)
    user = await people.create_user(ROOT, username="sup", role=Role.SUPERVISOR,
                                    password=PASSWORD)
    issued = await people.issue_token(ROOT, user.id, name="week", expires_in_days=1)
    assert await people.authenticate(issued.token) is not None
    clock.advance(days=1)
    assert await people.authenticate(issued.token) is None  # expired, even though cached
    for bad in ("", "h12355_nope", issued.token[:-1] + "A" if issued.token[-1] != "A" else "B"):
        assert await people.authenticate(bad) is None
    with pytest.raises(InvalidInput):
        await people.issue_token(ROOT, user.id, name=" ")


async def test_last_used_is_written_at_most_once_a_minute(engine):
    clock = ManualClock()
    seconds = [0.0]
    people = make_people(engine, clock, monotonic=seconds)
    user = await people.create_user(ROOT, username="sup", role=Role.SUPERVISOR,
                                    password=PASSWORD)
    issued = await people.issue_token(ROOT, user.id, name="script")

    async def last_used():
        async with session_factory(engine)() as session:
            return await session.scalar(select(ApiToken.last_used_at)
                                        .where(ApiToken.id == issued.row.id))

    await people.authenticate(issued.token)
    first = clock.at
    assert await last_used() == first
    clock.advance(seconds=30)
    seconds[0] += 30  # the cache entry is refetched: the database says a write is recent
    await people.authenticate(issued.token)
    assert await last_used() == first
    clock.advance(seconds=31)
    await people.authenticate(issued.token)
    assert await last_used() == clock.at


async def test_deactivating_a_user_revokes_their_tokens(engine):
    people = make_people(engine)
    await people.create_user(ROOT, username="admin", role=Role.ADMIN, password=PASSWORD)
    user = await people.create_user(ROOT, username="sup", role=Role.SUPERVISOR,
                                    password=PASSWORD)
    one = await people.issue_token(ROOT, user.id, name="one")
    two = await people.issue_token(ROOT, user.id, name="two")
    assert await people.authenticate(one.token) is not None
    await people.update_user(ROOT, user.id, active=False)
    assert await people.authenticate(one.token) is None
    assert await people.authenticate(two.token) is None
    assert all(t.revoked_at is not None for t in await people.list_tokens(user.id))
    (update,) = await _audit(engine, "user.update")
    assert update.before == {"active": True}
    assert update.after == {"active": False, "tokens_revoked": 2}
    with pytest.raises(Conflict):  # no new token for an inactive user
        await people.issue_token(ROOT, user.id, name="three")
    # Reactivated, they sign in again; the old tokens stay revoked.
    await people.update_user(ROOT, user.id, active=True)
    assert await people.authenticate(one.token) is None
    assert (await people.login("sup", PASSWORD)).user.active


async def test_the_last_active_admin_can_be_neither_demoted_nor_deactivated(engine):
    people = make_people(engine)
    first = await people.create_user(ROOT, username="first", role=Role.ADMIN,
                                     password=PASSWORD)
    with pytest.raises(Conflict):
        await people.update_user(ROOT, first.id, role=Role.SUPERVISOR)
    with pytest.raises(Conflict):
        await people.update_user(ROOT, first.id, active=False)
    second = await people.create_user(ROOT, username="second", role=Role.ADMIN,
                                      password=PASSWORD)
    await people.update_user(ROOT, first.id, role=Role.SUPERVISOR)
    with pytest.raises(Conflict):
        await people.update_user(ROOT, second.id, active=False)
    # An inactive admin does not count as the other admin.
    await people.update_user(ROOT, first.id, role=Role.ADMIN, active=False)
    with pytest.raises(Conflict):
        await people.update_user(ROOT, second.id, role=Role.COUNSELLOR)
    await people.update_user(ROOT, second.id, display_name="还是管理员")  # other changes pass
    async with session_factory(engine)() as session:
        roles = dict((await session.execute(select(User.username, User.role))).all())
    assert roles == {"first": Role.ADMIN, "second": Role.ADMIN}


async def test_a_password_change_and_an_upgraded_hash(engine):
    clock = ManualClock()
    people = make_people(engine, clock)
    user = await people.create_user(ROOT, username="sun", role=Role.ADMIN, password=PASSWORD)
    await people.update_user(ROOT, user.id, password="another long passphrase")
    with pytest.raises(InvalidCredentials):
        await people.login("sun", PASSWORD)
    clock.advance(minutes=1)
    # Stronger argon2 parameters: the next sign-in re-hashes the password.
    people.passwords = Passwords()
    await people.login("sun", "another long passphrase")
    async with session_factory(engine)() as session:
        stored = await session.scalar(select(User.password_hash).where(User.id == user.id))
    assert not Passwords().needs_rehash(stored)
    update = (await _audit(engine, "user.update"))[-1]
    assert update.before == {} and update.after == {"password_changed": True}


async def test_the_audit_log_holds_no_password_hash_or_token(engine):
    people = make_people(engine)
    user = await people.create_user(ROOT, username="admin", role=Role.ADMIN, password=PASSWORD)
    issued = await people.issue_token(ROOT, user.id, name="t")
    signed_in = await people.login("admin", PASSWORD)
    await people.update_user(ROOT, user.id, password="a brand new passphrase")
    with pytest.raises(InvalidCredentials):
        await people.login("admin", "wrong wrong wrong")
    await people.logout(actor_for(signed_in.user), signed_in.issued.row.id)
    async with session_factory(engine)() as session:
        hashes = (await session.scalars(select(User.password_hash))).all()
        token_hashes = (await session.scalars(select(ApiToken.token_hash))).all()
    text = json.dumps([(e.actor, e.action, e.target, e.before, e.after)
                       for e in await _audit(engine)], ensure_ascii=False)
    for secret in (PASSWORD, "a brand new passphrase", "wrong wrong wrong", issued.token,
                   signed_in.issued.token, *hashes, *token_hashes):
        assert secret not in text
    assert [e.action for e in await _audit(engine)] == [
        "user.create", "token.issue", "auth.login", "user.update", "auth.login_failed",
        "auth.logout"]
