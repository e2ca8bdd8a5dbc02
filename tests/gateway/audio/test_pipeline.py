"""The per-call audio pipeline on generated call audio: events, classification, recording."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest

from cython_ext.g711 import alaw_encode
from drivers.simulated.audio_signals import (
    dbov_rms,
    digit_sequence,
    silence,
    speech_like,
    to_pcm,
    white_noise,
)
from gateway.audio.contract import CallAudio
from gateway.audio.pipeline import CallAudioPipeline
from gateway.audio.recorder import RecordingStore
from gateway.audio.wav import read_wav
from gateway.config import AudioSettings
from gateway.events import CallAudioSummary, CallDtmf, Event

from .sounds import sox_reads

FRAME = 320  # 20 ms of PCM16


def run(
    pcm: bytes,
    settings: AudioSettings,
    *,
    encoding: str = "pcm16",
    store: RecordingStore | None = None,
    prompt: bytes | None = None,
    caller_after_prompt: bytes = b"",
) -> tuple[list[Event], bytes]:
    """Feed ``pcm`` in 20 ms frames; returns the events and what was played to the caller.

    ``caller_after_prompt`` replaces the caller's audio from the moment the
    prompt starts (a caller who reacts to it).
    """
    events: list[Event] = []
    played = bytearray()
    call = CallAudio(call_id="call-1", line="gsm0", encoding=encoding, play=played.extend)
    pipeline = CallAudioPipeline(call, settings, events.append, store=store, prompt=prompt)
    stream = pcm
    position = 0
    while position < len(stream):
        frame = stream[position : position + FRAME]
        if encoding == "alaw":
            frame = alaw_encode(frame)
        pipeline.feed(frame)
        position += FRAME
        if caller_after_prompt and played and stream is pcm:
            stream = pcm[:position] + caller_after_prompt
    pipeline.close()
    return events, bytes(played)


def summary_of(events: list[Event]) -> CallAudioSummary:
    (summary,) = [e for e in events if isinstance(e, CallAudioSummary)]
    return summary


def test_speech_with_digits_gives_dtmf_events_and_a_non_ghost_summary() -> None:
    pcm = to_pcm(silence(500) + speech_like(2.0) + digit_sequence("112#", 80, 80) + silence(300))
    events, _ = run(pcm, AudioSettings(record=False))
    digits = [e for e in events if isinstance(e, CallDtmf)]
    assert "".join(d.digit for d in digits) == "112#"
    assert all(b.offset_ms > a.offset_ms for a, b in itertools.pairwise(digits))
    assert digits[0].offset_ms >= 2400  # after 0.5 s silence and 2 s of speech
    summary = summary_of(events)
    assert summary.digits == "112#"
    assert not summary.silent and summary.category is None
    assert summary.first_speech_ms is not None and 400 <= summary.first_speech_ms <= 1500
    assert 0.2 < summary.speech_ratio < 0.9
    assert summary.recording is None and summary.silent_call is None
    assert abs(summary.duration_ms - len(pcm) // 16) <= 20


def test_silence_and_noise_only_is_a_ghost_call() -> None:
    pcm = to_pcm(white_noise(8000 * 12, dbov_rms(-55)))
    summary = summary_of(run(pcm, AudioSettings(record=False, ghost_after_s=10))[0])
    assert summary.silent and summary.first_speech_ms is None
    assert summary.category == "ghost"


def test_speech_after_the_ghost_limit_is_still_ghost_but_not_silent() -> None:
    pcm = to_pcm(silence(3000) + speech_like(2.0))
    summary = summary_of(run(pcm, AudioSettings(record=False, ghost_after_s=2))[0])
    assert not summary.silent and summary.category == "ghost"


def test_alaw_source_is_decoded(tmp_path: Path) -> None:
    pcm = to_pcm(speech_like(1.0) + digit_sequence("55", 80, 80) + silence(200))
    summary = summary_of(run(pcm, AudioSettings(record=False), encoding="alaw")[0])
    assert summary.digits == "55" and not summary.silent


def record_a_call(tmp_path: Path) -> tuple[bytes, CallAudioSummary]:
    """A call through a recording pipeline: the caller's audio and the summary."""
    store = RecordingStore(tmp_path / "rec", quota_mb=10)
    pcm = to_pcm(speech_like(1.5) + digit_sequence("9", 80, 80))
    summary = summary_of(
        run(pcm, AudioSettings(record=True, recordings_dir=str(tmp_path / "rec")), store=store)[0]
    )
    assert summary.recording is not None
    return pcm, summary


def test_recording_is_a_valid_wav_with_the_reported_checksum(tmp_path: Path) -> None:
    pcm, summary = record_a_call(tmp_path)
    assert summary.recording is not None
    path = Path(summary.recording["path"])
    assert path.is_file() and path.is_relative_to(tmp_path / "rec")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == summary.recording["sha256"]
    assert summary.recording["encoding"] == "alaw"
    audio = read_wav(path)
    assert abs(len(audio.pcm) - len(pcm)) <= FRAME


@pytest.mark.requires_tool("sox")
def test_sox_opens_the_recording(tmp_path: Path) -> None:
    _, summary = record_a_call(tmp_path)
    assert summary.recording is not None
    assert sox_reads(Path(summary.recording["path"])), "a real player opens the file"


def test_silent_caller_hears_the_prompt_and_presses_55() -> None:
    prompt = to_pcm(speech_like(1.0, seed=5))
    settings = AudioSettings(record=False, silent_prompt_after_s=2.0, silent_listen_s=5.0)
    reaction = to_pcm(silence(1500) + digit_sequence("55", 80, 80) + silence(500))
    events, played = run(
        to_pcm(silence(6000)), settings, prompt=prompt, caller_after_prompt=reaction
    )
    assert played == prompt, "the whole prompt was played, once"
    summary = summary_of(events)
    assert summary.silent_call == {"prompted": True, "pressed_55": True}
    assert summary.category is None, "a caller who pressed 55 is not a ghost"


def test_silent_caller_who_does_not_react_stays_ghost() -> None:
    prompt = to_pcm(speech_like(0.5, seed=5))
    settings = AudioSettings(record=False, silent_prompt_after_s=1.0, ghost_after_s=3)
    events, played = run(to_pcm(silence(5000)), settings, prompt=prompt)
    summary = summary_of(events)
    assert played == prompt
    assert summary.silent_call == {"prompted": True, "pressed_55": False}
    assert summary.category == "ghost"


def test_a_speaking_caller_is_never_prompted() -> None:
    prompt = to_pcm(speech_like(0.5, seed=5))
    settings = AudioSettings(record=False, silent_prompt_after_s=2.0)
    events, played = run(to_pcm(speech_like(4.0)), settings, prompt=prompt)
    assert played == b""
    assert summary_of(events).silent_call == {"prompted": False, "pressed_55": False}
