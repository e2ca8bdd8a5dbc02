"""Voice activity on one channel: frame levels, an adaptive noise floor, speech, clipping.

Used to tell a silent 112 call (nobody speaks, or only background noise)
from one where the caller talks, and to flag overdriven lines.

Signal conventions: signed 16-bit little-endian PCM, one channel, any
sample rate (8,000 Hz on E1 and GSM). Levels are in dBov: 10*log10 of the
mean square over 32768**2, so a full-scale square wave is 0 dBov and a
full-scale sine -3.01 dBov; a frame of digital silence reads SILENCE_DBOV.

The algorithm, frame by frame (20 ms, 160 samples at 8 kHz):

1. Level: the frame's mean square in dBov (``level_dbov``). The decisions
   use another level: that of the signal high-passed at 150 Hz (one pole,
   one zero; rumble, hum and DC do not count, as in G.729 Annex B) and
   averaged over the last 3 frames, which steadies noise that has few
   degrees of freedom in 20 ms.
2. Noise floor: the minimum decision level over the last 1.5-2 s (four
   windows of 0.5 s), so it falls at once when the line goes quieter and
   rises within 2 s when the noise gets louder. When the last 15 frames
   (300 ms) all lie within 3 dB of each other the signal is steady, and
   the floor jumps up to their minimum at once: steady noise, hum or a held
   tone become background instead of speech.
3. A frame is active when it is at least 8 dB above the floor and above
   -60 dBov.
4. Speech starts on a run of at least 3 active frames (60 ms) that rises
   or falls by at least 3 dB while it lasts, or that ends with the level
   3 dB or more below the run's peak (a short syllable). A step up in
   steady noise does neither: it stays flat until the floor catches up.
   (Rise and fall are judged on the unaveraged level of each frame.)
   Speech lasts while frames stay active, plus a hangover of 10 frames
   (200 ms). ``first_speech_sample`` is the first sample of the run that
   first started speech.

Limitation: the floor is learned from the call itself, so speech that starts
with the first frame is recognised at its first pause, typically from the
second syllable on.

Clipping: every sample with magnitude at least CLIP_LEVEL (about -0.2 dBFS;
A-law's largest code decodes to 32,256) is counted.

This is the slow, obviously-correct model of ``cython_ext/vad.pyx``: both
use the same double-precision operations in the same order, so their
results agree bit for bit.
"""

from __future__ import annotations

import math
import sys
from array import array

BytesLike = bytes | bytearray | memoryview

FRAME_MS = 20
SILENCE_DBOV = -100.0
CLIP_LEVEL = 32000
NOISE_WINDOW_FRAMES = 25
NOISE_WINDOWS = 4
STATIONARY_FRAMES = 15
STATIONARY_SPREAD_DB = 3.0
ACTIVITY_MARGIN_DB = 8.0
ACTIVITY_MIN_DBOV = -60.0
ONSET_FRAMES = 3
ONSET_SPREAD_DB = 3.0
HANGOVER_FRAMES = 10
HIGHPASS_HZ = 150.0
SMOOTHING_FRAMES = 3

_FULL_SCALE_POWER = 1073741824.0  # 32768.0 ** 2
_NO_LEVEL = 1000.0  # above any level: "no minimum yet"


def _samples(pcm: BytesLike) -> array[int]:
    data = memoryview(pcm).cast("B")
    if len(data) % 2:
        raise ValueError(
            f"16-bit PCM needs an even number of bytes, got {len(data)} "
            "(a sample was split between two buffers?)"
        )
    samples = array("h", data.tobytes())
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def _dbov(mean_square: float) -> float:
    ratio = mean_square / _FULL_SCALE_POWER
    if ratio <= 0.0:  # digital silence, or a filter tail that underflowed
        return SILENCE_DBOV
    return max(10.0 * math.log10(ratio), SILENCE_DBOV)


