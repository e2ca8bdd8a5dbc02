"""What a call's audio tells: length, speech, first speech, silence, DTMF digits, levels.

Input is 8 kHz signed 16-bit mono PCM (``analyze_pcm``) or any WAV that
``gateway.audio.wav`` reads (``analyze_file``, converted to that first). The
work is done by the hot paths: ``cython_ext.vad.VoiceActivity`` (20 ms
frames, adaptive noise floor, speech onset and hangover) and
``cython_ext.dtmf.DtmfDetector``.

Definitions:

* ``speech_ratio``: speech frames / complete 20 ms frames (hangover
  included, as the detector counts them);
* DTMF tones are not speech: frames that overlap a detected digit (from
  40 ms before it to 200 ms after it) are not counted (a caller who only presses keys, as in the
  "Silent Solution" 55, is a silent caller who is there);
* ``first_speech_ms``: start of the first speech frame left, None when none;
* ``silent``: less than ``MIN_SPEECH_MS`` (400 ms) of speech in all, i.e. no
  sustained speech: a click or a cough does not make a call "not silent";
* ``level_dbov``: mean power of the whole signal (complete frames), dBov;
* ``noise_floor_dbov``: median over the call of the detector's noise floor
  (of the 150 Hz high-passed signal);
* ``clipped_samples``: samples at or beyond +-32,000.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass
from typing import Any

from cython_ext.dtmf import DtmfDetector
from cython_ext.vad import FRAME_MS, HANGOVER_FRAMES, SILENCE_DBOV, VoiceActivity
from gateway.audio.wav import TARGET_RATE, BytesLike, read_wav

MIN_SPEECH_MS = 400
DTMF_LEAD_MS = 2 * FRAME_MS  # the detector starts a digit up to a block after the tone
DTMF_HANGOVER_MS = HANGOVER_FRAMES * FRAME_MS


@dataclass(frozen=True)
class DtmfDigit:
    digit: str
    start_ms: int
    end_ms: int

    def as_dict(self) -> dict[str, Any]:
        return {"digit": self.digit, "start_ms": self.start_ms, "end_ms": self.end_ms}


@dataclass(frozen=True)
class AudioAnalysis:
    """The analysis of one recording or PCM buffer; see the module docstring."""

    duration_ms: int
    speech_ratio: float
    first_speech_ms: int | None
    silent: bool
    dtmf: tuple[DtmfDigit, ...]
    level_dbov: float
    noise_floor_dbov: float
    clipped_samples: int
    speech_ms: int

    @property
    def digits(self) -> str:
        return "".join(item.digit for item in self.dtmf)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (ratios to 4 decimals, levels to 0.1 dB)."""
        return {
            "duration_ms": self.duration_ms,
            "speech_ratio": round(self.speech_ratio, 4),
            "first_speech_ms": self.first_speech_ms,
            "silent": self.silent,
            "speech_ms": self.speech_ms,
            "dtmf": [item.as_dict() for item in self.dtmf],
            "level_dbov": round(self.level_dbov, 1),
            "noise_floor_dbov": round(self.noise_floor_dbov, 1),
            "clipped_samples": self.clipped_samples,
        }


def analyze_file(path: str | os.PathLike[str], *, allow_truncated: bool = False) -> AudioAnalysis:
    """Analyse a WAV file (any format ``read_wav`` takes); raises ``WavError``/``OSError``."""
    return analyze_pcm(read_wav(path, allow_truncated=allow_truncated).pcm)


def analyze_pcm(pcm16_8k: BytesLike) -> AudioAnalysis:
    """Analyse 8 kHz signed 16-bit little-endian mono PCM."""
    if len(pcm16_8k) % 2:
        raise ValueError(f"16-bit PCM needs an even number of bytes, got {len(pcm16_8k)}")
    analysis = StreamingAnalysis()
    analysis.feed(pcm16_8k)
    return analysis.finish()[1]


