"""Q.931: literal EuroISDN messages octet by octet, codeset shifts, typed errors, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.e1.q931 import (
    CallReference,
    MessageType,
    Q931Message,
    Variant,
    decode_message,
)
from drivers.e1.q931_codes import (
    CauseValue,
    Location,
    NumberingPlan,
    Presentation,
    Q931Error,
    Q931Problem,
    RestartClass,
    Screening,
    TypeOfNumber,
)
from drivers.e1.q931_ie import (
    BearerCapability,
    CalledPartyNumber,
    CallingPartyNumber,
    CallState,
    Cause,
    ChannelIdentification,
    CongestionLevel,
    DateTime,
    Display,
    InformationElement,
    MoreData,
    ProgressIndicator,
    RawIe,
    RedirectingNumber,
    RepeatIndicator,
    RestartIndicator,
    SendingComplete,
    Shift,
    octet_groups,
)


def hexes(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts))


# A SETUP from the PSTN to a 112 centre over a EuroISDN PRI, in the shape Indonesian
# switches send it (and libpri logs it): a mobile caller, national number, 112 called.
SETUP = hexes(
    "08",  # protocol discriminator: Q.931
    "02",  # call reference: 2 octets
    "0005",  # flag 0 (from the side that allocated it: the network), value 5
    "05",  # message type: SETUP
    "a1",  # sending complete (single octet, codeset 0)
    "04 03",  # bearer capability, 3 octets
    "80",  #   ext 1, coding ITU-T, information transfer capability: speech
    "90",  #   ext 1, circuit mode, 64 kbit/s
    "a3",  #   ext 1, layer 1 id, user information layer 1: G.711 A-law
    "18 03",  # channel identification, 3 octets
    "a9",  #   ext 1, no interface id, PRI, exclusive, not the D-channel, as indicated
    "83",  #   ext 1, coding ITU-T, channel number (not a map), B-channel units
    "81",  #   ext 1 (last), channel 1
    "1e 02",  # progress indicator, 2 octets
    "82",  #   ext 1, coding ITU-T, location: public network serving the local user
    "83",  #   ext 1, description 3: origination address is non-ISDN
    "6c 0c",  # calling party number, 12 octets
    "21",  #   ext 0 (3a follows), type national, plan ISDN/E.164
    "83",  #   ext 1, presentation allowed, screening: network provided
    "38 31 32 33 34 35 36 37 38 39",  # IA5 digits 8123456789
    "70 04",  # called party number, 4 octets
    "81",  #   ext 1, type unknown, plan ISDN/E.164
    "31 31 32",  # IA5 digits 112
)

# The answer: DISCONNECT from the centre's PBX (user side), flag 1 (to the originator),
# cause 17 user busy, location user; then RELEASE COMPLETE with normal clearing.
DISCONNECT_BUSY = hexes("08 02 8005 45", "08 02 80 91")
RELEASE_COMPLETE = hexes("08 02 0005 5a", "08 02 82 90")
# RESTART of channel 1 on the global call reference 0, and STATUS with cause 30.
RESTART = hexes("08 02 0000 46", "18 03 a9 83 81", "79 01 80")
STATUS = hexes("08 02 8005 7d", "08 02 80 9e", "14 01 0a")


def test_the_literal_setup() -> None:
    message = decode_message(SETUP)
    assert message.message_type is MessageType.SETUP
    assert message.name == "SETUP"
    assert message.call_reference == CallReference(5, 0, 2)
    assert message.call_reference.from_originator
    assert message.sending_complete
    assert message.bearer_capability == BearerCapability()  # speech, 64k, A-law
    channel = message.channel_identification
    assert channel is not None
    assert (channel.channel, channel.exclusive, channel.primary_rate) == (1, True, True)
    assert message.progress_indicator == ProgressIndicator(3, Location.PUBLIC_NETWORK_LOCAL_USER)
    calling = message.calling_party_number
    assert calling == CallingPartyNumber(
        "8123456789",
        TypeOfNumber.NATIONAL,
        NumberingPlan.ISDN,
        Presentation.ALLOWED,
        Screening.NETWORK_PROVIDED,
    )
    assert message.called_party_number == CalledPartyNumber("112", 0, 1)
    assert message.cause is None and message.display is None
    assert message.to_bytes() == SETUP
    assert Q931Message.from_bytes(bytearray(SETUP)) == message


def test_clearing_restart_and_status_literals() -> None:
    busy = decode_message(DISCONNECT_BUSY)
    assert busy.message_type is MessageType.DISCONNECT
    assert busy.call_reference == CallReference(5, 1, 2)
    assert not busy.call_reference.from_originator
    assert busy.cause == Cause(CauseValue.USER_BUSY, Location.USER)
    complete = decode_message(RELEASE_COMPLETE)
    assert complete.cause == Cause(16, Location.PUBLIC_NETWORK_LOCAL_USER)
    restart = decode_message(RESTART)
    assert restart.call_reference.is_global
    assert restart.restart_indicator == RestartIndicator(RestartClass.INDICATED_CHANNELS)
    status = decode_message(STATUS)
    assert status.cause is not None
    assert status.cause.value == CauseValue.RESPONSE_TO_STATUS_ENQUIRY
    assert status.call_state == CallState(10)
    for raw in (DISCONNECT_BUSY, RELEASE_COMPLETE, RESTART, STATUS):
        assert decode_message(raw).to_bytes() == raw


def test_call_references() -> None:
    dummy = decode_message(hexes("08 00 62", "1c 02 91 a1"))  # FACILITY, dummy CR
    assert dummy.call_reference.is_dummy and not dummy.call_reference.is_global
    assert dummy.elements(RawIe) == [RawIe(0, 0x1C, b"\x91\xa1")]  # facility: kept raw
    bri = decode_message(hexes("08 01 81 07"))  # CONNECT, 1-octet CR (BRI), flag 1
    assert bri.call_reference == CallReference(1, 1, 1)
    assert decode_message(hexes("08 02 ffff 5a")).call_reference == CallReference(0x7FFF, 1)
    assert CallReference(0, 1, 2).is_global
    for reference in (CallReference(0, 0, 0), CallReference(127, 1, 1), CallReference(1234)):
        assert decode_message(Q931Message(1, reference).to_bytes()).call_reference == reference


def test_every_message_type_the_tap_needs_round_trips() -> None:
    required = [
        "SETUP", "SETUP_ACKNOWLEDGE", "CALL_PROCEEDING", "ALERTING", "PROGRESS", "CONNECT",
        "CONNECT_ACKNOWLEDGE", "INFORMATION", "DISCONNECT", "RELEASE", "RELEASE_COMPLETE",
        "STATUS", "STATUS_ENQUIRY", "RESTART", "RESTART_ACKNOWLEDGE", "FACILITY", "NOTIFY",
    ]  # fmt: skip
    for name in required:
        message = Q931Message(MessageType[name], CallReference(42, 1))
        decoded = decode_message(message.to_bytes())
        assert decoded == message and decoded.message_type is MessageType[name]
    unknown = decode_message(hexes("08 02 0001 7a"))
    assert unknown.message_type == 0x7A and unknown.name == "unknown message type 0x7A"
    escape = decode_message(hexes("08 02 0001 00 99"))
    assert (escape.message_type, escape.national_message_type) == (MessageType.ESCAPE, 0x99)
    assert escape.to_bytes() == hexes("08 02 0001 00 99")


# -- codesets ---------------------------------------------------------------------------


def test_a_codeset_6_element_after_a_locking_shift_is_not_codeset_0() -> None:
    raw = hexes(
        "08 02 8005 45",
        "08 02 80 90",  # cause (codeset 0)
        "96",  # locking shift to codeset 6 (local network specific)
        "28 05 68 65 6c 6c 6f",  # 0x28 of codeset 6: "hello" -- NOT a codeset 0 Display
        "08 02 80 91",  # 0x08 of codeset 6: NOT a second cause
        "a1",  # 0xA1 of codeset 6: NOT sending complete
    )
    message = decode_message(raw)
    assert message.display is None
    assert message.elements(Cause) == [Cause(16)]
    assert not message.sending_complete
    assert message.information_elements[1:] == (
        Shift(6, locking=True),
        RawIe(6, 0x28, b"hello"),
        RawIe(6, 0x08, b"\x80\x91"),
        RawIe(6, 0xA1),
    )
    assert message.to_bytes() == raw


def test_a_non_locking_shift_affects_only_the_next_element() -> None:
    raw = hexes(
        "08 02 0005 05",
        "9e",  # non-locking shift to codeset 6
        "28 03 61 62 63",  # codeset 6: "abc"
        "28 03 78 79 7a",  # back in codeset 0: Display "xyz"
        "9d 32 01 85",  # non-locking to codeset 5: ETSI party category 0x32
        "a1",  # codeset 0 again: sending complete
    )
    message = decode_message(raw)
    assert message.information_elements == (
        Shift(6, locking=False),
        RawIe(6, 0x28, b"abc"),
        Display("xyz"),
        Shift(5, locking=False),
        RawIe(5, 0x32, b"\x85"),
        SendingComplete(),
    )
    assert message.display == Display("xyz")
    assert message.to_bytes() == raw


def test_a_non_locking_shift_inside_a_locked_codeset_returns_to_the_locked_one() -> None:
    raw = hexes("08 02 0005 05", "95", "9e 28 01 61", "28 01 62", "9f 28 01 63", "28 01 64")
    elements = decode_message(raw).information_elements
    codesets = [(e.codeset, e.contents()) for e in elements if not isinstance(e, Shift)]
    assert codesets == [(6, b"a"), (5, b"b"), (7, b"c"), (5, b"d")]


def test_the_encoder_shifts_for_elements_of_other_codesets() -> None:
    message = Q931Message(
        MessageType.SETUP,
        CallReference(1),
        (RawIe(5, 0x32, b"\x85"), Display("ok"), RawIe(6, 0xA3)),
    )
    raw = message.to_bytes()
    assert raw == hexes("08 02 0001 05", "9d 32 01 85", "28 02 6f 6b", "9e a3")
    assert decode_message(raw).display == Display("ok")


def test_single_octet_elements_of_codeset_0() -> None:
    raw = hexes("08 02 0001 7b", "a0 b3 d2 a5")
    assert decode_message(raw).information_elements == (
        MoreData(),
        CongestionLevel(3),
        RepeatIndicator(2),
        RawIe(0, 0xA5),  # unknown type-2 single octet element
    )
    assert decode_message(raw).to_bytes() == raw


# -- elements ---------------------------------------------------------------------------


def test_redirecting_number_with_presentation_and_reason() -> None:
    # ISDN plan (ext 0); 3a: restricted, network provided (ext 0); 3b: unconditional (ext 1)
    contents = hexes("01 23 8f", "30 32 31")
    number = RedirectingNumber.from_contents(contents)
    assert number == RedirectingNumber("021", 0, 1, Presentation.RESTRICTED, 3, reason=15)
    assert number.contents() == contents
    bare = RedirectingNumber.from_contents(hexes("a1 35"))
    assert (bare.type_of_number, bare.presentation, bare.reason, bare.digits) == (
        2,
        None,
        None,
        "5",
    )


def test_withheld_caller_without_digits() -> None:
    number = CallingPartyNumber.from_contents(hexes("00 a3"))  # restricted, no digits
    assert (number.digits, number.presentation, number.screening) == ("", 1, 3)


def test_bearer_capability_multirate_and_layers() -> None:
    # unrestricted digital; circuit, multirate; x6; layer 1 V.110; layer 2 Q.921; layer 3 X.25
    contents = hexes("88 98 86 a1 c2 e6")
    bearer = BearerCapability.from_contents(contents)
    assert (bearer.transfer_capability, bearer.transfer_rate, bearer.rate_multiplier) == (8, 24, 6)
    assert (bearer.layer1_protocol, bearer.layer2_protocol, bearer.layer3_protocol) == (1, 2, 6)
    assert bearer.contents() == contents
    audio = BearerCapability.from_contents(hexes("90 90 a3"))  # 3.1 kHz audio, A-law
    assert audio.transfer_capability == 0x10 and audio.layer1_protocol == 3


def test_channel_identification_forms() -> None:
    preferred = ChannelIdentification.from_contents(hexes("a1 83 8f"))
    assert (preferred.channel, preferred.exclusive) == (15, False)
    several = ChannelIdentification.from_contents(hexes("a1 83 01 02 83"))
    assert several.channels == (1, 2, 3)
    slot_map = ChannelIdentification.from_contents(hexes("a1 93 00 00 06"))
    assert slot_map.slot_map == b"\x00\x00\x06" and slot_map.channel is None
    with_interface = ChannelIdentification.from_contents(hexes("e9 81 83 90"))
    assert (with_interface.interface_identifier, with_interface.channel) == (b"\x81", 16)
    any_channel = ChannelIdentification.from_contents(hexes("a3"))
    assert any_channel.selection == 3 and any_channel.channel is None
    bri = ChannelIdentification.from_contents(hexes("8a"))  # basic rate, exclusive, B2
    assert (bri.primary_rate, bri.channel) == (False, 2)
    d_channel = ChannelIdentification.from_contents(hexes("ac"))
    assert d_channel.d_channel
    for element in (preferred, several, slot_map, with_interface, any_channel, bri, d_channel):
        assert type(element).from_contents(element.contents()) == element


def test_date_time_and_display() -> None:
    assert DateTime.from_contents(hexes("1a 0c 1f 17 3b")) == DateTime(26, 12, 31, 23, 59)
    assert DateTime(26, 1, 2).contents() == hexes("1a 01 02")
    assert Display.from_contents(b"PANGGILAN 112").text == "PANGGILAN 112"


def test_cause_with_recommendation_and_diagnostics() -> None:
    cause = Cause.from_contents(hexes("03 80 a2 01 02"))  # transit network, Q.931, 34
    assert (cause.location, cause.recommendation, cause.value) == (3, 0, 34)
    assert cause.diagnostics == b"\x01\x02"
    assert cause.contents() == hexes("03 80 a2 01 02")


def test_octet_groups() -> None:
    assert octet_groups(hexes("21 83 38")) == [b"\x21\x83", b"\x38"]
    assert octet_groups(b"") == []


# -- malformed input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", Q931Problem.TRUNCATED_MESSAGE),
        ("09 02 0001 05", Q931Problem.BAD_PROTOCOL_DISCRIMINATOR),  # Q.2931
        ("41 02 0001 05", Q931Problem.BAD_PROTOCOL_DISCRIMINATOR),  # 1TR6
        ("08", Q931Problem.TRUNCATED_MESSAGE),
        ("08 12 0001 05", Q931Problem.BAD_CALL_REFERENCE),  # spare bits
        ("08 03 000001 05", Q931Problem.BAD_CALL_REFERENCE),  # 3 octets
        ("08 02 00", Q931Problem.TRUNCATED_MESSAGE),
        ("08 02 0001", Q931Problem.TRUNCATED_MESSAGE),
        ("08 02 0001 00", Q931Problem.TRUNCATED_MESSAGE),  # escape without its type
        ("08 02 0001 05 04", Q931Problem.TRUNCATED_IE),
        ("08 02 0001 05 04 03 80 90", Q931Problem.BAD_IE_LENGTH),
        ("08 02 0001 05 a1 96 28 09 61", Q931Problem.BAD_IE_LENGTH),  # in codeset 6 too
    ],
)
def test_broken_framing_names_the_problem(raw: str, problem: Q931Problem) -> None:
    with pytest.raises(Q931Error) as caught:
        decode_message(bytes.fromhex(raw))
    assert caught.value.problem is problem
    assert caught.value.offset is not None


def test_a_bad_known_element_is_kept_raw_unless_strict() -> None:
    raw = hexes("08 02 8005 45", "08 01 80", "1e 00", "18 02 a9 83")
    message = decode_message(raw)
    assert [(e.identifier, e.problem) for e in message.elements(RawIe)] == [
        (0x08, Q931Problem.BAD_IE_CONTENTS),
        (0x1E, Q931Problem.BAD_IE_CONTENTS),
        (0x18, Q931Problem.BAD_IE_CONTENTS),
    ]
    assert message.cause is None
    assert message.to_bytes() == raw
    with pytest.raises(Q931Error, match=r"bad_ie_contents at octet 5: .*cause"):
        decode_message(raw, strict=True)


def test_building_out_of_range_is_refused() -> None:
    with pytest.raises(Q931Error) as caught:
        CallReference(0x8000)
    assert caught.value.problem is Q931Problem.FIELD_OUT_OF_RANGE
    with pytest.raises(Q931Error):
        Cause(200).contents()
    with pytest.raises(Q931Error):
        Q931Message(0x100).to_bytes()


def test_the_variant_is_configurable() -> None:
    assert decode_message(SETUP, Variant.ITU_T) == decode_message(SETUP, Variant.ETSI)
    assert Variant("etsi") is Variant.ETSI


# -- round trips ------------------------------------------------------------------------

DIGITS = st.text(alphabet="0123456789*#", max_size=20)
OPTIONAL_2_BITS = st.none() | st.integers(0, 3)
ELEMENTS: st.SearchStrategy[InformationElement] = st.one_of(
    st.builds(
        BearerCapability,
        st.sampled_from([0, 8, 9, 0x10, 0x11]),
        st.integers(0, 3),
        st.sampled_from([0x10, 0x11, 0x13, 0x15, 0x17]),
        st.integers(0, 3),
        st.none(),
        st.none() | st.integers(0, 31),
    ),
    st.builds(
        Cause,
        st.integers(0, 127),
        st.integers(0, 15),
        st.integers(0, 3),
        st.none() | st.integers(0, 127),
        st.binary(max_size=4),
    ),
    st.builds(CallState, st.integers(0, 63), st.integers(0, 3)),
    st.builds(
        ChannelIdentification,
        st.lists(st.integers(1, 31), min_size=1, max_size=3).map(tuple),
        st.booleans(),
    ),
    st.builds(ProgressIndicator, st.integers(0, 127), st.integers(0, 15), st.integers(0, 3)),
    st.builds(Display, st.text(alphabet="ABCDEFGHIJ 0123456789", max_size=30)),
    st.builds(
        lambda digits, ton, plan, pres: CallingPartyNumber(digits, ton, plan, *pres),
        DIGITS,
        st.integers(0, 7),
        st.integers(0, 15),
        st.one_of(st.just((None, None)), st.tuples(st.integers(0, 3), st.integers(0, 3))),
    ),
    st.builds(CalledPartyNumber, DIGITS, st.integers(0, 7), st.integers(0, 15)),
    st.builds(
        lambda digits, pres, screen, reason: RedirectingNumber(
            digits, 0, 1, pres, screen, reason=reason
        ),
        DIGITS,
        st.integers(0, 3),
        st.integers(0, 3),
        st.none() | st.integers(0, 15),
    ),
    st.builds(RestartIndicator, st.sampled_from([0, 6, 7])),
    st.just(SendingComplete()),
    st.builds(DateTime, st.integers(0, 99), st.integers(1, 12), st.integers(1, 31)),
    st.builds(RawIe, st.just(0), st.sampled_from([0x1C, 0x7E, 0x27]), st.binary(max_size=8)),
)


@settings(deadline=None)
@given(
    st.sampled_from(MessageType),
    st.integers(0, 0x7FFF),
    st.integers(0, 1),
    st.lists(ELEMENTS, max_size=8),
)
def test_messages_round_trip(
    message_type: MessageType, value: int, flag: int, elements: list[InformationElement]
) -> None:
    message = Q931Message(
        message_type,
        CallReference(value, flag),
        tuple(elements),
        national_message_type=0x11 if message_type is MessageType.ESCAPE else None,
    )
    assert decode_message(message.to_bytes(), strict=True) == message
