"""Transfers for real: a sipp caller on the carrier trunk reaches a sipp counsellor, who
hands the caller on by feature code (attended *2, blind ##) or through the API; the caller
stays connected throughout and the call stays one record with every leg as events.

The callers press 3 (crisis): the crisis queue rings the high-risk specialist (c1001, 张老师)
alone first, so who answers does not depend on other softphones registered meanwhile."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Backend
from tests.integration.sipp import Caller, softphone
from tests.integration.transfer_parties import feature_then_digits, keyed_softphone

pytestmark = pytest.mark.integration

_numbers = itertools.count(int(time.time()) % 100000 * 10 + 5)


def caller_number() -> str:
    return f"135{next(_numbers):08d}"


def kinds(call: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [event for event in call["events"] if event["kind"] == kind]


def byes_received(messages: str) -> int:
    """BYE requests a sipp party received (its -trace_msg log), not the ones it sent."""
    return sum(1 for block in messages.split("message received")[1:]
               if block.split("\n\n", 1)[-1].lstrip().startswith("BYE sip:"))


def one_record(backend: Backend, number: str) -> dict[str, Any]:
    call = backend.find_call(number, timeout=30)
    status, page = backend.api(f"/api/calls?caller_number={number}")
    assert status == 200 and page["total"] == 1, page
    return call


def wait_for_event(backend: Backend, number: str, kind: str,
                   timeout: float = 40) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, page = backend.api(f"/api/calls?caller_number={number}&limit=1")
        if status == 200 and page["items"]:
            status, call = backend.api(f"/api/calls/{page['items'][0]['id']}")
            if status == 200 and kinds(call, kind):
                return dict(call)
        time.sleep(0.3)
    raise AssertionError(f"no {kind} event for {number}")


def test_attended_transfer_to_a_colleague_by_feature_code(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    """A (c1001) answers, presses *2 and B's extension 1002, talks to B, hangs up: the
    caller is with B, never hung up on."""
    number = caller_number()
    with softphone(workdir, user="c1002", password=counsellors["c1002"]) as colleague, \
            keyed_softphone(workdir, user="c1001", password=counsellors["c1001"],
                            presses=feature_then_digits("*2", "1002"),
                            talk_ms=6000) as counsellor:
        result = Caller(workdir, caller=number, keys="3", hold_ms=40000).run()
        assert counsellor.wait(timeout=30) == 0, counsellor.messages[-3000:]
    assert result.ok, result.errors[-2000:]
    # The caller heard no hang-up: its own BYE is the only one in its trace.
    assert byes_received(result.messages) == 0
    assert colleague.invites() == 1
    assert byes_received(colleague.messages) == 1  # the caller's hang-up reached B
    call = one_record(backend, number)
    assert (call["queue"], call["outcome"]) == ("crisis", "answered")
    assert call["answered_by"] == "张老师"  # who answered first
    connect = kinds(call, "connect")[0]
    assert connect["data"]["interface"] == "PJSIP/c1001"
    transfer = kinds(call, "transfer")
    assert len(transfer) == 1, call["events"]
    assert transfer[0]["data"]["mode"] == "attended"
    assert transfer[0]["data"]["result"] == "Success"
    assert transfer[0]["data"]["to"] == {"kind": "counsellor", "target": "1002"}
    assert transfer[0]["data"]["by"] == "张老师"
    dial = kinds(call, "transfer_dial")[0]
    assert dial["data"]["counsellor"] == "李老师"
    assert kinds(call, "transfer_result")[0]["data"]["status"] == "ANSWER"
    journey = [event["kind"] for event in call["events"]]
    assert journey.index("connect") < journey.index("transfer_dial") < journey.index(
        "transfer") < journey.index("hangup")


def test_blind_transfer_to_the_12345_line_through_the_api(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    log = backend.carrier_log
    before = log.read_text(errors="replace") if log.exists() else ""
    number = caller_number()
    with softphone(workdir, user="c1001", password=counsellors["c1001"]) as counsellor:
        caller = Caller(workdir, caller=number, keys="3", hold_ms=30000).start()
        call = wait_for_event(backend, number, "connect")
        path = f"/api/calls/{call['id']}/transfer"
        # Nothing but the site's own destinations: an unknown code is refused here, before
        # Asterisk hears of it, and the counsellor stays with the caller.
        status, body = backend.api(path, method="POST", body={
            "mode": "blind", "to": {"kind": "external", "target": "77"}})
        assert status == 422 and body["detail"]["codes"] == ["1", "2"], body
        status, body = backend.api(path, method="POST", body={"mode": "sideways"})
        assert status == 422, body
        status, body = backend.api(path, method="POST", body={
            "mode": "blind", "to": {"kind": "external", "target": "1"}})
        assert status == 202, body
        assert (body["exten"], body["context"], body["counsellor"]) == (
            "91", "hotline-transfer-default", "c1001")
        result = caller.wait()
    assert result.ok, result.errors[-2000:]
    assert byes_received(result.messages) == 0
    assert byes_received(counsellor.messages) == 1  # the counsellor left at the transfer
    after = log.read_text(errors="replace")[len(before):]
    assert "INVITE sip:12345@" in after
    call = one_record(backend, number)
    assert (call["outcome"], call["answered_by"]) == ("answered", "张老师")
    transfer = kinds(call, "transfer")
    assert len(transfer) == 1, call["events"]
    assert transfer[0]["data"]["mode"] == "blind"
    assert transfer[0]["data"]["result"] == "Success"
    assert transfer[0]["data"]["to"] == {"kind": "external", "target": "1"}
    assert transfer[0]["data"]["external"] is True
    assert [e["data"]["number"] for e in kinds(call, "transfer_dial")] == ["12345"]
    assert [e["data"]["status"] for e in kinds(call, "transfer_result")] == ["ANSWER"]
    requests = kinds(call, "transfer_request")
    assert requests and requests[-1]["source"] == "api" and requests[-1]["data"]["accepted"]
    # The on-call fields are untouched: the leg is a transfer, not an on-call answer.
    assert kinds(call, "oncall_result") == []


def test_an_unknown_code_keeps_the_counsellor_with_the_caller_then_blind_by_phone(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    """## then a code the site does not have, three times: Asterisk gives the transfer up and
    the counsellor is still with the caller, so the next ## 91 sends the caller on to the
    12345 line; the caller is never hung up on."""
    log = backend.carrier_log
    before = log.read_text(errors="replace") if log.exists() else ""
    number = caller_number()
    presses = [*feature_then_digits("##", "8"), ("8", 1500), ("8", 1500),
               *feature_then_digits("##", "91", after_answer_ms=4000)]
    with keyed_softphone(workdir, user="c1001", password=counsellors["c1001"],
                         presses=presses) as counsellor:
        result = Caller(workdir, caller=number, keys="3", hold_ms=45000).run()
        assert counsellor.wait(timeout=30) == 0, counsellor.messages[-3000:]
    assert result.ok, result.errors[-2000:]
    assert byes_received(result.messages) == 0
    assert byes_received(counsellor.messages) == 1  # at the second, valid transfer
    assert "INVITE sip:12345@" in log.read_text(errors="replace")[len(before):]
    call = one_record(backend, number)
    assert call["outcome"] == "answered" and call["answered_by"] == "张老师"
    transfer = kinds(call, "transfer")
    assert len(transfer) == 1, call["events"]  # the refused codes never became a transfer
    assert transfer[0]["data"]["mode"] == "blind"
    assert transfer[0]["data"]["to"] == {"kind": "external", "target": "1"}
    assert transfer[0]["data"]["external"] is False  # by phone, not by AMI
    assert [e["data"]["status"] for e in kinds(call, "transfer_result")] == ["ANSWER"]


def test_attended_transfer_through_the_api(backend: Backend, counsellors: dict[str, str],
                                           workdir: Path) -> None:
    """A supervisor starts the consultation (AMI Atxfer) for the counsellor, who talks to the
    colleague, then hangs up: the caller is with the colleague."""
    number = caller_number()
    with softphone(workdir, user="c1002", password=counsellors["c1002"]) as colleague, \
            keyed_softphone(workdir, user="c1001", password=counsellors["c1001"], presses=[],
                            talk_ms=12000) as counsellor:
        caller = Caller(workdir, caller=number, keys="3", hold_ms=35000).start()
        call = wait_for_event(backend, number, "connect")
        path = f"/api/calls/{call['id']}/transfer"
        status, body = backend.api(path, method="POST", body={
            "mode": "attended", "to": {"kind": "counsellor", "target": "1001"}})
        assert status == 422, body  # the counsellor in the call is 1001
        status, body = backend.api(path, method="POST", body={
            "mode": "attended", "to": {"kind": "counsellor", "target": "1002"}})
        assert status == 202, body
        assert (body["exten"], body["counsellor"]) == ("1002", "c1001")
        assert counsellor.wait(timeout=30) == 0, counsellor.messages[-3000:]
        result = caller.wait()
    assert result.ok, result.errors[-2000:]
    assert byes_received(result.messages) == 0
    assert colleague.invites() == 1
    assert byes_received(colleague.messages) == 1
    call = one_record(backend, number)
    transfer = kinds(call, "transfer")
    assert len(transfer) == 1, call["events"]
    assert transfer[0]["data"]["mode"] == "attended"
    assert transfer[0]["data"]["result"] == "Success"
    assert transfer[0]["data"]["to"] == {"kind": "counsellor", "target": "1002"}
    assert kinds(call, "transfer_dial")[0]["data"]["counsellor"] == "李老师"
    assert kinds(call, "transfer_request")[0]["data"]["asterisk"] == "Atxfer successfully queued"


def _set_unrendered_colleague(backend: Backend, present: bool) -> None:
    """A counsellor added after the configuration was last rendered: in the database (so
    the API accepts their extension) but not in Asterisk's dialplan."""
    import asyncio

    from sqlalchemy import delete, select

    from hotline.db.engine import create_engine_for, session_factory
    from hotline.db.models import Counsellor, Seat, Site, Tier

    async def change() -> None:
        engine = create_engine_for(backend.env["HOTLINE_DATABASE__URL"])
        try:
            async with session_factory(engine)() as session:
                if present:
                    site = await session.scalar(select(Site).where(Site.code == "default"))
                    assert site is not None
                    session.add(Counsellor(site_id=site.id, name="新老师", tier=Tier.CONSULTATION,
                                           seat=Seat.ON_SITE, skills=[], sip_username="c1009",
                                           sip_secret="not-rendered", extension="1009"))
                else:
                    await session.execute(delete(Counsellor).where(
                        Counsellor.sip_username == "c1009"))
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(change())


