"""Staffing on SQLite and PostgreSQL: the roster from templates, overrides and presence;
log in / out / pause with audit; who may act on whom."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hotline.audit import Actor
from hotline.clock import Clock
from hotline.db.engine import session_factory
from hotline.db.models import AuditEntry, Call, Counsellor, Role, Shift, User
from hotline.demo import seed_demo
from hotline.staffing.roster import Roster
from hotline.staffing.services import Conflict, Forbidden, InvalidInput, NotFound, Staffing

# Monday 2026-11-30 10:00 in Shanghai.
NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
ADMIN = Actor("admin", "admin", 1)


async def _setup(engine, now=NOW):
    sessions = session_factory(engine)
    async with sessions() as session:
        await seed_demo(session, site_code="default", now=now)
    clock = Clock(fixed=now)
    roster = Roster(sessions=sessions, clock=clock)
    changes: list[int] = []

    async def changed() -> None:
        changes.append(1)
        await roster.load()

    staffing = Staffing(sessions=sessions, clock=clock, roster=roster, on_change=changed)
    await roster.load()
    ids = {c.sip_username: c.id for c in roster.state.counsellors.values()}
    return sessions, roster, staffing, ids, changes


def _members(roster, queue, now=NOW, registered=lambda _i: True):
    return roster.desired(now, registered)[queue]


async def test_demo_counsellors_are_members_with_tier_penalties(engine):
    _s, roster, _staffing, _ids, _c = await _setup(engine)
    crisis = _members(roster, "crisis")
    assert {i: m.penalty for i, m in crisis.items()} == {
        "PJSIP/c1001": 0, "PJSIP/c1002": 5, "PJSIP/c1003": 5}
    assert roster.counsellor_for_interface("PJSIP/c1002")[1] == "李老师"
    assert roster.on_duty_queues("default", NOW) == {"crisis", "psych", "legal", "duty"}


async def test_log_out_lasts_until_the_end_of_the_shift_and_is_audited(engine):
    sessions, roster, staffing, ids, changes = await _setup(engine)
    view = await staffing.log_out(ADMIN, ids["c1002"])
    assert view.presence == "logged_out" and view.presence_until is not None
    assert "PJSIP/c1002" not in _members(roster, "psych")
    assert changes
    await staffing.log_in(ADMIN, ids["c1002"])
    assert "PJSIP/c1002" in _members(roster, "psych")
    async with sessions() as session:
        actions = (await session.scalars(select(AuditEntry.action).where(
            AuditEntry.target == f"counsellor:{ids['c1002']}").order_by(AuditEntry.id))).all()
    assert actions == ["presence.logout", "presence.login"]


async def test_a_pause_keeps_membership_but_pauses_with_the_reason(engine):
    _s, roster, staffing, ids, _c = await _setup(engine)
    await staffing.pause(ADMIN, ids["c1003"], "break")
    member = _members(roster, "psych")["PJSIP/c1003"]
    assert member.paused and member.reason == "break"
    await staffing.unpause(ADMIN, ids["c1003"])
    assert not _members(roster, "psych")["PJSIP/c1003"].paused
    with pytest.raises(InvalidInput):
        await staffing.pause(ADMIN, ids["c1003"], "lunch")


async def test_a_counsellor_acts_only_on_themselves(engine):
    sessions, roster, staffing, ids, _c = await _setup(engine)
    async with sessions() as session:
        user = User(username="li", role=Role.COUNSELLOR, password_hash="-", created_at=NOW)
        session.add(user)
        await session.flush()
        counsellor = await session.get(Counsellor, ids["c1002"])
        counsellor.user_id = user.id
        await session.commit()
        user_id = user.id
    await roster.load()
    me = Actor("li", "counsellor", user_id)
    await staffing.pause(me, ids["c1002"], "break")
    with pytest.raises(Forbidden):
        await staffing.pause(me, ids["c1003"], "break")
    with pytest.raises(NotFound):
        await staffing.log_in(ADMIN, 9999)
    # Their own phone is them too (SIP digest auth).
    await staffing.unpause(Actor("phone:c1002", "counsellor"), ids["c1002"])
    with pytest.raises(Forbidden):
        await staffing.unpause(Actor("phone:c1003", "counsellor"), ids["c1002"])


async def test_the_debrief_pause_ends_by_itself_and_counts_towards_the_cap(engine):
    sessions, roster, staffing, ids, _c = await _setup(engine)
    view = await staffing.start_debrief(ids["c1001"], "crisis")
    assert view is not None and view.pause_reason == "debrief"
    assert _members(roster, "crisis")["PJSIP/c1001"].reason == "debrief"
    later = NOW + timedelta(seconds=301)
    assert not _members(roster, "crisis", now=later)["PJSIP/c1001"].paused
    await staffing.update_site_settings(ADMIN, "default", {"crisis_cap_per_shift": 1})
    async with sessions() as session:
        session.add(Call(id="x1", node="n", linkedid="l1", started_at=NOW, queue="crisis",
                         answered_at=NOW, answered_by_counsellor_id=ids["c1002"]))
        await session.commit()
    await roster.load()
    assert _members(roster, "crisis")["PJSIP/c1002"].reason == "crisis_cap"
    assert not _members(roster, "psych")["PJSIP/c1002"].paused


async def test_templates_and_off_overrides_shape_the_roster(engine):
    sessions, roster, staffing, ids, _c = await _setup(engine)
    async with sessions() as session:
        for shift in (await session.scalars(select(Shift))).all():
            await session.delete(shift)
        await session.commit()
    # Monday 10:00 Shanghai: a template 08:00–11:00 on Mondays covers it.
    await staffing.add_template(ADMIN, counsellor_id=ids["c1003"], weekday=0, start="08:00",
                                minutes=180)
    await roster.load()
    assert set(_members(roster, "psych")) == {"PJSIP/c1003"}
    await staffing.add_override(ADMIN, counsellor_id=ids["c1003"], starts_at=NOW,
                                ends_at=NOW + timedelta(hours=1), kind="off", note="sick")
    assert _members(roster, "psych") == {}
    windows = await roster.windows_between(NOW - timedelta(days=1), NOW + timedelta(days=7))
    assert len([w for w in windows if w.counsellor_id == ids["c1003"]]) == 2  # this week, next
    with pytest.raises(InvalidInput):
        await staffing.add_template(ADMIN, counsellor_id=ids["c1003"], weekday=0, start="25:00",
                                    minutes=60)
    with pytest.raises(InvalidInput):
        await staffing.add_override(ADMIN, counsellor_id=ids["c1003"], starts_at=NOW,
                                    ends_at=NOW - timedelta(hours=1))


async def test_counsellors_are_created_with_a_strong_secret_and_updated_with_audit(engine):
    sessions, roster, staffing, ids, _c = await _setup(engine)
    _row, secret = await staffing.create_counsellor(
        ADMIN, site="default", sip_username="c2001", name="赵老师", tier="high_risk",
        seat="cloud", skills=["psych"], extension="2001")
    assert len(secret) >= 32 and secret.isalnum()
    assert roster.counsellor("PJSIP/c2001") is not None
    assert "PJSIP/c2001" not in _members(roster, "crisis")
    with pytest.raises(Conflict):
        await staffing.create_counsellor(ADMIN, site="default", sip_username="c2001",
                                         name="重复", tier="consultation")
    with pytest.raises(NotFound):
        await staffing.create_counsellor(ADMIN, site="nowhere", sip_username="c2002",
                                         name="x", tier="consultation")
    # Tier changes apply to the queues at once: 李老师 becomes a specialist.
    await staffing.update_counsellor(ADMIN, ids["c1002"], {"tier": "high_risk"})
    assert _members(roster, "crisis")["PJSIP/c1002"].penalty == 0
    await staffing.update_counsellor(ADMIN, ids["c1002"], {"active": False})
    assert "PJSIP/c1002" not in _members(roster, "crisis")
    async with sessions() as session:
        entries = (await session.scalars(select(AuditEntry).where(
            AuditEntry.action.in_(["counsellor.create", "counsellor.update"])))).all()
    assert len(entries) == 3
    assert all("sip_secret" not in (e.after or {}) for e in entries)
