"""Voice activity: speech against silence and steady noise, clipping, parity with the reference."""

from __future__ import annotations

import math
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cython_ext import vad
from cython_ext.reference import vad as reference
from drivers.simulated.audio_signals import (
    dbov_rms,
    mix,
    music_like,
    power,
    samples_for,
    silence,
    speech_like,
    to_pcm,
    white_noise,
)

from .test_dtmf import espeak_pcm

FRAME = 160


def analyse(pcm: bytes, chunk: int = 320) -> vad.VoiceActivity:
    activity = vad.VoiceActivity()
    for start in range(0, len(pcm), chunk):
        activity.feed(pcm[start : start + chunk])
    return activity


def rumble(count: int, rms: float, seed: int = 3) -> list[float]:
    """Low-frequency (one-pole low-passed) noise, like traffic or an engine."""
    rng = random.Random(seed)
    out = []
    state = 0.0
    for _ in range(count):
        state = 0.97 * state + rng.gauss(0.0, 1.0)
        out.append(state)
    scale = rms / math.sqrt(power(out))
    return [value * scale for value in out]


def first_nonzero(signal: list[float]) -> int:
    return next(index for index, value in enumerate(signal) if abs(value) > 1.0)


def test_digital_silence() -> None:
    activity = analyse(to_pcm(silence(3000)))
    assert activity.total_frames == 150
    assert activity.speech_frames == 0
    assert activity.first_speech_sample is None
    assert activity.level_dbov == vad.SILENCE_DBOV
    assert not activity.in_speech


@pytest.mark.parametrize("level_dbov", [-65.0, -50.0, -35.0, -20.0])
def test_steady_white_noise_is_not_speech(level_dbov: float) -> None:
    activity = analyse(to_pcm(white_noise(samples_for(8000), dbov_rms(level_dbov))))
    assert activity.speech_frames == 0
    assert activity.first_speech_sample is None
    assert abs(activity.noise_floor_dbov - level_dbov) < 2.0
    assert abs(activity.level_dbov - level_dbov) < 2.0


@pytest.mark.parametrize("level_dbov", [-50.0, -30.0])
def test_steady_rumble_is_not_speech(level_dbov: float) -> None:
    activity = analyse(to_pcm(rumble(samples_for(8000), dbov_rms(level_dbov))))
    assert activity.speech_frames == 0


def test_noise_that_starts_or_steps_up_is_not_speech() -> None:
    quiet = white_noise(samples_for(2000), dbov_rms(-60.0), seed=4)
    loud = white_noise(samples_for(3000), dbov_rms(-35.0), seed=5)
    for signal in (silence(500) + loud, quiet + loud, silence(300) + quiet + loud):
        assert analyse(to_pcm(signal)).speech_frames == 0


def test_speech_after_silence() -> None:
    speech = speech_like(5.0, level_dbov=-22.0, seed=1)
    signal = silence(500) + speech
    activity = analyse(to_pcm(signal))
    onset = first_nonzero(signal)
    assert activity.first_speech_sample is not None
    assert abs(activity.first_speech_sample - onset) <= 3 * FRAME
    assert activity.speech_frames > 0.5 * 250


@pytest.mark.parametrize("snr_db", [20.0, 10.0])
@pytest.mark.parametrize("noise_kind", ["white", "rumble"])
def test_speech_over_steady_noise(snr_db: float, noise_kind: str) -> None:
    speech = silence(1500) + speech_like(6.0, level_dbov=-24.0, seed=2)
    active = [value for value in speech if value != 0.0]
    noise_rms = math.sqrt(power(active) / 10.0 ** (snr_db / 10.0))
    make_noise = white_noise if noise_kind == "white" else rumble
    signal = mix(speech, make_noise(len(speech), noise_rms, 6))
    activity = analyse(to_pcm(signal))
    onset = first_nonzero(speech)
    assert activity.first_speech_sample is not None
    assert onset - FRAME <= activity.first_speech_sample <= onset + samples_for(500)
    assert activity.speech_frames > 0.4 * 300
    # The noise before the speech sets the floor.
    assert activity.noise_floor_dbov < 10.0 * math.log10(noise_rms**2 / 32768.0**2) + 1.0


