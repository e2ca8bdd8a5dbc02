"""E1 framer: G.706 search, loss and CRC-4 rules, LOS/AIS/RAI, slips, and the Cython hot path
against the pure-Python reference on generated, damaged, re-chunked streams."""

from __future__ import annotations

import itertools
import random
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cython_ext import e1_framing
from cython_ext.reference import e1_framing as reference
from drivers.e1 import generator as gen

MODULES = [pytest.param(e1_framing, id="cython"), pytest.param(reference, id="reference")]
Kind = reference.FramerEventKind
Loss = reference.AlignmentLoss
FRAME = reference.FRAME_BITS


def idle(frames: int, *, crc4: bool = False, **options: object) -> bytes:
    """Framed idle payload (0xD5 cannot imitate a FAS word at any bit offset)."""
    return gen.E1Generator(crc4=crc4, **options).idle(frames)  # type: ignore[arg-type]


def events_of(module: ModuleType, stream: bytes, **options: object) -> list[tuple[int, int, int]]:
    _, events, _ = module.frame_all(stream, **options)
    return [tuple(event) for event in events]


def kinds(events: list[tuple[int, int, int]]) -> list[int]:
    return [kind for _, kind, _ in events]


def aligned_frames(runs: list[tuple[int, bytes]]) -> bytes:
    return b"".join(frames for _, frames in runs)


# -- the CRC-4 ------------------------------------------------------------------------------


@pytest.mark.parametrize("module", MODULES)
def test_crc4_is_the_g704_polynomial(module: ModuleType) -> None:
    # The same engine with init 0xF and final XOR 0xF is the catalogued CRC-4/INTERLAKEN
    # (poly 0x3, not reflected, check 0xB): this validates polynomial and bit order.
    assert module.crc4(b"123456789", 0xF) ^ 0xF == 0xB
    # Entries of osmo-e1d's pycrc-made table (src/e1gen/crc4itu.c: width 4, poly 0x3,
    # init 0, not reflected), a CRC-4 in production on E1 lines.
    for octet, register in {
        0x01: 0x3,
        0x07: 0x9,
        0x10: 0x5,
        0x80: 0xE,
        0xA5: 0xB,
        0xFF: 0x4,
    }.items():
        assert module.crc4(bytes((octet,))) == register
    assert module.crc4(b"") == 0
    assert module.crc4(b"\x12\x34", module.crc4(b"\xab")) == module.crc4(b"\xab\x12\x34")


def test_the_generator_long_division_agrees() -> None:
    rng = random.Random(7)
    for _ in range(50):
        data = rng.randbytes(rng.randrange(0, 300))
        assert gen.crc4_bitwise(data) == reference.crc4(data) == e1_framing.crc4(data)


def test_both_modules_publish_the_same_constants() -> None:
    for name in dir(reference):
        if name.isupper() and not name.startswith("_"):
            assert getattr(e1_framing, name) == getattr(reference, name), name
    assert {k.name: k.value for k in e1_framing.FramerEventKind} == {
        k.name: k.value for k in reference.FramerEventKind
    }
    assert {k.name: k.value for k in e1_framing.AlignmentLoss} == {
        k.name: k.value for k in reference.AlignmentLoss
    }
    # The thresholds, with their sources (reference/e1_framing.py):
    assert reference.LOSS_FAS_ERRORS == 3  # G.706 4.1.1
    assert reference.LOSS_NFAS_ERRORS == 3  # G.706 4.1.1, bit 2 criterion
    assert (reference.CRC4_LOSS_ERRORED_BLOCKS, reference.CRC4_LOSS_WINDOW_BLOCKS) == (915, 1000)
    assert reference.MULTIFRAME_SEARCH_FRAMES * 125 == 8000  # 8 ms (G.706 4.2), in µs
    assert reference.CRC4_ABSENT_FRAMES * 125 == 400_000  # 400 ms (G.706 Annex B)
    assert reference.LOS_ZERO_BITS == 2048  # DS2155 RCL option, 1 ms
    assert reference.AIS_WINDOW_OCTETS * 8 == 512 and reference.AIS_MAX_ZEROS == 2  # G.775


