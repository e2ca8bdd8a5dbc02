"""Fuzzing every decoder of the D-channel with hostile input.

Random bytes and mutated valid input go into the HDLC deframer (both
implementations), ``LapdFrame.from_bytes``, the ``LapdMonitor`` and the Q.931
decoder. Nothing may raise but the typed errors (``LapdError``,
``Q931Error``); the deframer and the monitor never raise at all: they count
and keep going. Each test stays within a few seconds (``max_examples``).
"""

from __future__ import annotations

import contextlib
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cython_ext import hdlc
from cython_ext.reference import hdlc as hdlc_reference
from drivers.e1.lapd import Direction, LapdError, LapdFrame
from drivers.e1.lapd_monitor import LapdMessage, LapdMonitor
from drivers.e1.q931 import decode_message
from drivers.e1.q931_codes import Q931Error
from tests.drivers.e1.test_lapd import FRAMES
from tests.drivers.e1.test_q931 import DISCONNECT_BUSY, RESTART, SETUP, STATUS

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = [SETUP, DISCONNECT_BUSY, RESTART, STATUS]


@st.composite
def mutated(draw: st.DrawFn, seeds: st.SearchStrategy[bytes]) -> bytes:
    """A valid input with bits flipped, octets cut, inserted or repeated."""
    data = bytearray(draw(seeds))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "truncate", "repeat"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "cut" and data:
            del data[position : position + draw(st.integers(1, 4))]
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif action == "truncate":
            del data[position:]
        elif data:
            data[position:position] = data[position : position + draw(st.integers(1, 6))]
    return bytes(data)


# -- HDLC -------------------------------------------------------------------------------


def deframe_both(stream: bytes, cuts: list[int], bit_order: str) -> None:
    fast = hdlc.HdlcDeframer(bit_order)
    slow = hdlc_reference.HdlcDeframer(bit_order)
    edges = sorted({0, len(stream), *(cut % (len(stream) + 1) for cut in cuts)})
    out_fast: list = []
    out_slow: list = []
    for start, end in itertools.pairwise(edges):
        out_fast += fast.feed(stream[start:end])
        out_slow += slow.feed(stream[start:end])
    assert out_fast == out_slow
    assert fast.counters() == slow.counters()
    assert all(len(frame.data) >= 3 for frame in out_fast)
    assert fast.bytes_in == len(stream)


@FUZZ
@given(
    st.binary(max_size=400),
    st.lists(st.integers(0, 500), max_size=8),
    st.sampled_from(hdlc.BIT_ORDERS),
)
def test_hdlc_random_bytes(stream: bytes, cuts: list[int], bit_order: str) -> None:
    deframe_both(stream, cuts, bit_order)


VALID_STREAMS = st.lists(st.binary(min_size=3, max_size=30), min_size=1, max_size=4).map(
    hdlc_reference.encode
)


@FUZZ
@given(mutated(VALID_STREAMS), st.lists(st.integers(0, 500), max_size=8))
def test_hdlc_mutated_streams(stream: bytes, cuts: list[int]) -> None:
    deframe_both(stream, cuts, hdlc.MSB_FIRST)


# -- LAPD -------------------------------------------------------------------------------


def lapd_decodes_or_says_why(raw: bytes) -> None:
    try:
        frame = LapdFrame.from_bytes(raw)
    except LapdError as error:
        assert error.problem.value in str(error)
        return
    assert frame.to_bytes() == raw  # whatever is accepted is re-encoded exactly


@FUZZ
@given(st.binary(max_size=40))
def test_lapd_random_bytes(raw: bytes) -> None:
    lapd_decodes_or_says_why(raw)


@FUZZ
@given(mutated(FRAMES.map(lambda frame: frame.to_bytes())))
def test_lapd_mutated_frames(raw: bytes) -> None:
    lapd_decodes_or_says_why(raw)


FEED = st.tuples(
    st.one_of(
        st.binary(max_size=30),
        FRAMES.map(lambda frame: frame.to_bytes()),
        mutated(FRAMES.map(lambda frame: frame.to_bytes())),
    ),
    st.none() | st.sampled_from(list(Direction)),
    st.floats(0, 0.5),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(FEED, max_size=40), st.floats(0, 30))
def test_the_monitor_keeps_going(feeds: list, idle: float) -> None:
    monitor = LapdMonitor()
    now = 0.0
    delivered = 0
    for raw, direction, step in feeds:
        now += step
        events = monitor.feed(raw, now, direction)
        delivered += sum(isinstance(event, LapdMessage) for event in events)
        monitor.tick(now)
    monitor.tick(now + idle)
    counters = monitor.counters
    assert counters.frames == len(feeds)
    assert counters.delivered == delivered
    assert counters.delivered + counters.dropped <= counters.frames


# -- Q.931 ------------------------------------------------------------------------------


def q931_decodes_or_says_why(raw: bytes) -> None:
    try:
        message = decode_message(raw)
    except Q931Error as error:
        assert error.offset is not None and error.problem.value in str(error)
        return
    again = decode_message(message.to_bytes())  # re-encoding what was read never fails
    assert again == message
    with contextlib.suppress(Q931Error):
        decode_message(raw, strict=True)


@FUZZ
@given(st.binary(max_size=60))
def test_q931_random_bytes(raw: bytes) -> None:
    q931_decodes_or_says_why(raw)


@FUZZ
@given(st.binary(max_size=60))
def test_q931_random_elements(tail: bytes) -> None:
    q931_decodes_or_says_why(bytes.fromhex("08 02 00 01 05") + tail)


@FUZZ
@given(mutated(st.sampled_from(SEEDS)))
def test_q931_mutated_messages(raw: bytes) -> None:
    q931_decodes_or_says_why(raw)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mutated(st.sampled_from(SEEDS).map(lambda m: hdlc_reference.encode([b"\x02\x01\x00\x00" + m])))
)
def test_the_whole_tap_on_a_damaged_line(stream: bytes) -> None:
    """Line octets -> deframer -> monitor -> Q.931: only typed errors, counted drops."""
    deframer = hdlc.HdlcDeframer()
    monitor = LapdMonitor()
    for start in range(0, len(stream), 7):
        for frame in deframer.feed(stream[start : start + 7]):
            for event in monitor.feed(frame.data, frame.bit_offset / 64000):
                if isinstance(event, LapdMessage):
                    with contextlib.suppress(Q931Error):
                        decode_message(event.payload)
