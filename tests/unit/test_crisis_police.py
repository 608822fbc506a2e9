"""The police bridge's decisions against a stand-in Asterisk: what it asks of AMI, what it
records, and that a caller is never left alone in the room."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from panoramisk.message import Message

from crisis.police import (
    CallNotLive,
    Channels,
    PoliceBridge,
    PoliceBridgeError,
    PoliceRequest,
    bridged_channels,
    header,
)
from hotline.clock import Clock

LINKEDID = "1795980236.0"
CALLER, COUNSELLOR = "PJSIP/carrier-00000001", "PJSIP/c1001-00000002"
ROOM = f"police-{LINKEDID}"


class Reply(dict[str, str]):
    @property
    def success(self) -> bool:
        return self.get("Response") == "Success"


class FakeAmi:
    def __init__(self, refuse: set[str] | None = None) -> None:
        self.actions: list[dict[str, Any]] = []
        self.refuse = refuse or set()
        self.connected = True

    async def action(self, action: Mapping[str, Any], *, as_list: bool | None = None) -> Any:
        self.actions.append(dict(action))
        name = action["Action"]
        if name in self.refuse:
            return Reply(Response="Error", Message=f"{name} refused")
        if name == "Getvar":
            value = "13600001111" if action["Variable"] == "CALLERID(num)" else "小明"
            return Reply(Response="Success", Value=value)
        return Reply(Response="Success")


class FakeIncidents:
    def __init__(self) -> None:
        self.requests: list[PoliceRequest] = []
        self.events: list[tuple[str, str, bool]] = []
        self.high_risk: list[tuple[str, str]] = []

    async def police_requested(self, request: PoliceRequest) -> int:
        self.requests.append(request)
        return 1

    async def police_event(self, linkedid: str, *, kind: str, summary: str,
                           details: Mapping[str, Any] | None = None,
                           callback_needed: bool = False) -> int | None:
        self.events.append((linkedid, kind, callback_needed))
        return 1

    async def high_risk_key(self, linkedid: str, *, by: str) -> None:
        self.high_risk.append((linkedid, by))


def bridge(ami: FakeAmi, dialer: FakeAmi, incidents: FakeIncidents,
           supervisor: str = "13990077701") -> PoliceBridge:
    async def supervisor_number() -> str:
        return supervisor

    return PoliceBridge(ami=ami, dialer=dialer, incidents=incidents,
                        clock=Clock(fixed=datetime(2026, 12, 1, 2, 0, tzinfo=UTC)),
                        recording_dir="/var/spool/asterisk/monitor/hotline/",
                        supervisor_number=supervisor_number, ring_seconds=20)


async def settle(police: PoliceBridge) -> None:
    for _ in range(5):
        await asyncio.sleep(0)
    await asyncio.gather(*list(police._tasks), return_exceptions=True)


async def started(police: PoliceBridge) -> PoliceRequest:
    return await police.request(linkedid=LINKEDID, requested_by="c1001", reason="",
                                via="feature_code", site="default",
                                channels=Channels(CALLER, COUNSELLOR))


async def test_the_key_moves_both_legs_together_then_records() -> None:
    ami, dialer, incidents = FakeAmi(), FakeAmi(), FakeIncidents()
    police = bridge(ami, dialer, incidents)
    request = await started(police)
    await settle(police)
    names = [a["Action"] for a in ami.actions]
    assert names == ["Getvar", "Getvar", "Setvar", "Redirect"]
    setvar, redirect = ami.actions[2], ami.actions[3]
    assert (setvar["Channel"], setvar["Value"]) == (COUNSELLOR, "13600001111")
    assert (redirect["Channel"], redirect["Exten"]) == (CALLER, f"1{LINKEDID}")
    assert (redirect["ExtraChannel"], redirect["ExtraExten"]) == (COUNSELLOR, f"2{LINKEDID}")
    assert redirect["Context"] == redirect["ExtraContext"] == "hotline-police-conf"
    assert request.recording_path == f"/var/spool/asterisk/monitor/hotline/{ROOM}.wav"
    assert (request.caller_number, request.caller_name) == ("13600001111", "小明")
    assert incidents.requests == [request]
    # Pressed again: one bridge, nothing sent twice.
    again = await started(police)
    assert again is request and len(ami.actions) == 4


async def test_a_refused_move_leaves_the_call_as_it_was() -> None:
    ami, incidents = FakeAmi(refuse={"Redirect"}), FakeIncidents()
    police = bridge(ami, FakeAmi(), incidents)
    with pytest.raises(CallNotLive):
        await started(police)
    assert police.rooms == {} and incidents.requests == []


@pytest.mark.parametrize("linkedid", ["", "1795980236.0\r\nAction: Hangup", "abc"])
async def test_a_linkedid_that_is_not_one_is_refused(linkedid: str) -> None:
    ami = FakeAmi()
    police = bridge(ami, FakeAmi(), FakeIncidents())
    with pytest.raises(PoliceBridgeError):
        await police.request(linkedid=linkedid, requested_by="x", reason="", via="api",
                             channels=Channels(CALLER, COUNSELLOR))
    assert ami.actions == []


async def test_the_counsellor_drops_a_supervisor_is_called_into_the_room() -> None:
    ami, dialer, incidents = FakeAmi(), FakeAmi(), FakeIncidents()
    police = bridge(ami, dialer, incidents)
    await started(police)
    await police.on_join(Message({"Conference": ROOM, "Channel": "Local/x;1"}))
    await police.on_leave(Message({"Conference": ROOM, "Channel": COUNSELLOR}))
    await settle(police)
    [originate] = dialer.actions
    assert originate["Channel"] == "PJSIP/13990077701@carrier"
    assert (originate["Context"], originate["Exten"]) == ("hotline-police-conf", f"4{LINKEDID}")
    kinds = [kind for _linkedid, kind, _flag in incidents.events]
    assert kinds == ["bridge.counsellor_left", "supervisor.called"]


async def test_a_caller_left_alone_goes_to_a_person_and_one_who_hangs_up_is_flagged() -> None:
    ami, incidents = FakeAmi(), FakeIncidents()
    police = bridge(ami, FakeAmi(), incidents, supervisor="")
    await started(police)
    await police.on_join(Message({"Conference": ROOM, "Channel": "Local/x;1"}))
    await police.on_leave(Message({"Conference": ROOM, "Channel": COUNSELLOR}))
    await police.on_leave(Message({"Conference": ROOM, "Channel": "Local/x;1"}))
    await settle(police)
    rescue = ami.actions[-1]
    assert (rescue["Action"], rescue["Channel"], rescue["Context"], rescue["Exten"]) == (
        "Redirect", CALLER, "hotline-fallback", "default")
    kinds = [kind for _linkedid, kind, _flag in incidents.events]
    assert "supervisor.none" in kinds and kinds[-1] == "bridge.caller_alone"
    # Moved on to a person: leaving the room is not a hang-up to call back.
    await police.on_leave(Message({"Conference": ROOM, "Channel": CALLER}))
    assert not any(flag for _linkedid, _kind, flag in incidents.events)

    ami2, incidents2 = FakeAmi(), FakeIncidents()
    police2 = bridge(ami2, FakeAmi(), incidents2)
    await started(police2)
    await police2.on_leave(Message({"Conference": ROOM, "Channel": CALLER}))
    assert incidents2.events == [(LINKEDID, "bridge.caller_left", True)]


async def test_110_gone_then_the_counsellor_drops_the_caller_goes_to_a_person_at_once() -> None:
    ami, dialer, incidents = FakeAmi(), FakeAmi(), FakeIncidents()
    police = bridge(ami, dialer, incidents)
    await started(police)
    await police.on_join(Message({"Conference": ROOM, "Channel": "Local/x;1"}))
    await police.on_leave(Message({"Conference": ROOM, "Channel": "Local/x;1"}))  # gave up
    await police.on_leave(Message({"Conference": ROOM, "Channel": COUNSELLOR}))
    await settle(police)
    # No supervisor rung into an empty room: the caller is moved to the fallback route.
    assert dialer.actions == []
    rescue = ami.actions[-1]
    assert (rescue["Action"], rescue["Channel"], rescue["Context"]) == (
        "Redirect", CALLER, "hotline-fallback")
    kinds = [kind for _linkedid, kind, _flag in incidents.events]
    assert kinds == ["bridge.counsellor_left", "bridge.caller_alone"]


async def test_the_110_legs_steps_reach_the_timeline() -> None:
    incidents = FakeIncidents()
    police = bridge(FakeAmi(), FakeAmi(), incidents)
    for state in ("dialing", "BUSY", "dialing", "CHANUNAVAIL", "gave_up"):
        await police.on_user_event(Message({"UserEvent": "HotlinePolice", "Room": ROOM,
                                            "Attempt": "1", "State": state}))
    await police.on_user_event(Message({"UserEvent": "HotlinePolice", "Room": "other-1",
                                        "State": "BUSY"}))
    assert [kind for _l, kind, _f in incidents.events] == [
        "police.dialing", "police.busy", "police.dialing", "police.failed", "police.gave_up"]


async def test_the_key_event_with_repeated_headers_starts_the_bridge() -> None:
    """A UserEvent repeats the channel's own fields: Linkedid may come twice."""
    ami, incidents = FakeAmi(), FakeIncidents()
    police = bridge(ami, FakeAmi(), incidents)
    message = Message({"UserEvent": "HotlinePoliceKey", "Channel": COUNSELLOR,
                       "Linkedid": [LINKEDID, LINKEDID], "Peer": CALLER,
                       "Endpoint": "c1001", "Site": "default"})
    assert header(message, "Linkedid") == LINKEDID
    await police.on_user_event(message)
    await settle(police)
    assert [r.requested_by for r in incidents.requests] == ["c1001"]


def test_the_callers_channel_and_its_bridged_peer_from_a_listing() -> None:
    listing = [
        Message({"Event": "CoreShowChannel", "Channel": CALLER, "Uniqueid": LINKEDID,
                 "Linkedid": LINKEDID, "BridgeId": "b1"}),
        Message({"Event": "CoreShowChannel", "Channel": COUNSELLOR, "Uniqueid": "2",
                 "Linkedid": LINKEDID, "BridgeId": "b1"}),
        Message({"Event": "CoreShowChannel", "Channel": "PJSIP/x", "Uniqueid": "3",
                 "Linkedid": "other", "BridgeId": "b1"}),
    ]
    assert bridged_channels(listing, LINKEDID) == Channels(CALLER, COUNSELLOR)
    # Nobody talking to the caller (menu, queue): no bridge to move.
    assert bridged_channels(listing[:1], LINKEDID) is None