# -- search ----------------------------------------------------------------------------------


@pytest.mark.parametrize("module", MODULES)
def test_literal_double_frames_align_after_fas_nfas_fas(module: ModuleType) -> None:
    fas = bytes((0x1B,)) + bytes(31)
    nfas = bytes((0x40,)) + bytes(31)
    runs, events, counters = module.frame_all(fas + nfas + fas + nfas)
    # Declared when the third word (a FAS word) is in: the end of octet 64 (bit 520).
    assert events == [(520, Kind.ALIGNED, 0)]
    assert runs == [(0, fas + nfas + fas + nfas)]
    assert counters["frames"] == 4 and counters["alignments"] == 1
    # The Si bit and the payload do not matter; NFAS bit 2 does.
    assert (
        events_of(module, bytes((0x9B,)) + bytes(31) + bytes((0xFF,)) * 32 + fas)[0][1]
        == Kind.ALIGNED
    )
    assert events_of(module, fas + bytes((0xBF,)) + bytes(31) + fas) == []


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("garbage", [0, 1, 5, 31, 32, 33, 63, 100])
def test_alignment_is_found_from_any_octet(module: ModuleType, garbage: int) -> None:
    stream = bytes((0xD5,)) * garbage + idle(12)
    for bit_search in (True, False):
        runs, events, counters = module.frame_all(stream, bit_search=bit_search)
        assert events == [(8 * garbage + 520, Kind.ALIGNED, 8 * garbage)]
        assert aligned_frames(runs) == stream[garbage:]
        assert counters["fas_errors"] == counters["nfas_errors"] == 0


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("shift", range(1, 8))
def test_alignment_is_found_at_any_bit_when_searching_bits(module: ModuleType, shift: int) -> None:
    clean = idle(12)
    stream = gen.delay_bits(clean, shift)
    runs, events, _ = module.frame_all(stream)
    # Declared at the end of the octet holding the third word's last bit.
    assert events == [(528, Kind.ALIGNED, shift)]
    assert aligned_frames(runs) == clean
    framer = module.E1Framer()
    framer.feed(stream)
    assert framer.aligned and framer.bit_offset == shift
    # An octet-aligned search never finds it.
    assert events_of(module, stream, bit_search=False) == []


@pytest.mark.parametrize("module", MODULES)
def test_a_candidate_without_nfas_bit_2_is_passed_over(module: ModuleType) -> None:
    stream = bytearray(idle(8))
    stream[32] &= ~0x40  # frame 1: the NFAS word loses bit 2
    runs, events, _ = module.frame_all(bytes(stream))
    # Frame 0 fails the check; frame 2 (FAS), 3 (NFAS), 4 (FAS) align.
    assert events == [(2 * FRAME + 520, Kind.ALIGNED, 2 * FRAME)]
    assert runs[0].bit == 2 * FRAME


# -- loss ------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", MODULES)
def test_three_errored_fas_words_lose_alignment(module: ModuleType) -> None:
    clean = idle(40)
    two = gen.break_fas_words(clean, 10, count=2)
    runs, events, counters = module.frame_all(two)
    assert kinds(events) == [Kind.ALIGNED] and counters["fas_errors"] == 2
    assert aligned_frames(runs) == two

    three = gen.break_fas_words(clean, 10, count=3)
    runs, events, counters = module.frame_all(three)
    # The third errored word is in frame 14: lost at its end; frame 14 is not delivered.
    # The search resumes at frame 14; frame 16 is the next good FAS frame.
    assert events == [
        (520, Kind.ALIGNED, 0),
        (15 * FRAME, Kind.ALIGNMENT_LOST, Loss.FAS_ERRORS),
        (16 * FRAME + 520, Kind.ALIGNED, 16 * FRAME),  # the same phase: no slip
    ]
    assert counters["fas_errors"] == 3 and counters["losses"] == 1
    assert runs == [(0, three[: 14 * 32]), (16 * FRAME, three[16 * 32 :])]


