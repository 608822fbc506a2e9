"""The AMI benchmark's pure parts: the Python mirror of manager.conf's read classes and
event filters, and the sandbox's recorder user (rendered for benchmarks only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.ami_filter import (
    AmiUser,
    backend_user,
    headers_of,
    parse_filter,
    parse_user,
    received_by,
)
from hotline.asterisk.sandbox import render_base_config
from hotline.config import AmiSettings, AsteriskSettings

REPO = Path(__file__).resolve().parents[2]


def event(name: str, privilege: str = "call,all", **headers: str) -> str:
    lines = [f"Event: {name}", f"Privilege: {privilege}", "Timestamp: 1700000000.000001"]
    lines += [f"{key}: {value}" for key, value in headers.items()]
    return "\r\n".join(lines)


@pytest.fixture(scope="module")
def backend() -> AmiUser:
    return backend_user(REPO / "asterisk_conf" / "manager.conf.j2")


def test_the_backend_user_reads_what_the_template_says(backend: AmiUser) -> None:
    assert backend.read == {"system", "call", "agent", "user"}
    assert len(backend.filters) > 10
    assert all(f.include for f in backend.filters)


@pytest.mark.parametrize(("raw", "passes"), [
    (event("Newchannel", Context="hotline-inbound", Channel="PJSIP/carrier-1"), True),
    (event("Newchannel", Context="hotline-inbound-x"), False),  # exact
    (event("Newchannel", Context="hotline-counsellor"), False),
    (event("Hangup", Context="hotline-ivr"), True),  # starts_with hotline-
    (event("Hangup", Context="default"), False),
    (event("Hangup"), False),  # no Context header at all
    (event("QueueCallerJoin", privilege="agent,all", Queue="psych"), True),
    (event("DeviceStateChange", Device="PJSIP/b2001", State="INUSE"), True),
    (event("DeviceStateChange", Device="Local/psych@hotline-queue", State="INUSE"), False),
    (event("DialBegin", DestChannel="PJSIP/carrier-0001", Context="hotline-oncall"), True),
    (event("DialBegin", DestChannel="PJSIP/b2001-0001", Context="hotline-queue"), False),
    (event("DialBegin", DestChannel="PJSIP/b2001-0001", Context="hotline-transfer-x"), True),
    (event("UserEvent", privilege="user,all", UserEvent="HotlineRoute"), True),
    (event("UserEvent", privilege="user,all", UserEvent="Other"), False),
    (event("Newexten", privilege="dialplan,all", Context="hotline-ivr"), False),
    (event("RTCPSent", privilege="reporting,all"), False),
])
def test_what_the_backend_user_receives(backend: AmiUser, raw: str, passes: bool) -> None:
    assert backend.receives(headers_of(raw), raw) is passes


def test_read_classes_come_before_filters() -> None:
    # VarSet is in the dialplan class: not sent to a user who cannot read it, filter or not
    everything = AmiUser("x", frozenset({"call"}))
    assert not everything.receives(headers_of(event("VarSet", privilege="dialplan,all")))
    assert everything.receives(headers_of(event("Hangup")))
    assert AmiUser("x", frozenset({"all"})).receives(headers_of(event("VarSet", "dialplan,all")))


def test_include_then_exclude() -> None:
    user = AmiUser("x", frozenset({"all"}), (
        parse_filter("action(include),name(Hangup)", ""),
        parse_filter("action(exclude),header(Channel),method(starts_with)", "Local/"),
    ))
    assert received_by(user, [
        event("Hangup", Channel="PJSIP/a-1"), event("Hangup", Channel="Local/x@y-1;1"),
        event("Newchannel", Channel="PJSIP/a-1"),
    ]) == [event("Hangup", Channel="PJSIP/a-1")]
    only_excludes = AmiUser("x", frozenset({"all"}), (
        parse_filter("action(exclude),name(VarSet)", ""),))
    assert only_excludes.receives(headers_of(event("Hangup")))
    assert not only_excludes.receives(headers_of(event("VarSet")))


@pytest.mark.parametrize(("method", "value", "matches"), [
    ("exact", "PJSIP/a", False), ("starts_with", "PJSIP/", True), ("ends_with", "-1", True),
    ("contains", "/a-", True), ("regex", r"^PJSIP/\w-\d$", True), ("regex", "^Local", False),
])
def test_methods(method: str, value: str, matches: bool) -> None:
    found = parse_filter(f"header(Channel),method({method})", value)
    assert found.matches({"Event": "Hangup", "Channel": "PJSIP/a-1"}, "") is matches


@pytest.mark.parametrize(("criteria", "value"), [
    ("name(Hangup),header(Context)", "hotline-"),  # a value without a method: ambiguous
    ("action(allow),name(Hangup)", ""),
    ("name(Hangup),method(glob)", "x"),
    ("name(Hangup),name(Newchannel)", ""),
    ("name(Hangup),bogus", ""),
])
def test_unsupported_filters_are_refused(criteria: str, value: str) -> None:
    with pytest.raises(ValueError):
        parse_filter(criteria, value)


def test_legacy_filters_are_refused() -> None:
    with pytest.raises(ValueError, match="legacy"):
        parse_user("[u]\nread=all\neventfilter=Event: Newchannel\n")


def test_headers_keep_the_first_of_a_repeated_header() -> None:
    raw = "Event: Newchannel\r\nChanVariable: A=1\r\nChanVariable: B=2\r\nExten: 12355"
    assert headers_of(raw) == {"Event": "Newchannel", "ChanVariable": "A=1", "Exten": "12355"}


def test_the_recorder_user_is_rendered_for_benchmarks_only() -> None:
    ami = AmiSettings(secret="s3cret")
    normal = render_base_config(settings=AsteriskSettings(), ami=ami)["manager.conf"]
    assert "hotline-bench-recorder" not in normal
    bench = render_base_config(settings=AsteriskSettings(bench=True), ami=ami)["manager.conf"]
    recorder = parse_user(bench, section=1)
    assert recorder.name == "hotline-bench-recorder"
    assert recorder.read == {"all"} and recorder.filters == ()
    lines = [line.strip() for line in bench.split("[hotline-bench-recorder]", 1)[1].splitlines()]
    assert "deny = 0.0.0.0/0.0.0.0" in lines
    assert "permit = 127.0.0.1/255.255.255.255" in lines
    assert "write =" in lines  # may send no action that changes anything