def test_speech_then_silence_ends_after_the_hangover() -> None:
    activity = vad.VoiceActivity()
    activity.feed(to_pcm(silence(500) + speech_like(3.0, seed=3)))
    activity.feed(to_pcm(silence(300)))
    assert not activity.in_speech
    speech_frames = activity.speech_frames
    activity.feed(to_pcm(silence(2000)))
    assert activity.speech_frames == speech_frames


def test_music_is_activity_too() -> None:
    activity = analyse(to_pcm(silence(400) + music_like(4.0, seed=3)))
    assert activity.first_speech_sample is not None


def test_clipping_is_counted() -> None:
    samples = [0, 31999, 32000, 32767, -31999, -32000, -32768, 5]
    pcm = struct.pack(f"<{len(samples)}h", *samples)
    for implementation in (vad, reference):
        activity = implementation.VoiceActivity()
        activity.feed(pcm)
        assert activity.clipped_samples == 4
        assert activity.total_frames == 0  # a partial frame is kept for later


def test_levels_in_dbov() -> None:
    square = to_pcm([32767.0 if (n // 20) % 2 else -32767.0 for n in range(1600)])
    assert abs(analyse(square).level_dbov - 0.0) < 0.01
    sine = to_pcm([32767.0 * 0.1 * math.sin(2 * math.pi * 1000 * n / 8000) for n in range(1600)])
    assert abs(analyse(sine).level_dbov - (-20.0 - 3.01)) < 0.05


@pytest.mark.requires_tool("espeak-ng")
def test_espeak_ng_speech_with_and_without_noise() -> None:
    pcm = espeak_pcm("Help, there has been an accident on the toll road near Bekasi.")
    lead = to_pcm(white_noise(samples_for(1000), dbov_rms(-50.0)))
    for prefix in (bytes(len(lead)), lead):
        activity = analyse(prefix + pcm)
        assert activity.first_speech_sample is not None
        assert activity.first_speech_sample >= len(prefix) // 2 - FRAME


def test_odd_byte_count_is_refused() -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        vad.VoiceActivity().feed(b"\x01")


def test_constants_match_the_reference() -> None:
    for name in (
        "FRAME_MS",
        "SILENCE_DBOV",
        "CLIP_LEVEL",
        "NOISE_WINDOW_FRAMES",
        "NOISE_WINDOWS",
        "STATIONARY_FRAMES",
        "STATIONARY_SPREAD_DB",
        "ACTIVITY_MARGIN_DB",
        "ACTIVITY_MIN_DBOV",
        "ONSET_FRAMES",
        "ONSET_SPREAD_DB",
        "HANGOVER_FRAMES",
        "HIGHPASS_HZ",
        "SMOOTHING_FRAMES",
    ):
        assert getattr(vad, name) == getattr(reference, name), name


segment = st.one_of(
    st.builds(lambda ms: silence(ms), st.floats(0, 600)),
    st.builds(
        lambda ms, level, seed: white_noise(samples_for(ms), dbov_rms(level), seed),
        st.floats(10, 900),
        st.floats(-80, -5),
        st.integers(),
    ),
    st.builds(
        lambda seconds, level, seed: speech_like(seconds, level, seed),
        st.floats(0.1, 1.5),
        st.floats(-45, -3),
        st.integers(0, 1000),
    ),
    st.builds(lambda count, value: [value] * count, st.integers(1, 400), st.floats(-40000, 40000)),
)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(segment, min_size=1, max_size=6), st.integers(1, 500), st.sampled_from([8000, 16000])
)
def test_cython_matches_reference(segments: list[list[float]], chunk: int, rate: int) -> None:
    pcm = to_pcm([value for part in segments for value in part])
    fast = vad.VoiceActivity(rate)
    slow = reference.VoiceActivity(rate)
    for start in range(0, len(pcm), 2 * chunk):
        piece = pcm[start : start + 2 * chunk]
        assert fast.feed(piece) == slow.feed(piece)
        assert fast.level_dbov == slow.level_dbov
        assert fast.noise_floor_dbov == slow.noise_floor_dbov
    for name in ("speech_frames", "total_frames", "first_speech_sample", "clipped_samples"):
        assert getattr(fast, name) == getattr(slow, name), name
    assert fast.in_speech == slow.in_speech
    assert fast.frame_length == slow.frame_length
