"""Multipart reassembly (any order, 8- and 16-bit references, duplicates, timeouts, emoji
split between parts) and AML text decoding (fuzzed: only AmlError escapes)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.gsm.sms.aml import AmlError, aml_text_of, parse_aml
from drivers.gsm.sms.concat import Reassembler
from drivers.gsm.sms.pdu import SmsDeliver, decode_pdu
from drivers.simulated.sms_deliver import aml_text, split_message
from gateway.events import PositioningMethod

NUMBER = "+6281234567890"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def parts_of(pdus: list[str]) -> list[SmsDeliver]:
    decoded = [decode_pdu(pdu) for pdu in pdus]
    assert all(isinstance(part, SmsDeliver) for part in decoded)
    return decoded  # type: ignore[return-value]


@pytest.mark.parametrize("sixteen_bit", [False, True])
@pytest.mark.parametrize("order", [[0, 1, 2], [2, 0, 1], [1, 2, 0]])
def test_parts_in_any_order_make_one_message(order, sixteen_bit):
    text = "Kecelakaan di jembatan Mahakam, dua mobil. " * 9
    parts = parts_of(split_message(NUMBER, text, reference=77, sixteen_bit=sixteen_bit))
    assert len(parts) == 3
    reassembler = Reassembler(60.0)
    results = [reassembler.add(parts[i], ("SM", i)) for i in order]

    assert results[:2] == [None, None]
    message = results[2]
    assert message is not None
    assert (message.text, message.parts, message.parts_missing) == (text, 3, ())
    assert sorted(message.locations) == [("SM", 0), ("SM", 1), ("SM", 2)]
    assert reassembler.waiting == 0


def test_an_emoji_split_between_two_ucs2_parts_comes_out_whole():
    text = "a" * 66 + "😀" + "b" * 10  # 134 octets per part: the pair straddles the cut
    pdus = split_message(NUMBER, text, encoding="ucs2", reference=5)
    parts = parts_of(pdus)
    assert len(parts) == 2
    assert parts[0].payload[-2:] == "😀".encode("utf-16-be")[:2]  # a lone high surrogate

    reassembler = Reassembler(60.0)
    assert reassembler.add(parts[1], ("SM", 1)) is None
    message = reassembler.add(parts[0], ("SM", 0))
    assert message is not None and message.text == text


def test_8_and_16_bit_references_with_the_same_number_are_different_messages():
    eight = parts_of(split_message(NUMBER, "x" * 200, reference=9))
    sixteen = parts_of(split_message(NUMBER, "y" * 200, reference=9, sixteen_bit=True))
    reassembler = Reassembler(60.0)
    assert reassembler.add(eight[0], ("SM", 0)) is None
    assert reassembler.add(sixteen[0], ("SM", 1)) is None
    assert reassembler.waiting == 2
    assert reassembler.add(eight[1], ("SM", 2)).text == "x" * 200  # type: ignore[union-attr]
    assert reassembler.add(sixteen[1], ("SM", 3)).text == "y" * 200  # type: ignore[union-attr]


def test_a_part_sent_twice_counts_once_and_both_copies_are_deleted():
    parts = parts_of(split_message(NUMBER, "z" * 200, reference=3))
    reassembler = Reassembler(60.0)
    assert reassembler.add(parts[0], ("SM", 0)) is None
    assert reassembler.add(parts[0], ("SM", 4)) is None
    message = reassembler.add(parts[1], ("SM", 1))
    assert message is not None and message.text == "z" * 200
    assert sorted(message.locations) == [("SM", 0), ("SM", 1), ("SM", 4)]


def test_a_missing_part_gives_a_partial_message_after_the_timeout():
    clock = Clock()
    parts = parts_of(split_message(NUMBER, "w" * 400, reference=12))
    reassembler = Reassembler(30.0, clock)
    reassembler.add(parts[0], ("SM", 0))
    reassembler.add(parts[2], ("SM", 2))
    clock.now = 29.0
    assert reassembler.expired() == []
    clock.now = 30.0
    (message,) = reassembler.expired()
    assert (message.parts, message.parts_missing) == (3, (2,))
    assert message.text == "w" * (153 * 2 - 153) + "w" * (400 - 306)
    assert reassembler.holds(("SM", 0)) is False


def test_the_fingerprint_is_the_same_when_the_parts_are_read_again():
    parts = parts_of(split_message(NUMBER, "v" * 200, reference=1))
    first = Reassembler(60.0)
    first.add(parts[1], ("SM", 1))
    second = Reassembler(60.0)
    second.add(parts[0], ("SM", 5))
    a = first.add(parts[0], ("SM", 0))
    b = second.add(parts[1], ("SM", 6))
    assert a is not None and b is not None and a.fingerprint == b.fingerprint


# AML --------------------------------------------------------------------------------

POSITIONED = datetime(2026, 12, 5, 1, 2, 3, tzinfo=UTC)


def test_a_full_aml_text():
    location = parse_aml(aml_text(positioned_at=POSITIONED))
    assert (location.latitude, location.longitude, location.radius_m) == (
        -0.50213,
        117.15368,
        12.0,
    )
    assert location.positioned_at == POSITIONED
    assert (location.confidence_pct, location.method) == (68, PositioningMethod.GNSS)
    assert (location.imsi, location.imei, location.mcc, location.mnc) == (
        "510101234567890",
        "3569820123456780",
        "510",
        "10",
    )
    assert location.version == "1"


def test_no_position_is_valid_with_pm_n():
    location = parse_aml('A"ML=1;lt=;lg=;rd=;top=20261205010203;lc=;pm=N;si=5101;ei=3569;ml=60')
    assert (location.latitude, location.longitude, location.method) == (
        None,
        None,
        PositioningMethod.NONE,
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("AML=1;lt=1", 'does not start with A"ML='),
        ('A"ML=;lt=1', "no version"),
        ('A"ML=1;lg=117.1;rd=5;pm=G', "lt is missing"),
        ('A"ML=1;lt=north;lg=117.1;pm=G', "lt='north' is not a number"),
        ('A"ML=1;lt=91.0;lg=117.1;pm=G', "outside"),
        ('A"ML=1;lt=1;lg=2;top=2026-12-05;pm=G', "not a time"),
        ('A"ML=1;lt=1;lg=2;lt=3;pm=G', "appears twice"),
        ('A"ML=1;lt=1;lg=2;pm=G;si=51O1', "si is not digits"),
        ('A"ML=1;lt=1;lg=2;pm', "has no '='"),
    ],
)
def test_malformed_aml_names_the_problem(text, problem):
    with pytest.raises(AmlError, match=problem):
        parse_aml(text)


def test_aml_in_a_data_sms():
    text = aml_text(positioned_at=POSITIONED)
    assert aml_text_of(None, text.encode("ascii")) == text
    assert aml_text_of(None, b"\xff\x00") is None
    assert aml_text_of("Halo", None) is None


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_aml_only_raises_aml_error(tail):
    with contextlib.suppress(AmlError):
        parse_aml('A"ML=1;' + tail)
