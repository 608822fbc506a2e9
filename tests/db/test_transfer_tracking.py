"""The call journal of transferred calls, from the AMI events Asterisk 22 sent in the
integration tests (tests/integration/test_transfers.py), trimmed to the headers used."""

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
LINKEDID = "1795952558.0"
CALLER = {"Uniqueid": LINKEDID, "Linkedid": LINKEDID, "Channel": "PJSIP/carrier-00000000",
          "CallerIDNum": "13700525395", "CallerIDName": "<unknown>"}


class LiveStub:
    def call_changed(self, call_id: str, data: dict[str, Any]) -> None:
        pass

    def call_ended(self, call_id: str) -> None:
        pass


class Directory:
    """The demo counsellors, as the backend's roster knows them."""

    def __init__(self, counsellors: dict[str, tuple[int, str]]) -> None:
        self.counsellors = counsellors

    def counsellor_for_interface(self, interface: str) -> tuple[int, str] | None:
        return self.counsellors.get(interface)


def event(name: str, **headers: str) -> Message:
    return Message({"Event": name, **headers})


async def _journey(engine, events: list[tuple[str, Message]]) -> tuple[Call, list[CallEvent]]:
    async with session_factory(engine)() as session:
        await seed_demo(session, site_code="default", now=NOW)
        counsellors = {f"PJSIP/{c.sip_username}": (c.id, c.name)
                       for c in (await session.scalars(select(Counsellor))).all()}
    journal = CallJournal(engine=engine, node="test", linger_seconds=0, retry_seconds=0.05)
    await journal.start()
    tracker = CallTracker(journal=journal, clock=Clock(fixed=NOW), live=LiveStub(),  # type: ignore[arg-type]
                          directory=Directory(counsellors))
    try:
        for handler, message in events:
            await getattr(tracker, handler)(message)
        await journal.flush()
    finally:
        await journal.close()
    async with engine.connect() as connection:
        calls = (await connection.execute(select(Call))).all()
        rows = (await connection.execute(select(CallEvent).order_by(CallEvent.id))).all()
    assert len(calls) == 1
    return calls[0], list(rows)  # type: ignore[arg-type]


def _answered_by_c1001() -> list[tuple[str, Message]]:
    member = {"Queue": "crisis", "MemberName": "张老师", "Interface": "PJSIP/c1001",
              "Linkedid": LINKEDID}
    return [
        ("on_new_channel", event("Newchannel", Context="hotline-inbound", Exten="12355",
                                 **CALLER)),
        ("on_queue_join", event("QueueCallerJoin", Queue="crisis", Position="1", Count="1",
                                **CALLER)),
        ("on_agent_connect", event("AgentConnect", HoldTime="1", RingTime="1", **member)),
    ]


async def test_attended_transfer_to_a_colleague(engine):
    local2 = {"Channel": "Local/1002@hotline-transfer-default-00000000;2",
              "Context": "hotline-transfer-default", "Exten": "1002", "Linkedid": LINKEDID,
              "Uniqueid": "1795952574.3"}
    complete = {"Queue": "crisis", "MemberName": "张老师", "Linkedid": LINKEDID}
    call, rows = await _journey(engine, [
        *_answered_by_c1001(),
        ("on_dial_begin", event("DialBegin", DialString="c1002",
                                DestChannel="PJSIP/c1002-00000002", **local2)),
        ("on_dial_end", event("DialEnd", DialStatus="ANSWER",
                              DestChannel="PJSIP/c1002-00000002", **local2)),
        # Recorded once with the target already gone: no TransferTarget* headers.
        ("on_attended_transfer", event(
            "AttendedTransfer", Result="Success", DestType="Bridge",
            OrigTransfererChannel="PJSIP/c1001-00000001", OrigTransfererLinkedid=LINKEDID,
            SecondTransfererChannel="PJSIP/c1001-00000001",
            TransfereeChannel="PJSIP/carrier-00000000", TransfereeLinkedid=LINKEDID)),
        ("on_agent_complete", event("AgentComplete", TalkTime="15", Reason="transfer",
                                    **complete)),
        ("on_hangup", event("Hangup", Cause="16", **CALLER)),
    ])
    assert (call.outcome, call.answered_by, call.wait_seconds, call.queue) == (
        "answered", "张老师", 1.0, "crisis")
    by_kind = {row.kind: row.data for row in rows}
    assert [row.kind for row in rows] == [
        "channel_created", "queue_join", "connect", "transfer_dial", "transfer_result",
        "transfer", "complete", "hangup"]
    assert by_kind["transfer_dial"]["counsellor"] == "李老师"
    assert by_kind["transfer_dial"]["consultation"] is True
    assert by_kind["transfer_result"]["status"] == "ANSWER"
    transfer = by_kind["transfer"]
    assert (transfer["mode"], transfer["result"], transfer["by"]) == (
        "attended", "Success", "张老师")
    assert transfer["to"] == {"kind": "counsellor", "target": "1002"}


