# cython: language_level=3
"""Streaming DTMF detector for one channel (ITU-T Q.24, ETSI ES 201 235-3) (hot path).

Signal conventions: signed 16-bit little-endian PCM (bytes or any int16
buffer), one channel, 8,000 Hz by default. Levels in dBm0 follow G.711
A-law: a full-scale sine is +3.14 dBm0, so 0 dBm0 is a sine of peak 22,779.

Each digit is reported **once, when it ends** (three blocks, 38 ms, after the
tone stops), as ``(digit, start_sample, end_sample)``; ``flush()`` reports a
digit still sounding at the end of the stream.

The design, the requirement it meets (40 ms tones and gaps, 1.5 % / 3.5 %
frequency, 8 dB / 4 dB twist, -42 dBm0 sensitivity, 15 dB S/N, talk-off,
tones that crossed a GSM-FR or AMR-NB codec) and why, are described in
``reference/dtmf.py``, the pure-Python model this module is held to:
102-sample blocks split in two halves; per half the correlation with the 8
DTMF frequencies (16 multiply-adds per sample, no recursion, vectorised by
the compiler); per block a relative-peak test on the full-block spectrum,
then the amplitudes of the chosen pair solved free of each other's leakage,
their frequencies measured from the phase advance between halves, per-block
twist, level and power-fraction (duration) tests, and last, for a candidate
block only, a second-harmonic test on the column tone (at twice its measured
frequency) from the block's stored samples. A digit starts on two agreeing
blocks (adjacent, or with one empty block between) whose summed tone powers
pass the digit twist limits.

Both implementations do the same IEEE operations in the same order: the
per-sample correlations in float32, everything else in double precision;
floating-point contraction (fused multiply-add, the default on ARM64)
is turned off below so that results stay bit-for-bit equal on every target.
"""

cdef extern from *:
    """
    #if defined(__clang__)
    #pragma STDC FP_CONTRACT OFF
    #elif defined(__GNUC__)
    #pragma GCC optimize ("fp-contract=off")
    #endif
    """

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport M_PI, atan2, cos, fabs, pow, sin, sqrt
from libc.stdint cimport int16_t, int64_t, uint8_t
from libc.string cimport memset
from cython_ext.buffers cimport byte_view as _byte_view

ROW_FREQUENCIES = (697.0, 770.0, 852.0, 941.0)
COLUMN_FREQUENCIES = (1209.0, 1336.0, 1477.0, 1633.0)
DIGITS = "123A456B789C*0#D"

BLOCK_SAMPLES_8KHZ = 102
MIN_LEVEL_DBM0 = -42.0
DBM0_TO_DBOV = -6.15
NORMAL_TWIST_DB = 9.0
REVERSE_TWIST_DB = 5.0
RELATIVE_PEAK_DB = 8.0
MIN_POWER_FRACTION = 0.85
SECOND_HARMONIC_DB = 12.0
HALF_BALANCE_DB = 8.0
BLOCK_NORMAL_TWIST_DB = 14.0
BLOCK_REVERSE_TWIST_DB = 10.0
FREQUENCY_TOLERANCE = 0.0245
REFINE_LOW = 0.015
REFINE_HIGH = 0.035
START_BLOCKS = 2
END_BLOCKS = 3

cdef double _MIN_LEVEL_DBM0 = -42.0
cdef double _DBM0_TO_DBOV = -6.15
cdef double _NORMAL_TWIST_DB = 9.0
cdef double _REVERSE_TWIST_DB = 5.0
cdef double _RELATIVE_PEAK_DB = 8.0
cdef double _MIN_POWER_FRACTION = 0.85
cdef double _SECOND_HARMONIC_DB = 12.0
cdef double _HALF_BALANCE_DB = 8.0
cdef double _BLOCK_NORMAL_TWIST_DB = 14.0
cdef double _BLOCK_REVERSE_TWIST_DB = 10.0
SECOND_HARMONIC_DB = 12.0
cdef double _FREQUENCY_TOLERANCE = 0.0245
cdef double _REFINE_LOW = 0.015
cdef double _REFINE_HIGH = 0.035
cdef int _END_BLOCKS = 3
cdef double _FULL_SCALE_POWER = 1073741824.0
cdef double _TINY = 1e-12
cdef double[8] _FREQUENCIES = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0]
cdef str _DIGITS = DIGITS


