"""The AMI call tracker on event sequences as Asterisk sends them (from a recorded call)."""

from datetime import UTC, datetime
from typing import Any

from panoramisk.message import Message
from sqlalchemy import select

from ami_listener.call_tracking import CallTracker
from hotline.calls.storage import CallJournal
from hotline.clock import Clock
from hotline.db.engine import session_factory
from hotline.db.models import Call, CallEvent, Counsellor
from hotline.demo import seed_demo

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
LINKEDID = "1795934574.4"
CALLER = {"Uniqueid": LINKEDID, "Linkedid": LINKEDID, "Channel": "PJSIP/carrier-00000004",
          "CallerIDNum": "13900001111", "CallerIDName": "张三"}


class LiveStub:
    def __init__(self) -> None:
        self.active: dict[str, dict[str, Any]] = {}

    def call_changed(self, call_id: str, data: dict[str, Any]) -> None:
        self.active.setdefault(call_id, {}).update(data)

    def call_ended(self, call_id: str) -> None:
        self.active.pop(call_id, None)


class Directory:
    def __init__(self, counsellor_id: int) -> None:
        self.counsellor_id = counsellor_id

    def counsellor_for_interface(self, interface: str) -> tuple[int, str] | None:
        return (self.counsellor_id, "李老师") if interface == "PJSIP/c1002" else None


def event(name: str, **headers: str) -> Message:
    return Message({"Event": name, **headers})


class FakeAmi:
    def __init__(self, channels: list[Message]) -> None:
        self.channels = channels

    async def action(self, _action: Any, **_kwargs: Any) -> list[Message]:
        return [*self.channels, event("CoreShowChannelsComplete")]


async def _counsellor_id(engine) -> int:
    async with session_factory(engine)() as session:
        await seed_demo(session, site_code="default", now=NOW)
        return int(await session.scalar(
            select(Counsellor.id).where(Counsellor.sip_username == "c1002")))


async def _tracker(engine, counsellor_id: int = 0):
    journal = CallJournal(engine=engine, node="test", linger_seconds=0, retry_seconds=0.05)
    await journal.start()
    live = LiveStub()
    tracker = CallTracker(journal=journal, clock=Clock(fixed=NOW), live=live,  # type: ignore[arg-type]
                          directory=Directory(counsellor_id))
    return journal, live, tracker


async def test_answered_call_journey(engine):
    counsellor_id = await _counsellor_id(engine)
    journal, live, tracker = await _tracker(engine, counsellor_id)
    try:
        await tracker.on_new_channel(event("Newchannel", Context="hotline-inbound",
                                           Exten="12355", **CALLER))
        await tracker.on_queue_join(event("QueueCallerJoin", Queue="psych", Position="1",
                                          Count="1", **CALLER))
        member = {"Queue": "psych", "MemberName": "李老师", "Interface": "PJSIP/c1002",
                  "Linkedid": LINKEDID}
        await tracker.on_agent_called(event("AgentCalled", **member))
        await tracker.on_agent_connect(event("AgentConnect", HoldTime="4", RingTime="1",
                                             **member))
        await tracker.on_hangup(event("Hangup", Cause="16", **CALLER))
        # Asterisk reports the bridge's end after the caller's hang-up.
        await tracker.on_agent_complete(event("AgentComplete", TalkTime="30", Reason="caller",
                                              **member))
        await journal.flush()
    finally:
        await journal.close()
    async with engine.connect() as connection:
        call = (await connection.execute(select(Call))).one()
        kinds = [row[0] for row in await connection.execute(
            select(CallEvent.kind).order_by(CallEvent.id))]
    assert (call.outcome, call.wait_seconds, call.answered_by) == ("answered", 4.0, "李老师")
    assert call.answered_by_counsellor_id == counsellor_id
    assert (call.caller_name, call.queue, call.ended_at) == ("张三", "psych", NOW)
    assert kinds == ["channel_created", "queue_join", "ring", "connect", "hangup", "complete"]
    assert live.active == {}
    assert tracker._calls == {}


async def test_caller_leaving_the_queue_is_abandoned_and_late_events_leak_nothing(engine):
    journal, _live, tracker = await _tracker(engine)
    try:
        await tracker.on_new_channel(event("Newchannel", Context="hotline-inbound", **CALLER))
        await tracker.on_queue_join(event("QueueCallerJoin", Queue="crisis", **CALLER))
        await tracker.on_queue_abandon(event("QueueCallerAbandon", Queue="crisis",
                                             HoldTime="12", **CALLER))
        await tracker.on_hangup(event("Hangup", **CALLER))
        await tracker.on_dial_end(event("DialEnd", DialStatus="CANCEL",
                                        DestChannel="PJSIP/carrier-9", Linkedid=LINKEDID))
        await journal.flush()
    finally:
        await journal.close()
    async with engine.connect() as connection:
        call = (await connection.execute(select(Call))).one()
    assert (call.outcome, call.wait_seconds) == ("abandoned", 12.0)
    assert tracker._calls == {}


