"""The duty alert chain carried out, on SQLite and PostgreSQL, with a clock the tests move
and a stand-in for Asterisk that records every Originate: the first officer rung at once,
again after repeat_seconds, the next one after escalate_seconds; pressing 1 (the dialplan's
UserEvent) acknowledges the alert in the officer's name and stops the chain; nobody on duty
rings the site's on-call numbers; two nodes place one call between them. The real calls
through the carrier are in tests/integration/test_duty_alerts.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from panoramisk.message import Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from crisis.duty_calls import DutyCalls
from crisis.roster import DutyRoster
from hotline.alerts.services import Alerts, AlertView
from hotline.audit import Actor
from hotline.db.engine import session_factory
from hotline.db.models import (
    Alert,
    AlertDelivery,
    AuditEntry,
    Incident,
    OnCallNumber,
    Site,
    SiteNumber,
)
from routing.duty_chain import ChainPolicy
from tests.db.people_support import ManualClock

NOW = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai
ADMIN = Actor("admin", "admin", None)
A_NUMBER, B_NUMBER = "13990020001", "13990010001"
POLICY = ChainPolicy(repeat_every=timedelta(seconds=120), escalate_after=timedelta(seconds=300))


class StandInAsterisk:
    """Accepts every Originate (as Asterisk does for an async one) and records it."""

    connected = True

    def __init__(self, *, refuse: bool = False) -> None:
        self.originates: list[dict[str, Any]] = []
        self.refuse = refuse

    async def action(self, action: dict[str, Any], *, as_list: bool | None = None) -> Message:
        assert as_list is False  # the dialler's user reads no events: never wait for one
        self.originates.append(dict(action))
        if self.refuse:
            return Message({"Response": "Error", "Message": "Originate failed"})
        return Message({"Response": "Success", "Message": "Originate successfully queued"})

    def numbers(self) -> list[str]:
        return [o["Channel"].removeprefix("PJSIP/").removesuffix("@carrier")
                for o in self.originates]


class Timeline:
    def __init__(self) -> None:
        self.events: list[tuple[int, str, dict[str, Any]]] = []

    async def add_event(self, incident_id: int, *, kind: str, summary: str = "",
                        actor: str | None = None,
                        details: dict[str, Any] | None = None) -> object:
        self.events.append((incident_id, kind, dict(details or {})))
        return None


class Chain:
    def __init__(self, engine: AsyncEngine, *, refuse: bool = False) -> None:
        self.sessions = session_factory(engine)
        self.clock = ManualClock(NOW)
        self.roster = DutyRoster(sessions=self.sessions, clock=self.clock)
        self.asterisk = StandInAsterisk(refuse=refuse)
        self.timeline = Timeline()
        self.alerts = Alerts(sessions=self.sessions, clock=self.clock)
        self.calls = DutyCalls(sessions=self.sessions, clock=self.clock, ami=self.asterisk,
                               roster=self.roster, alerts=self.alerts, policy=POLICY,
                               default_site="default", tick_seconds=60, ring_seconds=25,
                               timeline=self.timeline)
        self.alerts.notifiers.append(self.calls)

    async def officer(self, name: str, number: str, position: int, *, hours: float = 8) -> int:
        view = await self.roster.add_officer(ADMIN, name=name, number=number)
        await self.roster.add_entry(ADMIN, officer_id=view.id,
                                    starts_at=NOW - timedelta(hours=1),
                                    ends_at=NOW + timedelta(hours=hours), position=position)
        return view.id

    async def crisis(self, kind: str = "crisis", caller: str = "139 1234-5678") -> AlertView:
        async with self.sessions() as session:
            incident = Incident(site_code="default", source="manual", opened_at=NOW,
                                deadline_at=NOW + timedelta(minutes=30))
            session.add(incident)
            await session.commit()
            incident_id = incident.id
        view, new = await self.alerts.raise_alert(
            key=f"test:{incident_id}", kind=kind, site="default", severity="critical",
            summary="危机事件", details={"caller_number": caller})
        assert new
        async with self.sessions() as session:  # the incidents' service sets this
            row = await session.get_one(Alert, view.id)
            row.incident_id = incident_id
            await session.commit()
        return view

    async def deliveries(self, alert_id: int) -> list[AlertDelivery]:
        async with self.sessions() as session:
            return list((await session.scalars(select(AlertDelivery).where(
                AlertDelivery.alert_id == alert_id).order_by(AlertDelivery.id))).all())

    async def at(self, seconds: float) -> int:
        """Move the clock to NOW + seconds and let the chain look."""
        self.clock.at = NOW + timedelta(seconds=seconds)
        return await self.calls.run_due()


async def site(engine: AsyncEngine, oncall: tuple[str, ...] = ()) -> None:
    async with session_factory(engine)() as session:
        row = Site(code="default", name="12355")
        row.numbers.append(SiteNumber(number="12355"))
        for position, number in enumerate(oncall):
            row.oncall_numbers.append(OnCallNumber(position=position, number=number))
        session.add(row)
        await session.commit()


def user_event(name: str, alert: int, delivery: int, **headers: str) -> Message:
    return Message({"Event": "UserEvent", "UserEvent": name, "Alert": str(alert),
                    "Delivery": str(delivery), **headers})


async def test_the_first_officer_is_rung_again_then_the_next_and_pressing_1_stops_it(
        engine: AsyncEngine) -> None:
    await site(engine)
    chain = Chain(engine)
    a = await chain.officer("张主任", A_NUMBER, 0)
    b = await chain.officer("李老师", B_NUMBER, 1)
    alert = await chain.crisis()
    assert await chain.at(0) == 1
    [first] = chain.asterisk.originates
    [delivery] = await chain.deliveries(alert.id)
    assert first == {
        "Action": "Originate", "ActionID": f"hotline-duty-{alert.id}-1",
        "Channel": f"PJSIP/{A_NUMBER}@carrier", "Context": "hotline-duty-alert", "Exten": "s",
        "Priority": "1", "Async": "true", "Timeout": "25000",
        "CallerID": '"12355 危机警报" <12355>',
        "Variable": [f"HOTLINE_ALERT_ID={alert.id}", f"HOTLINE_ALERT_DELIVERY={delivery.id}",
                     "HOTLINE_ALERT_CALLER=13912345678"]}
    assert (delivery.officer_id, delivery.number, delivery.lap, delivery.action_id) == (
        a, A_NUMBER, 1, first["ActionID"])
    # Nothing more until the repeat is due; then A again.
    assert await chain.at(119) == 0
    assert await chain.at(120) == 1
    # The first call rang out, the second was busy (OriginateResponse, by ActionID).
    for action_id, reason in ((f"hotline-duty-{alert.id}-1", "3"),
                              (f"hotline-duty-{alert.id}-2", "5")):
        await chain.calls.on_originate_response(Message({
            "Event": "OriginateResponse", "ActionID": action_id, "Response": "Failure",
            "Reason": reason}))
    assert await chain.at(240) == 1
    # escalate_seconds after A's first call: B, and A no longer.
    assert await chain.at(300) == 1
    assert chain.asterisk.numbers() == [A_NUMBER, A_NUMBER, A_NUMBER, B_NUMBER]
    escalations = [d for _i, kind, d in chain.timeline.events if kind == "duty.escalated"]
    assert escalations == [{"alert_id": alert.id, "from_officer_id": a, "to_officer_id": b,
                            "lap": 1, "reason": "unacknowledged"}]
    # B answers (OriginateResponse Success) and presses 1.
    b_call = (await chain.deliveries(alert.id))[-1]
    await chain.calls.on_originate_response(Message({
        "Event": "OriginateResponse", "ActionID": b_call.action_id, "Response": "Success",
        "Reason": "4"}))
    await chain.calls.on_user_event(user_event("HotlineDutyAck", alert.id, b_call.id))
    async with chain.sessions() as session:
        row = await session.get_one(Alert, alert.id)
        assert (row.state.value, row.acknowledged_by) == ("acknowledged", "李老师")
        audit = await session.scalar(select(AuditEntry).where(
            AuditEntry.action == "alert.acknowledge"))
        assert audit is not None and audit.actor == "李老师"
    # A's third call was answered without a key (the dialplan's no_ack).
    a_third = (await chain.deliveries(alert.id))[2]
    await chain.calls.on_user_event(user_event("HotlineDutyCall", alert.id, a_third.id,
                                               Outcome="no_ack"))
    # Acknowledged: never rung again.
    assert await chain.at(3600) == 0
    _view, deliveries = await chain.calls.alert_with_deliveries(alert.id)
    assert [(d.officer_name, d.number, d.outcome) for d in deliveries] == [
        ("张主任", A_NUMBER, "no_answer"), ("张主任", A_NUMBER, "busy"),
        ("张主任", A_NUMBER, "answered"), ("李老师", B_NUMBER, "acknowledged")]
    kinds = [kind for _i, kind, _d in chain.timeline.events]
    assert kinds == ["duty.call", "duty.call", "duty.call", "duty.escalated", "duty.call"]


async def test_a_new_crisis_alert_wakes_the_chain_at_once(engine: AsyncEngine) -> None:
    await site(engine)
    chain = Chain(engine)  # ticks every 60 s: only the wake-up can ring within the test
    await chain.officer("张主任", A_NUMBER, 0)
    await chain.calls.start()
    try:
        await asyncio.sleep(0.2)  # the first pass: nothing open yet
        assert chain.asterisk.originates == []
        started = asyncio.get_running_loop().time()
        await chain.crisis(kind="crisis_keyword", caller="")
        while not chain.asterisk.originates:
            assert asyncio.get_running_loop().time() - started < 2, "not rung at once"
            await asyncio.sleep(0.01)
    finally:
        await chain.calls.close()
    [originate] = chain.asterisk.originates
    assert "HOTLINE_ALERT_CALLER=" in originate["Variable"]
    assert chain.calls.first_call_seconds[0] == 0  # the test's clock stands still


async def test_other_alerts_and_acknowledged_ones_ring_nobody(engine: AsyncEngine) -> None:
    await site(engine)
    chain = Chain(engine)
    await chain.officer("张主任", A_NUMBER, 0)
    await chain.alerts.raise_alert(key="line:default", kind="line_unstaffed", summary="无人")
    alert = await chain.crisis(kind="deadline_missed")
    await chain.alerts.acknowledge(Actor("li", "duty_officer", None), alert.id)
    assert await chain.at(0) == 0 and chain.asterisk.originates == []


async def test_nobody_on_duty_rings_the_sites_on_call_numbers_in_turn(engine: AsyncEngine) -> None:
    await site(engine, oncall=("13800000001", "13800000002"))
    chain = Chain(engine)
    alert = await chain.crisis(kind="police")
    assert await chain.at(0) == 1
    assert await chain.at(60) == 0
    assert await chain.at(120) == 1
    assert await chain.at(240) == 1
    assert chain.asterisk.numbers() == ["13800000001", "13800000002", "13800000001"]
    assert all(d.officer_id is None for d in await chain.deliveries(alert.id))
    unstaffed = [d for _i, kind, d in chain.timeline.events if kind == "duty.nobody_on_duty"]
    assert [d["oncall_number"] for d in unstaffed] == ["13800000001", "13800000002",
                                                       "13800000001"]
    # Someone put on the roster is rung at once.
    await chain.officer("张主任", A_NUMBER, 0)
    assert await chain.at(250) == 1
    assert chain.asterisk.numbers()[-1] == A_NUMBER


async def test_nobody_on_duty_and_no_on_call_number_is_reported_once_per_repeat(
        engine: AsyncEngine) -> None:
    await site(engine)
    chain = Chain(engine)
    await chain.crisis()
    assert await chain.at(0) == 0 and await chain.at(10) == 0 and await chain.at(120) == 0
    kinds = [kind for _i, kind, _d in chain.timeline.events]
    assert kinds == ["duty.nobody_on_duty", "duty.nobody_on_duty"]


async def test_an_officer_whose_duty_ended_is_passed_at_once(engine: AsyncEngine) -> None:
    await site(engine)
    chain = Chain(engine)
    a = await chain.officer("张主任", A_NUMBER, 0, hours=0.01)  # until NOW + 36 s
    b = await chain.officer("李老师", B_NUMBER, 1)
    await chain.crisis()
    assert await chain.at(0) == 1
    assert await chain.at(40) == 1
    assert chain.asterisk.numbers() == [A_NUMBER, B_NUMBER]
    [escalated] = [d for _i, kind, d in chain.timeline.events if kind == "duty.escalated"]
    assert (escalated["from_officer_id"], escalated["to_officer_id"],
            escalated["reason"]) == (a, b, "off_duty")


async def test_two_nodes_place_one_call_between_them(engine: AsyncEngine) -> None:
    await site(engine)
    one, two = Chain(engine), Chain(engine)
    await one.officer("张主任", A_NUMBER, 0)
    alert = await one.crisis()
    placed = await asyncio.gather(one.at(0), two.at(0))
    assert sorted(placed) == [0, 1]
    assert len(one.asterisk.originates) + len(two.asterisk.originates) == 1
    assert len(await one.deliveries(alert.id)) == 1


async def test_a_refused_originate_is_a_failed_call_and_a_stray_ack_changes_nothing(
        engine: AsyncEngine) -> None:
    await site(engine)
    chain = Chain(engine, refuse=True)
    await chain.officer("张主任", A_NUMBER, 0)
    alert = await chain.crisis()
    assert await chain.at(0) == 1
    [delivery] = await chain.deliveries(alert.id)
    assert delivery.outcome == "failed"
    # An acknowledgement naming another alert's call, or a call that does not exist.
    await chain.calls.on_user_event(user_event("HotlineDutyAck", alert.id + 1, delivery.id))
    await chain.calls.on_user_event(user_event("HotlineDutyAck", alert.id, delivery.id + 99))
    await chain.calls.on_user_event(Message({"Event": "UserEvent", "UserEvent": "HotlineDutyAck",
                                             "Alert": "x", "Delivery": "1"}))
    async with chain.sessions() as session:
        assert (await session.get_one(Alert, alert.id)).state.value == "open"


async def test_the_demo_has_a_duty_officer_on_duty_around_the_clock(engine: AsyncEngine) -> None:
    from hotline.demo import DEMO_DUTY_OFFICER, seed_demo

    sessions = session_factory(engine)
    for _ in range(2):  # seeding again adds nobody
        async with sessions() as session:
            await seed_demo(session, site_code="default", now=NOW)
    roster = DutyRoster(sessions=sessions, clock=ManualClock(NOW))
    assert [(o.name, o.number) for o in await roster.officers()] == [DEMO_DUTY_OFFICER]
    for later in (timedelta(0), timedelta(hours=13), timedelta(days=300)):
        chain = await roster.chain_at(NOW + later, "default")
        assert [entry.number for entry in chain] == [DEMO_DUTY_OFFICER[1]]


async def test_the_duty_alert_dialplan_and_its_event_filter_are_rendered(
        engine: AsyncEngine, tmp_path: Any) -> None:
    from hotline.asterisk.plan import load_plan
    from hotline.asterisk.prompts import BUILTIN_PROMPTS
    from hotline.asterisk.render import render
    from hotline.config import Settings
    from hotline.demo import seed_demo

    async with session_factory(engine)() as session:
        await seed_demo(session, site_code="default", now=NOW)
        plan = await load_plan(session, now=NOW, default_site="default", wait_timeout=90,
                               crisis_wait_timeout=45)
    files = render(plan, Settings(var_dir=tmp_path))
    dialplan = files["extensions.conf"].split("[hotline-duty-alert]\n", 1)[1].split("\n[", 1)[0]
    # The whole alert is Read()'s prompt: a 1 pressed while it still speaks counts.
    assert ("Read(HOTLINE_DUTY_KEY,${HOTLINE_DUTY_PROMPT}&hotline/duty-alert-ack,1,,1,5)"
            in dialplan)
    assert "UserEvent(HotlineDutyAck,Alert: ${HOTLINE_ALERT_ID},Delivery: " in dialplan
    assert "Outcome: no_ack" in dialplan and "exten => h,1," in dialplan
    for prompt in ("hotline/duty-alert", "hotline/duty-alert-caller",
                   "hotline/duty-alert-ack", "hotline/duty-alert-acked"):
        assert prompt in dialplan and prompt in BUILTIN_PROMPTS
    manager = files["manager.conf"]
    assert ("eventfilter(action(include),name(OriginateResponse),header(ActionID),"
            "method(starts_with))=hotline-duty-") in manager
