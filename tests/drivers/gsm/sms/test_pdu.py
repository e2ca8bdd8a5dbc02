"""SMS PDU decoding: literal PDUs, python-gsmmodem-new as the reference where it is sound,
its known faults shown, and every broken PDU a named PduError (fuzzed)."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta, timezone

import pytest
from gsmmodem.pdu import decodeSmsPdu
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.gsm.sms.pdu import PduError, SmsDeliver, SmsStatusReport, decode_pdu
from drivers.simulated.sms_deliver import (
    WIB,
    Concatenation,
    encode_deliver,
    encode_status_report,
    split_message,
)
from gateway.events import SmsEncoding

NUMBER = "+6281234567890"
SENT = datetime(2026, 12, 5, 8, 30, 15, tzinfo=WIB)


def deliver(pdu: str) -> SmsDeliver:
    decoded = decode_pdu(pdu)
    assert isinstance(decoded, SmsDeliver)
    return decoded


@pytest.mark.parametrize(
    "text",
    ["Tolong ada kecelakaan di Jl. Ahmad Yani", "", "x" * 160, "Harga {10€} [a|b] ~^\\", "@£$¥"],
)
def test_gsm7_single_part_matches_the_reference_codec(text):
    pdu = encode_deliver(NUMBER, text=text, sent_at=SENT)
    ours, reference = deliver(pdu), decodeSmsPdu(pdu)

    assert ours.text == reference["text"] == text
    assert ours.sender == reference["number"] == NUMBER
    assert ours.smsc == reference["smsc"]
    assert ours.timestamp == reference["time"] == SENT
    assert ours.encoding is SmsEncoding.GSM7 and ours.concatenation is None


def test_ucs2_in_the_basic_plane_matches_the_reference_codec():
    pdu = encode_deliver(NUMBER, text="Tolong! Здравствуйте 你好", encoding="ucs2", sent_at=SENT)
    assert deliver(pdu).text == decodeSmsPdu(pdu)["text"] == "Tolong! Здравствуйте 你好"


def test_an_emoji_is_whole_where_the_reference_codec_gives_surrogate_halves():
    pdu = encode_deliver(NUMBER, text="Tolong 😀🚑", encoding="ucs2", sent_at=SENT)
    assert deliver(pdu).text == "Tolong 😀🚑"
    assert decodeSmsPdu(pdu)["text"] == "Tolong \ud83d\ude00\ud83d\ude91"  # its known fault


def test_gsm7_after_a_concatenation_header_skips_the_right_fill_bits():
    # 6 header octets = 48 bits: 1 fill bit to the septet boundary; 'A' (0x41) << 1 = 0x82.
    pdu = encode_deliver(NUMBER, text="A", concat=Concatenation(0xCC, 2, 1), sent_at=SENT)
    assert pdu.endswith("08050003CC020182")
    part = deliver(pdu)
    assert part.text == "A"
    assert part.concatenation is not None
    assert (part.concatenation.reference, part.concatenation.total) == (0xCC, 2)
    assert (part.concatenation.sequence, part.concatenation.reference_bits) == (1, 8)
    assert decodeSmsPdu(pdu)["text"] == "A"  # the reference agrees for the 6-octet header


def test_gsm7_after_a_sixteen_bit_header_where_the_reference_codec_fails():
    # 7 header octets = 56 bits: no fill bit; the reference codec skips one all the same.
    text = "Tolong kirim ambulans"
    pdu = encode_deliver(
        NUMBER, text=text, concat=Concatenation(0x1234, 2, 1, sixteen_bit=True), sent_at=SENT
    )
    assert deliver(pdu).text == text
    assert decodeSmsPdu(pdu)["text"] != text  # its known fault


def test_sixteen_bit_references_and_ports():
    pdu = encode_deliver(
        NUMBER, text="B", concat=Concatenation(0x1234, 3, 2, sixteen_bit=True), sent_at=SENT
    )
    part = deliver(pdu)
    assert part.text == "B"
    assert part.concatenation is not None
    assert (part.concatenation.reference, part.concatenation.reference_bits) == (0x1234, 16)

    data = deliver(encode_deliver(NUMBER, data=b"\x00\xffAML", encoding="8bit", port=9200))
    assert (data.encoding, data.payload, data.destination_port, data.text) == (
        SmsEncoding.DATA_8BIT,
        b"\x00\xffAML",
        9200,
        None,
    )


def test_alphanumeric_sender_and_zones():
    west = timezone(timedelta(hours=-3, minutes=-30))
    message = deliver(encode_deliver("TELKOMSEL", text="Info", sent_at=SENT.astimezone(west)))
    assert message.sender == "TELKOMSEL"
    assert message.timestamp.utcoffset() == timedelta(hours=-3, minutes=-30)
    assert message.timestamp == SENT


@pytest.mark.parametrize(
    ("dcs", "encoding"),
    [
        ("00", "gsm7"),
        ("11", "gsm7"),
        ("F0", "gsm7"),
        ("F4", "8bit"),
        ("08", "ucs2"),
        ("18", "ucs2"),
        ("04", "8bit"),
        ("C0", "gsm7"),
        ("E0", "ucs2"),
    ],
)
def test_data_coding_groups(dcs, encoding):
    pdu = encode_deliver(NUMBER, text="", sent_at=SENT)
    octets = bytearray.fromhex(pdu)
    sender_at = 1 + octets[0] + 1  # SMSC field, first octet
    dcs_at = sender_at + 2 + (octets[sender_at] + 1) // 2 + 1  # sender, PID
    octets[dcs_at] = int(dcs, 16)
    patched = octets.hex()
    assert deliver(patched).encoding.value == encoding


def test_status_reports_are_decoded_with_the_reference_codec():
    report = decode_pdu(encode_status_report(NUMBER, reference=7, status=0, sent_at=SENT))
    assert isinstance(report, SmsStatusReport)
    assert (report.reference, report.recipient, report.status) == (7, NUMBER, 0)


@pytest.mark.parametrize(
    ("pdu", "problem"),
    [
        ("", "empty"),
        ("zz", "not hex"),
        ("0791", "truncated in the SMSC"),
        ("00", "truncated in the first octet"),
        ("0001", "not an SMS-DELIVER"),
        ("00040D91", "truncated in the originating address"),
        (
            "00040D91261832547698F00000" + "62215080035182" + "0A" + "C8",
            "truncated in the user data",
        ),
        ("00040D91261832547698F00000" + "6A215080035182" + "00", "not BCD"),
        ("00040D91261832547698F00000" + "62215080035182" + "FF" + "00", "more than 140"),
        ("00440D91261832547698F00008" + "62215080035182" + "02" + "0800", "longer than the user"),
        ("00040D91261832547698F00020" + "62215080035182" + "00", "compressed"),
    ],
)
def test_broken_pdus_name_their_problem(pdu, problem):
    with pytest.raises(PduError, match=problem):
        decode_pdu(pdu)


def test_every_truncation_of_a_valid_pdu_is_a_pdu_error():
    pdus = split_message(NUMBER, "Tolong 😀 " * 20, encoding="ucs2")
    pdus.append(encode_deliver("TELKOMSEL", text="x" * 100, concat=Concatenation(9, 2, 1)))
    for pdu in pdus:
        for cut in range(0, len(pdu) - 2, 2):
            with pytest.raises(PduError):
                decode_pdu(pdu[:cut])


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=180))
def test_fuzz_random_octets_never_escape_as_anything_but_pdu_error(data):
    with contextlib.suppress(PduError):
        decode_pdu(data.hex())


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 200), st.integers(0, 255))
def test_fuzz_one_changed_octet_of_a_valid_pdu(position, value):
    pdu = bytearray.fromhex(
        encode_deliver(NUMBER, text="Tolong 112", concat=Concatenation(3, 2, 1), sent_at=SENT)
    )
    pdu[position % len(pdu)] = value
    try:
        decoded = decode_pdu(pdu.hex())
    except PduError:
        return
    if isinstance(decoded, SmsDeliver):
        assert isinstance(decoded.text, str | None)