@pytest.mark.parametrize("module", MODULES)
def test_three_nfas_bit_2_errors_lose_alignment(module: ModuleType) -> None:
    stream = bytearray(idle(40))
    for frame in (11, 13, 15):
        stream[32 * frame] &= ~0x40
    _, events, counters = module.frame_all(bytes(stream))
    assert events[1] == (16 * FRAME, Kind.ALIGNMENT_LOST, Loss.NFAS_ERRORS)
    assert counters["nfas_errors"] == 3


# -- slips -----------------------------------------------------------------------------------


SLIPS = [
    ("frame deleted", lambda s: gen.drop_frames(s, 21), 256),
    ("frame repeated", lambda s: gen.repeat_frames(s, 21), 256),
    ("octet lost", lambda s: gen.drop_octets(s, 700), -8),
    ("octet repeated", lambda s: gen.repeat_octets(s, 700), 8),
    ("three octets lost", lambda s: gen.drop_octets(s, 700, 3), -24),
    ("bits inserted", lambda s: s[:700] + gen.delay_bits(s[700:], 3), 3),
]


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize(("fault", "damage", "moved"), SLIPS, ids=[s[0] for s in SLIPS])
def test_a_slip_is_reported_with_its_size(
    module: ModuleType, fault: str, damage: object, moved: int
) -> None:
    stream = damage(idle(80))  # type: ignore[operator]
    _, events, counters = module.frame_all(stream)
    assert kinds(events) == [Kind.ALIGNED, Kind.ALIGNMENT_LOST, Kind.ALIGNED, Kind.SLIP]
    lost, realigned = events[1], events[2]
    assert events[3] == (realigned[0], Kind.SLIP, moved)
    assert counters["slips"] == 1
    # Lost within three FAS words of the damage, found again within two frames and the
    # three words of the search.
    assert lost[0] - 21 * FRAME <= 2 * reference.LOSS_FAS_ERRORS * FRAME + FRAME
    assert realigned[0] - lost[0] <= 5 * FRAME


@pytest.mark.parametrize("module", MODULES)
def test_a_long_outage_is_not_a_slip(module: ModuleType) -> None:
    stream = idle(40)
    stream = stream[:640] + gen.alarm_indication(40) + gen.drop_octets(stream[640:], 0, 5)
    _, events, counters = module.frame_all(stream)
    assert Kind.SLIP not in kinds(events) and counters["slips"] == 0


# -- LOS, AIS, RAI ---------------------------------------------------------------------------


@pytest.mark.parametrize("module", MODULES)
def test_loss_of_signal_after_2048_zeros_and_back_with_ones(module: ModuleType) -> None:
    before, after = idle(64), idle(64)
    stream = before + gen.loss_of_signal(40) + after  # 10,240 zero bits
    _, events, _ = module.frame_all(stream)
    los_on = 8 * len(before) + reference.LOS_ZERO_BITS
    los_off = 8 * (len(before) + 40 * 32) + 8 * reference.LOS_CLEAR_WINDOW_OCTETS
    stream_events = [e for e in events if e[1] in (Kind.LOS_ON, Kind.LOS_OFF)]
    assert stream_events == [(los_on, Kind.LOS_ON, 0), (los_off, Kind.LOS_OFF, 0)]
    # Frame alignment went with the signal: three FAS words into the zeros.
    lost = next(e for e in events if e[1] == Kind.ALIGNMENT_LOST)
    assert lost[0] <= 8 * len(before) + 6 * FRAME
    assert kinds(events)[-1] == Kind.ALIGNED
    # 2047 zeros are not LOS.
    short = before + gen.loss_of_signal(8)[:-1] + b"\x01" + after
    assert Kind.LOS_ON not in kinds(events_of(module, short))