def block_samples(int sample_rate) -> int:
    """Samples per analysis block: 102 at 8 kHz, scaled (rounded) and kept even."""
    return 2 * ((51 * sample_rate + 4000) // 8000)


cdef inline void _kernel(double theta, int length, double* out_r, double* out_i) noexcept nogil:
    """sum(exp(j theta n) for n in range(length))."""
    cdef double half_sine = sin(theta / 2.0)
    cdef double magnitude, phase
    if -_TINY < half_sine < _TINY:
        out_r[0] = <double>length
        out_i[0] = 0.0
        return
    magnitude = sin(<double>length * theta / 2.0) / half_sine
    phase = theta * <double>(length - 1) / 2.0
    out_r[0] = magnitude * cos(phase)
    out_i[0] = magnitude * sin(phase)


cdef class _Tables:
    """Constants of one sample rate, shared by every detector at that rate."""

    cdef int block
    cdef int half
    cdef float* table  # half x 16: cos(w n) for the 8 tones, then sin(w n), in float32
    cdef double* harmonic  # 4 columns x (block cos(2 w n), then block sin(2 w n))
    cdef double omega[8]
    cdef double advance_r[8]
    cdef double advance_i[8]
    cdef double leak_r[16]
    cdef double leak_i[16]
    cdef double tolerance[8]
    cdef double refine_low[8]
    cdef double refine_high[8]
    cdef double min_power
    cdef double gate
    cdef double relative_peak
    cdef double normal_twist
    cdef double reverse_twist
    cdef double block_normal_twist
    cdef double block_reverse_twist
    cdef double second_harmonic
    cdef double balance

    def __cinit__(self, int sample_rate):
        cdef int n, k, r, c
        self.block = block_samples(sample_rate)
        self.half = self.block // 2
        self.table = <float*>PyMem_Malloc(self.half * 16 * sizeof(float))
        self.harmonic = <double*>PyMem_Malloc(self.block * 8 * sizeof(double))
        if self.table == NULL or self.harmonic == NULL:
            raise MemoryError()
        for k in range(8):
            self.omega[k] = 2.0 * M_PI * _FREQUENCIES[k] / <double>sample_rate
        for n in range(self.half):
            for k in range(8):
                self.table[16 * n + k] = <float>cos(self.omega[k] * <double>n)
                self.table[16 * n + 8 + k] = <float>sin(self.omega[k] * <double>n)
        for c in range(4):
            for n in range(self.block):
                self.harmonic[2 * self.block * c + n] = cos(2.0 * self.omega[4 + c] * <double>n)
            for n in range(self.block):
                self.harmonic[2 * self.block * c + self.block + n] = sin(
                    2.0 * self.omega[4 + c] * <double>n
                )
        for k in range(8):
            self.advance_r[k] = cos(self.omega[k] * <double>self.half)
            self.advance_i[k] = -sin(self.omega[k] * <double>self.half)
            self.tolerance[k] = _FREQUENCY_TOLERANCE * self.omega[k]
            self.refine_low[k] = _REFINE_LOW * self.omega[k]
            self.refine_high[k] = _REFINE_HIGH * self.omega[k]
        for r in range(4):
            for c in range(4):
                _kernel(
                    self.omega[4 + c] - self.omega[r],
                    self.half,
                    &self.leak_r[4 * r + c],
                    &self.leak_i[4 * r + c],
                )
        self.min_power = _FULL_SCALE_POWER * pow(10.0, (_MIN_LEVEL_DBM0 + _DBM0_TO_DBOV) / 10.0)
        self.gate = self.min_power * <double>self.block * <double>self.block / 8.0
        self.relative_peak = pow(10.0, _RELATIVE_PEAK_DB / 10.0)
        self.normal_twist = pow(10.0, _NORMAL_TWIST_DB / 10.0)
        self.reverse_twist = pow(10.0, _REVERSE_TWIST_DB / 10.0)
        self.block_normal_twist = pow(10.0, _BLOCK_NORMAL_TWIST_DB / 10.0)
        self.block_reverse_twist = pow(10.0, _BLOCK_REVERSE_TWIST_DB / 10.0)
        self.balance = pow(10.0, -_HALF_BALANCE_DB / 20.0)
        self.second_harmonic = (
            <double>self.block * <double>self.block / 2.0 * pow(10.0, -_SECOND_HARMONIC_DB / 10.0)
        )

    def __dealloc__(self):
        PyMem_Free(self.table)
        PyMem_Free(self.harmonic)


cdef dict _TABLES = {}


cdef _Tables _tables(int sample_rate):
    tables = _TABLES.get(sample_rate)
    if tables is None:
        tables = _TABLES[sample_rate] = _Tables(sample_rate)
    return <_Tables>tables


cdef inline void _solve(
    const double* y, const double* kernels, double* out
) noexcept nogil:
    """Complex amplitudes (row, column) of the tone pair from one half's correlations.

    ``y`` = (Yr.re, Yr.im, Yc.re, Yc.im); the model is Yr = ar A + ac B,
    Yc = ar C + ac D with ``kernels`` = (A, B, C, D); ``out`` = (ar, ac).
    """
    cdef double yrr = y[0], yri = y[1], ycr = y[2], yci = y[3]
    cdef double a_r = kernels[0], a_i = kernels[1], b_r = kernels[2], b_i = kernels[3]
    cdef double c_r = kernels[4], c_i = kernels[5], d_r = kernels[6], d_i = kernels[7]
    cdef double det_r, det_i, norm, inv_r, inv_i, num_r, num_i
    det_r = (a_r * d_r - a_i * d_i) - (b_r * c_r - b_i * c_i)
    det_i = (a_r * d_i + a_i * d_r) - (b_r * c_i + b_i * c_r)
    norm = det_r * det_r + det_i * det_i
    inv_r = det_r / norm
    inv_i = -det_i / norm
    num_r = (d_r * yrr - d_i * yri) - (b_r * ycr - b_i * yci)
    num_i = (d_r * yri + d_i * yrr) - (b_r * yci + b_i * ycr)
    out[0] = num_r * inv_r - num_i * inv_i
    out[1] = num_r * inv_i + num_i * inv_r
    num_r = (a_r * ycr - a_i * yci) - (c_r * yrr - c_i * yri)
    num_i = (a_r * yci + a_i * ycr) - (c_r * yri + c_i * yrr)
    out[2] = num_r * inv_r - num_i * inv_i
    out[3] = num_r * inv_i + num_i * inv_r


cdef inline double _offset(
    double first_r, double first_i, double second_r, double second_i,
    double advance_r, double advance_i,
) noexcept nogil:
    """Phase advance of a tone from the first half to the second, less nominal."""
    cdef double t_r = second_r * first_r + second_i * first_i
    cdef double t_i = second_i * first_r - second_r * first_i
    cdef double u_r = t_r * advance_r - t_i * advance_i
    cdef double u_i = t_r * advance_i + t_i * advance_r
    return atan2(u_i, u_r)


cdef inline void _accumulate(
    const uint8_t* data,
    Py_ssize_t count,
    const float* table,
    float* acc,
    int64_t* energy,
    int16_t* store,
) noexcept nogil:
    """Add ``count`` samples to one half's 16 correlations (table starts at the sample's row).

    The sums are float32 (4 lanes per SIMD register on SSE and NEON); the
    samples are also copied to ``store`` for the second-harmonic test.
    """
    cdef float local[16]
    cdef float x
    cdef int k, sample
    cdef Py_ssize_t s
    cdef int64_t total = 0
    for k in range(16):
        local[k] = acc[k]
    for s in range(count):
        sample = <int16_t>(data[2 * s] | (data[2 * s + 1] << 8))
        store[s] = <int16_t>sample
        x = <float>sample
        for k in range(16):
            local[k] = local[k] + x * table[16 * s + k]
        total += sample * sample
    for k in range(16):
        acc[k] = local[k]
    energy[0] += total


cdef class DtmfDetector:
    """Streaming DTMF detector for one channel; see the module docstring."""

    cdef _Tables _t
    cdef int _sample_rate
    cdef long long _position
    cdef long long _block_start
    cdef int _in_block
    cdef float _acc[32]
    cdef int16_t* _block_samples
    cdef int64_t _energy
    cdef int _last_hit
    cdef long long _previous_block_start
    cdef int _digit
    cdef long long _digit_start
    cdef long long _digit_end
    cdef int _misses
    # Tone powers (row, column) of the last block that held a digit, and of the one before.
    cdef double _hit_row_power
    cdef double _hit_column_power
    cdef double _previous_row_power
    cdef double _previous_column_power
    # The block before the previous one: its digit, start and tone powers.
    cdef int _hit_before
    cdef long long _before_block_start
    cdef double _before_row_power
    cdef double _before_column_power

    def __init__(self, int sample_rate=8000):
        if not 4000 <= sample_rate <= 48000:
            raise ValueError(f"sample_rate must be 4000..48000 Hz, got {sample_rate}")
        self._sample_rate = sample_rate
        self._t = _tables(sample_rate)
        PyMem_Free(self._block_samples)
        self._block_samples = <int16_t*>PyMem_Malloc(self._t.block * sizeof(int16_t))
        if self._block_samples == NULL:
            raise MemoryError()
        self._position = 0
        self._previous_block_start = 0
        self._last_hit = -1
        self._digit = -1
        self._digit_start = 0
        self._digit_end = 0
        self._misses = 0
        self._hit_row_power = 0.0
        self._hit_column_power = 0.0
        self._previous_row_power = 0.0
        self._previous_column_power = 0.0
        self._hit_before = -1
        self._before_block_start = 0
        self._before_row_power = 0.0
        self._before_column_power = 0.0
        self._reset_block()

    def __dealloc__(self):
        PyMem_Free(self._block_samples)

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def block_size(self) -> int:
        """Samples per analysis block (102 at 8 kHz)."""
        return self._t.block

    @property
    def samples_seen(self) -> int:
        return self._position

    @property
    def digit_in_progress(self):
        """The digit sounding now (already confirmed, not yet reported), or None."""
        return _DIGITS[self._digit] if self._digit >= 0 else None

    def feed(self, pcm) -> list:
        """Analyse more samples; return the digits that ended in them."""
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
        events = []
        if size:
            self._consume(data, size >> 1, events)
        return events

    def flush(self) -> list:
        """End of stream: report a digit still in progress and drop the partial block."""
        events = []
        if self._digit >= 0:
            events.append((_DIGITS[self._digit], self._digit_start, self._digit_end))
        self._digit = -1
        self._misses = 0
        self._last_hit = -1
        self._hit_before = -1
        self._reset_block()
        return events

    cdef void _reset_block(self) noexcept:
        memset(self._acc, 0, sizeof(self._acc))
        self._energy = 0
        self._in_block = 0
        self._block_start = self._position

    cdef int _consume(self, const uint8_t* data, Py_ssize_t count, list events) except -1:
        cdef _Tables t = self._t
        cdef int half = t.half
        cdef Py_ssize_t done = 0, run
        cdef int n
        while done < count:
            n = self._in_block
            if n < half:
                run = half - n
            else:
                run = t.block - n
            if run > count - done:
                run = count - done
            if n < half:
                _accumulate(
                    data + 2 * done,
                    run,
                    t.table + 16 * n,
                    self._acc,
                    &self._energy,
                    self._block_samples + n,
                )
            else:
                _accumulate(
                    data + 2 * done,
                    run,
                    t.table + 16 * (n - half),
                    self._acc + 16,
                    &self._energy,
                    self._block_samples + n,
                )
            done += run
            self._in_block = n + <int>run
            self._position += run
            if self._in_block == t.block:
                self._end_block(events)
        return 0

    cdef int _end_block(self, list events) except -1:
        cdef int hit = self._classify()
        cdef long long block_start = self._block_start
        cdef long long block_end = self._position
        cdef bint changed
        if self._digit >= 0:
            if hit == self._digit:
                self._misses = 0
                self._digit_end = block_end
            else:
                self._misses += 1
                changed = hit >= 0 and hit == self._last_hit
                if self._misses >= _END_BLOCKS or changed:
                    events.append((_DIGITS[self._digit], self._digit_start, self._digit_end))
                    self._digit = -1
                    self._misses = 0
        if self._digit < 0 and hit >= 0:
            # Two blocks agree: this one and the previous, or this one and the one
            # before a block that held nothing (a codec's dropout inside the tone).
            if hit == self._last_hit and self._pair_twist_ok(
                self._previous_row_power, self._previous_column_power
            ):
                self._digit = hit
                self._digit_start = self._previous_block_start
            elif (
                self._last_hit < 0
                and hit == self._hit_before
                and self._pair_twist_ok(self._before_row_power, self._before_column_power)
            ):
                self._digit = hit
                self._digit_start = self._before_block_start
            if self._digit >= 0:
                self._digit_end = block_end
                self._misses = 0
        self._hit_before = self._last_hit
        self._before_block_start = self._previous_block_start
        self._before_row_power = self._previous_row_power
        self._before_column_power = self._previous_column_power
        self._last_hit = hit
        self._previous_block_start = block_start
        self._previous_row_power = self._hit_row_power
        self._previous_column_power = self._hit_column_power
        self._reset_block()
        return 0

    cdef bint _pair_twist_ok(self, double other_row, double other_column) noexcept:
        """Twist of the two agreeing blocks together (the digit's, not one block's)."""
        cdef double row_power = other_row + self._hit_row_power
        cdef double column_power = other_column + self._hit_column_power
        if row_power > column_power * self._t.normal_twist:
            return False
        return not column_power > row_power * self._t.reverse_twist

    cdef int _classify(self) noexcept:
        """The digit this block holds, or -1."""
        cdef _Tables t = self._t
        cdef const float* acc = self._acc
        cdef double power[8]
        cdef double y0[4]
        cdef double y1[4]
        cdef double a0[4]
        cdef double a1[4]
        cdef double kernels[8]
        cdef double w_r, w_i, y1_r, y1_i, x_r, x_i, half
        cdef double row_offset, column_offset, row_error, column_error
        cdef double row_delta, column_delta, gap, row_power, column_power, block_power
        cdef double row_first, row_second, column_first, column_second
        cdef double h_r, h_i, c, s, step_r, step_i, rot_r, rot_i, next_r
        cdef const double* harmonic
        cdef int k, n, row, column
        for k in range(8):
            w_r = t.advance_r[k]
            w_i = t.advance_i[k]
            y1_r = acc[16 + k]
            y1_i = -acc[24 + k]
            x_r = acc[k] + (w_r * y1_r - w_i * y1_i)
            x_i = -acc[8 + k] + (w_r * y1_i + w_i * y1_r)
            power[k] = x_r * x_r + x_i * x_i
        row = 0
        for k in range(1, 4):
            if power[k] > power[row]:
                row = k
        column = 4
        for k in range(5, 8):
            if power[k] > power[column]:
                column = k
        if power[row] < t.gate or power[column] < t.gate:
            return -1
        for k in range(4):
            if k != row and power[k] * t.relative_peak > power[row]:
                return -1
            if k + 4 != column and power[k + 4] * t.relative_peak > power[column]:
                return -1

        # The pair's amplitudes per half, with the other tone's leakage removed.
        half = <double>t.half
        kernels[0] = half
        kernels[1] = 0.0
        kernels[2] = t.leak_r[4 * row + (column - 4)]
        kernels[3] = t.leak_i[4 * row + (column - 4)]
        kernels[4] = kernels[2]
        kernels[5] = -kernels[3]
        kernels[6] = half
        kernels[7] = 0.0
        y0[0] = acc[row]
        y0[1] = -acc[8 + row]
        y0[2] = acc[column]
        y0[3] = -acc[8 + column]
        y1[0] = acc[16 + row]
        y1[1] = -acc[24 + row]
        y1[2] = acc[16 + column]
        y1[3] = -acc[24 + column]
        _solve(y0, kernels, a0)
        _solve(y1, kernels, a1)
        row_offset = _offset(a0[0], a0[1], a1[0], a1[1], t.advance_r[row], t.advance_i[row])
        column_offset = _offset(
            a0[2], a0[3], a1[2], a1[3], t.advance_r[column], t.advance_i[column]
        )
        row_error = fabs(row_offset) / half
        column_error = fabs(column_offset) / half
        if (t.refine_low[row] <= row_error <= t.refine_high[row]) or (
            t.refine_low[column] <= column_error <= t.refine_high[column]
        ):
            # Near the decision band: solve again with the measured frequencies.
            row_delta = row_offset / half
            column_delta = column_offset / half
            gap = t.omega[column] - t.omega[row]
            _kernel(row_delta, t.half, &kernels[0], &kernels[1])
            _kernel(gap + column_delta, t.half, &kernels[2], &kernels[3])
            _kernel(-gap + row_delta, t.half, &kernels[4], &kernels[5])
            _kernel(column_delta, t.half, &kernels[6], &kernels[7])
            _solve(y0, kernels, a0)
            _solve(y1, kernels, a1)
            row_offset = _offset(a0[0], a0[1], a1[0], a1[1], t.advance_r[row], t.advance_i[row])
            column_offset = _offset(
                a0[2], a0[3], a1[2], a1[3], t.advance_r[column], t.advance_i[column]
            )
            row_error = fabs(row_offset) / half
            column_error = fabs(column_offset) / half
        if row_error > t.tolerance[row] or column_error > t.tolerance[column]:
            return -1

        # Both halves must hold each tone alike: a block the tone only partly fills fails.
        row_first = sqrt(a0[0] * a0[0] + a0[1] * a0[1])
        row_second = sqrt(a1[0] * a1[0] + a1[1] * a1[1])
        column_first = sqrt(a0[2] * a0[2] + a0[3] * a0[3])
        column_second = sqrt(a1[2] * a1[2] + a1[3] * a1[3])
        if row_first < row_second * t.balance or row_second < row_first * t.balance:
            return -1
        if column_first < column_second * t.balance or column_second < column_first * t.balance:
            return -1

        # Tone powers (mean square) from the half amplitudes.
        row_power = row_first + row_second
        row_power = row_power * row_power / 2.0
        column_power = column_first + column_second
        column_power = column_power * column_power / 2.0
        if row_power < t.min_power or column_power < t.min_power:
            return -1
        if row_power > column_power * t.block_normal_twist:
            return -1
        if column_power > row_power * t.block_reverse_twist:
            return -1
        block_power = <double>self._energy / <double>t.block
        if row_power + column_power < _MIN_POWER_FRACTION * block_power:
            return -1

        # Second harmonic of the column tone, at twice its measured frequency: the
        # table holds exp(-j 2 w n), a rotator adds exp(-j 2 delta n).
        harmonic = t.harmonic + 2 * t.block * (column - 4)
        column_delta = column_offset / half
        step_r = cos(2.0 * column_delta)
        step_i = -sin(2.0 * column_delta)
        rot_r = 1.0
        rot_i = 0.0
        h_r = 0.0
        h_i = 0.0
        for n in range(t.block):
            x_r = <double>self._block_samples[n]
            c = harmonic[n]
            s = harmonic[t.block + n]
            h_r = h_r + x_r * (c * rot_r + s * rot_i)
            h_i = h_i + x_r * (c * rot_i - s * rot_r)
            next_r = rot_r * step_r - rot_i * step_i
            rot_i = rot_r * step_i + rot_i * step_r
            rot_r = next_r
        # |H|^2 = (A2 N / 2)^2 and column_power = Ac^2 / 2: compare A2^2 with Ac^2.
        if h_r * h_r + h_i * h_i > column_power * t.second_harmonic:
            return -1
        self._hit_row_power = row_power
        self._hit_column_power = column_power
        return 4 * row + (column - 4)
