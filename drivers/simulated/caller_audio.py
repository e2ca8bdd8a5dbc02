"""The simulated caller's audio: what they say after the answer, what they hear, 20 ms at a time.

A ``SimulatedCall`` carries a script of ``AudioSegment``s; once the call is
answered, a ``CallerVoice`` turns the script into 320-byte PCM16 frames (8
kHz, 20 ms) and listens to what the gateway plays back::

    script    | silence 2 s | speech 3 s, -20 dBov | DTMF "55" | (silent until talk_s ends)
    frames    next_frame() every 20 ms -> modem audio port -> gateway

    gateway -> hear(pcm) -> playout buffer -> 20 ms heard per next_frame()
    once >= 1 s of it was not silent: the caller presses ``respond_to_prompt``
    (the "press 55 if you need help" policy for silent calls), then goes on
    with the script where it was

Segments render lazily, frame by frame, so a three-minute call costs no
memory up front. ``AudioLog`` records what went over the audio path for
tests and benchmarks.
"""

from __future__ import annotations

import itertools
import logging
import math
import struct
import time
import wave
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from drivers.simulated.audio_signals import (
    DIGITS,
    RATE,
    dbov_rms,
    digit_sequence,
    noise_samples,
    speech_samples,
    to_pcm,
)

logger = logging.getLogger("edge112.drivers.simulated")

SAMPLE_BYTES = 2
FRAME_S = 0.02
FRAME_SAMPLES = round(RATE * FRAME_S)  # 160
FRAME_BYTES = FRAME_SAMPLES * SAMPLE_BYTES  # 320
SILENT_FRAME = bytes(FRAME_BYTES)
RENDER_BLOCK_SAMPLES = FRAME_SAMPLES * 5  # how much a segment renders at a time
PROMPT_HEARD_S = 1.0  # the caller responds after hearing this much non-silent audio
HEARING_THRESHOLD_DBOV = -50.0  # a heard frame quieter than this counts as silence
PLAYOUT_MAX_S = 10.0  # audio the gateway sends faster than real time is buffered up to this
HEARD_PCM_KEEP_S = 30.0  # AudioLog.heard_pcm keeps this much of what the caller heard
RESPONSE_TONE_MS = 80.0
RESPONSE_GAP_MS = 80.0
RESPONSE_LEVEL_DBM0 = -10.0

_HEARING_THRESHOLD_SQUARE = dbov_rms(HEARING_THRESHOLD_DBOV) ** 2


@dataclass(frozen=True)
class AudioSegment(ABC):
    """One stretch of what the caller does; build them with the constructors below."""

    @property
    @abstractmethod
    def duration_s(self) -> float: ...

    @abstractmethod
    def pcm_blocks(self) -> Iterator[bytes]:
        """The segment as PCM16 blocks of whole samples, rendered as they are asked for."""

    @staticmethod
    def silence(seconds: float) -> SilenceSegment:
        return SilenceSegment(seconds)

    @staticmethod
    def speech(seconds: float, level_dbov: float = -20.0, seed: int = 1) -> SpeechSegment:
        return SpeechSegment(seconds, level_dbov, seed)

    @staticmethod
    def noise(seconds: float, level_dbov: float = -60.0, seed: int = 1) -> NoiseSegment:
        return NoiseSegment(seconds, level_dbov, seed)

    @staticmethod
    def dtmf(
        digits: str,
        tone_ms: float = RESPONSE_TONE_MS,
        gap_ms: float = RESPONSE_GAP_MS,
        level_dbm0: float = RESPONSE_LEVEL_DBM0,
    ) -> DtmfSegment:
        return DtmfSegment(digits, tone_ms, gap_ms, level_dbm0)

    @staticmethod
    def wav(path: str | Path) -> WavSegment:
        return WavSegment(Path(path))


@dataclass(frozen=True)
class SilenceSegment(AudioSegment):
    """Digital silence: all-zero samples."""

    seconds: float

    def __post_init__(self) -> None:
        _check_seconds(self.seconds)

    @property
    def duration_s(self) -> float:
        return self.seconds

    def pcm_blocks(self) -> Iterator[bytes]:
        remaining = _sample_count(self.seconds)
        while remaining > 0:
            count = min(remaining, RENDER_BLOCK_SAMPLES)
            yield bytes(count * SAMPLE_BYTES)
            remaining -= count


