"""Analysis of real speech (espeak-ng), silence, noise, and DTMF recordings made by sox."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cython_ext.resample import resample
from gateway.audio.analyze import AudioAnalysis, analyze_file, analyze_pcm
from gateway.audio.wav import read_wav, write_wav

from .sounds import dtmf, espeak, multimon_dtmf, noise, pack, silence, sox, sox_dtmf, tone


@pytest.mark.requires_tool("espeak-ng")
def test_espeak_speech_is_not_silent(tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    espeak(path, "Tolong, ada kebakaran")
    assert read_wav(path).source.sample_rate == 22050
    analysis = analyze_file(path)
    assert not analysis.silent
    assert analysis.first_speech_ms is not None and analysis.first_speech_ms < 300
    assert analysis.speech_ratio > 0.5
    assert analysis.dtmf == ()
    assert -35.0 < analysis.level_dbov < -10.0


@pytest.mark.requires_tool("espeak-ng")
def test_speech_after_a_pause(tmp_path: Path) -> None:
    path = tmp_path / "late.wav"
    espeak(path, "Halo? Tolong")
    speech = read_wav(path).pcm
    pcm = pack(noise(2000, 30.0)) + speech  # 2 s of faint line noise first
    analysis = analyze_pcm(pcm)
    assert analysis.first_speech_ms is not None
    assert 1900 <= analysis.first_speech_ms <= 2300
    assert not analysis.silent


def test_digital_silence() -> None:
    analysis = analyze_pcm(pack(silence(3000)))
    assert analysis.silent
    assert (analysis.speech_ratio, analysis.first_speech_ms, analysis.dtmf) == (0.0, None, ())
    assert analysis.duration_ms == 3000
    assert analysis.level_dbov == -100.0


def test_steady_noise_is_silent() -> None:
    analysis = analyze_pcm(pack(noise(4000, 1000.0)))
    assert analysis.silent
    assert analysis.first_speech_ms is None
    assert abs(analysis.level_dbov - 20 * math.log10(1000.0 / 32768.0)) < 0.5


@pytest.mark.requires_tool("sox")
def test_sox_noise_is_silent(tmp_path: Path) -> None:
    path = tmp_path / "noise.wav"
    sox("-n", "-r", "16000", "-c", "1", "-b", "16", path, "synth", "3", "pinknoise", "vol", "0.1")
    analysis = analyze_file(path)
    assert analysis.silent
    assert analysis.dtmf == ()


@pytest.mark.requires_tool("sox")
def test_dtmf_recording_by_sox(tmp_path: Path) -> None:
    path = tmp_path / "digits.wav"
    sox_dtmf(path, "5512#", 8000, 1)
    analysis = analyze_file(path)
    assert analysis.digits == "5512#"
    starts = [item.start_ms for item in analysis.dtmf]
    assert all(abs(start - 200 * index) <= 13 for index, start in enumerate(starts))
    assert all(75 <= item.end_ms - item.start_ms <= 110 for item in analysis.dtmf)  # +-1 block
    # Key presses are not speech: someone pressing 55 on a silent call is still "silent".
    assert analysis.silent and analysis.speech_ratio == 0.0


@pytest.mark.requires_tool("sox", "multimon-ng")
def test_multimon_hears_the_digits_of_the_sox_recording_too(tmp_path: Path) -> None:
    path = tmp_path / "digits.wav"
    sox_dtmf(path, "5512#", 8000, 1)
    assert multimon_dtmf(resample(read_wav(path).pcm, 8000, 22050)) == "5512#"


@pytest.mark.requires_tool("espeak-ng")
def test_digits_between_words(tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    espeak(path, "Ada kebakaran")
    speech = read_wav(path).pcm
    analysis = analyze_pcm(speech + pack(dtmf("55")) + speech)
    assert analysis.digits == "55"
    assert not analysis.silent


def test_clipping_and_levels() -> None:
    full_scale = pack(tone((1000.0,), 1000, amplitude=40000.0))  # clipped at 16 bits
    analysis = analyze_pcm(full_scale)
    assert analysis.clipped_samples > 1000
    sine = analyze_pcm(pack(tone((1000.0,), 1000, amplitude=32767.0 / 10)))
    assert abs(sine.level_dbov - (-3.01 - 20.0)) < 0.1
    assert sine.clipped_samples == 0


def test_as_dict_is_json_ready(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "d.wav", pack(silence(500) + dtmf("9")))
    analysis = analyze_file(path)
    decoded = json.loads(json.dumps(analysis.as_dict()))
    assert decoded["first_speech_ms"] is None
    (digit,) = decoded["dtmf"]
    assert digit["digit"] == "9"
    assert abs(digit["start_ms"] - 500) <= 13 and abs(digit["end_ms"] - 600) <= 13
    assert set(decoded) >= {
        "duration_ms",
        "speech_ratio",
        "first_speech_ms",
        "silent",
        "dtmf",
        "level_dbov",
        "noise_floor_dbov",
        "clipped_samples",
    }


def test_empty_and_odd_input() -> None:
    empty = analyze_pcm(b"")
    assert isinstance(empty, AudioAnalysis)
    assert (empty.duration_ms, empty.silent, empty.speech_ratio) == (0, True, 0.0)
    try:
        analyze_pcm(b"\x00")
    except ValueError as error:
        assert "even number" in str(error)
    else:
        raise AssertionError("odd byte count accepted")