async def test_legs_the_backend_starts_are_not_calls_but_the_callers_police_room_is(engine):
    """A duty officer's phone, the 110 leg and a supervisor called into the police room each
    have a linkedid of their own: no call record (no phantom call in the answer rate). The
    caller moved into the police room still ends their own call there."""
    journal, _live, tracker = await _tracker(engine)
    duty = {"Uniqueid": "1795934600.1", "Linkedid": "1795934600.1",
            "Channel": "PJSIP/carrier-00000009"}
    police = {"Uniqueid": "1795934601.2", "Linkedid": "1795934601.2",
              "Channel": "Local/1795934574.4-139@hotline-police-dial-00000001;2"}
    try:
        await tracker.on_new_channel(event("Newchannel", Context="hotline-inbound", **CALLER))
        await tracker.on_hangup(event("Hangup", Context="hotline-duty-alert", **duty))
        await tracker.on_dial_begin(event("DialBegin", Context="hotline-police-dial",
                                          DialString="110@carrier",
                                          DestChannel="PJSIP/carrier-0000000a", **police))
        await tracker.on_dial_end(event("DialEnd", Context="hotline-police-dial",
                                        DialStatus="ANSWER",
                                        DestChannel="PJSIP/carrier-0000000a", **police))
        await tracker.on_hangup(event("Hangup", Context="hotline-police-conf", **police))
        await tracker.on_hangup(event("Hangup", Context="hotline-police-conf", Cause="16",
                                      **CALLER))
        await journal.flush()
    finally:
        await journal.close()
    async with engine.connect() as connection:
        calls = (await connection.execute(select(Call))).all()
    assert [(c.linkedid, c.outcome) for c in calls] == [(LINKEDID, "ivr_hangup")]


async def test_reconcile_closes_calls_that_ended_unseen_and_opens_live_ones(engine):
    journal, live, tracker = await _tracker(engine)
    try:
        await tracker.on_new_channel(event("Newchannel", Context="hotline-inbound", **CALLER))
        await journal.flush()
        other = "1795934999.9"
        live_channel = event("CoreShowChannel", Uniqueid=other, Linkedid=other,
                             Context="hotline-queue", Channel="PJSIP/carrier-0000000f",
                             CallerIDNum="13900002222", CallerIDName="<unknown>", Duration="30")
        await tracker.reconcile(FakeAmi([live_channel]))  # type: ignore[arg-type]
        await journal.flush()
    finally:
        await journal.close()
    async with engine.connect() as connection:
        calls = {row.linkedid: row for row in await connection.execute(select(Call))}
    assert calls[LINKEDID].outcome == "lost" and calls[LINKEDID].ended_at == NOW
    assert calls[other].ended_at is None and calls[other].caller_number == "13900002222"
    assert calls[other].caller_name is None
    assert journal.call_id(LINKEDID) not in live.active


async def test_a_change_the_database_refuses_is_dropped_alone(engine):
    """A stale counsellor id (deleted since the directory loaded) must not block the journal."""
    journal, _live, tracker = await _tracker(engine, counsellor_id=999_999)
    other = {**CALLER, "Uniqueid": "1795934575.5", "Linkedid": "1795934575.5",
             "CallerIDNum": "13900003333"}
    try:
        await tracker.on_new_channel(event("Newchannel", Context="hotline-inbound", **CALLER))
        await tracker.on_agent_connect(event("AgentConnect", HoldTime="2", Queue="psych",
                                             MemberName="李老师", Interface="PJSIP/c1002",
                                             Linkedid=LINKEDID))
        await tracker.on_new_channel(event("Newchannel", Context="hotline-inbound", **other))
        await tracker.on_hangup(event("Hangup", **CALLER))
        await journal.flush()
    finally:
        await journal.close()
    async with engine.connect() as connection:
        calls = {row.linkedid: row for row in await connection.execute(select(Call))}
    assert journal.stats.dropped == 1
    assert calls[LINKEDID].ended_at == NOW
    assert calls["1795934575.5"].caller_number == "13900003333"
