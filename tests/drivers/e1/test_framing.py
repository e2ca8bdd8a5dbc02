"""One tapped E1 direction: the generator's line format, typed line events and their timing
against the named thresholds, per-second CRC-4 accounting, and frames handed on to the demux
and the HDLC deframer."""

from __future__ import annotations

import random

import pytest

from cython_ext import e1, hdlc
from cython_ext import e1_framing as hot_path
from cython_ext.reference import e1_framing as reference
from cython_ext.reference.hdlc import HdlcEncoder
from drivers.e1 import generator as gen
from drivers.e1.framing import (
    CRC4_SEVERELY_ERRORED_BLOCKS,
    LINE_BITS_PER_SECOND,
    OCTETS_PER_SECOND,
    AlignmentLoss,
    Crc4Absent,
    Defect,
    DefectCleared,
    DefectRaised,
    E1Receiver,
    LineEvent,
    LineState,
    MultiframeAligned,
    SlipDetected,
    SlipKind,
)

FRAME = 256


def receive(
    stream: bytes, chunk: int = 4096, **options: object
) -> tuple[E1Receiver, list[LineEvent], bytes]:
    receiver = E1Receiver(**options)  # type: ignore[arg-type]
    events: list[LineEvent] = []
    frames = bytearray()
    for start in range(0, len(stream), chunk):
        framed = receiver.feed(stream[start : start + chunk])
        events += framed.events
        frames += framed.frames
    return receiver, events, bytes(frames)


def defects(events: list[LineEvent]) -> list[tuple[str, Defect]]:
    return [
        ("raised" if isinstance(event, DefectRaised) else "cleared", event.defect)
        for event in events
        if isinstance(event, DefectRaised | DefectCleared)
    ]


# -- the generator ---------------------------------------------------------------------------


def test_time_slot_0_without_crc4_follows_table_5a() -> None:
    stream = gen.E1Generator(crc4=False).idle(4)
    assert [stream[32 * n] for n in range(4)] == [0x9B, 0xDF, 0x9B, 0xDF]  # Si = 1, Sa = 11111
    alarm = gen.E1Generator(crc4=False, remote_alarm=True, sa_bits=0).idle(2)
    assert alarm[32] == 0b1110_0000  # Si 1, bit 2 = 1, A = 1, Sa4..8 = 0
    assert set(stream[1:32]) == {gen.IDLE_OCTET}


def test_crc4_multiframe_follows_table_5b() -> None:
    generator = gen.E1Generator(crc4=True)
    stream = generator.idle(48)
    words = [stream[32 * n] for n in range(48)]
    assert all(word & 0x7F == 0x1B for word in words[0::2])
    nfas_si = [word >> 7 for word in words[1:16:2]]
    assert nfas_si == [0, 0, 1, 0, 1, 1, 1, 1]  # 001011, then E = 1, E = 1
    # C1..C4 of each SMF are the CRC-4 of the previous one with its C bits at 0.
    for smf in range(1, 6):
        previous = bytearray(stream[32 * 8 * (smf - 1) : 32 * 8 * smf])
        for frame in range(0, 8, 2):
            previous[32 * frame] &= 0x7F
        c_bits = [words[8 * smf + frame] >> 7 for frame in range(0, 8, 2)]
        assert int("".join(map(str, c_bits)), 2) == reference.crc4(bytes(previous))
    assert generator.frame_number == 48 and generator.multiframe_position == 0


def test_e_bits_report_remote_errors_in_frames_13_and_15() -> None:
    generator = gen.E1Generator(crc4=True)
    generator.report_remote_errors(3)
    stream = generator.idle(32)
    e_bits = [stream[32 * frame] >> 7 for frame in (13, 15, 29, 31)]
    assert e_bits == [0, 0, 0, 1]


