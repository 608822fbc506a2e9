"""Incidents on SQLite and PostgreSQL: one incident per call however many signals, one crisis
alert per incident, the timeline in order, an acknowledgement starts the intervention, the
deadline watchdog warns and escalates once each as the clock moves, callbacks past their
reply deadline alert once, the crisis option written by the call journal opens an incident,
a voicemail keyword opens one (one alert), and the statistics count met and missed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from crisis.call_signals import CrisisCalls
from crisis.deadline_watchdog import DeadlineWatchdog
from crisis.incidents import IncidentClosed, IncidentNotFound, Incidents
from hotline.alerts.services import Alerts, AlertView
from hotline.audit import Actor
from hotline.calls.storage import CallJournal
from hotline.db.engine import session_factory
from hotline.db.models import Alert, AuditEntry, CallbackState, CallbackTask, Incident, Site
from hotline.stats.services import AnswerRates
from routing.deadlines import DeadlinePolicy
from tests.db.people_support import ManualClock

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 03:00 in Shanghai: a night call.
T0 = datetime(2026, 11, 30, 19, 0, tzinfo=UTC)
DUTY = Actor(username="duty1", role="duty_officer", user_id=None)


class Recorded:
    def __init__(self) -> None:
        self.alerts: list[AlertView] = []

    async def notify(self, alert: AlertView) -> None:
        self.alerts.append(alert)


@dataclass
class Crisis:
    engine: AsyncEngine
    clock: ManualClock
    alerts: Alerts
    notified: Recorded
    incidents: Incidents
    watchdog: DeadlineWatchdog

    async def rows(self, model: type, *where: object) -> list:
        async with session_factory(self.engine)() as session:
            return list((await session.scalars(select(model).where(*where)
                                               .order_by(model.id))).all())


@pytest.fixture
async def crisis(engine: AsyncEngine) -> AsyncIterator[Crisis]:
    sessions = session_factory(engine)
    clock = ManualClock(T0)
    notified = Recorded()
    alerts = Alerts(sessions=sessions, clock=clock, notifiers=[notified])
    incidents = Incidents(sessions=sessions, clock=clock, alerts=alerts,
                          policy=DeadlinePolicy())
    watchdog = DeadlineWatchdog(sessions=sessions, clock=clock, alerts=alerts,
                                incidents=incidents)
    yield Crisis(engine, clock, alerts, notified, incidents, watchdog)


async def call_signal(crisis: Crisis, source: str = "crisis_option", **extra: object):
    values: dict = dict(source=source, site="default", summary="来电者选择了危机选项",
                        linkedid="1764500000.7", call_id="pbx1-1764500000.7",
                        caller_number="13912345678", caller_name="小王",
                        call_started_at=T0 - timedelta(minutes=1))
    values.update(extra)
    return await crisis.incidents.signal(**values)


async def test_one_incident_per_call_with_one_crisis_alert_and_the_timeline_in_order(
        crisis: Crisis) -> None:
    first = await call_signal(crisis)
    assert first.state == "open" and first.source == "crisis_option"
    assert first.deadline_at == T0 + timedelta(minutes=30) and first.deadline_state == "ok"
    assert (first.caller_number, first.caller_name) == ("13912345678", "小王")
    crisis.clock.advance(minutes=2)
    second = await call_signal(crisis, "keyword", summary="通话中识别到关键词：自杀",
                               caller_name=None, details={"term": "自杀"})
    crisis.clock.advance(minutes=1)
    third = await call_signal(crisis, "marked_high_risk", summary="咨询员标记为高危",
                              actor="c1001")
    assert first.id == second.id == third.id
    assert len(await crisis.rows(Incident)) == 1
    [alert] = crisis.notified.alerts
    assert (alert.key, alert.kind, alert.severity, alert.incident_id) == (
        f"incident:{first.id}", "crisis", "critical", first.id)
    assert "13912345678" in alert.summary and alert.details["incident_id"] == first.id
    assert len(await crisis.rows(Alert)) == 1
    detail = await crisis.incidents.get(first.id)
    assert [e.kind for e in detail.timeline or []] == [
        "signal.crisis_option", "alert.raised", "signal.keyword", "signal.marked_high_risk"]
    assert detail.timeline[2].details == {"term": "自杀"}
    assert detail.timeline[3].actor == "c1001"
    assert [a.id for a in detail.alerts or []] == [alert.id]
    # The first signal's instant holds the deadline; later ones do not move it.
    assert detail.deadline_at == T0 + timedelta(minutes=30)


async def test_another_call_a_message_or_a_closed_incident_opens_a_new_one(
        crisis: Crisis) -> None:
    first = await call_signal(crisis)
    other = await call_signal(crisis, linkedid="1764500099.1", call_id="pbx1-1764500099.1")
    message = await crisis.incidents.signal(source="voicemail_keyword", site="default",
                                            summary="留言含危机关键词（自杀）", message_id=None,
                                            caller_number="13800000000")
    assert len({first.id, other.id, message.id}) == 3
    await crisis.incidents.close(first.id, DUTY, "来电者已安全")
    again = await call_signal(crisis)
    assert again.id not in {first.id, other.id, message.id}
    assert len(crisis.notified.alerts) == 4
    with pytest.raises(ValueError, match="source"):
        await call_signal(crisis, "rumour")


async def test_acknowledging_the_alert_starts_the_intervention_once(crisis: Crisis) -> None:
    incident = await call_signal(crisis)
    [alert] = crisis.notified.alerts
    crisis.clock.advance(minutes=4)
    await crisis.alerts.acknowledge(DUTY, alert.id)
    crisis.clock.advance(minutes=1)
    await crisis.alerts.acknowledge(DUTY, alert.id)  # already acknowledged: nothing new
    detail = await crisis.incidents.get(incident.id)
    assert detail.intervention_at == T0 + timedelta(minutes=4)
    assert detail.deadline_state == "met"
    kinds = [e.kind for e in detail.timeline or []]
    assert kinds == ["signal.crisis_option", "alert.raised", "alert.acknowledged",
                     "intervention.started"]
    assert detail.timeline[2].actor == "duty1"
    assert not await crisis.incidents.intervention_started(incident.id, T0, "someone")
    # Nothing is due for it any more, however late.
    crisis.clock.advance(hours=2)
    await crisis.watchdog.check_once()
    assert [a.kind for a in crisis.notified.alerts] == ["crisis"]


async def test_the_deadline_warns_then_escalates_once_each(crisis: Crisis) -> None:
    incident = await call_signal(crisis)
    crisis.clock.advance(minutes=23)  # before the near point (24 min)
    await crisis.watchdog.check_once()
    assert [a.kind for a in crisis.notified.alerts] == ["crisis"]
    assert (await crisis.incidents.get(incident.id)).deadline_state == "ok"
    crisis.clock.advance(minutes=2)
    await crisis.watchdog.check_once()
    await crisis.watchdog.check_once()
    detail = await crisis.incidents.get(incident.id)
    assert detail.deadline_state == "near" and detail.warned_at == T0 + timedelta(minutes=25)
    assert [a.kind for a in crisis.notified.alerts] == ["crisis", "deadline_near"]
    near = crisis.notified.alerts[1]
    assert (near.severity, near.incident_id) == ("warning", incident.id)
    crisis.clock.advance(minutes=6)  # 31 minutes: missed
    await crisis.watchdog.check_once()
    await crisis.watchdog.check_once()
    crisis.clock.advance(minutes=30)
    await crisis.watchdog.check_once()
    detail = await crisis.incidents.get(incident.id)
    assert detail.deadline_state == "missed"
    assert detail.escalated_at == T0 + timedelta(minutes=31)
    kinds = [e.kind for e in detail.timeline or []]
    assert kinds.count("deadline.near") == 1 and kinds.count("deadline.missed") == 1
    assert kinds.index("deadline.near") < kinds.index("deadline.missed")
    missed = crisis.notified.alerts[2]
    assert (missed.key, missed.kind, missed.severity, missed.incident_id) == (
        f"deadline:{incident.id}", "deadline_missed", "critical", incident.id)
    assert len(crisis.notified.alerts) == 3
    # Intervention after the deadline: still missed, for good.
    await crisis.alerts.acknowledge(DUTY, missed.id)
    assert (await crisis.incidents.get(incident.id)).deadline_state == "missed"


async def test_a_sites_own_crisis_deadline_is_its_incidents_deadline(crisis: Crisis) -> None:
    async with session_factory(crisis.engine)() as session:
        session.add(Site(code="default", name="默认", timezone="Asia/Shanghai",
                         crisis_deadline_minutes=15))
        session.add(Site(code="north", name="北区", timezone="Asia/Shanghai"))
        await session.commit()
    strict = await call_signal(crisis)
    usual = await call_signal(crisis, site="north", linkedid="1764500000.8",
                              call_id="pbx1-1764500000.8")
    assert strict.deadline_at == T0 + timedelta(minutes=15)
    assert usual.deadline_at == T0 + timedelta(minutes=30)
    # Near after 80 % of its own 15 minutes (12), missed after 15; the other site still ok.
    crisis.clock.advance(minutes=12, seconds=30)
    await crisis.watchdog.check_once()
    assert (await crisis.incidents.get(strict.id)).deadline_state == "near"
    crisis.clock.advance(minutes=3)
    await crisis.watchdog.check_once()
    assert (await crisis.incidents.get(strict.id)).deadline_state == "missed"
    assert (await crisis.incidents.get(usual.id)).deadline_state == "ok"
    assert [a.kind for a in crisis.notified.alerts if a.incident_id == strict.id] == [
        "crisis", "deadline_near", "deadline_missed"]


async def test_an_incident_first_seen_late_escalates_without_a_warning(crisis: Crisis) -> None:
    incident = await call_signal(crisis)
    crisis.clock.advance(minutes=45)  # the watchdog was down meanwhile
    await crisis.watchdog.check_once()
    assert [a.kind for a in crisis.notified.alerts] == ["crisis", "deadline_missed"]
    detail = await crisis.incidents.get(incident.id)
    assert detail.warned_at is None and detail.escalated_at is not None


async def test_a_closed_incident_is_not_escalated_and_its_alerts_are_resolved(
        crisis: Crisis) -> None:
    incident = await call_signal(crisis)
    crisis.clock.advance(minutes=25)
    await crisis.watchdog.check_once()
    closed = await crisis.incidents.close(incident.id, DUTY, "误报：来电者按错键")
    assert closed.state == "closed" and closed.closed_by == "duty1"
    assert closed.deadline_state == "met"  # closing handled it, within the deadline
    assert {a.state for a in closed.alerts or []} == {"resolved"}
    crisis.clock.advance(minutes=30)
    await crisis.watchdog.check_once()
    assert [a.kind for a in crisis.notified.alerts] == ["crisis", "deadline_near"]
    with pytest.raises(IncidentClosed):
        await crisis.incidents.close(incident.id, DUTY, "again")
    with pytest.raises(IncidentClosed):
        await crisis.incidents.update(incident.id, DUTY, notes="late")
    [audit] = await crisis.rows(AuditEntry, AuditEntry.action == "incident.close")
    assert (audit.actor, audit.target, audit.after) == (
        "duty1", f"incident:{incident.id}", {"outcome": "误报：来电者按错键"})


async def test_update_is_audited_and_on_the_timeline(crisis: Crisis) -> None:
    incident = await call_signal(crisis)
    updated = await crisis.incidents.update(incident.id, DUTY, notes="已联系家长",
                                            location="哈尔滨市南岗区")
    assert (updated.notes, updated.location) == ("已联系家长", "哈尔滨市南岗区")
    await crisis.incidents.update(incident.id, DUTY, notes="已联系家长")  # no change
    [audit] = await crisis.rows(AuditEntry, AuditEntry.action == "incident.update")
    assert audit.before == {"notes": "", "location": ""}
    assert audit.after == {"notes": "已联系家长", "location": "哈尔滨市南岗区"}
    assert [e.kind for e in updated.timeline or []][-1] == "incident.updated"
    await crisis.incidents.flag_callback(incident.id, "来电者挂断")
    detail = await crisis.incidents.get(incident.id)
    assert detail.callback_needed and detail.timeline[-1].kind == "callback.flagged"
    with pytest.raises(IncidentNotFound):
        await crisis.incidents.get(incident.id + 100)
    with pytest.raises(IncidentNotFound):
        await crisis.incidents.add_event(incident.id + 100, kind="note")


async def test_list_filters_and_pages(crisis: Crisis) -> None:
    ids = []
    for n in range(3):
        ids.append((await call_signal(crisis, linkedid=f"l{n}", call_id=f"c{n}",
                                      site="north" if n == 1 else "default")).id)
    await crisis.incidents.close(ids[0], DUTY, "ok")
    items, total = await crisis.incidents.list()
    assert total == 3 and [i.id for i in items] == ids[::-1]
    assert items[0].timeline is None
    items, total = await crisis.incidents.list(state="open")
    assert total == 2 and {i.id for i in items} == {ids[1], ids[2]}
    items, total = await crisis.incidents.list(site="north")
    assert total == 1 and items[0].id == ids[1]
    items, total = await crisis.incidents.list(limit=1, offset=1)
    assert total == 3 and [i.id for i in items] == [ids[1]]


async def test_a_missed_callback_deadline_alerts_once(crisis: Crisis) -> None:
    async with session_factory(crisis.engine)() as session:
        late = CallbackTask(site_code="default", number="13700000000", created_at=T0,
                            requested_at=T0, due_at=T0, deadline_at=T0 + timedelta(hours=24))
        done = CallbackTask(site_code="default", number="13700000001", created_at=T0,
                            requested_at=T0, due_at=T0, deadline_at=T0 + timedelta(hours=24),
                            state=CallbackState.DONE, closed_at=T0 + timedelta(hours=1))
        session.add_all([late, done])
        await session.commit()
    crisis.clock.advance(hours=23)
    await crisis.watchdog.check_once()
    assert crisis.notified.alerts == []
    crisis.clock.advance(hours=2)
    await crisis.watchdog.check_once()
    await crisis.watchdog.check_once()
    [alert] = crisis.notified.alerts
    assert (alert.kind, alert.details["callback_task_id"]) == ("callback_deadline_missed",
                                                               late.id)
    assert "13700000000" in alert.summary
    # A restarted watchdog (new memory) still alerts only once: the alert row remembers.
    await crisis.alerts.resolve(alert.key)
    fresh = DeadlineWatchdog(sessions=session_factory(crisis.engine), clock=crisis.clock,
                             alerts=crisis.alerts, incidents=crisis.incidents)
    await fresh.check_once()
    assert len(crisis.notified.alerts) == 1


async def test_the_crisis_route_written_by_the_journal_opens_an_incident(
        crisis: Crisis) -> None:
    journal = CallJournal(engine=crisis.engine, node="pbx1", linger_seconds=0)
    calls = CrisisCalls(incidents=crisis.incidents, sessions=session_factory(crisis.engine),
                        default_site="default")
    journal.on_route.append(calls.on_route)
    await journal.start()
    await calls.start()
    try:
        for linkedid, route in (("1764500001.1", "crisis"), ("1764500002.1", "queue"),
                                ("1764500003.1", "oncall")):
            journal.record(linkedid, T0, event="route", source="agi",
                           data={"route": route, "reason": "chosen"}, route=route,
                           site_code="default", caller_number=f"1390000000{linkedid[-3]}",
                           caller_name="来电者")
            # Routed again (back from a programme): still one signal.
            journal.record(linkedid, T0, event="route", source="agi",
                           data={"route": route, "reason": "chosen"}, route=route)
        await journal.flush()
        for _ in range(100):
            if calls.signalled >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await calls.close()
        await journal.close()
    items, total = await crisis.incidents.list()
    assert total == 2
    by_call = {i.call_id: i for i in items}
    crisis_call = by_call[journal.call_id("1764500001.1")]
    assert (crisis_call.source, crisis_call.linkedid, crisis_call.caller_number) == (
        "crisis_option", "1764500001.1", "13900000001")
    assert crisis_call.call_started_at == T0
    oncall = by_call[journal.call_id("1764500003.1")]
    assert "值班电话" in oncall.summary
    detail = await crisis.incidents.get(crisis_call.id)
    assert [e.kind for e in detail.timeline or []].count("signal.crisis_option") == 1
    assert [a.kind for a in crisis.notified.alerts] == ["crisis", "crisis"]


async def test_marking_a_call_high_risk_is_audited_and_signals(crisis: Crisis) -> None:
    journal = CallJournal(engine=crisis.engine, node="pbx1", linger_seconds=0)
    await journal.start()
    call_id = journal.record("1764500005.1", T0, event="route", route="queue",
                             site_code="default", caller_number="13911112222")
    await journal.flush()
    await journal.close()
    counsellor = Actor(username="c1001", role="counsellor", user_id=None)
    incident = await crisis.incidents.mark_high_risk(counsellor, call_id, "来电者说已准备好药物")
    assert (incident.source, incident.call_id, incident.caller_number) == (
        "marked_high_risk", call_id, "13911112222")
    assert "来电者说已准备好药物" in incident.summary
    [audit] = await crisis.rows(AuditEntry, AuditEntry.action == "call.mark_high_risk")
    assert (audit.actor, audit.target) == ("c1001", f"call:{call_id}")


# -- statistics ---------------------------------------------------------------------------

async def test_the_statistics_count_crisis_and_callback_deadlines(crisis: Crisis) -> None:
    async with session_factory(crisis.engine)() as session:
        session.add(Site(code="default", name="默认", timezone="Asia/Shanghai"))
        await session.commit()
    # Three incidents on 1 December (Shanghai): met, missed (never acknowledged), open.
    day = datetime(2026, 12, 1, 9, 0, tzinfo=SHANGHAI).astimezone(UTC)
    crisis.clock.at = day
    met = await call_signal(crisis, linkedid="a", call_id="a")
    crisis.clock.advance(minutes=10)
    await crisis.alerts.acknowledge(DUTY, crisis.notified.alerts[-1].id)
    crisis.clock.at = day + timedelta(hours=1)
    await call_signal(crisis, linkedid="b", call_id="b")
    crisis.clock.at = day + timedelta(hours=10)
    await call_signal(crisis, linkedid="c", call_id="c")
    # Callbacks due that day: one closed in time, one still pending past its deadline.
    async with session_factory(crisis.engine)() as session:
        session.add_all([
            CallbackTask(site_code="default", created_at=day, requested_at=day, due_at=day,
                         deadline_at=day + timedelta(hours=2), state=CallbackState.DONE,
                         closed_at=day + timedelta(hours=1)),
            CallbackTask(site_code="default", created_at=day, requested_at=day, due_at=day,
                         deadline_at=day + timedelta(hours=3)),
        ])
        await session.commit()
    crisis.clock.advance(minutes=5)  # 19:05: the third incident is still within its time
    rates = AnswerRates(sessions=session_factory(crisis.engine), clock=crisis.clock,
                        default_site="default")
    # The whole day (to now only, the third's deadline, 19:30, would be outside it).
    report = await rates.report(from_text=date(2026, 12, 1).isoformat(),
                                to_text=date(2026, 12, 1).isoformat())
    crisis_counts, callbacks = report.deadlines.crisis, report.deadlines.callbacks
    assert (crisis_counts.met, crisis_counts.missed, crisis_counts.pending) == (1, 1, 1)
    assert (callbacks.met, callbacks.missed, callbacks.pending) == (1, 1, 0)
    assert met.id