@pytest.mark.parametrize("module", MODULES)
def test_ais_is_all_ones_over_two_double_frames(module: ModuleType) -> None:
    before, after = idle(64), idle(64)
    stream = before + gen.alarm_indication(24) + after  # 12 double frames
    _, events, _ = module.frame_all(stream)
    ais = [e for e in events if e[1] in (Kind.AIS_ON, Kind.AIS_OFF)]
    start = 8 * len(before)
    window = 8 * reference.AIS_WINDOW_OCTETS
    assert ais == [
        (start + reference.AIS_WINDOWS * window, Kind.AIS_ON, 0),
        (start + 24 * FRAME + reference.AIS_WINDOWS * window, Kind.AIS_OFF, 0),
    ]
    # Two zeros in every double frame is still AIS; three is not.
    for zeros, expected in ((2, True), (3, False)):
        ones = bytearray(gen.alarm_indication(24))
        for double_frame in range(12):
            for n in range(zeros):
                ones[64 * double_frame + 10 * n] = 0x7F
        found = Kind.AIS_ON in kinds(events_of(module, before + bytes(ones) + after))
        assert found is expected
    # A framed signal of all-ones payload is not AIS: its FAS words hold zeros.
    all_ones_payload = gen.E1Generator(crc4=False).idle(64, fill=0xFF)
    assert Kind.AIS_ON not in kinds(events_of(module, all_ones_payload))


@pytest.mark.parametrize("module", MODULES)
def test_remote_alarm_after_three_nfas_words(module: ModuleType) -> None:
    generator = gen.E1Generator(crc4=False)
    stream = generator.idle(20)
    generator.remote_alarm = True
    stream += generator.idle(20)
    generator.remote_alarm = False
    stream += generator.idle(20)
    _, events, _ = module.frame_all(stream)
    # NFAS words are the odd frames; the third with A = 1 is frame 25.
    assert [e for e in events if e[1] != Kind.ALIGNED] == [
        (26 * FRAME, Kind.RAI_ON, 0),
        (46 * FRAME, Kind.RAI_OFF, 0),
    ]
    # Two NFAS words with A = 1 are not enough.
    two = bytearray(idle(20))
    two[32 * 11] |= 0x20
    two[32 * 13] |= 0x20
    assert kinds(events_of(module, bytes(two))) == [Kind.ALIGNED]


@pytest.mark.parametrize("module", MODULES)
def test_remote_alarm_ends_with_frame_alignment(module: ModuleType) -> None:
    stream = gen.E1Generator(crc4=False, remote_alarm=True).idle(20) + gen.loss_of_signal(10)
    _, events, _ = module.frame_all(stream)
    lost = kinds(events).index(Kind.ALIGNMENT_LOST)
    assert kinds(events)[lost + 1] == Kind.RAI_OFF


# -- CRC-4 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("module", MODULES)
def test_crc4_multiframe_is_found_and_blocks_checked(module: ModuleType) -> None:
    stream = idle(800, crc4=True)  # 100 ms
    _, events, counters = module.frame_all(stream, crc4=True)
    # The multiframe signal ends in frame 11; two of them 2 ms apart: frames 11 and 27.
    assert events == [(520, Kind.ALIGNED, 0), (28 * FRAME, Kind.MULTIFRAME_ALIGNED, 0)]
    # SMFs from frame 32 on are computed; each is checked against the next one's C bits.
    assert counters["crc4_blocks"] == (800 - 32) // 8 - 1
    assert counters["crc4_errors"] == counters["e_bits"] == 0
    framer = module.E1Framer(crc4=True)
    framer.feed(stream)
    assert framer.multiframe_aligned and not framer.crc4_absent


@pytest.mark.parametrize("module", MODULES)
def test_a_bit_error_is_one_crc4_error(module: ModuleType) -> None:
    stream = idle(800, crc4=True)
    for bit in (100 * FRAME + 77, 300 * FRAME + 5 * 8 + 1, 456 * FRAME + FRAME - 1):
        _, _, counters = module.frame_all(gen.flip_bits(stream, [bit]), crc4=True)
        assert counters["crc4_errors"] == 1
    # A flipped C bit is an error too (frame 96 is frame 0 of a multiframe: C1).
    _, _, counters = module.frame_all(gen.flip_bits(stream, [96 * FRAME]), crc4=True)
    assert counters["crc4_errors"] == 1 and counters["fas_errors"] == 0


