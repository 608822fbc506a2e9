"""bench/crisis.py's pairing of AMI events into latencies."""

from __future__ import annotations

import json

from bench.crisis import (
    Event,
    Ringing,
    Summary,
    event_of,
    first,
    first_after,
    is_crisis_route_taken,
    is_police_key,
    log_records,
    ringing,
)


def ev(at: float, **headers: str) -> Event:
    return Event(at, headers)


def test_asterisks_timestamp_wins_over_the_arrival_time() -> None:
    raw = "Event: UserEvent\r\nTimestamp: 1764460000.125000\r\nUserEvent: HotlinePoliceKey"
    assert event_of(99.0, raw).at == 1764460000.125
    assert event_of(99.0, "Event: Newstate").at == 99.0


def test_ringing_pairs_the_dial_of_that_number_with_its_first_ring() -> None:
    events = [
        # an earlier dial of the same number, before the start: not this try's
        ev(9.0, Event="DialBegin", Channel="Local/1.5-136@hotline-police-dial-1;2",
           DestChannel="PJSIP/carrier-00000001", DialString="110@carrier"),
        # another number rings meanwhile (the on-call phones)
        ev(10.1, Event="DialBegin", Channel="PJSIP/carrier-00000002",
           DestChannel="PJSIP/carrier-00000003", DialString="13800000001@carrier"),
        ev(10.2, Event="DialBegin", Channel="Local/1.5-136@hotline-police-dial-2;2",
           DestChannel="PJSIP/carrier-00000004", DialString="110@carrier"),
        ev(10.25, Event="Newstate", Channel="PJSIP/carrier-00000003",
           ChannelStateDesc="Ringing"),
        ev(10.3, Event="DialState", DestChannel="PJSIP/carrier-00000004",
           DialStatus="PROCEEDING"),
        ev(10.4, Event="Newstate", Channel="PJSIP/carrier-00000004",
           ChannelStateDesc="Ringing"),
        ev(10.41, Event="DialState", DestChannel="PJSIP/carrier-00000004",
           DialStatus="RINGING"),
    ]
    assert ringing(events, number="110", since=10.0, channel_prefix="Local/1.5-") == Ringing(
        "PJSIP/carrier-00000004", 10.2, 10.4)
    # an Originate's DialBegin has no calling channel: any prefix-less dial counts
    assert ringing(events, number="13800000001", since=10.0) == Ringing(
        "PJSIP/carrier-00000003", 10.1, 10.25)
    assert ringing(events, number="110", since=10.0, channel_prefix="Local/2.7-") is None
    assert ringing(events[:5], number="110", since=10.0) is None  # dialled, not ringing yet


def test_the_crisis_route_is_seen_at_the_heard_label_only() -> None:
    heard = ev(1.0, Event="Newexten", Context="hotline-route", Exten="listen",
               Application="Set", AppData="HOTLINE_ROUTE=crisis")
    menu = ev(1.0, Event="Newexten", Context="hotline-route", Exten="listen",
              Application="Set", AppData="HOTLINE_RESUME_AT=night-menu")
    assert is_crisis_route_taken(heard) and not is_crisis_route_taken(menu)


def test_summary_and_log_records() -> None:
    values = [i / 100 for i in range(1, 51)]  # 0.01 … 0.50
    assert Summary.of(values) == Summary(50, 0.25, 0.5, 0.5)
    text = "\n".join([json.dumps({"event": "POLICE BRIDGE", "seconds": 0.012}), "not json",
                      json.dumps({"event": "duty phone rung", "since_raised_ms": 31})])
    assert [r["seconds"] for r in log_records(text, "POLICE BRIDGE")] == [0.012]


def test_the_police_alerts_duty_call_is_the_first_after_the_bridge() -> None:
    crisis_key = {"event": "duty phone rung", "alert": 17, "timestamp": "2026-11-29T19:42:09.01Z"}
    police_key = {"event": "duty phone rung", "alert": 18, "timestamp": "2026-11-29T19:42:18.84Z"}
    bridge = {"event": "POLICE BRIDGE", "timestamp": "2026-11-29T19:42:18.77Z"}
    assert first_after([crisis_key, police_key], bridge) == police_key
    assert first_after([crisis_key], bridge) is None


def test_the_police_key_starts_at_its_first_dialplan_step() -> None:
    start = ev(1.0, Event="Newexten", Context="hotline-police-key", Exten="police",
               Priority="1", Application="AGI")
    later = ev(1.01, Event="Newexten", Context="hotline-police-key", Exten="police",
               Priority="3", Application="UserEvent")
    high_risk = ev(1.0, Event="Newexten", Context="hotline-police-key", Exten="high-risk",
                   Priority="1", Application="UserEvent")
    assert first([high_risk, later, start], is_police_key) is start