def test_mux_places_each_time_slot_and_demux_takes_it_back() -> None:
    rng = random.Random(3)
    streams = {t: rng.randbytes(50) for t in (1, 16, 31)}
    payload = gen.mux(streams, 50)
    framed = gen.E1Generator().frames(payload)
    slots = e1.demux(framed)
    for timeslot, stream in streams.items():
        assert slots[timeslot] == stream
    assert slots[2] == bytes((gen.IDLE_OCTET,)) * 50
    assert gen.mux({5: b"\x01"}, 3)[5::32] == b"\x01\xd5\xd5"
    with pytest.raises(ValueError, match=r"1\.\.31"):
        gen.mux({0: b""}, 1)
    with pytest.raises(ValueError, match="whole 32-octet frames"):
        gen.E1Generator().frames(bytes(33))


def test_faults_do_what_they_say() -> None:
    stream = bytes(range(64))
    assert gen.flip_bits(stream, [0, 15])[:2] == bytes((0x80, 0x01 ^ 0x01))
    assert gen.drop_octets(stream, 2, 3) == stream[:2] + stream[5:]
    assert gen.repeat_octets(stream, 2, 2) == stream[:4] + stream[2:]
    assert gen.drop_frames(stream, 1) == stream[:32]
    assert gen.repeat_frames(stream, 0) == stream[:32] + stream
    assert gen.delay_bits(b"\x0f\xf0", 4) == b"\xf0\xff\x0f"
    assert gen.delay_bits(b"\x0f", 4, fill_bit=0) == b"\x00\xf0"
    assert gen.reverse_bit_order(b"\x01\x80\x0f") == b"\x80\x01\xf0"
    assert gen.loss_of_signal(1) == bytes(32) and gen.alarm_indication(1) == b"\xff" * 32


# -- line events and their timing ------------------------------------------------------------


def test_a_clean_crc4_line_aligns_and_stays_quiet() -> None:
    stream = gen.generate(8000, crc4=True, seed=5)  # one second of random payload
    receiver, events, frames = receive(stream, crc4=True, start_time=1000.0)
    assert [type(event) for event in events] == [DefectCleared, MultiframeAligned]
    aligned, multiframe = events
    assert aligned == DefectCleared(520, 1000.0 + 520 / LINE_BITS_PER_SECOND, Defect.LOF)
    # Two multiframe signals 2 ms apart: known within 2 ms and 4 frames of the start.
    assert multiframe.bit <= 2 * 16 * FRAME
    assert frames == stream
    state = receiver.state
    assert state.ok and state.alarm is None and state.defects == ()
    assert state.detail == "frame and CRC-4 multiframe aligned"
    assert state.bit_offset == 0 and state.multiframe_aligned
    assert state.counters.frames == 8000 and state.counters.crc4_errors == 0
    assert state.last_second is not None and state.last_second.frames == 8000
    assert state.last_second.crc4_blocks == state.counters.crc4_blocks > 990


def test_before_any_octet_the_line_is_not_aligned() -> None:
    state = E1Receiver().state
    assert state == LineState(crc4=False)
    assert state.lof and state.alarm is Defect.LOF and state.bit_offset is None
    assert state.detail == "loss of frame alignment (LOF)"


def test_los_is_declared_after_1_ms_of_zeros_and_hides_lof() -> None:
    good = gen.generate(800, crc4=False, seed=1)
    stream = good + gen.loss_of_signal(80) + good  # 10 ms of zeros
    receiver, events, _ = receive(stream, chunk=1000)
    start_of_zeros = 8 * len(good)
    los = next(e for e in events if isinstance(e, DefectRaised) and e.defect is Defect.LOS)
    assert los.bit - start_of_zeros == reference.LOS_ZERO_BITS
    assert los.time == pytest.approx((start_of_zeros + 2048) / LINE_BITS_PER_SECOND)
    lof = next(e for e in events if isinstance(e, DefectRaised) and e.defect is Defect.LOF)
    # Three FAS words into the zeros (at most six frames).
    assert lof.bit - start_of_zeros <= 2 * reference.LOSS_FAS_ERRORS * FRAME
    assert lof.reason is AlignmentLoss.FAS_ERRORS
    assert lof.detail == "loss of frame alignment (LOF): 3 errored FAS words in a row"
    assert defects(events) == [
        ("cleared", Defect.LOF),
        ("raised", Defect.LOF),
        ("raised", Defect.LOS),
        ("cleared", Defect.LOS),
        ("cleared", Defect.LOF),
    ]
    # Mid-outage the alarm is LOS, not the LOF it causes.
    middle = E1Receiver()
    middle.feed(good + gen.loss_of_signal(40))
    assert middle.state.defects == (Defect.LOS, Defect.LOF)
    assert middle.state.alarm is Defect.LOS and middle.state.detail == "loss of signal (LOS)"
    assert receiver.state.ok


