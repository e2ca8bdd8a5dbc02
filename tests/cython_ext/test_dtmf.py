"""DTMF detector: conformance (ITU-T Q.24 / ETSI ES 201 235-3), talk-off, parity.

Conformance signals come from ``drivers.simulated.audio_signals``; the tests
on espeak-ng speech and the multimon-ng cross-check need those programs and are
skipped, with the reason, where they are not installed.
"""

from __future__ import annotations

import subprocess
import wave
from array import array
from io import BytesIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cython_ext import dtmf
from cython_ext.reference import dtmf as reference
from drivers.simulated.audio_signals import (
    DIGITS,
    digit_sequence,
    dtmf_tone,
    mix,
    music_like,
    samples_for,
    silence,
    speech_like,
    to_pcm,
    white_noise,
    with_snr,
)
from tests.conftest import require_tool

Event = tuple[str, int, int]


def detect(pcm: bytes, sample_rate: int = 8000, chunk: int = 320) -> list[Event]:
    detector = dtmf.DtmfDetector(sample_rate)
    events: list[Event] = []
    for start in range(0, len(pcm), chunk):
        events += detector.feed(pcm[start : start + chunk])
    return events + detector.flush()


def digits_of(signal: list[float]) -> str:
    return "".join(event[0] for event in detect(to_pcm(signal)))


def test_all_sixteen_digits_with_their_timing() -> None:
    signal = digit_sequence(DIGITS, tone_ms=50, gap_ms=50, lead_ms=30)
    events = detect(to_pcm(signal))
    assert "".join(event[0] for event in events) == DIGITS
    block = dtmf.DtmfDetector().block_size
    for index, (_, start, end) in enumerate(events):
        tone_start = samples_for(30 + 100 * index)
        tone_end = tone_start + samples_for(50)
        assert tone_start - block <= start <= tone_start + block
        assert tone_end - block <= end <= tone_end + block


@pytest.mark.parametrize("deviation", [0.015, -0.015])
@pytest.mark.parametrize("tones", ["row", "column", "both"])
def test_frequency_within_1_5_percent_is_detected(deviation: float, tones: str) -> None:
    signal = digit_sequence(
        DIGITS,
        tone_ms=60,
        gap_ms=60,
        row_deviation=deviation if tones != "column" else 0.0,
        column_deviation=deviation if tones != "row" else 0.0,
    )
    assert digits_of(signal) == DIGITS


@pytest.mark.parametrize("deviation", [0.035, -0.035, 0.05, -0.06])
@pytest.mark.parametrize("tones", ["row", "column", "both"])
def test_frequency_beyond_3_5_percent_is_rejected(deviation: float, tones: str) -> None:
    signal = digit_sequence(
        DIGITS,
        tone_ms=100,
        gap_ms=60,
        row_deviation=deviation if tones != "column" else 0.0,
        column_deviation=deviation if tones != "row" else 0.0,
    )
    assert digits_of(signal) == ""


@pytest.mark.parametrize("twist_db", [8.0, -4.0, 6.0, -2.0])
def test_twist_within_limits_is_detected(twist_db: float) -> None:
    """+8 dB normal twist (row louder) and -4 dB reverse twist (column louder)."""
    signal = digit_sequence(DIGITS, tone_ms=60, gap_ms=60, level_dbm0=-15, twist_db=twist_db)
    assert digits_of(signal) == DIGITS


@pytest.mark.parametrize("twist_db", [10.0, -6.0, 14.0, -10.0])
def test_twist_beyond_limits_is_rejected(twist_db: float) -> None:
    signal = digit_sequence(DIGITS, tone_ms=100, gap_ms=60, level_dbm0=-15, twist_db=twist_db)
    assert digits_of(signal) == ""


@pytest.mark.parametrize("lead_samples", range(0, 102, 17))
def test_40_ms_tones_with_40_ms_gaps_are_separate_digits(lead_samples: int) -> None:
    """Every alignment of the tones to the 102-sample blocks."""
    signal = silence(lead_samples / 8) + digit_sequence(DIGITS + "55", tone_ms=40, gap_ms=40)
    assert digits_of(signal) == DIGITS + "55"


@pytest.mark.parametrize("tone_ms", [20, 15, 10])
@pytest.mark.parametrize("lead_samples", range(0, 102, 17))
def test_tones_of_20_ms_or_less_are_ignored(tone_ms: int, lead_samples: int) -> None:
    signal = silence(lead_samples / 8) + digit_sequence(DIGITS, tone_ms=tone_ms, gap_ms=40)
    assert digits_of(signal) == ""


@pytest.mark.parametrize("gap_ms", [5, 10, 15])
@pytest.mark.parametrize("lead_samples", range(0, 102, 17))
def test_short_interruptions_are_bridged(gap_ms: int, lead_samples: int) -> None:
    signal = (
        silence(lead_samples / 8)
        + dtmf_tone("5", 60)
        + silence(gap_ms)
        + dtmf_tone("5", 60, seed=3)
        + silence(60)
    )
    events = detect(to_pcm(signal))
    assert [event[0] for event in events] == ["5"]