@dataclass(frozen=True)
class SpeechSegment(AudioSegment):
    """Speech-like voiced syllables and pauses (``audio_signals.speech_samples``)."""

    seconds: float
    level_dbov: float = -20.0
    seed: int = 1

    def __post_init__(self) -> None:
        _check_seconds(self.seconds)
        _check_level(self.level_dbov, "level_dbov")

    @property
    def duration_s(self) -> float:
        return self.seconds

    def pcm_blocks(self) -> Iterator[bytes]:
        samples = speech_samples(self.level_dbov, self.seed)
        return _render(samples, _sample_count(self.seconds))


@dataclass(frozen=True)
class NoiseSegment(AudioSegment):
    """White noise: a faint hiss is what an open line in a pocket sounds like."""

    seconds: float
    level_dbov: float = -60.0
    seed: int = 1

    def __post_init__(self) -> None:
        _check_seconds(self.seconds)
        _check_level(self.level_dbov, "level_dbov")

    @property
    def duration_s(self) -> float:
        return self.seconds

    def pcm_blocks(self) -> Iterator[bytes]:
        samples = noise_samples(dbov_rms(self.level_dbov), self.seed)
        return _render(samples, _sample_count(self.seconds))


@dataclass(frozen=True)
class DtmfSegment(AudioSegment):
    """Key presses: each digit a tone of ``tone_ms`` followed by ``gap_ms`` of silence."""

    digits: str
    tone_ms: float = RESPONSE_TONE_MS
    gap_ms: float = RESPONSE_GAP_MS
    level_dbm0: float = RESPONSE_LEVEL_DBM0

    def __post_init__(self) -> None:
        check_digits(self.digits)
        if self.tone_ms <= 0 or self.gap_ms < 0:
            raise ValueError("DTMF needs tone_ms > 0 and gap_ms >= 0")
        _check_level(self.level_dbm0, "level_dbm0")

    @property
    def duration_s(self) -> float:
        return len(self.digits) * (self.tone_ms + self.gap_ms) / 1000.0

    def pcm_blocks(self) -> Iterator[bytes]:
        signal = digit_sequence(self.digits, self.tone_ms, self.gap_ms, level_dbm0=self.level_dbm0)
        yield to_pcm(signal)


@dataclass(frozen=True)
class WavSegment(AudioSegment):
    """A recording: 8 kHz mono 16-bit PCM WAV only (checked when the segment is made)."""

    path: Path

    def __post_init__(self) -> None:
        self._frame_count()  # refuses what we cannot play

    @property
    def duration_s(self) -> float:
        return self._frame_count() / RATE

    def pcm_blocks(self) -> Iterator[bytes]:
        try:
            with wave.open(str(self.path), "rb") as reader:
                while block := reader.readframes(RENDER_BLOCK_SAMPLES):
                    yield block
        except (OSError, EOFError, wave.Error) as exc:  # the file changed since it was checked
            logger.warning("simulated caller: cannot play %s: %s", self.path, exc)

    def _frame_count(self) -> int:
        try:
            with wave.open(str(self.path), "rb") as reader:
                shape = (reader.getnchannels(), reader.getsampwidth(), reader.getframerate())
                compression = reader.getcomptype()
                frames = reader.getnframes()
        except (OSError, EOFError, wave.Error) as exc:
            raise ValueError(f"{self.path}: not a readable WAV file: {exc}") from exc
        if shape != (1, SAMPLE_BYTES, RATE) or compression != "NONE":
            channels, width, rate = shape
            raise ValueError(
                f"{self.path}: need 8000 Hz mono 16-bit PCM WAV, got {rate} Hz, "
                f"{channels} channel(s), {8 * width}-bit {compression}"
            )
        return frames


def check_digits(digits: str) -> None:
    """Refuse an empty string or anything that is not a DTMF key (0-9 * # A-D)."""
    if not digits or any(digit not in DIGITS for digit in digits):
        raise ValueError(f"DTMF digits must be 0-9, *, #, A-D; got {digits!r}")


def _check_seconds(seconds: float) -> None:
    if not seconds >= 0 or math.isinf(seconds):
        raise ValueError(f"a segment needs seconds >= 0, got {seconds!r}")


def _check_level(level: float, name: str) -> None:
    if not level <= 0:
        raise ValueError(f"{name} must be <= 0 (full scale), got {level!r}")


def _sample_count(seconds: float) -> int:
    return round(seconds * RATE)


def _render(samples: Iterator[float], count: int) -> Iterator[bytes]:
    remaining = count
    while remaining > 0:
        block = min(remaining, RENDER_BLOCK_SAMPLES)
        yield to_pcm(itertools.islice(samples, block))
        remaining -= block