def test_a_transfer_to_a_code_the_dialplan_lacks_brings_the_caller_back(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    """Asterisk takes a blind transfer by AMI to any extension ("Transfer succeeded") and
    the counsellor leaves; the site's transfer context sends a code it does not have back to
    the queue the caller came from, where a counsellor answers again."""
    number = caller_number()
    _set_unrendered_colleague(backend, True)
    try:
        with softphone(workdir, user="c1001", password=counsellors["c1001"]) as counsellor:
            caller = Caller(workdir, caller=number, keys="3", hold_ms=35000).start()
            call = wait_for_event(backend, number, "connect")
            status, body = backend.api(f"/api/calls/{call['id']}/transfer", method="POST",
                                       body={"mode": "blind",
                                             "to": {"kind": "counsellor", "target": "1009"}})
            assert status == 202, body
            result = caller.wait()
    finally:
        _set_unrendered_colleague(backend, False)
    assert result.ok, result.errors[-2000:]
    assert byes_received(result.messages) == 0
    assert counsellor.invites() == 2  # the caller came back to the crisis queue
    call = one_record(backend, number)
    transfer = kinds(call, "transfer")
    assert len(transfer) == 1 and transfer[0]["data"]["exten"] == "1009"
    assert [e["data"].get("transfer") for e in kinds(call, "connect")] == [None, True]
    assert call["answered_by"] == "张老师" and call["outcome"] == "answered"