@pytest.mark.parametrize("level_dbm0", [-36.0, -30.0, -20.0, -10.0, -3.0])
def test_level_range_of_more_than_26_db(level_dbm0: float) -> None:
    signal = digit_sequence(DIGITS, tone_ms=50, gap_ms=50, level_dbm0=level_dbm0)
    assert digits_of(signal) == DIGITS


def test_tones_below_the_threshold_are_ignored() -> None:
    signal = digit_sequence(DIGITS, tone_ms=100, gap_ms=50, level_dbm0=-48)
    assert digits_of(signal) == ""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_white_noise_at_15_db_snr(seed: int) -> None:
    signal = with_snr(
        digit_sequence(DIGITS, tone_ms=50, gap_ms=50, lead_ms=50, level_dbm0=-20),
        snr_db=15.0,
        seed=seed,
    )
    assert digits_of(signal) == DIGITS


def test_noise_alone_gives_no_digits() -> None:
    for rms in (30.0, 300.0, 3000.0):
        assert digits_of(white_noise(samples_for(5000), rms, seed=int(rms))) == ""


def test_ten_digits_a_second_back_to_back_without_gap_change_digit() -> None:
    signal = dtmf_tone("1", 60) + dtmf_tone("2", 60) + silence(60)
    assert digits_of(signal) == "12"


def test_held_digit_is_reported_once_with_its_duration() -> None:
    detector = dtmf.DtmfDetector()
    assert detector.feed(to_pcm(dtmf_tone("#", 2000))) == []
    assert detector.digit_in_progress == "#"
    events = detector.feed(to_pcm(silence(100)))
    assert [event[0] for event in events] == ["#"]
    _, start, end = events[0]
    assert start == 0
    assert abs(end - 16000) <= detector.block_size
    assert detector.digit_in_progress is None


def test_flush_reports_a_digit_still_sounding() -> None:
    detector = dtmf.DtmfDetector()
    assert detector.feed(to_pcm(dtmf_tone("7", 200))) == []
    assert [event[0] for event in detector.flush()] == ["7"]
    assert detector.flush() == []


def test_chunking_does_not_matter() -> None:
    pcm = to_pcm(with_snr(digit_sequence("1397*", tone_ms=45, gap_ms=45), 20.0))
    whole = detect(pcm, chunk=len(pcm))
    assert detect(pcm, chunk=2) == whole
    assert detect(pcm, chunk=162) == whole
    assert [event[0] for event in whole] == list("1397*")


def test_int16_buffers_and_bytes_like_input() -> None:
    pcm = to_pcm(digit_sequence("A0", tone_ms=60, gap_ms=60))
    samples = array("h")
    samples.frombytes(pcm)  # little-endian targets only
    for buffer in (samples, bytearray(pcm), memoryview(pcm)):
        detector = dtmf.DtmfDetector()
        events = detector.feed(buffer) + detector.flush()  # type: ignore[arg-type]
        assert [event[0] for event in events] == ["A", "0"]


def test_odd_byte_count_is_refused() -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        dtmf.DtmfDetector().feed(b"\x00\x00\x00")


def test_other_sample_rates() -> None:
    for rate in (16000, 11025):
        signal: list[float] = []
        for position, digit in enumerate(DIGITS):
            signal += dtmf_tone(digit, 50, rate=rate, seed=position) + silence(50, rate)
        assert "".join(event[0] for event in detect(to_pcm(signal), rate)) == DIGITS
    with pytest.raises(ValueError, match="sample_rate"):
        dtmf.DtmfDetector(1000)


@pytest.mark.parametrize("seed", range(4))
def test_talk_off_on_speech_like_signals(seed: int) -> None:
    speech = speech_like(15.0, seed=seed)
    for gain in (0.3, 1.0, 3.0):
        assert digits_of([value * gain for value in speech]) == ""


@pytest.mark.parametrize("seed", range(4))
def test_talk_off_on_music_like_chords(seed: int) -> None:
    music = music_like(15.0, seed=seed)
    for gain in (0.3, 1.0, 3.0):
        assert digits_of([value * gain for value in music]) == ""


def test_digits_over_speech_are_still_found() -> None:
    digits = digit_sequence("159#", tone_ms=80, gap_ms=120, lead_ms=300, level_dbm0=-10)
    speech = speech_like(len(digits) / 8000, level_dbov=-35, seed=9)
    assert digits_of(mix(digits, speech)) == "159#"