class VoiceActivity:
    """Streaming voice activity detector for one channel."""

    def __init__(self, sample_rate: int = 8000) -> None:
        if sample_rate < 1000:
            raise ValueError(f"sample_rate must be at least 1000 Hz, got {sample_rate}")
        self._frame_length = sample_rate * FRAME_MS // 1000
        self._highpass = 1.0 / (1.0 + 2.0 * math.pi * HIGHPASS_HZ / float(sample_rate))
        self._filter_in = 0.0
        self._filter_out = 0.0
        self._partial_sum = 0
        self._partial_filtered = 0.0
        self._partial_count = 0
        self._powers = [0.0] * SMOOTHING_FRAMES
        self._powers_position = 0
        self._clipped = 0
        self._total_frames = 0
        self._speech_frames = 0
        self._first_speech_sample: int | None = None
        self._level = SILENCE_DBOV
        self._floor = SILENCE_DBOV
        self._window_min = _NO_LEVEL
        self._window_frames = 0
        self._history = [_NO_LEVEL] * (NOISE_WINDOWS - 1)
        self._history_position = 0
        self._recent = [0.0] * STATIONARY_FRAMES
        self._recent_position = 0
        self._run = 0
        self._run_min = 0.0
        self._run_max = 0.0
        self._in_speech = False
        self._hangover = 0

    @property
    def frame_length(self) -> int:
        """Samples per analysis frame (20 ms)."""
        return self._frame_length

    @property
    def total_frames(self) -> int:
        """Complete frames analysed so far."""
        return self._total_frames

    @property
    def speech_frames(self) -> int:
        """Frames judged speech, hangover included."""
        return self._speech_frames

    @property
    def first_speech_sample(self) -> int | None:
        """Sample offset where speech first started, or None."""
        return self._first_speech_sample

    @property
    def in_speech(self) -> bool:
        """Whether the last complete frame was speech (hangover included)."""
        return self._in_speech

    @property
    def level_dbov(self) -> float:
        """Level of the last complete frame (SILENCE_DBOV before the first)."""
        return self._level

    @property
    def noise_floor_dbov(self) -> float:
        """The noise floor (of the high-passed signal; SILENCE_DBOV before the first frame)."""
        return self._floor

    @property
    def clipped_samples(self) -> int:
        """Samples seen at or beyond CLIP_LEVEL in magnitude."""
        return self._clipped

    def feed(self, pcm: BytesLike) -> bool:
        """Analyse more samples; return whether the channel is in speech now."""
        frame_length = self._frame_length
        highpass = self._highpass
        for sample in _samples(pcm):
            if sample >= CLIP_LEVEL or sample <= -CLIP_LEVEL:
                self._clipped += 1
            self._partial_sum += sample * sample
            x = float(sample)
            y = highpass * ((self._filter_out + x) - self._filter_in)
            self._filter_in = x
            self._filter_out = y
            self._partial_filtered += y * y
            self._partial_count += 1
            if self._partial_count == frame_length:
                self._frame(self._partial_sum, self._partial_filtered)
                self._partial_sum = 0
                self._partial_filtered = 0.0
                self._partial_count = 0
        return self._in_speech

    def _start_speech(self, frames: int, first_frame: int) -> None:
        self._in_speech = True
        self._speech_frames += frames
        if self._first_speech_sample is None:
            self._first_speech_sample = first_frame * self._frame_length

    def _frame(self, sum_of_squares: int, filtered_sum: float) -> None:
        self._level = _dbov(float(sum_of_squares) / float(self._frame_length))
        self._powers[self._powers_position] = filtered_sum / float(self._frame_length)
        self._powers_position = (self._powers_position + 1) % SMOOTHING_FRAMES
        count = min(self._total_frames + 1, SMOOTHING_FRAMES)
        smoothed = 0.0
        for index in range(count):
            smoothed += self._powers[index]
        level = _dbov(smoothed / float(count))
        frame_level = _dbov(filtered_sum / float(self._frame_length))
        self._recent[self._recent_position] = level
        self._recent_position = (self._recent_position + 1) % STATIONARY_FRAMES

        # Noise floor: minimum over the current window and the previous ones.
        self._window_min = min(self._window_min, level)
        self._window_frames += 1
        floor = self._window_min
        for past in self._history:
            floor = min(floor, past)
        if self._total_frames + 1 >= STATIONARY_FRAMES:
            lowest = min(self._recent)
            if max(self._recent) - lowest <= STATIONARY_SPREAD_DB:
                # Steady signal: it is the background now, forget quieter past.
                self._history = [lowest] * (NOISE_WINDOWS - 1)
                self._window_min = lowest
                floor = lowest
        if self._window_frames == NOISE_WINDOW_FRAMES:
            self._history[self._history_position] = self._window_min
            self._history_position = (self._history_position + 1) % (NOISE_WINDOWS - 1)
            self._window_min = _NO_LEVEL
            self._window_frames = 0
        self._floor = floor

        # Activity and the speech state.
        active = level >= floor + ACTIVITY_MARGIN_DB and level >= ACTIVITY_MIN_DBOV
        ended_run = 0
        if active:
            if self._run == 0:
                self._run_min = frame_level
                self._run_max = frame_level
            else:
                self._run_min = min(self._run_min, frame_level)
                self._run_max = max(self._run_max, frame_level)
            self._run += 1
        else:
            ended_run = self._run
            self._run = 0
        if not self._in_speech:
            if self._run >= ONSET_FRAMES and self._run_max - self._run_min >= ONSET_SPREAD_DB:
                # A run that rises or falls while it lasts.
                self._start_speech(self._run, self._total_frames + 1 - self._run)
                self._hangover = HANGOVER_FRAMES
            elif ended_run >= ONSET_FRAMES and frame_level <= self._run_max - ONSET_SPREAD_DB:
                # A burst that has just died away (a short syllable); this frame
                # is its first hangover frame.
                self._start_speech(ended_run + 1, self._total_frames - ended_run)
                self._hangover = HANGOVER_FRAMES - 1
        else:
            if active:
                self._hangover = HANGOVER_FRAMES
            else:
                self._hangover -= 1
                if self._hangover <= 0:
                    self._in_speech = False
            if self._in_speech:
                self._speech_frames += 1
        self._total_frames += 1
