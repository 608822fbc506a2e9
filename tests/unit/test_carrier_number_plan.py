"""The simulated carrier's number plan (asterisk_conf/sandbox/carrier_uas.xml), read as XML.

The behaviour itself was checked against a real sipp; this keeps the plan's wiring intact:
each prefix is matched on the INVITE's Request-URI, jumped to, and leads to its response.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from hotline.asterisk.sandbox import CARRIER_SCENARIO

# prefix -> (the label its <nop test=...> jumps to, what that branch must do)
PLAN = {
    "1399486": ("busy", "SIP/2.0 486 Busy Here"),
    "1399404": ("not_found", "SIP/2.0 404 Not Found"),
    "1399480": ("no_answer", "SIP/2.0 487 Request Terminated"),
    "1399001": ("confirm", "dtmf_2833_1.pcap"),
    "1399002": ("speak", "g711a.pcap"),
}


def _scenario() -> ET.Element:
    return ET.parse(CARRIER_SCENARIO).getroot()


def _plan_variables(scenario: ET.Element) -> dict[str, str]:
    """prefix -> the variable its <ereg> on the first INVITE sets."""
    invite = next(r for r in scenario.findall("recv") if r.get("request") == "INVITE")
    found = {}
    for ereg in invite.iter("ereg"):
        match = re.fullmatch(r"\^INVITE sips\?:(\d+)", ereg.get("regexp", ""))
        if match:
            assert ereg.get("search_in") == "msg"
            assert ereg.get("check_it") == "false"
            found[match.group(1)] = ereg.get("assign_to", "")
    return found


def _branch_text(scenario: ET.Element, label: str) -> str:
    """What the scenario does from a label up to the next label (sends and execs)."""
    elements = list(scenario)
    start = next(i for i, e in enumerate(elements) if e.tag == "label" and e.get("id") == label)
    parts = []
    for element in elements[start + 1:]:
        if element.tag == "label":
            break
        parts.append(element.text or "")
        parts.extend(e.get("play_pcap_audio", "") for e in element.iter("exec"))
    return "\n".join(parts)


def test_every_prefix_is_matched_on_the_request_uri() -> None:
    assert set(_plan_variables(_scenario())) == set(PLAN)


@pytest.mark.parametrize("prefix", sorted(PLAN))
def test_each_prefix_jumps_to_its_behaviour(prefix: str) -> None:
    scenario = _scenario()
    variable = _plan_variables(scenario)[prefix]
    label, behaviour = PLAN[prefix]
    jumps = [n for n in scenario.findall("nop") if n.get("test") == variable]
    assert [n.get("next") for n in jumps] == [label]
    assert behaviour in _branch_text(scenario, label)


def test_the_regexps_pick_one_prefix_and_leave_other_numbers_alone() -> None:
    invite = next(r for r in _scenario().findall("recv") if r.get("request") == "INVITE")
    regexps = {
        prefix: ereg.get("regexp", "")
        for ereg in invite.iter("ereg")
        for prefix in PLAN
        if ereg.get("regexp", "").endswith(prefix)
    }
    assert set(regexps) == set(PLAN)
    for prefix in PLAN:
        request = f"INVITE sip:{prefix}0001@127.0.0.2:5070 SIP/2.0\r\nTo: <sip:13994860000@x>\r\n"
        assert [p for p, r in regexps.items() if re.search(r, request)] == [prefix]
    for number in ("110", "12345", "13800000003", "813994860001"):
        request = f"INVITE sip:{number}@127.0.0.2:5070 SIP/2.0\r\nTo: <sip:13994860001@x>\r\n"
        assert not any(re.search(r, request) for r in regexps.values())


def test_no_answer_gives_up_after_at_most_two_minutes() -> None:
    scenario = _scenario()
    cancel = next(r for r in scenario.findall("recv") if r.get("request") == "CANCEL")
    assert 0 < int(cancel.get("timeout", "0")) <= 120_000
    assert "SIP/2.0 480 " in _branch_text(scenario, cancel.get("ontimeout", ""))


def test_the_number_plan_is_documented_at_the_top() -> None:
    head = CARRIER_SCENARIO.read_text(encoding="iso-8859-1").split("<scenario", 1)[0]
    for prefix in PLAN:
        assert f"| {prefix}..." in head
    assert "| anything else" in head