def espeak_pcm(text: str) -> bytes:
    """espeak-ng speech resampled to 8 kHz PCM (the test is skipped without espeak-ng)."""
    __tracebackhide__ = True
    espeak = require_tool("espeak-ng")
    wav = subprocess.run([espeak, "--stdout", text], capture_output=True, check=True).stdout
    with wave.open(BytesIO(wav)) as reader:
        rate = reader.getframerate()
        samples = array("h")
        samples.frombytes(reader.readframes(reader.getnframes()))
    # Low-pass (moving average over rate/8000 samples) and pick every rate/8000th.
    step = rate / 8000.0
    width = max(1, round(step))
    out = []
    position = 0.0
    while position + width < len(samples):
        index = int(position)
        out.append(sum(samples[index : index + width]) / width)
        position += step
    return to_pcm(out)


@pytest.mark.requires_tool("espeak-ng")
def test_talk_off_on_espeak_ng_speech() -> None:
    pcm = espeak_pcm(
        "Emergency. My house is on fire, please send help to number one two three "
        "four five six seven eight nine, zero. Hash, star. Hello? Can you hear me?"
    )
    assert detect(pcm) == []
    louder = array("h")
    louder.frombytes(pcm)
    assert detect(to_pcm([value * 3.0 for value in louder])) == []


@pytest.mark.requires_tool("multimon-ng")
def test_cross_check_with_multimon_ng() -> None:
    """multimon-ng (22,050 Hz only) must decode what we decode at 8 kHz."""
    multimon = require_tool("multimon-ng")
    sequence = "0123456789*#ABCD"
    signal: list[float] = []
    for position, digit in enumerate(sequence):
        signal += dtmf_tone(digit, 70, rate=22050, seed=position) + silence(70, 22050)
    result = subprocess.run(
        [multimon, "-q", "-a", "DTMF", "-t", "raw", "-"],
        input=to_pcm(signal),
        capture_output=True,
        check=True,
    )
    theirs = "".join(
        line.split(":", 1)[1].strip()
        for line in result.stdout.decode().splitlines()
        if line.startswith("DTMF:")
    )
    ours = digits_of(digit_sequence(sequence, tone_ms=70, gap_ms=70))
    assert ours == theirs == sequence


segment = st.one_of(
    st.builds(
        lambda digit, ms, level, twist, row, column, seed: dtmf_tone(
            digit, ms, level, twist, row, column, seed=seed
        ),
        st.sampled_from(DIGITS),
        st.floats(10, 90),
        st.floats(-48, -3),
        st.floats(-7, 11),
        st.floats(-0.04, 0.04),
        st.floats(-0.04, 0.04),
        st.integers(0, 100),
    ),
    st.floats(5, 80).map(silence),
    st.builds(
        lambda ms, seed: white_noise(samples_for(ms), 200.0, seed), st.floats(5, 60), st.integers()
    ),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(segment, min_size=1, max_size=8), st.integers(1, 400), st.floats(0, 100))
def test_cython_matches_reference(segments: list[list[float]], chunk: int, noise: float) -> None:
    signal = [value for part in segments for value in part]
    signal = mix(signal, white_noise(len(signal), noise, seed=7))
    pcm = to_pcm(signal)
    fast = dtmf.DtmfDetector()
    slow = reference.DtmfDetector()
    for start in range(0, len(pcm), 2 * chunk):
        piece = pcm[start : start + 2 * chunk]
        assert fast.feed(piece) == slow.feed(piece)
        assert fast.digit_in_progress == slow.digit_in_progress
    assert fast.flush() == slow.flush()
    assert fast.samples_seen == slow.samples_seen


def test_cython_matches_reference_on_speech_and_conformance_signals() -> None:
    signals = [
        speech_like(2.0, seed=11),
        digit_sequence(DIGITS, tone_ms=40, gap_ms=40, row_deviation=0.02, column_deviation=-0.02),
        with_snr(digit_sequence("1A*", tone_ms=60, gap_ms=40, twist_db=7.5), 14.0),
    ]
    for signal in signals:
        pcm = to_pcm(signal)
        fast = dtmf.DtmfDetector()
        slow = reference.DtmfDetector()
        assert fast.feed(pcm) + fast.flush() == slow.feed(pcm) + slow.flush()


def test_constants_match_the_reference() -> None:
    for name in (
        "DIGITS",
        "ROW_FREQUENCIES",
        "COLUMN_FREQUENCIES",
        "MIN_LEVEL_DBM0",
        "NORMAL_TWIST_DB",
        "REVERSE_TWIST_DB",
        "RELATIVE_PEAK_DB",
        "MIN_POWER_FRACTION",
        "SECOND_HARMONIC_DB",
        "HALF_BALANCE_DB",
        "BLOCK_NORMAL_TWIST_DB",
        "BLOCK_REVERSE_TWIST_DB",
        "FREQUENCY_TOLERANCE",
        "END_BLOCKS",
    ):
        assert getattr(dtmf, name) == getattr(reference, name), name
    for rate in (8000, 11025, 16000, 44100):
        assert dtmf.block_samples(rate) == reference.block_samples(rate)