@pytest.mark.parametrize("module", MODULES)
def test_e_bits_are_counted(module: ModuleType) -> None:
    generator = gen.E1Generator(crc4=True)
    stream = generator.idle(400)
    generator.report_remote_errors(5)
    stream += generator.idle(400)
    _, _, counters = module.frame_all(stream, crc4=True)
    assert counters["e_bits"] == 5 and counters["crc4_errors"] == 0


@pytest.mark.parametrize("module", MODULES)
def test_no_multiframe_in_400_ms_means_no_crc4_at_the_far_end(module: ModuleType) -> None:
    stream = idle(3300, crc4=False)
    _, events, _ = module.frame_all(stream, crc4=True)
    assert events == [
        (520, Kind.ALIGNED, 0),
        (reference.CRC4_ABSENT_FRAMES * FRAME, Kind.CRC4_ABSENT, 0),
    ]


@pytest.mark.parametrize("module", MODULES)
def test_915_errored_blocks_of_1000_lose_alignment(module: ModuleType) -> None:
    stream = idle(8200, crc4=True)
    # Flip C1 of every SMF from frame 48 on: every block fails.
    broken = gen.flip_bits(stream, (frame * FRAME for frame in range(48, 8200, 8)))
    _, events, counters = module.frame_all(broken, crc4=True)
    lost = [e for e in events if e[1] == Kind.ALIGNMENT_LOST]
    assert lost and lost[0][2] == Loss.CRC4_ERRORS
    # Blocks are checked from frame 40 (SMF 32-39 is the first computed), errors from 48.
    assert counters["crc4_errors"] >= reference.CRC4_LOSS_ERRORED_BLOCKS
    assert lost[0][0] == (40 + 8 * reference.CRC4_LOSS_WINDOW_BLOCKS) * FRAME
    # 914 errored blocks keep it.
    few = gen.flip_bits(stream, (frame * FRAME for frame in range(48, 48 + 8 * 914, 8)))
    assert Kind.ALIGNMENT_LOST not in kinds(events_of(module, few, crc4=True))


# -- chunking, buffers -----------------------------------------------------------------------


def damaged_stream(seed: int) -> bytes:
    rng = random.Random(seed)
    generator = gen.E1Generator(crc4=True)
    stream = generator.random(300, rng)
    stream = gen.flip_bits(stream, [rng.randrange(8 * len(stream)) for _ in range(30)])
    stream = gen.drop_octets(stream, 3000, 3) + gen.loss_of_signal(20) + gen.alarm_indication(20)
    stream += gen.delay_bits(generator.random(300, rng), 5) + rng.randbytes(500)
    return stream + generator.random(100, rng)


@pytest.mark.parametrize("module", MODULES)
def test_any_chunking_gives_the_same_frames_and_events(module: ModuleType) -> None:
    stream = damaged_stream(1)
    whole_runs, whole_events, whole_counters = module.frame_all(stream, crc4=True)
    rng = random.Random(2)
    for chunk_sizes in ([1], [7, 1, 300], [32], [4096], [rng.randrange(1, 700) for _ in range(50)]):
        framer = module.E1Framer(crc4=True)
        runs, events = [], []
        position, turn = 0, 0
        while position < len(stream):
            size = chunk_sizes[turn % len(chunk_sizes)]
            more_runs, more_events = framer.feed(stream[position : position + size])
            runs += more_runs
            events += more_events
            position += size
            turn += 1
        assert events == whole_events
        assert aligned_frames(runs) == aligned_frames(whole_runs)
        assert framer.counters() == whole_counters


@pytest.mark.parametrize("module", MODULES)
def test_any_buffer_type_is_accepted(module: ModuleType) -> None:
    stream = idle(10)
    expected = module.frame_all(stream)
    for data in (bytearray(stream), memoryview(stream), memoryview(bytearray(stream))):
        assert module.frame_all(data) == expected
    framer = module.E1Framer()
    assert framer.feed(b"") == ([], [])
    framer.feed(stream)
    framer.reset()
    assert framer.counters() == dict.fromkeys(reference.COUNTER_NAMES, 0)
    assert not framer.aligned and framer.bit_offset == -1


