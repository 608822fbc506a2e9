"""Rule versions on SQLite and PostgreSQL: drafts, publish, refusal, rollback, the calendar,
caller flags, and the routing table every FastAGI call reads."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.audit import Actor
from hotline.clock import Clock
from hotline.db.engine import create_engine_for, session_factory
from hotline.db.models import AuditEntry, FlagKind
from hotline.demo import seed_demo
from hotline.rules.published import RoutingTable
from hotline.rules.services import InvalidInput, RulesRefused, RulesService
from routing.callers import normalise_number
from routing.menu import MenuWalk, RouteKind, run_scripted

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)  # Monday 12:00 in Shanghai
ADMIN = Actor(username="alice", role="admin", user_id=None)


@pytest.fixture
async def wired(engine: AsyncEngine) -> Any:
    sessions = session_factory(engine)
    clock = Clock(fixed=NOW)
    async with sessions() as session:
        await seed_demo(session, site_code="default", now=NOW)
    table = RoutingTable(sessions=sessions, clock=clock, default_site="default",
                         crisis_priority=10)
    changes: list[str | None] = []

    async def changed(site: str | None) -> None:
        changes.append(site)
        await table.load()

    service = RulesService(sessions=sessions, clock=clock, crisis_priority=10, on_change=changed)
    return service, table, sessions, changes


async def _audit(sessions: Any, action: str) -> list[AuditEntry]:
    async with sessions() as session:
        return list((await session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )).all())


def _route(table: RoutingTable, digits: list[str | None], at: datetime = NOW) -> Any:
    site = table.site("default")
    walk = MenuWalk(rules=site.rules, at=at, calendar=table.state.calendar,
                    staffed=table.staffed("default", at))
    return run_scripted(walk, digits)


async def test_publish_takes_effect_on_the_next_walk_and_is_audited(wired: Any) -> None:
    service, table, sessions, changes = wired
    assert await service.seed_defaults("default", actor=Actor.system("demo")) is True
    assert await service.seed_defaults("default", actor=Actor.system("demo")) is False
    assert table.site("default").version == 1
    assert _route(table, ["2"]).queue == "legal"

    published, draft = await service.state("default")
    assert published is not None and draft is None
    document = dict(published.document)
    document["nodes"] = dict(document["nodes"])
    document["nodes"]["main"] = {**document["nodes"]["main"],
                                 "options": {"1": "psych", "2": "psych", "3": "crisis",
                                             "0": "human"}}
    view = await service.save_draft("default", document, actor=ADMIN)
    assert view.status == "draft" and view.version == 2 and view.problems == []
    # A draft is not served.
    assert _route(table, ["2"]).queue == "legal"

    await service.publish("default", actor=ADMIN, note="legal desk closed")
    assert changes[-1] == "default"
    assert table.site("default").version == 2
    assert _route(table, ["2"]).queue == "psych"

    publishes = await _audit(sessions, "rules.publish")
    assert publishes[-1].actor == "alice"
    assert publishes[-1].after is not None
    assert {"op": "replace", "path": "/nodes/main/options/2", "value": "psych"} in \
        publishes[-1].after["diff"]
    drafts = await _audit(sessions, "rules.draft")
    assert drafts[-1].actor == "alice"


async def test_a_bad_change_is_refused_and_the_previous_rules_keep_serving(wired: Any) -> None:
    service, table, _sessions, _changes = wired
    await service.seed_defaults("default", actor=Actor.system("demo"))
    published, _ = await service.state("default")
    document = dict(published.document)
    nodes = dict(document["nodes"])
    # The crisis option removed from the main menu, and a silent loop added.
    nodes["main"] = {**nodes["main"], "options": {"1": "psych", "2": "legal"}}
    nodes["loop-a"] = {"type": "play", "prompt": "hotline/welcome", "next": "loop-b"}
    nodes["loop-b"] = {"type": "play", "prompt": "hotline/welcome", "next": "loop-a"}
    document["nodes"] = nodes
    view = await service.save_draft("default", document, actor=ADMIN)
    assert any("loop without an exit" in p.reason for p in view.problems)

    with pytest.raises(RulesRefused) as refused:
        await service.publish("default", actor=ADMIN)
    assert {p.node for p in refused.value.problems} & {"loop-a", "loop-b"}
    assert table.site("default").version == 1

    del nodes["loop-a"], nodes["loop-b"]
    await service.save_draft("default", document, actor=ADMIN)
    with pytest.raises(RulesRefused) as refused:
        await service.publish("default", actor=ADMIN)
    assert any(p.node == "main" and "crisis" in p.reason for p in refused.value.problems)
    assert _route(table, ["3"]).kind == RouteKind.CRISIS

    # Malformed documents are refused with the place of the mistake.
    broken = dict(document)
    broken["hours"] = {"site": {"mon": [{"start": "25:00", "end": "02:00"}]}}
    with pytest.raises(RulesRefused) as refused:
        await service.save_draft("default", broken, actor=ADMIN)
    assert "hours.site.mon.0.start" in refused.value.problems[0].reason


async def test_rollback_publishes_a_copy_of_an_earlier_version(wired: Any) -> None:
    service, table, _sessions, _changes = wired
    await service.seed_defaults("default", actor=Actor.system("demo"))
    first, _ = await service.state("default")
    changed = dict(first.document)
    changed["off_hours"] = {"mode": "attendant", "entry": "night"}
    changed["hours"] = {"site": {"mon": [{"start": "00:00", "end": "24:00"}]}}
    await service.save_draft("default", changed, actor=ADMIN)
    await service.publish("default", actor=ADMIN)
    assert table.site("default").version == 2

    rolled = await service.rollback("default", to_version=1, actor=ADMIN)
    assert rolled.version == 3 and rolled.status == "published"
    assert rolled.document == first.document
    assert table.site("default").version == 3
    statuses = {v.version: v.status for v in await service.versions("default")}
    assert statuses == {1: "superseded", 2: "superseded", 3: "published"}


async def test_admin_entered_year_covers_the_calendar(wired: Any) -> None:
    service, table, _sessions, _changes = wired
    coverage = await service.calendar_coverage(days=60)
    assert 2026 in coverage["package_years"]
    assert coverage["uncovered_from"] == "2027-01-01"

    with pytest.raises(InvalidInput, match="not a Saturday or Sunday"):
        await service.put_calendar_year(2027, holidays=[(date(2027, 1, 1), "元旦")],
                                        workdays=[date(2027, 1, 4)], source="", actor=ADMIN)
    await service.put_calendar_year(
        2027, holidays=[(date(2027, 1, 1), "元旦"), (date(2027, 1, 2), "元旦")],
        workdays=[date(2027, 1, 9)], source="test notice", actor=ADMIN)
    coverage = await service.calendar_coverage(days=60)
    assert coverage["uncovered_days"] == 0 and 2027 in coverage["entered_years"]
    assert table.state.calendar.kind(date(2027, 1, 1)).value == "holiday"
    assert table.state.calendar.kind(date(2027, 1, 9)).value == "makeup_workday"


async def test_flagged_callers(wired: Any) -> None:
    service, table, _sessions, _changes = wired
    await service.seed_defaults("default", actor=Actor.system("demo"))
    flag = await service.add_flag(number="+86 138-0000-0009", kind=FlagKind.HIGH_RISK,
                                  reason="said goodbye", actor=ADMIN)
    assert flag.number == "13800000009"
    site = table.site("default")
    caller = table.caller(site, normalise_number("8613800000009"), NOW)
    assert caller.high_risk and not caller.abusive
    # Older than the site's window: no longer straight to crisis.
    later = NOW + timedelta(days=site.rules.callers.high_risk_days + 1)
    assert not table.caller(site, normalise_number("13800000009"), later).high_risk

    await service.revoke_flag(flag.id, actor=ADMIN)
    assert not table.caller(site, normalise_number("13800000009"), NOW).high_risk
    with pytest.raises(InvalidInput):
        await service.add_flag(number="anonymous", kind=FlagKind.ABUSIVE, reason="",
                               actor=ADMIN)


async def test_crisis_goes_to_oncall_when_nobody_is_on_duty(wired: Any) -> None:
    service, table, _sessions, _changes = wired
    await service.seed_defaults("default", actor=Actor.system("demo"))
    assert _route(table, ["3"]).kind == RouteKind.CRISIS
    # The demo shifts last seven days; after them nobody is on duty.
    later = NOW + timedelta(days=8)
    assert not table.staffed("default", later)("crisis")


async def test_database_down_keeps_the_loaded_rules_serving(wired: Any,
                                                            engine: AsyncEngine) -> None:
    service, table, _sessions, _changes = wired
    await service.seed_defaults("default", actor=Actor.system("demo"))
    document = dict((await service.state("default"))[0].document)
    document["nodes"] = {**document["nodes"], "legal": {"type": "queue", "queue": "psych"}}
    await service.save_draft("default", document, actor=ADMIN)
    await service.publish("default", actor=ADMIN)
    assert table.site("default").version == 2

    await engine.dispose()
    broken = RoutingTable(sessions=session_factory(create_engine_for(
        "postgresql://nobody@127.0.0.1:9/none")), clock=Clock(fixed=NOW),
        default_site="default", crisis_priority=10)
    # Nothing could be read at start: the built-in default rules route every caller.
    await broken.reload_quietly()
    assert broken.last_error is not None
    assert broken.site("default").version == 0
    assert _route(broken, ["3"]).kind == RouteKind.CRISIS
    assert _route(broken, []).queue == "psych"

    # Loaded rules survive a failed reload.
    table._sessions = broken._sessions  # the database goes away under a running node
    await table.reload_quietly()
    assert table.last_error is not None
    assert table.site("default").version == 2
    assert _route(table, ["2"]).queue == "psych"


async def test_redis_down_only_delays_the_other_nodes(wired: Any) -> None:
    from hotline.rules.bus import RulesBus

    _service, table, _sessions, _changes = wired
    reloads: list[int] = []

    async def reload() -> None:
        reloads.append(1)
        await table.load()

    bus = RulesBus(url="redis://127.0.0.1:9/0", prefix="test:", node="n1", timeout=0.2,
                   on_change=reload, refresh_seconds=0.2, retry_seconds=0.1)
    await bus.start()
    try:
        await bus.announce("default")  # logged, not raised
        for _ in range(50):
            if len(reloads) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await bus.close()
    assert len(reloads) >= 2  # the refresh timer kept reloading without Redis