def test_ais_and_recovery() -> None:
    good = gen.generate(800, crc4=False, seed=2)
    stream = good + gen.alarm_indication(400) + good
    receiver, events, _ = receive(stream)
    # AIS needs two 512-bit windows (1024 bits), LOF three FAS words (the third ends 1280
    # bits in); afterwards the search needs 520 bits, clearing AIS two windows.
    assert defects(events) == [
        ("cleared", Defect.LOF),
        ("raised", Defect.AIS),
        ("raised", Defect.LOF),
        ("cleared", Defect.LOF),
        ("cleared", Defect.AIS),
    ]
    raised = next(e for e in events if isinstance(e, DefectRaised) and e.defect is Defect.AIS)
    # Two double frames (512 bits each) of ones: within 1024 bits of the start.
    assert raised.bit - 8 * len(good) <= reference.AIS_WINDOWS * 512
    regained = [e for e in events if isinstance(e, DefectCleared) and e.defect is Defect.LOF][-1]
    # Found again within two frames and the three words of the search after the ones end.
    assert regained.bit - 8 * (len(good) + 400 * 32) <= 2 * FRAME + 520
    assert receiver.state.ok


def test_remote_alarm_is_reported_and_cleared() -> None:
    generator = gen.E1Generator(crc4=False)
    stream = generator.idle(100)
    generator.remote_alarm = True
    stream += generator.idle(100)
    _, events, _ = receive(stream)
    assert defects(events) == [("cleared", Defect.LOF), ("raised", Defect.RAI)]
    rai = events[-1]
    assert rai.bit == (100 + 2 * reference.RAI_NFAS_WORDS) * FRAME  # NFAS 101, 103, 105
    receiver = E1Receiver()
    receiver.feed(stream)
    assert receiver.state.alarm is Defect.RAI and receiver.state.detail == "remote alarm (RAI)"


@pytest.mark.parametrize(
    ("damage", "kind", "moved"),
    [
        (lambda s: gen.drop_frames(s, 301), SlipKind.FRAME, 256),
        (lambda s: gen.repeat_octets(s, 9_999, 2), SlipKind.OCTET, 16),
        (lambda s: s[:9_999] + gen.delay_bits(s[9_999:], 6), SlipKind.BIT, 6),
    ],
)
def test_slips_are_typed(damage: object, kind: SlipKind, moved: int) -> None:
    stream = damage(gen.generate(800, crc4=False, seed=4))  # type: ignore[operator]
    _, events, _ = receive(stream, chunk=333)
    slips = [e for e in events if isinstance(e, SlipDetected)]
    assert len(slips) == 1
    assert slips[0].kind is kind and slips[0].displacement_bits == moved


def test_crc4_error_rate_per_second() -> None:
    generator = gen.E1Generator(crc4=True)
    quiet = generator.idle(8000)
    noisy = generator.idle(8000)
    # A bit error in 900 of the 1000 SMFs of the second second: severely errored.
    noisy = gen.flip_bits(noisy, (8 * FRAME * smf + 100 for smf in range(900)))
    stream = quiet + noisy + generator.idle(8000)
    receiver, events, _ = receive(stream, chunk=10_000, crc4=True)
    rate = [
        e
        for e in events
        if isinstance(e, DefectRaised | DefectCleared) and e.defect is Defect.CRC4_ERRORS
    ]
    assert [(type(e), e.bit) for e in rate] == [
        (DefectRaised, 2 * LINE_BITS_PER_SECOND),
        (DefectCleared, 3 * LINE_BITS_PER_SECOND),
    ]
    middle = E1Receiver(crc4=True)
    middle.feed(quiet + noisy)
    state = middle.state
    assert state.crc4_errors and state.alarm is Defect.CRC4_ERRORS
    assert state.last_second is not None
    assert state.last_second.crc4_errors > CRC4_SEVERELY_ERRORED_BLOCKS
    assert (
        state.detail == f"excessive CRC-4 errors: {state.last_second.crc4_errors} of 1000 blocks/s"
    )
    assert (
        receiver.state.ok
        and receiver.state.counters.crc4_errors == middle.state.counters.crc4_errors
    )


