"""Caller numbers in one national form, however the carrier presented them."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.callers import CallerKind, CallerNumber, normalise_number

MOBILE = CallerNumber("13800000001", CallerKind.MOBILE)
BEIJING = CallerNumber("01012345678", CallerKind.LANDLINE)
SHANGHAI = CallerNumber("02112345678", CallerKind.LANDLINE)
SHENZHEN = CallerNumber("075512345678", CallerKind.LANDLINE)
HANGZHOU_7 = CallerNumber("05718765432", CallerKind.LANDLINE)


@pytest.mark.parametrize("raw", [
    "13800000001", "+8613800000001", "008613800000001", "8613800000001",
    "138-0000-0001", "138 0000 0001", "+86 138 0000 0001", "+86-138-0000-0001",
    "(+86) 138 0000 0001", "0086 138 0000 0001", " 13800000001 ", "tel:+8613800000001",
    "+86 138 0000 0001\r\n",
])
def test_mobile_numbers_in_every_form(raw):
    assert normalise_number(raw) == MOBILE


@pytest.mark.parametrize("prefix", ["13", "14", "15", "16", "17", "18", "19"])
def test_every_mobile_prefix(prefix):
    assert normalise_number(f"+86{prefix}012345678").kind is CallerKind.MOBILE


@pytest.mark.parametrize(("raw", "expected"), [
    ("010-12345678", BEIJING), ("01012345678", BEIJING), ("(010) 1234 5678", BEIJING),
    ("+86 10 1234 5678", BEIJING), ("+86 010 1234 5678", BEIJING), ("0086 10 12345678", BEIJING),
    ("+861012345678", BEIJING),
    ("021-12345678", SHANGHAI), ("+86 21 1234 5678", SHANGHAI), ("0086-21-12345678", SHANGHAI),
    ("0755-12345678", SHENZHEN), ("+86 755 1234 5678", SHENZHEN),
    ("+867551234 5678", SHENZHEN),
    ("0571-8765432", HANGZHOU_7), ("+86 571 8765432", HANGZHOU_7),
])
def test_landlines_with_and_without_the_country_code(raw, expected):
    assert normalise_number(raw) == expected


@pytest.mark.parametrize("raw", [
    "", " ", "anonymous", "Anonymous", "ANONYMOUS", "restricted", "Restricted", "unknown",
    "unavailable", "private", "withheld", "asterisk", "\tanonymous\r\n",
])
def test_withheld_numbers(raw):
    number = normalise_number(raw)
    assert number == CallerNumber("", CallerKind.WITHHELD)
    assert not number.dialable


@pytest.mark.parametrize("raw", ["110", "120", "119", "12355", "12345", "10086", "95555"])
def test_service_numbers(raw):
    number = normalise_number(raw)
    assert number == CallerNumber(raw, CallerKind.SERVICE)
    assert not number.dialable


@pytest.mark.parametrize(("raw", "expected"), [
    ("+86 12355", "12355"), ("+86110", "110"), ("0086 95555", "95555"),
])
def test_service_numbers_with_the_country_code_are_the_same_numbers(raw, expected):
    assert normalise_number(raw) == CallerNumber(expected, CallerKind.SERVICE)


@pytest.mark.parametrize(("raw", "expected"), [
    ("+1 415 555 0100", "+14155550100"),
    ("001 415 555 0100", "+14155550100"),
    ("+44 20 7946 0000", "+442079460000"),
    ("0044 20 7946 0000", "+442079460000"),
    ("+852 2123 4567", "+85221234567"),       # Hong Kong is not +86
    ("+853 2812 3456", "+85328123456"),       # Macao
    ("+886 2 2345 6789", "+886223456789"),    # Taiwan
    ("+683 4002", "+6834002"),                # a short one (Niue)
])
def test_international_numbers(raw, expected):
    number = normalise_number(raw)
    assert number == CallerNumber(expected, CallerKind.INTERNATIONAL)
    assert number.dialable


@pytest.mark.parametrize("raw", ["00", "001", "+0", "+0123456789", "+12", "0044",
                                 "+1234567890123456"])
def test_an_international_prefix_without_a_plausible_number_is_not_dialable(raw):
    number = normalise_number(raw)
    assert number.kind is CallerKind.UNKNOWN
    assert not number.dialable
    assert not number.number.startswith("+")


@pytest.mark.parametrize("raw", [
    "+", "+86", "0086", "1380000000", "138000000012", "12", "<unknown>", '"anonymous"',
    "１３８００００００００１", "٠١٢٣", "abc", "--", "null", "None",
])
def test_garbage_is_unknown_and_never_dialable(raw):
    number = normalise_number(raw)
    assert number.kind is CallerKind.UNKNOWN
    assert not number.dialable
    assert re.fullmatch(r"[0-9]*", number.number)


@pytest.mark.parametrize("raw", [
    "13800000001\r\nAGI: injected", '"13800000001"', "13800000001\x00", "📞 138 0000 0001",
    "'13800000001'", "138\\0000\\0001", "13800000001\u200b",
])
def test_control_characters_quotes_and_emoji_never_reach_the_number(raw):
    assert normalise_number(raw) == MOBILE


def test_dialable_kinds():
    assert MOBILE.dialable and BEIJING.dialable
    assert not CallerNumber("12355", CallerKind.SERVICE).dialable


NUMBER_TEXT = st.one_of(
    st.text(),
    st.text(alphabet="0123456789+-() \r\n\t\"'<>;@:*#", max_size=30),
    st.from_regex(r"\A(\+|00)?(86)?[0-9 -]{0,20}\Z"),
)


@settings(max_examples=300, deadline=None)
@given(NUMBER_TEXT)
def test_any_text_gives_a_clean_number_without_an_exception(raw):
    number = normalise_number(raw)
    assert re.fullmatch(r"\+?[0-9]*", number.number)
    assert "\r" not in number.number and "\n" not in number.number
    if number.kind is CallerKind.WITHHELD:
        assert number.number == ""
    if number.dialable:
        assert re.fullmatch(r"1[3-9][0-9]{9}|0[1-9][0-9]{8,10}|\+[1-9][0-9]{6,14}",
                            number.number)
    if number.number.startswith("+"):
        assert number.kind is CallerKind.INTERNATIONAL
        assert not number.number.startswith("+86")


@settings(max_examples=300, deadline=None)
@given(NUMBER_TEXT)
def test_a_normalised_known_number_normalises_to_itself(raw):
    # Flags are stored normalised and read back through normalise_number again.
    number = normalise_number(raw)
    if number.kind in (CallerKind.MOBILE, CallerKind.LANDLINE, CallerKind.SERVICE,
                       CallerKind.INTERNATIONAL):
        assert normalise_number(number.number) == number


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"\A1[3-9][0-9]{9}\Z"),
       st.sampled_from(["", "+86", "0086", "86", "+86 ", "0086-", "(+86)"]),
       st.sampled_from(["", "-", " "]))
def test_a_mobile_is_the_same_number_in_every_presentation(mobile, prefix, separator):
    raw = prefix + separator.join((mobile[:3], mobile[3:7], mobile[7:]))
    assert normalise_number(raw) == CallerNumber(mobile, CallerKind.MOBILE)