async def test_blind_transfer_to_an_outside_line_is_not_an_oncall_answer(engine):
    caller_in_transfer = {**CALLER, "Context": "hotline-transfer-default", "Exten": "91"}
    call, rows = await _journey(engine, [
        *_answered_by_c1001(),
        ("on_blind_transfer", event(
            "BlindTransfer", Result="Success", Context="hotline-transfer-default",
            Extension="91", IsExternal="Yes", TransfererChannel="PJSIP/c1001-00000004",
            TransfererLinkedid=LINKEDID, TransfereeChannel="PJSIP/carrier-00000000",
            TransfereeLinkedid=LINKEDID)),
        ("on_dial_begin", event("DialBegin", DialString="12345@carrier",
                                DestChannel="PJSIP/carrier-00000005", **caller_in_transfer)),
        ("on_dial_end", event("DialEnd", DialStatus="ANSWER",
                              DestChannel="PJSIP/carrier-00000005", **caller_in_transfer)),
        ("on_hangup", event("Hangup", Cause="16", **CALLER)),
    ])
    assert (call.outcome, call.answered_by) == ("answered", "张老师")
    by_kind = {row.kind: row.data for row in rows}
    assert "oncall_dial" not in by_kind and "oncall_result" not in by_kind
    assert by_kind["transfer"] == {
        "mode": "blind", "result": "Success", "exten": "91",
        "context": "hotline-transfer-default", "to": {"kind": "external", "target": "1"},
        "transferer": "PJSIP/c1001-00000004", "by": "张老师",
        "transferee": "PJSIP/carrier-00000000", "external": True}
    assert by_kind["transfer_dial"]["number"] == "12345"
    assert by_kind["transfer_result"] == {
        "status": "ANSWER", "exten": "91", "number": "12345",
        "channel": "PJSIP/carrier-00000005", "counsellor": None}


async def test_a_queue_after_a_transfer_keeps_the_first_answer(engine):
    """Blind to 71 (psych): the caller queues again and 李老师 answers; the call keeps its
    first queue, wait and counsellor, and the second leg is in the events."""
    member = {"Queue": "psych", "MemberName": "李老师", "Interface": "PJSIP/c1002",
              "Linkedid": LINKEDID}
    call, rows = await _journey(engine, [
        *_answered_by_c1001(),
        ("on_blind_transfer", event(
            "BlindTransfer", Result="Success", Context="hotline-transfer-default",
            Extension="71", IsExternal="No", TransfererChannel="PJSIP/c1001-00000004",
            TransfereeLinkedid=LINKEDID)),
        ("on_queue_join", event("QueueCallerJoin", Queue="psych", Position="1", Count="1",
                                **CALLER)),
        ("on_agent_connect", event("AgentConnect", HoldTime="9", RingTime="2", **member)),
        ("on_queue_abandon", event("QueueCallerAbandon", Queue="psych", HoldTime="30",
                                   **CALLER)),
        ("on_hangup", event("Hangup", Cause="16", **CALLER)),
    ])
    assert (call.outcome, call.answered_by, call.wait_seconds, call.queue) == (
        "answered", "张老师", 1.0, "crisis")
    connects = [row.data for row in rows if row.kind == "connect"]
    assert connects[1]["counsellor"] == "李老师" and connects[1]["transfer"] is True
    transfer = next(row.data for row in rows if row.kind == "transfer")
    assert transfer["to"] == {"kind": "queue", "target": "psych"}
    assert transfer["external"] is False
