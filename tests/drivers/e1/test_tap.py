"""End to end through every layer: a scripted call on both directions of a D-channel,
framed as TS16 line octets, damaged on the way, read one byte at a time by the tap.

    script -> HdlcEncoder (n2u, u2n) -> faults -> HdlcDeframer (per direction)
           -> LapdMonitor (both) -> decode_message -> the call, each message once
"""

from __future__ import annotations

from cython_ext import hdlc
from cython_ext.reference.hdlc import HdlcEncoder
from drivers.e1.lapd import Direction, IFrame, SFrame, Supervisory, UFrame, Unnumbered, cr_bit
from drivers.e1.lapd_monitor import LapdMessage, LapdMonitor, LinkChange, LinkState
from drivers.e1.q931 import CallReference, MessageType, Q931Message, decode_message
from drivers.e1.q931_ie import (
    BearerCapability,
    CalledPartyNumber,
    CallingPartyNumber,
    Cause,
    ChannelIdentification,
)

N2U = Direction.NETWORK_TO_USER
U2N = Direction.USER_TO_NETWORK
BITS_PER_SECOND = 64_000


class Line:
    """Both directions of the D-channel, kept in step: what one side sends, the other
    side's line spends in idle flags, so line time orders the frames as scripted."""

    def __init__(self) -> None:
        self.encoders = {N2U: HdlcEncoder(), U2N: HdlcEncoder()}
        self.sent = {N2U: 0, U2N: 0}  # next N(S) per direction
        self.garbage(N2U, [1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0])
        self.idle(8)

    def idle(self, flags: int) -> None:
        for encoder in self.encoders.values():
            encoder.add_flags(flags)
        self._align()

    def garbage(self, direction: Direction, bits: list[int]) -> None:
        self.encoders[direction].add_bits(bits)

    def frame(self, direction: Direction, raw: bytes, **faults: object) -> None:
        self.encoders[direction].add_frame(raw, **faults)  # type: ignore[arg-type]
        self._align()

    def q931(
        self, direction: Direction, message: Q931Message, *, ns: int | None = None, **faults: object
    ) -> None:
        number = self.sent[direction] if ns is None else ns
        if ns is None:
            self.sent[direction] = (number + 1) % 128
        frame = IFrame(0, cr_bit(direction, command=True), 0, number, 0, False, message.to_bytes())
        self.frame(direction, frame.to_bytes(), **faults)

    def _align(self) -> None:
        target = max(encoder.bit_position for encoder in self.encoders.values())
        for encoder in self.encoders.values():
            while encoder.bit_position < target:
                encoder.add_flags(1)

    def streams(self) -> dict[Direction, bytes]:
        self.idle(4)
        return {direction: encoder.flush() for direction, encoder in self.encoders.items()}


def call_script() -> tuple[Line, list[tuple[Direction, MessageType]]]:
    line = Line()
    reference = CallReference(77)
    answer = CallReference(77, flag=1)
    setup = Q931Message(
        MessageType.SETUP,
        reference,
        (
            BearerCapability(),
            ChannelIdentification((17,), exclusive=False),
            CallingPartyNumber("81311112222", 2, 1, 0, 3),
            CalledPartyNumber("11", 0, 1),
        ),
    )
    expected = []

    def say(direction: Direction, message: Q931Message, **faults: object) -> None:
        line.q931(direction, message, **faults)  # type: ignore[arg-type]
        expected.append((direction, MessageType(message.message_type)))

    line.frame(N2U, UFrame(0, 1, 0, Unnumbered.SABME, True).to_bytes())
    line.frame(U2N, UFrame(0, 1, 0, Unnumbered.UA, True).to_bytes())
    # The SETUP is hit by a bit error on the line: a bad FCS, dropped by the tap and the
    # user alike; after T200 the network sends it again (same N(S) 0).
    line.q931(N2U, setup, fcs=b"\x00\x00", ns=0)
    line.idle(500)  # T200 would be 8,000 octets; the tap does not care
    say(N2U, setup)
    line.frame(U2N, SFrame(0, 1, 0, Supervisory.RR, 1).to_bytes())
    say(
        U2N, Q931Message(MessageType.CALL_PROCEEDING, answer, (ChannelIdentification((17,), True),))
    )
    say(U2N, Q931Message(MessageType.INFORMATION, answer), abort_after_bits=20)  # aborted
    expected.pop()
    line.sent[U2N] -= 1  # the aborted frame is sent again whole
    say(U2N, Q931Message(MessageType.INFORMATION, answer))
    say(U2N, Q931Message(MessageType.ALERTING, answer))
    say(U2N, Q931Message(MessageType.CONNECT, answer))
    # The network's acknowledgement came late: the user sent CONNECT again (T200).
    line.q931(U2N, Q931Message(MessageType.CONNECT, answer), ns=line.sent[U2N] - 1)
    say(N2U, Q931Message(MessageType.CONNECT_ACKNOWLEDGE, reference))
    line.idle(2000)  # the conversation
    say(N2U, Q931Message(MessageType.DISCONNECT, reference, (Cause(16, 2),)))
    say(U2N, Q931Message(MessageType.RELEASE, answer))
    say(N2U, Q931Message(MessageType.RELEASE_COMPLETE, reference))
    return line, expected


def test_a_call_through_every_layer_one_byte_at_a_time() -> None:
    line, expected = call_script()
    streams = line.streams()
    arrivals = []
    deframers = {direction: hdlc.HdlcDeframer() for direction in Direction}
    for direction, stream in streams.items():
        for index in range(len(stream)):  # the most hostile chunking
            for frame in deframers[direction].feed(stream[index : index + 1]):
                arrivals.append((frame.bit_offset / BITS_PER_SECOND, direction, frame.data))
    arrivals.sort(key=lambda arrival: arrival[0])
    monitor = LapdMonitor()
    events = []
    for time, direction, data in arrivals:
        events += monitor.feed(data, time, direction)
    messages = [event for event in events if isinstance(event, LapdMessage)]
    decoded = [(m.direction, decode_message(m.payload).message_type) for m in messages]
    assert decoded == expected
    assert [m.time for m in messages] == sorted(m.time for m in messages)
    setup = decode_message(messages[0].payload)
    assert setup.calling_party_number is not None
    assert setup.calling_party_number.digits == "81311112222"
    assert [e.state for e in events if isinstance(e, LinkChange)] == [
        LinkState.AWAITING_ESTABLISHMENT,
        LinkState.ESTABLISHED,
    ]
    assert deframers[N2U].bad_fcs == 1
    assert deframers[U2N].aborts == 1
    assert monitor.counters.retransmissions == 1
    assert monitor.counters.direction_mismatches == 0
    # Without direction metadata (a classic pcap) C/R gives the same directions.
    blind = LapdMonitor()
    inferred = [
        event.direction
        for time, _, data in arrivals
        for event in blind.feed(data, time)
        if isinstance(event, LapdMessage)
    ]
    assert inferred == [direction for direction, _ in expected]
