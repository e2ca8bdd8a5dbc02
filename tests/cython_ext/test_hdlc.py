"""HDLC deframer: literal bit streams, every drop reason, and the Cython hot path
against the pure-Python reference on generated, corrupted, re-chunked streams."""

from __future__ import annotations

import itertools
import random
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cython_ext import hdlc
from cython_ext.reference import crc16
from cython_ext.reference import hdlc as reference
from cython_ext.reference.hdlc import HdlcEncoder, encode, pack_bits

MODULES = [pytest.param(hdlc, id="cython"), pytest.param(reference, id="reference")]
FLAG_BITS = "01111110"


def bits(text: str) -> list[int]:
    return [int(c) for c in text if c in "01"]


def line(text: str, bit_order: str = reference.LSB_FIRST) -> bytes:
    """Line bits written out as text (spaces ignored), padded with idle 1s, packed."""
    raw = bits(text)
    raw += [1] * (-len(raw) % 8)
    return pack_bits(raw, bit_order)


# SABME with P=1 from the user side, SAPI 0, TEI 0 (Q.921): address 0x00 0x01, control
# 0x7F; FCS = CRC-16/X.25 = 0x5464, sent low octet first (0x64, 0x54). Each octet goes
# LSB first; the 0x7F octet (1111111 0) gets a 0 stuffed after its first five 1s.
SABME = bytes.fromhex("00017f")
SABME_LINE = (
    FLAG_BITS
    + " 00000000"  # 0x00: SAPI 0, C/R 0, EA0 0
    + " 10000000"  # 0x01: TEI 0, EA1 1
    + " 11111 0 110"  # 0x7F: five 1s, stuffed 0, then 1 1 0
    + " 00100110"  # 0x64 (FCS low octet)
    + " 00101010"  # 0x54 (FCS high octet)
    + " "
    + FLAG_BITS
)


def test_the_literal_sabme_fcs_is_the_catalogue_crc() -> None:
    assert crc16.crc16_x25(SABME) == 0x5464
    assert crc16.fcs_ok(SABME + b"\x64\x54")


@pytest.mark.parametrize("module", MODULES)
def test_literal_sabme_is_deframed_in_both_bit_orders(module: ModuleType) -> None:
    for bit_order in (reference.LSB_FIRST, reference.MSB_FIRST):
        deframer = module.HdlcDeframer(bit_order)
        frames = deframer.feed(line(SABME_LINE, bit_order))
        assert frames == [(8, SABME)]
        assert frames[0].data == SABME and frames[0].bit_offset == 8
        assert frames[0].octet_index == 1
        assert deframer.frames == 1
        assert deframer.counters() == {
            "frames": 1,
            "bad_fcs": 0,
            "aborts": 0,
            "too_short": 0,
            "too_long": 0,
            "not_aligned": 0,
            "bytes_in": 8,  # 57 line bits and 7 idle 1s
        }


def test_the_framer_writes_the_literal_line() -> None:
    encoder = HdlcEncoder(reference.LSB_FIRST)
    assert encoder.add_frame(SABME) == 8
    assert encoder.flush() == line(SABME_LINE)


def test_msb_first_reverses_every_stream_octet() -> None:
    lsb = line(SABME_LINE, reference.LSB_FIRST)
    msb = line(SABME_LINE, reference.MSB_FIRST)
    assert msb == bytes(int(f"{octet:08b}"[::-1], 2) for octet in lsb)
    # As an E1 framer hands TS16 over: the flag is symmetric, the address 0x01 is 0x80.
    assert msb[:3] == bytes.fromhex("7e0080")


@pytest.mark.parametrize("module", MODULES)
def test_one_flag_closes_a_frame_and_opens_the_next(module: ModuleType) -> None:
    stream = line(FLAG_BITS + SABME_LINE[8:] + SABME_LINE[8:])
    assert stream.count(0x7E) >= 1
    frames = module.HdlcDeframer(reference.LSB_FIRST).feed(stream)
    assert [frame.data for frame in frames] == [SABME, SABME]
    assert frames[1].bit_offset == frames[0].bit_offset + 5 * 8 + 1 + 8  # 41 bits + flag


@pytest.mark.parametrize("module", MODULES)
def test_back_to_back_flags_and_a_shared_zero_deliver_and_count_nothing(
    module: ModuleType,
) -> None:
    deframer = module.HdlcDeframer(reference.LSB_FIRST)
    assert deframer.feed(line(FLAG_BITS * 5 + "0111111 0111111 0111111 0" + FLAG_BITS)) == []
    counters = deframer.counters()
    assert sum(counters.values()) == counters["bytes_in"]
    start = deframer.bytes_in * 8 + 8
    assert deframer.feed(line(SABME_LINE)) == [(start, SABME)]