def test_a_far_end_without_crc4_is_reported() -> None:
    stream = gen.generate(4000, crc4=False, seed=6)
    receiver, events, _ = receive(stream, crc4=True)
    absent = [e for e in events if isinstance(e, Crc4Absent)]
    assert len(absent) == 1 and absent[0].bit == reference.CRC4_ABSENT_FRAMES * FRAME
    assert receiver.state.ok and receiver.state.crc4_absent
    assert receiver.state.detail == "frame aligned, no CRC-4 from the far end"


def test_seconds_are_counted_in_line_octets_whatever_the_chunks() -> None:
    stream = gen.generate(20_000, crc4=True, seed=7)  # 2.5 s
    stream = gen.flip_bits(stream, range(100, 20_000 * FRAME, 5_000))
    reference_receiver, expected, frames = receive(stream, chunk=len(stream), crc4=True)
    for chunk in (1, 7_777, OCTETS_PER_SECOND):
        if chunk == 1:
            stream_part = stream[: 3 * OCTETS_PER_SECOND // 100]
            _, events, _ = receive(stream_part, chunk=1, crc4=True)
            _, whole, _ = receive(stream_part, chunk=len(stream_part), crc4=True)
            assert events == whole
            continue
        receiver, events, chunk_frames = receive(stream, chunk=chunk, crc4=True)
        assert events == expected and chunk_frames == frames
        assert receiver.state == reference_receiver.state


def test_the_reference_implementation_gives_the_same_events() -> None:
    stream = gen.generate(3000, crc4=True, seed=8)
    stream = gen.drop_octets(stream, 20_000) + gen.loss_of_signal(30) + stream[:30_000]
    fast = receive(stream, crc4=True)
    slow = receive(stream, crc4=True, implementation=reference)
    assert fast[1] == slow[1] and fast[2] == slow[2]
    assert fast[0].state == slow[0].state
    assert hot_path.E1Framer is not reference.E1Framer


# -- frames handed on ------------------------------------------------------------------------


def test_ts16_of_a_bit_shifted_chunked_line_gives_back_the_hdlc_frames() -> None:
    rng = random.Random(9)
    encoder = HdlcEncoder(hdlc.MSB_FIRST)  # TS16 carries HDLC msb-first, as a framer hands it
    encoder.add_flags(4)
    sent = [rng.randbytes(rng.randrange(3, 120)) for _ in range(40)]
    for frame in sent:
        encoder.add_frame(frame)
        encoder.add_flags(rng.randrange(1, 5))
    d_channel = encoder.flush()
    frames = len(d_channel)
    line = gen.E1Generator(crc4=True).frames(gen.mux({16: d_channel, 1: bytes(frames)}, frames))
    line = gen.delay_bits(b"\x5a" * 17 + line, 3)  # garbage first, and frames off the octet grid
    receiver = E1Receiver(crc4=True)
    deframer = hdlc.HdlcDeframer(hdlc.MSB_FIRST)
    received = []
    position = 0
    while position < len(line):
        size = rng.choice([1, 2, 31, 160 * 32, 999])
        for run in receiver.feed(line[position : position + size]).runs:
            received += [f.data for f in deframer.feed(e1.demux(run.frames)[16])]
        position += size
    # The first frames went by while the framer searched; the rest arrive intact.
    assert received == sent[len(sent) - len(received) :]
    assert len(received) >= len(sent) - 2
    assert deframer.bad_fcs == 0
    assert receiver.state.ok and receiver.state.bit_offset == 3
