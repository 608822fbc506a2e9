"""Transfers, the pure parts: dial codes, what a dialled code means, the API body, and which
channel of a call transfers."""

import pytest
from pydantic import ValidationError

from hotline.calls.transfers import (
    CallChannel,
    Destination,
    NotTransferable,
    TransferIn,
    describe,
    endpoint_of,
    exten_of_local_channel,
    external_code,
    is_extension,
    queue_codes,
    transfer_context,
    transferer,
)

LINKEDID = "1795952558.0"
CALLER = CallChannel("PJSIP/carrier-00000000", LINKEDID, LINKEDID, "bridge-1")
COUNSELLORS = {"c1001", "c1002", "c1003"}


def test_queue_codes_follow_the_menu_digits_first_queue_of_each_kind():
    codes = queue_codes([("crisis", "crisis"), ("psych", "psych"), ("legal", "legal"),
                         ("duty", "duty"), ("psych-night", "psych"), ("x", "unknown")])
    assert codes == {"73": "crisis", "71": "psych", "72": "legal", "70": "duty"}


def test_outside_lines_are_9_and_their_code_digits_only():
    assert external_code("1") == "91"
    assert external_code("12") == "912"
    for bad in ("", "1a", "1;Dial", "+1", "1 2"):
        with pytest.raises(ValueError):
            external_code(bad)


@pytest.mark.parametrize(("extension", "dialable"), [
    ("1002", True), ("8001", True), ("12", True),
    ("7001", False), ("9001", False), ("", False), ("10a2", False), ("_X.", False),
])
def test_colleague_extensions_are_digits_outside_the_code_prefixes(extension, dialable):
    assert is_extension(extension) is dialable


@pytest.mark.parametrize(("exten", "meaning"), [
    ("70", Destination("queue", "duty")),
    ("71", Destination("queue", "psych")),
    ("72", Destination("queue", "legal")),
    ("73", Destination("queue", "crisis")),
    ("74", None),
    ("7", None),
    ("91", Destination("external", "1")),
    ("912", Destination("external", "12")),
    ("9", None),
    ("1002", Destination("counsellor", "1002")),
    ("failed", None),
    ("", None),
])
def test_what_a_dialled_code_means(exten, meaning):
    assert describe(exten) == meaning


def test_channel_names():
    assert exten_of_local_channel("Local/1002@hotline-transfer-default-00000000;1") == "1002"
    assert exten_of_local_channel("PJSIP/c1002-00000001") is None
    assert exten_of_local_channel("") is None
    assert endpoint_of("PJSIP/c1002-0000000a") == "c1002"
    assert endpoint_of("PJSIP/carrier-00000003") == "carrier"
    assert endpoint_of("PJSIP/team-a-0000000b") == "team-a"
    assert endpoint_of("Local/1002@x-1;1") is None
    assert endpoint_of("PJSIP/c1002") is None
    assert transfer_context("default") == "hotline-transfer-default"


def test_the_counsellor_bridged_with_the_caller_transfers():
    ringing = CallChannel("PJSIP/c1003-00000002", "2.2", LINKEDID, "")
    talking = CallChannel("PJSIP/c1002-00000001", "2.1", LINKEDID, "bridge-1")
    other_call = CallChannel("PJSIP/c1001-00000009", "3.1", "3.0", "bridge-9")
    channels = [CALLER, ringing, other_call, talking]
    assert transferer(channels, LINKEDID, COUNSELLORS) == talking
    assert transferer(channels, LINKEDID, COUNSELLORS, only="c1002") == talking
    with pytest.raises(NotTransferable, match="you are not talking"):
        transferer(channels, LINKEDID, COUNSELLORS, only="c1003")


@pytest.mark.parametrize(("channels", "reason"), [
    ([], "not live"),
    ([CallChannel("PJSIP/carrier-00000000", LINKEDID, LINKEDID, "")], "not talking to anyone"),
    # the on-call phone through the carrier is not a counsellor's channel
    ([CALLER, CallChannel("PJSIP/carrier-00000004", "2.4", LINKEDID, "bridge-1")],
     "no counsellor"),
    # during an attended transfer the caller waits alone on hold
    ([CALLER, CallChannel("PJSIP/c1002-00000001", "2.1", LINKEDID, "bridge-2")],
     "no counsellor"),
])
def test_no_transferer(channels, reason):
    with pytest.raises(NotTransferable, match=reason):
        transferer(channels, LINKEDID, COUNSELLORS)


def test_transfer_body():
    body = TransferIn.model_validate({"mode": "blind", "to": {"kind": "queue",
                                                               "target": "psych"}})
    assert (body.mode, body.to.kind, body.to.target) == ("blind", "queue", "psych")
    assert TransferIn.model_validate(
        {"mode": "attended", "to": {"kind": "counsellor", "target": "1002"}}).to.target == "1002"
    assert TransferIn.model_validate(
        {"mode": "blind", "to": {"kind": "external", "target": "1"}}).to.kind == "external"


@pytest.mark.parametrize("body", [
    {},
    {"mode": "blind"},
    {"mode": "sideways", "to": {"kind": "queue", "target": "psych"}},
    {"mode": "blind", "to": {"kind": "mobile", "target": "13800000000"}},
    {"mode": "blind", "to": {"kind": "queue", "target": ""}},
    {"mode": "blind", "to": {"kind": "queue", "target": "psych,1"}},
    {"mode": "blind", "to": {"kind": "counsellor", "target": "c1002"}},
    {"mode": "blind", "to": {"kind": "external", "target": "1\r\nAction: Originate"}},
    {"mode": "blind", "to": {"kind": "external", "target": "13800000000", "number": "110"}},
    {"mode": "blind", "to": {"kind": "external", "target": "1"}, "channel": "PJSIP/x"},
    [],
    "blind",
])
def test_malformed_transfer_bodies_are_refused(body):
    with pytest.raises(ValidationError):
        TransferIn.model_validate(body)