class StreamingAnalysis:
    """The same analysis fed piece by piece, as a call's audio arrives.

    ``feed`` returns the digits completed by that piece (so they can be
    reported at once); ``finish`` returns the last digits and the analysis,
    identical to ``analyze_pcm`` over everything fed. It keeps one flag and
    one float per 20 ms frame (about 100 kB for an hour).
    """

    def __init__(self) -> None:
        self._dtmf = DtmfDetector(TARGET_RATE)
        self._voice = VoiceActivity(TARGET_RATE)
        self._frame_bytes = 2 * self._voice.frame_length
        self._partial = bytearray()
        self._speech: list[bool] = []
        self._power = 0.0
        self._floors: list[float] = []
        self._digits: list[DtmfDigit] = []
        self._bytes = 0

    @property
    def samples(self) -> int:
        return self._bytes // 2

    @property
    def speech_heard(self) -> bool:
        """The voice detector has heard speech (DTMF not yet told apart): for live decisions."""
        return self._voice.first_speech_sample is not None

    def feed(self, pcm: BytesLike) -> list[DtmfDigit]:
        self._bytes += len(pcm)
        found = self._dtmf.feed(pcm)
        digits = self._to_digits(found) if found else []
        if not self._partial and len(pcm) == self._frame_bytes:  # the usual 20 ms frame
            self._feed_frame(pcm)
            return digits
        self._partial += pcm
        whole = len(self._partial) - len(self._partial) % self._frame_bytes
        view = memoryview(self._partial)
        for start in range(0, whole, self._frame_bytes):
            self._feed_frame(view[start : start + self._frame_bytes])
        view.release()
        del self._partial[:whole]
        return digits

    def _to_digits(self, found: list[tuple[str, int, int]]) -> list[DtmfDigit]:
        digits = [
            DtmfDigit(digit, start * 1000 // TARGET_RATE, end * 1000 // TARGET_RATE)
            for digit, start, end in found
        ]
        self._digits.extend(digits)
        return digits

    def _feed_frame(self, frame: BytesLike) -> None:
        """Feed one frame and rebuild which frames were speech.

        The detector counts a speech onset when it is sure (three frames in),
        so a rise of ``speech_frames`` by ``d`` at frame ``i`` marks frames
        ``i - d + 1 .. i``.
        """
        voice = self._voice
        speech = self._speech
        before = voice.speech_frames
        voice.feed(frame)
        speech.append(False)
        added = voice.speech_frames - before
        if added:
            end = len(speech)
            speech[end - added : end] = [True] * added
        self._power += 10.0 ** (voice.level_dbov * 0.1)
        self._floors.append(voice.noise_floor_dbov)

    def finish(self) -> tuple[list[DtmfDigit], AudioAnalysis]:
        """The digits still sounding at the end, and the analysis of everything fed."""
        last_digits = self._to_digits(self._dtmf.flush())
        self._voice.feed(bytes(self._partial))  # the partial frame: clipping only
        frames = len(self._speech)
        level = 10.0 * math.log10(self._power / frames) if frames and self._power > 0.0 else 0.0
        speech = _without_dtmf(self._speech, self._digits)
        speech_frames = sum(speech)
        first = next((index for index, flag in enumerate(speech) if flag), None)
        analysis = AudioAnalysis(
            duration_ms=self.samples * 1000 // TARGET_RATE,
            speech_ratio=speech_frames / len(speech) if speech else 0.0,
            first_speech_ms=None if first is None else first * FRAME_MS,
            silent=speech_frames * FRAME_MS < MIN_SPEECH_MS,
            dtmf=tuple(self._digits),
            level_dbov=max(level, SILENCE_DBOV) if frames and self._power > 0.0 else SILENCE_DBOV,
            noise_floor_dbov=statistics.median(self._floors) if self._floors else SILENCE_DBOV,
            clipped_samples=self._voice.clipped_samples,
            speech_ms=speech_frames * FRAME_MS,
        )
        return last_digits, analysis


def _without_dtmf(speech: list[bool], digits: list[DtmfDigit]) -> list[bool]:
    """``speech`` with the frames under each digit (and its hangover) cleared."""
    cleared = list(speech)
    for digit in digits:
        first = max(0, digit.start_ms - DTMF_LEAD_MS) // FRAME_MS
        last = (digit.end_ms + DTMF_HANGOVER_MS) // FRAME_MS
        for index in range(first, min(last + 1, len(cleared))):
            cleared[index] = False
    return cleared
