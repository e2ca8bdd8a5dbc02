"""Q.921 LAPD: literal frames, round trips, typed errors, and the passive link tracker."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.e1.lapd import (
    MODULUS,
    N200,
    SAPI_MANAGEMENT,
    T200,
    T203,
    TEI_GROUP,
    Direction,
    IFrame,
    LapdError,
    LapdFrame,
    LapdProblem,
    SFrame,
    Supervisory,
    TeiManagement,
    TeiMessageType,
    UFrame,
    Unnumbered,
    cr_bit,
    infer_direction,
)
from drivers.e1.lapd_monitor import (
    LapdMessage,
    LapdMonitor,
    LinkChange,
    LinkState,
    Reason,
    TeiEvent,
)

N2U = Direction.NETWORK_TO_USER
U2N = Direction.USER_TO_NETWORK

# Link establishment on a PRI as libpri logs it (network side starts, SAPI 0, TEI 0):
SABME_FROM_NETWORK = bytes.fromhex("02017f")  # SAPI 0, C/R 1 (network command), TEI 0; P=1
UA_FROM_USER = bytes.fromhex("020173")  # C/R 1 (user response); UA with F=1
SABME_FROM_USER = bytes.fromhex("00017f")  # C/R 0 (user command)
UA_FROM_NETWORK = bytes.fromhex("000173")  # C/R 0 (network response)
DISC_FROM_USER = bytes.fromhex("000153")  # DISC, P=1
DM_FROM_NETWORK = bytes.fromhex("00011f")  # DM, F=1
RR_RESPONSE_FROM_USER = bytes.fromhex("02010102")  # RR, N(R)=1, F=0
# TEI identity request from a terminal: SAPI 63 (0xFC: C/R 0 user command), TEI 127
# (0xFF), UI; entity 0x0F, Ri 0x7B3A, type 1, Ai 127 (0xFF).
TEI_REQUEST = bytes.fromhex("fcff03 0f 7b3a 01 ff")
# ...and the network's answer: SAPI 63 C/R 1 (0xFE), identity assigned (2), Ai 64 (0x81).
TEI_ASSIGNED = bytes.fromhex("feff03 0f 7b3a 02 81")
Q931 = bytes.fromhex("0802000105a104038090a3")  # a minimal SETUP, call reference 1


def i_frame(direction: Direction, ns: int, payload: bytes = Q931, nr: int = 0) -> bytes:
    return IFrame(0, cr_bit(direction, command=True), 0, ns, nr, False, payload).to_bytes()


# -- frames ---------------------------------------------------------------------------


def test_literal_u_frames_decode() -> None:
    sabme = LapdFrame.from_bytes(SABME_FROM_NETWORK)
    assert sabme == UFrame(0, 1, 0, Unnumbered.SABME, True)
    assert sabme.direction() is N2U
    assert LapdFrame.from_bytes(UA_FROM_USER) == UFrame(0, 1, 0, Unnumbered.UA, True)
    assert LapdFrame.from_bytes(UA_FROM_USER).direction() is U2N
    assert LapdFrame.from_bytes(SABME_FROM_USER).direction() is U2N
    assert LapdFrame.from_bytes(UA_FROM_NETWORK).direction() is N2U
    assert LapdFrame.from_bytes(DM_FROM_NETWORK) == UFrame(0, 0, 0, Unnumbered.DM, True)
    for raw in (SABME_FROM_NETWORK, UA_FROM_USER, DISC_FROM_USER, DM_FROM_NETWORK):
        assert LapdFrame.from_bytes(raw).to_bytes() == raw


def test_literal_i_and_s_frames_decode() -> None:
    raw = bytes.fromhex("0201 fe 05") + Q931  # N(S) 127, N(R) 2, P 1
    frame = LapdFrame.from_bytes(raw)
    assert frame == IFrame(0, 1, 0, ns=127, nr=2, poll=True, payload=Q931)
    assert frame.information == Q931
    assert frame.direction() is N2U  # I frames are commands: C/R 1 = network side
    assert frame.to_bytes() == raw
    rr = LapdFrame.from_bytes(RR_RESPONSE_FROM_USER)
    assert rr == SFrame(0, 1, 0, Supervisory.RR, nr=1, poll_final=False)
    assert rr.direction() is None  # RR may be a command or a response
    assert rr.is_command(U2N) is False and rr.is_command(N2U) is True
    rej = SFrame(0, 0, 0, Supervisory.REJ, 5, True)
    assert rej.to_bytes() == bytes.fromhex("0001090b")
    assert LapdFrame.from_bytes(rej.to_bytes()) == rej


def test_tei_management_literals() -> None:
    request = LapdFrame.from_bytes(TEI_REQUEST)
    assert isinstance(request, UFrame)
    assert (request.sapi, request.tei, request.function) == (SAPI_MANAGEMENT, TEI_GROUP, 3)
    assert request.direction() is U2N
    message = TeiManagement.from_bytes(request.payload)
    assert message == TeiManagement(TeiMessageType.IDENTITY_REQUEST, 0x7B3A, 127)
    assert message.to_bytes() == request.payload
    assigned = TeiManagement.from_bytes(LapdFrame.from_bytes(TEI_ASSIGNED).information)
    assert (assigned.message_type, assigned.tei) == (TeiMessageType.IDENTITY_ASSIGNED, 64)
    check = TeiManagement(TeiMessageType.IDENTITY_CHECK_RESPONSE, 9, 64, (65, 66))
    assert check.to_bytes()[-3:] == bytes((0x80, 0x82, 0x85))  # E = 1 on the last Ai only
    assert TeiManagement.from_bytes(check.to_bytes()) == check


def test_q921_table_1_directions() -> None:
    assert infer_direction(1, command=True) is N2U
    assert infer_direction(0, command=True) is U2N
    assert infer_direction(1, command=False) is U2N
    assert infer_direction(0, command=False) is N2U
    for direction in Direction:
        for command in (True, False):
            assert infer_direction(cr_bit(direction, command=command), command=command) is (
                direction
            )
    assert N2U.reverse is U2N and U2N.reverse is N2U


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"", LapdProblem.TOO_SHORT),
        (bytes.fromhex("0201"), LapdProblem.TOO_SHORT),
        (bytes.fromhex("03017f"), LapdProblem.ADDRESS_EXTENSION),  # EA0 set
        (bytes.fromhex("02007f"), LapdProblem.ADDRESS_EXTENSION),  # EA1 clear
        (bytes.fromhex("020100"), LapdProblem.CONTROL_TRUNCATED),  # I without N(R)
        (bytes.fromhex("020101"), LapdProblem.CONTROL_TRUNCATED),  # S without N(R)
        (bytes.fromhex("02010d00"), LapdProblem.UNKNOWN_SUPERVISORY),  # S type 11
        (bytes.fromhex("02011100"), LapdProblem.UNKNOWN_SUPERVISORY),  # reserved bits
        (bytes.fromhex("0201010200"), LapdProblem.INFORMATION_NOT_ALLOWED),  # RR + info
        (bytes.fromhex("02017f00"), LapdProblem.INFORMATION_NOT_ALLOWED),  # SABME + info
        (bytes.fromhex("0201ff"), LapdProblem.UNKNOWN_UNNUMBERED),
        (bytes.fromhex("02010b"), LapdProblem.UNKNOWN_UNNUMBERED),
    ],
)
def test_malformed_frames_name_the_problem(raw: bytes, problem: LapdProblem) -> None:
    with pytest.raises(LapdError) as caught:
        LapdFrame.from_bytes(raw)
    assert caught.value.problem is problem
    assert str(caught.value).startswith(problem.value)


@pytest.mark.parametrize(
    "raw",
    [b"\x0f\x00\x01\x01", b"\x0e\x00\x01\x01\xff", b"\x0f\x00\x01\x09\xff"],
    ids=["short", "entity", "message-type"],
)
def test_malformed_tei_management(raw: bytes) -> None:
    with pytest.raises(LapdError) as caught:
        TeiManagement.from_bytes(raw)
    assert caught.value.problem is LapdProblem.BAD_TEI_MANAGEMENT


def test_building_a_frame_out_of_range_is_refused() -> None:
    with pytest.raises(LapdError, match="N\\(S\\) 128"):
        IFrame(0, 0, 0, ns=128)
    with pytest.raises(LapdError, match="SAPI 64"):
        UFrame(64, 0, 0)
    with pytest.raises(LapdError, match="carries no information"):
        UFrame(0, 0, 0, Unnumbered.DISC, payload=b"x")


FRAMES = st.one_of(
    st.builds(
        IFrame,
        st.integers(0, 63),
        st.integers(0, 1),
        st.integers(0, 127),
        st.integers(0, 127),
        st.integers(0, 127),
        st.booleans(),
        st.binary(max_size=260),
    ),
    st.builds(
        SFrame,
        st.integers(0, 63),
        st.integers(0, 1),
        st.integers(0, 127),
        st.sampled_from(Supervisory),
        st.integers(0, 127),
        st.booleans(),
    ),
    st.sampled_from(Unnumbered).flatmap(
        lambda function: st.builds(
            UFrame,
            st.integers(0, 63),
            st.integers(0, 1),
            st.integers(0, 127),
            st.just(function),
            st.booleans(),
            st.binary(max_size=40) if function in (3, 0x87, 0xAF) else st.just(b""),
        )
    ),
)


@settings(deadline=None)
@given(FRAMES)
def test_every_frame_round_trips(frame: LapdFrame) -> None:
    assert LapdFrame.from_bytes(frame.to_bytes()) == frame
    assert LapdFrame.from_bytes(bytearray(frame.to_bytes())) == frame


# -- the monitor ------------------------------------------------------------------------


def messages(events: list) -> list[LapdMessage]:
    return [event for event in events if isinstance(event, LapdMessage)]


def established(monitor: LapdMonitor, time: float = 0.0) -> list:
    return monitor.feed(SABME_FROM_NETWORK, time) + monitor.feed(UA_FROM_USER, time + 0.01)


def test_establishment_and_i_frames_in_order_with_direction() -> None:
    monitor = LapdMonitor()
    events = established(monitor)
    assert [(e.previous, e.state, e.reason) for e in events] == [
        (LinkState.UNKNOWN, LinkState.AWAITING_ESTABLISHMENT, Reason.ESTABLISHMENT_REQUESTED),
        (LinkState.AWAITING_ESTABLISHMENT, LinkState.ESTABLISHED, Reason.ESTABLISHED),
    ]
    assert monitor.link_state(0, 0) is LinkState.ESTABLISHED
    got = messages(monitor.feed(i_frame(U2N, 0, b"setup"), 1.0))
    got += messages(monitor.feed(RR_RESPONSE_FROM_USER, 1.1))
    got += messages(monitor.feed(i_frame(N2U, 0, b"call proceeding", nr=1), 1.2))
    got += messages(monitor.feed(i_frame(N2U, 1, b"alerting", nr=1), 1.3))
    assert [(m.direction, m.ns, m.payload, m.time) for m in got] == [
        (U2N, 0, b"setup", 1.0),
        (N2U, 0, b"call proceeding", 1.2),
        (N2U, 1, b"alerting", 1.3),
    ]
    assert monitor.counters.delivered == 3
    assert monitor.counters.supervisory == 1
    assert monitor.counters.dropped == 0


def test_n_s_wraps_from_127_to_0() -> None:
    monitor = LapdMonitor()
    established(monitor)
    delivered = []
    for count in range(MODULUS + 5):
        delivered += messages(monitor.feed(i_frame(N2U, count % MODULUS, bytes([count % 251])), 1))
    assert [m.ns for m in delivered[125:131]] == [125, 126, 127, 0, 1, 2]
    assert len(delivered) == MODULUS + 5
    counters = monitor.counters
    assert (counters.sequence_gaps, counters.retransmissions, counters.sequence_resyncs) == (
        0,
        0,
        0,
    )


def test_a_retransmitted_i_frame_is_delivered_once() -> None:
    monitor = LapdMonitor()
    established(monitor)
    first = IFrame(0, 1, 0, ns=127, nr=3, poll=False, payload=b"connect")
    monitor.links[0, 0].receivers[N2U].expected = 127
    assert len(messages(monitor.feed(first.to_bytes(), 1.0))) == 1
    # T200 expired with no acknowledgement: the same frame again, now with P = 1.
    again = IFrame(0, 1, 0, ns=127, nr=3, poll=True, payload=b"connect")
    assert messages(monitor.feed(again.to_bytes(), 2.0)) == []
    assert monitor.counters.retransmissions == 1
    assert [m.ns for m in messages(monitor.feed(i_frame(N2U, 0, b"next"), 2.1))] == [0]


def test_reject_recovery_resends_a_window_delivered_once() -> None:
    monitor = LapdMonitor()
    established(monitor)
    payloads = [f"message {n}".encode() for n in range(5)]
    got = [m for n in range(5) for m in messages(monitor.feed(i_frame(N2U, n, payloads[n]), n))]
    got += messages(monitor.feed(SFrame(0, 1, 0, Supervisory.REJ, 2).to_bytes(), 5))
    for n in range(2, 5):  # the sender goes back to N(R) = 2
        got += messages(monitor.feed(i_frame(N2U, n, payloads[n]), 6 + n))
    assert [m.payload for m in got] == payloads
    assert monitor.counters.retransmissions == 3


def test_a_frame_the_tap_missed_is_delivered_when_it_is_sent_again() -> None:
    monitor = LapdMonitor()
    established(monitor)
    got = messages(monitor.feed(i_frame(N2U, 0, b"zero"), 1))
    # Frame 1 had a bad FCS at the tap (and the user): 2 arrives, REJ, 1 and 2 again.
    got += messages(monitor.feed(i_frame(N2U, 2, b"two"), 2))
    assert monitor.counters.sequence_gaps == 1
    got += messages(monitor.feed(i_frame(N2U, 1, b"one"), 3))
    got += messages(monitor.feed(i_frame(N2U, 2, b"two"), 4))
    got += messages(monitor.feed(i_frame(N2U, 3, b"three"), 5))
    assert [m.payload for m in got] == [b"zero", b"two", b"one", b"three"]
    assert (monitor.counters.late_frames, monitor.counters.retransmissions) == (1, 1)


def test_a_new_payload_behind_v_r_resynchronises() -> None:
    monitor = LapdMonitor()
    for n in range(4):
        monitor.feed(i_frame(U2N, n, b"old %d" % n), n)
    # The peers re-established unseen: N(S) starts again at 0 with new messages.
    got = messages(monitor.feed(i_frame(U2N, 0, b"new 0"), 10))
    got += messages(monitor.feed(i_frame(U2N, 1, b"new 1"), 11))
    assert [m.payload for m in got] == [b"new 0", b"new 1"]
    assert monitor.counters.sequence_resyncs == 1


def test_i_frames_on_a_link_not_seen_coming_up_are_delivered() -> None:
    monitor = LapdMonitor()
    events = monitor.feed(i_frame(N2U, 57, b"mid-call"), 3.0)
    assert messages(events)[0].payload == b"mid-call"
    change = next(event for event in events if isinstance(event, LinkChange))
    assert (change.state, change.reason) == (LinkState.ESTABLISHED, Reason.IMPLICIT)
    assert monitor.counters.implicit_establishments == 1
    assert messages(monitor.feed(i_frame(N2U, 58, b"next"), 3.1))[0].ns == 58


def test_release_and_refusal() -> None:
    monitor = LapdMonitor()
    established(monitor)
    monitor.feed(DISC_FROM_USER, 5)
    assert monitor.link_state(0, 0) is LinkState.AWAITING_RELEASE
    (change,) = monitor.feed(UA_FROM_NETWORK, 5.01)
    assert isinstance(change, LinkChange)
    assert (change.state, change.reason) == (LinkState.DOWN, Reason.RELEASED)
    monitor.feed(SABME_FROM_USER, 6)
    (refused,) = monitor.feed(DM_FROM_NETWORK, 6.01)
    assert isinstance(refused, LinkChange) and refused.reason is Reason.REFUSED
    assert monitor.link_state(0, 0) is LinkState.DOWN


def test_silence_past_t203_is_idle_then_down() -> None:
    monitor = LapdMonitor()
    established(monitor, 100.0)
    assert monitor.tick(100.0 + T203 - 0.5) == []
    (idle,) = monitor.tick(100.0 + T203 + 0.5)
    assert isinstance(idle, LinkChange)
    assert (idle.state, idle.reason) == (LinkState.IDLE, Reason.SILENCE)
    (resumed,) = monitor.feed(RR_RESPONSE_FROM_USER, 111.0)
    assert isinstance(resumed, LinkChange) and resumed.reason is Reason.TRAFFIC_RESUMED
    (idle_again,) = monitor.tick(111.0 + T203 + N200 * T200 - 0.5)
    assert isinstance(idle_again, LinkChange) and idle_again.state is LinkState.IDLE
    (down,) = monitor.tick(111.0 + T203 + N200 * T200 + 0.5)
    assert isinstance(down, LinkChange) and down.state is LinkState.DOWN
    assert monitor.tick(500.0) == []


def test_tei_management_is_applied() -> None:
    monitor = LapdMonitor()
    (request,) = monitor.feed(TEI_REQUEST, 0)
    assert isinstance(request, TeiEvent) and request.direction is U2N
    monitor.feed(TEI_ASSIGNED, 0.1)
    assert monitor.assigned_teis == {64: 0x7B3A}
    monitor.feed(UFrame(0, 0, 64, Unnumbered.SABME, True).to_bytes(), 0.2)
    monitor.feed(UFrame(0, 0, 64, Unnumbered.UA, True).to_bytes(), 0.3)
    assert monitor.link_state(0, 64) is LinkState.ESTABLISHED
    remove = TeiManagement(TeiMessageType.IDENTITY_REMOVE, 0, 64).to_bytes()
    events = monitor.feed(UFrame(63, 1, 127, Unnumbered.UI, False, remove).to_bytes(), 9)
    assert [type(event) for event in events] == [LinkChange, TeiEvent]
    assert monitor.link_state(0, 64) is LinkState.DOWN
    assert monitor.assigned_teis == {}
    assert monitor.counters.tei_messages == 3


def test_every_drop_is_counted_by_reason() -> None:
    monitor = LapdMonitor()
    monitor.feed(b"\x02", 0)
    monitor.feed(bytes.fromhex("0201ff"), 0)
    monitor.feed(IFrame(16, 1, 0, 0, 0, False, b"x.25").to_bytes(), 0)  # SAPI 16
    monitor.feed(IFrame(0, 1, 0, 0, 0, False, b"").to_bytes(), 0)
    monitor.feed(SFrame(63, 0, 127, Supervisory.RR, 0).to_bytes(), 0)
    monitor.feed(UFrame(63, 0, 127, Unnumbered.UI, False, b"\x0e\x00").to_bytes(), 0)
    monitor.feed(i_frame(N2U, 0, b"wrong way"), 0, direction=U2N)
    counters = monitor.counters
    assert counters.malformed == {
        LapdProblem.TOO_SHORT: 1,
        LapdProblem.UNKNOWN_UNNUMBERED: 1,
        LapdProblem.BAD_TEI_MANAGEMENT: 1,
    }
    assert (counters.other_sapi, counters.empty_information, counters.management_not_ui) == (
        1,
        1,
        1,
    )
    assert counters.direction_mismatches == 1
    assert counters.frames == 7
    assert counters.dropped == 6
    assert counters.delivered == 1


def test_a_decoded_frame_can_be_fed() -> None:
    monitor = LapdMonitor()
    (message,) = messages(monitor.feed(IFrame(0, 0, 0, 3, 0, False, b"q931"), 1.5))
    assert (message.direction, message.ns) == (U2N, 3)


def test_a_tap_started_on_an_idle_link_sees_it_up_from_the_t203_polls() -> None:
    monitor = LapdMonitor()
    (change,) = monitor.feed(bytes.fromhex("02010101"), 40.0)  # RR command, P=1: a T203 poll
    assert isinstance(change, LinkChange)
    assert (change.previous, change.state, change.reason) == (
        LinkState.UNKNOWN,
        LinkState.ESTABLISHED,
        Reason.IMPLICIT,
    )
    assert monitor.feed(RR_RESPONSE_FROM_USER, 40.01) == []


def test_frames_in_flight_after_a_disc_do_not_bring_the_link_back() -> None:
    monitor = LapdMonitor()
    established(monitor)
    monitor.feed(DISC_FROM_USER, 5)
    assert len(messages(monitor.feed(i_frame(N2U, 0, b"late"), 5.001))) == 1
    monitor.feed(RR_RESPONSE_FROM_USER, 5.002)
    assert monitor.link_state(0, 0) is LinkState.AWAITING_RELEASE
    monitor.feed(UA_FROM_NETWORK, 5.01)
    assert monitor.link_state(0, 0) is LinkState.DOWN