def script_frames(segments: tuple[AudioSegment, ...]) -> Iterator[bytes]:
    """The segments back to back in 320-byte frames, then silence for ever."""
    pending = bytearray()
    for segment in segments:
        for block in segment.pcm_blocks():
            pending += block
            whole = len(pending) - len(pending) % FRAME_BYTES
            for start in range(0, whole, FRAME_BYTES):
                yield bytes(pending[start : start + FRAME_BYTES])
            del pending[:whole]
    if pending:
        yield bytes(pending.ljust(FRAME_BYTES, b"\0"))
    yield from itertools.repeat(SILENT_FRAME)


@dataclass
class AudioLog:
    """What went over one call's audio path, filled in while it happens."""

    frames_sent: int = 0  # caller -> gateway frames written to the modem's audio port
    heard_pcm: bytearray = field(default_factory=bytearray, repr=False)  # gateway -> caller
    heard_voice_s: float = 0.0  # of that, how much was not silent
    pressed_digits: str | None = None  # respond_to_prompt, once pressed
    pressed_monotonic: float | None = None  # when the first tone of it began

    def summary(self) -> dict[str, float | int | str | None]:
        return {
            "audio_frames_sent": self.frames_sent,
            "heard_audio_s": round(len(self.heard_pcm) / (RATE * SAMPLE_BYTES), 3),
            "heard_voice_s": round(self.heard_voice_s, 3),
            "pressed_digits": self.pressed_digits,
        }


class CallerVoice:
    """One answered call's caller, advanced 20 ms per ``next_frame``; one thread only."""

    def __init__(
        self,
        segments: tuple[AudioSegment, ...],
        respond_to_prompt: str | None,
        log: AudioLog,
        started_monotonic: float,
    ) -> None:
        self.started_monotonic = started_monotonic
        self.frames_elapsed = 0
        self.log = log
        self._script = script_frames(segments)
        self._response: Iterator[bytes] | None = None
        self._respond_to_prompt = respond_to_prompt
        self._playout = bytearray()
        self._playout_overflowed = False

    def next_deadline(self) -> float:
        """When the frame after the ones elapsed so far is due."""
        return self.started_monotonic + (self.frames_elapsed + 1) * FRAME_S

    def frames_due(self, now: float) -> int:
        return max(0, int((now - self.started_monotonic) / FRAME_S) - self.frames_elapsed)

    def next_frame(self) -> bytes:
        """20 ms pass: the caller hears 20 ms of playback and says the next frame."""
        self.frames_elapsed += 1
        self._listen_one_frame()
        if self._response is not None:
            frame = next(self._response, None)
            if frame is not None:
                return frame
            self._response = None
        return next(self._script)

    def hear(self, pcm: bytes) -> None:
        """Audio the gateway wrote; the caller hears it in real time, from the next frame on."""
        room = max(0, round(PLAYOUT_MAX_S * RATE * SAMPLE_BYTES) - len(self._playout))
        if len(pcm) > room and not self._playout_overflowed:
            self._playout_overflowed = True
            logger.warning("simulated caller: playback comes faster than real time; excess dropped")
        self._playout += pcm[:room]

    def _listen_one_frame(self) -> None:
        take = min(len(self._playout), FRAME_BYTES) & ~1
        if not take:
            return
        heard = bytes(self._playout[:take])
        del self._playout[:take]
        keep = round(HEARD_PCM_KEEP_S * RATE * SAMPLE_BYTES) - len(self.log.heard_pcm)
        self.log.heard_pcm += heard[: max(keep, 0)]
        if _mean_square(heard) >= _HEARING_THRESHOLD_SQUARE:
            self.log.heard_voice_s += take / (RATE * SAMPLE_BYTES)
            self._respond_if_prompted()

    def _respond_if_prompted(self) -> None:
        digits = self._respond_to_prompt
        if digits is None or self.log.pressed_digits is not None:
            return
        if self.log.heard_voice_s + 1e-9 < PROMPT_HEARD_S:
            return
        self.log.pressed_digits = digits
        self.log.pressed_monotonic = time.monotonic()
        keys = AudioSegment.dtmf(digits)
        self._response = itertools.islice(script_frames((keys,)), _frames_for(keys))


def _frames_for(segment: AudioSegment) -> int:
    return math.ceil(round(segment.duration_s * RATE) / FRAME_SAMPLES)


def _mean_square(pcm: bytes) -> float:
    count = len(pcm) // SAMPLE_BYTES
    samples = struct.unpack(f"<{count}h", pcm[: count * SAMPLE_BYTES])
    return sum(sample * sample for sample in samples) / max(1, count)