def test_the_run_type_counts_frames() -> None:
    runs, _, _ = e1_framing.frame_all(idle(10))
    assert runs[0].frame_count == 10 and runs[0].bit == 0


# -- Cython against the reference ------------------------------------------------------------


@st.composite
def line_streams(draw: st.DrawFn) -> tuple[bytes, bool, bool]:
    """Framed segments, garbage, LOS, AIS, bit errors, slips, bit shifts: a hostile line."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    crc4 = draw(st.booleans())
    generator = gen.E1Generator(crc4=draw(st.booleans()), remote_alarm=draw(st.booleans()))
    stream = b""
    for part in draw(st.lists(st.sampled_from("ffffgzolsbdra"), min_size=1, max_size=8)):
        if part == "f":
            stream += generator.random(rng.randrange(1, 80), rng)
        elif part == "g":
            stream += rng.randbytes(rng.randrange(1, 200))
        elif part == "z":
            stream += gen.loss_of_signal(rng.randrange(1, 20))
        elif part == "o":
            stream += gen.alarm_indication(rng.randrange(1, 20))
        elif part == "l" and stream:
            stream = gen.flip_bits(stream, [rng.randrange(8 * len(stream)) for _ in range(5)])
        elif part == "s" and len(stream) > 40:
            stream = gen.drop_octets(stream, rng.randrange(len(stream) - 33), rng.randrange(1, 33))
        elif part == "b":
            stream = gen.delay_bits(stream, rng.randrange(8))
        elif part == "d" and len(stream) > 40:
            stream = gen.repeat_octets(
                stream, rng.randrange(len(stream) - 33), rng.randrange(1, 33)
            )
        elif part == "r":
            generator.remote_alarm = not generator.remote_alarm
    return stream, crc4, draw(st.booleans())


def chunked(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(stream), *(cut % (len(stream) + 1) for cut in cuts)})
    return [stream[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=150, deadline=None)
@given(line_streams(), st.lists(st.integers(0, 100_000), max_size=10))
def test_cython_matches_reference(generated: tuple[bytes, bool, bool], cuts: list[int]) -> None:
    stream, crc4, bit_search = generated
    fast = e1_framing.E1Framer(crc4, bit_search)
    slow = reference.E1Framer(crc4, bit_search)
    for piece in chunked(stream, cuts):
        assert fast.feed(piece) == slow.feed(piece)
        assert fast.counters() == slow.counters()
        assert (fast.aligned, fast.bit_offset, fast.los, fast.ais, fast.rai) == (
            slow.aligned,
            slow.bit_offset,
            slow.los,
            slow.ais,
            slow.rai,
        )
        assert (fast.multiframe_aligned, fast.crc4_absent) == (
            slow.multiframe_aligned,
            slow.crc4_absent,
        )


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.booleans(), st.booleans())
def test_random_bytes_match(data: bytes, crc4: bool, bit_search: bool) -> None:
    assert e1_framing.frame_all(data, crc4, bit_search) == reference.frame_all(
        data, crc4, bit_search
    )


@settings(max_examples=20, deadline=None)
@given(line_streams())
def test_one_byte_at_a_time_matches(generated: tuple[bytes, bool, bool]) -> None:
    stream, crc4, bit_search = generated
    fast = e1_framing.E1Framer(crc4, bit_search)
    slow = reference.E1Framer(crc4, bit_search)
    for index in range(len(stream)):
        assert fast.feed(stream[index : index + 1]) == slow.feed(stream[index : index + 1])


def test_long_damaged_line_matches() -> None:
    for seed in range(3):
        stream = damaged_stream(seed) + idle(3300, crc4=False)
        for crc4 in (False, True):
            assert e1_framing.frame_all(stream, crc4) == reference.frame_all(stream, crc4)