@pytest.mark.parametrize("module", MODULES)
def test_idle_ones_between_frames_are_not_aborts(module: ModuleType) -> None:
    deframer = module.HdlcDeframer(reference.LSB_FIRST)
    stream = line(SABME_LINE + "1" * 40 + SABME_LINE)
    assert [frame.data for frame in deframer.feed(stream)] == [SABME, SABME]
    assert deframer.aborts == 0


@pytest.mark.parametrize("module", MODULES)
def test_seven_ones_abort_the_frame(module: ModuleType) -> None:
    deframer = module.HdlcDeframer(reference.LSB_FIRST)
    aborted = FLAG_BITS + " 00000000 10000000 1111111" + FLAG_BITS
    assert deframer.feed(line(aborted + SABME_LINE)) == [(len(bits(aborted)) + 8, SABME)]
    assert deframer.aborts == 1
    assert deframer.frames == 1


@pytest.mark.parametrize("module", MODULES)
def test_a_bad_fcs_is_dropped_and_counted(module: ModuleType) -> None:
    encoder = HdlcEncoder()
    encoder.add_frame(SABME, fcs=b"\x65\x54")
    encoder.add_frame(SABME)
    deframer = module.HdlcDeframer()
    assert [frame.data for frame in deframer.feed(encoder.flush())] == [SABME]
    assert (deframer.bad_fcs, deframer.frames) == (1, 1)


@pytest.mark.parametrize("module", MODULES)
def test_too_short_and_not_aligned_are_dropped_and_counted(module: ModuleType) -> None:
    deframer = module.HdlcDeframer(reference.LSB_FIRST)
    short = FLAG_BITS + " 00000000 10000000 00100110 00101010" + FLAG_BITS  # 4 octets
    assert deframer.feed(line(short)) == []
    assert deframer.too_short == 1
    ragged = FLAG_BITS + SABME_LINE[8:-8] + " 010" + FLAG_BITS  # 43 bits
    assert deframer.feed(line(ragged)) == []
    assert (deframer.not_aligned, deframer.too_short, deframer.bad_fcs) == (1, 1, 0)


@pytest.mark.parametrize("module", MODULES)
def test_an_over_long_frame_is_dropped_and_the_next_one_found(module: ModuleType) -> None:
    encoder = HdlcEncoder()
    encoder.add_frame(bytes(range(30)))
    encoder.add_frame(SABME)
    deframer = module.HdlcDeframer(max_frame_octets=20)
    assert [frame.data for frame in deframer.feed(encoder.flush())] == [SABME]
    assert deframer.too_long == 1
    assert deframer.max_frame_octets == 20


@pytest.mark.parametrize("module", MODULES)
def test_garbage_before_the_first_flag_is_skipped(module: ModuleType) -> None:
    garbage = bytes([0x00, 0xFF, 0x12, 0x34, 0x81])
    stream = garbage + encode([SABME, b"\x02\x01\x01\x02\x08\x01\x05"])
    frames = module.HdlcDeframer().feed(stream)
    assert [frame.data for frame in frames] == [SABME, b"\x02\x01\x01\x02\x08\x01\x05"]
    assert frames[0].bit_offset == 8 * (len(garbage) + 1)


@pytest.mark.parametrize("module", MODULES)
def test_reset_drops_the_frame_in_progress(module: ModuleType) -> None:
    stream = encode([SABME])
    deframer = module.HdlcDeframer()
    assert deframer.feed(stream[:3]) == []
    deframer.reset()
    assert deframer.feed(stream[3:]) == []
    assert deframer.feed(stream) == [(8 * len(stream) + 8, SABME)]


@pytest.mark.parametrize("module", MODULES)
def test_any_buffer_type_is_accepted(module: ModuleType) -> None:
    stream = encode([SABME, SABME + b"payload"])
    expected = module.HdlcDeframer().feed(stream)
    assert len(expected) == 2
    assert module.HdlcDeframer().feed(bytearray(stream)) == expected
    assert module.HdlcDeframer().feed(memoryview(stream)) == expected
    assert module.HdlcDeframer().feed(b"") == []
    frames, counters = module.deframe(stream)
    assert frames == expected and counters["frames"] == 2


@pytest.mark.parametrize("module", MODULES)
def test_bad_settings_are_refused(module: ModuleType) -> None:
    with pytest.raises(ValueError, match="bit_order must be one of"):
        module.HdlcDeframer("big-endian")
    with pytest.raises(ValueError, match="max_frame_octets"):
        module.HdlcDeframer(max_frame_octets=4)


def test_the_frame_time_is_its_first_address_bit() -> None:
    encoder = HdlcEncoder()
    encoder.add_flags(3)
    encoder.add_ones(13)
    starts = [encoder.add_frame(SABME), encoder.add_frame(b"\x00\x01\x03\xff\xff\x7e\x7e")]
    frames = hdlc.HdlcDeframer().feed(encoder.flush())
    assert [frame.bit_offset for frame in frames] == starts
    assert starts[0] == 3 * 8 + 13 + 8


