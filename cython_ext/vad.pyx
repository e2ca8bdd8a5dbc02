# cython: language_level=3
"""Voice activity on one channel: frame levels, an adaptive noise floor, speech, clipping (hot path).

Used to tell a silent 112 call (nobody speaks, or only background noise)
from one where the caller talks, and to flag overdriven lines.

Signal conventions: signed 16-bit little-endian PCM, one channel, any
sample rate (8,000 Hz on E1 and GSM); bytes or any int16 buffer. Levels are
in dBov: 10*log10 of the mean square over 32768**2, so a full-scale square
wave is 0 dBov and a full-scale sine -3.01 dBov; digital silence reads
SILENCE_DBOV.

Per 20 ms frame: the level (reported raw; decided on after a 150 Hz
high-pass and a 3-frame average); a noise floor that is the minimum level of the
last 1.5-2 s and jumps up to the background when the last 300 ms were
steady (within 3 dB); a frame is active 8 dB above the floor (and above
-60 dBov); speech starts on 3 active frames in a row that rise or fall by
3 dB (a noise step stays flat), and holds 200 ms after the last active
frame. Every sample of
magnitude CLIP_LEVEL or more counts as clipped. The full description, and
the pure-Python model that the tests hold this module to bit for bit, are in
``reference/vad.py``: both do the same double-precision operations in the
same order.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.math cimport M_PI, log10
from libc.stdint cimport int16_t, int64_t, uint8_t
from cython_ext.buffers cimport byte_view as _byte_view

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

cdef enum:
    _HISTORY = 3  # NOISE_WINDOWS - 1
    _RECENT = 15  # STATIONARY_FRAMES
    _SMOOTHING = 3  # SMOOTHING_FRAMES

cdef double _SILENCE_DBOV = -100.0
cdef int _CLIP_LEVEL = 32000
cdef int _NOISE_WINDOW_FRAMES = 25
cdef double _STATIONARY_SPREAD_DB = 3.0
cdef double _ACTIVITY_MARGIN_DB = 8.0
cdef double _ACTIVITY_MIN_DBOV = -60.0
cdef int _ONSET_FRAMES = 3
cdef double _ONSET_SPREAD_DB = 3.0
cdef int _HANGOVER_FRAMES = 10
HIGHPASS_HZ = 150.0
SMOOTHING_FRAMES = 3
cdef double _FULL_SCALE_POWER = 1073741824.0
cdef double _NO_LEVEL = 1000.0
cdef double _HIGHPASS_HZ = 150.0


cdef inline double _dbov(double mean_square) noexcept:
    cdef double ratio = mean_square / _FULL_SCALE_POWER
    cdef double level
    if ratio <= 0.0:  # digital silence, or a filter tail that underflowed
        return _SILENCE_DBOV
    level = 10.0 * log10(ratio)
    return level if level >= _SILENCE_DBOV else _SILENCE_DBOV


cdef class VoiceActivity:
    """Streaming voice activity detector for one channel."""

    cdef int _frame_length
    cdef double _highpass
    cdef double _filter_in
    cdef double _filter_out
    cdef int64_t _partial_sum
    cdef double _partial_filtered
    cdef double _powers[_SMOOTHING]
    cdef int _powers_position
    cdef int _partial_count
    cdef long long _clipped
    cdef long long _total_frames
    cdef long long _speech_frames
    cdef long long _first_speech_sample  # -1: none yet
    cdef double _level
    cdef double _floor
    cdef double _window_min
    cdef int _window_frames
    cdef double _history[_HISTORY]
    cdef int _history_position
    cdef double _recent[_RECENT]
    cdef int _recent_position
    cdef int _run
    cdef double _run_min
    cdef double _run_max
    cdef bint _in_speech
    cdef int _hangover

    def __init__(self, int sample_rate=8000):
        cdef int i
        if sample_rate < 1000:
            raise ValueError(f"sample_rate must be at least 1000 Hz, got {sample_rate}")
        self._frame_length = sample_rate * FRAME_MS // 1000
        self._highpass = 1.0 / (1.0 + 2.0 * M_PI * _HIGHPASS_HZ / <double>sample_rate)
        self._filter_in = 0.0
        self._filter_out = 0.0
        self._partial_sum = 0
        self._partial_filtered = 0.0
        self._partial_count = 0
        for i in range(_SMOOTHING):
            self._powers[i] = 0.0
        self._powers_position = 0
        self._clipped = 0
        self._total_frames = 0
        self._speech_frames = 0
        self._first_speech_sample = -1
        self._level = _SILENCE_DBOV
        self._floor = _SILENCE_DBOV
        self._window_min = _NO_LEVEL
        self._window_frames = 0
        for i in range(_HISTORY):
            self._history[i] = _NO_LEVEL
        self._history_position = 0
        for i in range(_RECENT):
            self._recent[i] = 0.0
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
    def first_speech_sample(self):
        """Sample offset where speech first started, or None."""
        return None if self._first_speech_sample < 0 else self._first_speech_sample

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

    def feed(self, pcm) -> bool:
        """Analyse more samples; return whether the channel is in speech now."""
        cdef const uint8_t[::1] view
        cdef const uint8_t* data
        cdef Py_ssize_t size
        if type(pcm) is bytes:
            data = <const uint8_t*>PyBytes_AS_STRING(pcm)
            size = PyBytes_GET_SIZE(pcm)
        else:
            view = _byte_view(pcm)
            size = view.shape[0]
            data = &view[0] if size else NULL
        if size & 1:
            raise ValueError(
                f"16-bit PCM needs an even number of bytes, got {size} "
                "(a sample was split between two buffers?)"
            )
        if size:
            self._consume(data, size >> 1)
        return self._in_speech

    cdef void _consume(self, const uint8_t* data, Py_ssize_t count) noexcept:
        cdef Py_ssize_t i, start = 0, end
        cdef int sample, clipped
        cdef int64_t total
        cdef double x, y, filtered
        cdef double highpass = self._highpass
        cdef double filter_in = self._filter_in
        cdef double filter_out = self._filter_out
        while start < count:
            end = start + (self._frame_length - self._partial_count)
            if end > count:
                end = count
            total = 0
            clipped = 0
            filtered = self._partial_filtered
            for i in range(start, end):
                sample = <int16_t>(data[2 * i] | (data[2 * i + 1] << 8))
                total += sample * sample
                clipped += (sample >= _CLIP_LEVEL) | (sample <= -_CLIP_LEVEL)
                x = <double>sample
                y = highpass * ((filter_out + x) - filter_in)
                filter_in = x
                filter_out = y
                filtered = filtered + y * y
            self._partial_sum += total
            self._partial_filtered = filtered
            self._clipped += clipped
            self._partial_count += <int>(end - start)
            start = end
            if self._partial_count == self._frame_length:
                self._frame(self._partial_sum, self._partial_filtered)
                self._partial_sum = 0
                self._partial_filtered = 0.0
                self._partial_count = 0
        self._filter_in = filter_in
        self._filter_out = filter_out

    cdef void _start_speech(self, long long frames, long long first_frame) noexcept:
        self._in_speech = True
        self._speech_frames += frames
        if self._first_speech_sample < 0:
            self._first_speech_sample = first_frame * self._frame_length

    cdef void _frame(self, int64_t sum_of_squares, double filtered_sum) noexcept:
        cdef double level, smoothed, frame_level
        cdef double floor, lowest, highest
        cdef int i, ended_run, count
        cdef bint active
        self._level = _dbov(<double>sum_of_squares / <double>self._frame_length)
        self._powers[self._powers_position] = filtered_sum / <double>self._frame_length
        self._powers_position = (self._powers_position + 1) % _SMOOTHING
        count = <int>(self._total_frames + 1) if self._total_frames + 1 < _SMOOTHING else _SMOOTHING
        smoothed = 0.0
        for i in range(count):
            smoothed = smoothed + self._powers[i]
        level = _dbov(smoothed / <double>count)
        frame_level = _dbov(filtered_sum / <double>self._frame_length)
        self._recent[self._recent_position] = level
        self._recent_position = (self._recent_position + 1) % _RECENT

        # Noise floor: minimum over the current window and the previous ones.
        if level < self._window_min:
            self._window_min = level
        self._window_frames += 1
        floor = self._window_min
        for i in range(_HISTORY):
            if self._history[i] < floor:
                floor = self._history[i]
        if self._total_frames + 1 >= _RECENT:
            lowest = self._recent[0]
            highest = self._recent[0]
            for i in range(1, _RECENT):
                if self._recent[i] < lowest:
                    lowest = self._recent[i]
                if self._recent[i] > highest:
                    highest = self._recent[i]
            if highest - lowest <= _STATIONARY_SPREAD_DB:
                # Steady signal: it is the background now, forget quieter past.
                for i in range(_HISTORY):
                    self._history[i] = lowest
                self._window_min = lowest
                floor = lowest
        if self._window_frames == _NOISE_WINDOW_FRAMES:
            self._history[self._history_position] = self._window_min
            self._history_position = (self._history_position + 1) % _HISTORY
            self._window_min = _NO_LEVEL
            self._window_frames = 0
        self._floor = floor

        # Activity and the speech state.
        active = level >= floor + _ACTIVITY_MARGIN_DB and level >= _ACTIVITY_MIN_DBOV
        ended_run = 0
        if active:
            if self._run == 0:
                self._run_min = frame_level
                self._run_max = frame_level
            else:
                if frame_level < self._run_min:
                    self._run_min = frame_level
                if frame_level > self._run_max:
                    self._run_max = frame_level
            self._run += 1
        else:
            ended_run = self._run
            self._run = 0
        if not self._in_speech:
            if self._run >= _ONSET_FRAMES and self._run_max - self._run_min >= _ONSET_SPREAD_DB:
                # A run that rises or falls while it lasts.
                self._start_speech(self._run, self._total_frames + 1 - self._run)
                self._hangover = _HANGOVER_FRAMES
            elif ended_run >= _ONSET_FRAMES and frame_level <= self._run_max - _ONSET_SPREAD_DB:
                # A burst that has just died away (a short syllable); this frame
                # is its first hangover frame.
                self._start_speech(ended_run + 1, self._total_frames - ended_run)
                self._hangover = _HANGOVER_FRAMES - 1
        else:
            if active:
                self._hangover = _HANGOVER_FRAMES
            else:
                self._hangover -= 1
                if self._hangover <= 0:
                    self._in_speech = False
            if self._in_speech:
                self._speech_frames += 1
        self._total_frames += 1