def test_one_second_of_idle_flags_is_quiet() -> None:
    for module in (hdlc, reference):
        deframer = module.HdlcDeframer()
        assert deframer.feed(b"\x7e" * 8000) == []
        assert deframer.feed(b"\xff" * 8000) == []
        assert deframer.feed(b"\x00" * 8000) == []
        assert deframer.counters() == dict.fromkeys(reference.COUNTER_NAMES, 0) | {
            "bytes_in": 24000
        }


# -- parity: Cython against the reference ---------------------------------------------


FRAME = st.binary(min_size=3, max_size=40)
FATE = st.sampled_from(["good", "good", "good", "bad_fcs", "abort", "raw_bits"])


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, str, list[bytes], bool]:
    """A stream of frames, some spoiled on purpose; returns (stream, bit order, the good
    frames, whether the stream was corrupted after framing)."""
    bit_order = draw(st.sampled_from(reference.BIT_ORDERS))
    encoder = HdlcEncoder(bit_order)
    encoder.add_bits(draw(st.lists(st.integers(0, 1), max_size=40)))  # garbage prefix
    encoder.add_flags(draw(st.integers(0, 2)))
    good: list[bytes] = []
    for frame, fate in draw(st.lists(st.tuples(FRAME, FATE), max_size=8)):
        encoder.add_ones(draw(st.sampled_from([0, 0, 3, 7, 20])))
        encoder.add_flags(draw(st.integers(0, 2)))
        if fate == "good":
            encoder.add_frame(frame)
            good.append(frame)
        elif fate == "bad_fcs":
            fcs = crc16.crc16_x25(frame) ^ draw(st.integers(1, 0xFFFF))
            encoder.add_frame(frame, fcs=fcs.to_bytes(2, "little"))
        elif fate == "abort":
            encoder.add_frame(frame, abort_after_bits=draw(st.integers(0, 8 * len(frame))))
        else:
            encoder.add_bits(draw(st.lists(st.integers(0, 1), max_size=60)))
    stream = bytearray(encoder.flush())
    flips = draw(st.lists(st.integers(0, max(0, 8 * len(stream) - 1)), max_size=4))
    if stream:
        for flip in flips:
            stream[flip // 8] ^= 1 << (flip % 8)
    return bytes(stream), bit_order, good, bool(flips and stream)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def run(module: ModuleType, pieces: list[bytes], bit_order: str) -> tuple[list, dict]:
    deframer = module.HdlcDeframer(bit_order)
    frames: list = []
    for piece in pieces:
        frames += deframer.feed(piece)
    return frames, deframer.counters()


@settings(max_examples=400, deadline=None)
@given(streams(), st.lists(st.integers(0, 10_000), max_size=12))
def test_cython_matches_reference(
    generated: tuple[bytes, str, list[bytes], bool], cuts: list[int]
) -> None:
    stream, bit_order, good, corrupted = generated
    whole = run(reference, [stream], bit_order)
    assert run(hdlc, [stream], bit_order) == whole
    assert run(hdlc, chunked(stream, cuts), bit_order) == whole
    assert run(reference, chunked(stream, cuts), bit_order) == whole
    if not corrupted:
        assert [frame.data for frame in whole[0]] == good
        assert whole[1]["frames"] == len(good)


@settings(max_examples=60, deadline=None)
@given(streams())
def test_one_byte_at_a_time_matches(generated: tuple[bytes, str, list[bytes], bool]) -> None:
    stream, bit_order, _, _ = generated
    pieces = [stream[i : i + 1] for i in range(len(stream))]
    assert run(hdlc, pieces, bit_order) == run(reference, [stream], bit_order)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(reference.BIT_ORDERS))
def test_random_bytes_match(data: bytes, bit_order: str) -> None:
    assert run(hdlc, [data], bit_order) == run(reference, [data], bit_order)


def test_long_random_line_matches() -> None:
    """Random bytes with flags sprinkled in: every path of the fast table gets used."""
    rng = random.Random(112)
    data = bytearray(rng.randbytes(200_000))
    for _ in range(4000):
        data[rng.randrange(len(data))] = 0x7E
    for bit_order in reference.BIT_ORDERS:
        fast = run(
            hdlc, chunked(bytes(data), [rng.randrange(len(data)) for _ in range(50)]), bit_order
        )
        assert fast == run(reference, [bytes(data)], bit_order)


def test_a_long_clean_stream_is_recovered_exactly() -> None:
    rng = random.Random(7)
    frames = [rng.randbytes(rng.randrange(3, 264)) for _ in range(500)]
    for bit_order in reference.BIT_ORDERS:
        stream = encode(frames, bit_order, flags_between=1)
        got = hdlc.HdlcDeframer(bit_order).feed(stream)
        assert [frame.data for frame in got] == frames
