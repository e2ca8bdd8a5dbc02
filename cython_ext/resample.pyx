# cython: language_level=3
"""Sample-rate and sample-format conversion to the gateway's 8 kHz signed 16-bit PCM (hot path).

Used to bring any WAV (a 44.1 kHz stereo phone recording, espeak-ng at
22,050 Hz, a 48 kHz capture card) to the 8 kHz mono PCM that the DTMF
detector and the voice-activity detector expect, and generally to convert
signed 16-bit little-endian mono PCM from ``rate_in`` to ``rate_out``
(both 4,000..192,000 Hz).

Resampling is a windowed-sinc low-pass evaluated at the exact position of
each output sample (band-limited interpolation, J. O. Smith):

* cutoff ``CUTOFF`` (0.45) x min(rate_in, rate_out), the -6 dB point: 3,600 Hz
  for an 8 kHz output; ``ZERO_CROSSINGS`` (32) zero crossings of the sinc on
  each side, Kaiser window (beta ``KAISER_BETA``, 8.6): about 600 Hz of
  transition (flat to about 3.3 kHz, at least 80 dB down from about 3.9 kHz
  up, measured in the tests), so nothing folds back below the output Nyquist;
* the kernel is tabulated once, ``TABLE_RESOLUTION`` (256) points per zero
  crossing, and linearly interpolated (error about -100 dB);
* output sample ``n`` sits at input position ``n * rate_in / rate_out``,
  computed exactly in integers; its weights depend only on the phase
  ``n * rate_in mod rate_out``, so for common ratios (44,100 -> 8,000 has 80
  phases) the weights of every phase are computed once and each output is a
  plain dot product (``PHASE_TABLE_LIMIT`` weights at most; otherwise they
  are computed per output, with the same arithmetic);
* the weighted sum runs in four interleaved partial sums (tap ``m`` into
  sum ``m % 4``, added as ``(s0 + s1) + (s2 + s3)``), then is divided by the
  sum of the weights (unity gain at DC for every phase), rounded half up
  (``floor(y + 0.5)``) and clipped to 16 bits;
* before the first input sample and after the last (on ``flush``) the input
  is taken as silence; output 0 is aligned with input 0 (no delay), and a
  stream of ``count`` input samples gives ``ceil(count * rate_out / rate_in)``
  outputs. Feeding in pieces gives the same bytes as feeding all at once.

Also here: ``mix_to_mono`` (interleaved N-channel 16-bit PCM -> mono, the
average rounded half up) and ``float_to_pcm16`` (IEEE float 32/64 in
[-1, 1) -> 16-bit, x 32768, rounded half up, clipped, NaN -> 0).

``reference/resample.py`` is the pure-Python model: both do the same IEEE
double operations in the same order with the same libm (sin, sqrt), and
floating-point contraction (fused multiply-add) is turned off below, so the
outputs are equal bit for bit.
"""

cdef extern from *:
    """
    #if defined(__clang__)
    #pragma STDC FP_CONTRACT OFF
    #elif defined(__GNUC__)
    #pragma GCC optimize ("fp-contract=off")
    #endif
    """

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.math cimport M_PI, floor, sin, sqrt
from libc.stdint cimport int16_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memmove, memset
from cython_ext.buffers cimport byte_view as _byte_view

CUTOFF = 0.45
ZERO_CROSSINGS = 32
KAISER_BETA = 8.6
KAISER_TERMS = 40
TABLE_RESOLUTION = 256
MIN_RATE = 4000
MAX_RATE = 192000
PHASE_TABLE_LIMIT = 1 << 20

cdef double _CUTOFF = 0.45
cdef int _ZERO_CROSSINGS = 32
cdef double _KAISER_BETA = 8.6
cdef int _KAISER_TERMS = 40
cdef int _RESOLUTION = 256
cdef int _TABLE_LENGTH = 32 * 256 + 2  # ZERO_CROSSINGS * TABLE_RESOLUTION + 1, plus a zero pad
cdef double _LIMIT = 32.0 * 256.0
cdef int _MIN_RATE = 4000
cdef int _MAX_RATE = 192000
cdef Py_ssize_t _PHASE_TABLE_LIMIT = 1 << 20

cdef double _KERNEL[32 * 256 + 2]


cdef double _bessel_i0(double x) noexcept:
    """Modified Bessel function of the first kind, order 0: a fixed-length power series."""
    cdef double half = x / 2.0
    cdef double term = 1.0
    cdef double total = 1.0
    cdef int k
    for k in range(1, _KAISER_TERMS + 1):
        term = term * half / <double>k
        total = total + term * term
    return total


cdef void _build_kernel() noexcept:
    """Kaiser-windowed sinc, TABLE_RESOLUTION points per zero crossing, from 0 out."""
    cdef double scale = _bessel_i0(_KAISER_BETA)
    cdef double x, ratio, inside, sinc
    cdef int j
    for j in range(_ZERO_CROSSINGS * _RESOLUTION + 1):
        x = <double>j / <double>_RESOLUTION
        if j == 0:
            sinc = 1.0
        else:
            sinc = sin(M_PI * x) / (M_PI * x)
        ratio = x / <double>_ZERO_CROSSINGS
        inside = 1.0 - ratio * ratio
        if inside < 0.0:
            inside = 0.0
        _KERNEL[j] = sinc * (_bessel_i0(_KAISER_BETA * sqrt(inside)) / scale)
    _KERNEL[_ZERO_CROSSINGS * _RESOLUTION + 1] = 0.0


_build_kernel()


def kernel_table() -> list:
    """The tabulated kernel (for tests): ZERO_CROSSINGS * TABLE_RESOLUTION + 2 values."""
    return [_KERNEL[j] for j in range(_TABLE_LENGTH)]


cdef inline double _weight(int64_t distance, double scale) noexcept:
    """Kernel weight of an input sample ``distance / rate_out`` input samples away."""
    cdef double u
    cdef int j
    if distance < 0:
        distance = -distance
    u = <double>distance * scale
    if u >= _LIMIT:
        return 0.0
    j = <int>u
    return _KERNEL[j] + (u - <double>j) * (_KERNEL[j + 1] - _KERNEL[j])


cdef inline double _dot(const int16_t* samples, const double* weights, int taps) noexcept:
    """sum(samples[m] * weights[m]) in four interleaved partial sums (tap m into sum m % 4).

    Four independent chains keep the FPU busy (one chain waits on each
    addition); the order is fixed, so the reference computes the same.
    """
    cdef double acc0 = 0.0, acc1 = 0.0, acc2 = 0.0, acc3 = 0.0
    cdef int m = 0
    while m + 4 <= taps:
        acc0 = acc0 + <double>samples[m] * weights[m]
        acc1 = acc1 + <double>samples[m + 1] * weights[m + 1]
        acc2 = acc2 + <double>samples[m + 2] * weights[m + 2]
        acc3 = acc3 + <double>samples[m + 3] * weights[m + 3]
        m += 4
    if m < taps:
        acc0 = acc0 + <double>samples[m] * weights[m]
    if m + 1 < taps:
        acc1 = acc1 + <double>samples[m + 1] * weights[m + 1]
    if m + 2 < taps:
        acc2 = acc2 + <double>samples[m + 2] * weights[m + 2]
    return (acc0 + acc1) + (acc2 + acc3)


cdef inline int16_t _round_clip(double value) noexcept:
    cdef double rounded
    if value != value:  # NaN
        return 0
    rounded = floor(value + 0.5)
    if rounded > 32767.0:
        return 32767
    if rounded < -32768.0:
        return -32768
    return <int16_t>rounded


def _check_rate(name: str, int rate) -> None:
    if not _MIN_RATE <= rate <= _MAX_RATE:
        raise ValueError(f"{name} must be {_MIN_RATE}..{_MAX_RATE} Hz, got {rate}")


def _gcd(long long a, long long b) -> int:
    while b:
        a, b = b, a % b
    return a


def half_width(int rate_in, int rate_out) -> int:
    """Input samples each side of an output sample that the kernel may reach."""
    cdef int lowest = rate_in if rate_in < rate_out else rate_out
    cdef double crossings_per_input = (2.0 * _CUTOFF * <double>lowest) / <double>rate_in
    return <int>(<double>_ZERO_CROSSINGS / crossings_per_input) + 2


def kernel_scale(int rate_in, int rate_out) -> float:
    """Table points per 1/rate_out of an input sample (the ``u = |distance| * scale`` factor)."""
    cdef int lowest = rate_in if rate_in < rate_out else rate_out
    return (2.0 * _CUTOFF * <double>lowest * <double>_RESOLUTION) / (
        <double>rate_in * <double>rate_out
    )


cdef class Resampler:
    """Streaming resampler of one channel of signed 16-bit PCM; see the module docstring."""

    cdef int _rate_in
    cdef int _rate_out
    cdef int _half  # K: taps reach from centre - K + 1 to centre + K
    cdef int _taps  # 2K
    cdef double _scale
    cdef int64_t _step  # rate_out / gcd: one phase index per this much numerator
    cdef Py_ssize_t _phases
    cdef double* _phase_weights  # phases x taps, or NULL: weights computed per output
    cdef double* _phase_sums
    cdef double* _scratch  # taps weights when computed per output
    cdef int16_t* _buffer
    cdef Py_ssize_t _length
    cdef Py_ssize_t _capacity
    cdef int64_t _base  # absolute input index of _buffer[0]
    cdef int64_t _next_output
    cdef int64_t _consumed  # input samples fed since the stream started

    def __cinit__(self, int rate_in, int rate_out=8000):
        self._phase_weights = NULL
        self._phase_sums = NULL
        self._scratch = NULL
        self._buffer = NULL

    def __init__(self, int rate_in, int rate_out=8000):
        cdef Py_ssize_t phase, m
        cdef int64_t remainder
        cdef double total
        _check_rate("rate_in", rate_in)
        _check_rate("rate_out", rate_out)
        self._rate_in = rate_in
        self._rate_out = rate_out
        self._half = half_width(rate_in, rate_out)
        self._taps = 2 * self._half
        self._scale = kernel_scale(rate_in, rate_out)
        self._step = _gcd(rate_in, rate_out)
        self._phases = rate_out // self._step
        self._scratch = <double*>PyMem_Malloc(self._taps * sizeof(double))
        if self._scratch == NULL:
            raise MemoryError()
        if self._phases * self._taps <= _PHASE_TABLE_LIMIT:
            self._phase_weights = <double*>PyMem_Malloc(
                self._phases * self._taps * sizeof(double)
            )
            self._phase_sums = <double*>PyMem_Malloc(self._phases * sizeof(double))
            if self._phase_weights == NULL or self._phase_sums == NULL:
                raise MemoryError()
            for phase in range(self._phases):
                remainder = phase * self._step
                self._fill_weights(remainder, self._phase_weights + phase * self._taps)
                total = 0.0
                for m in range(self._taps):
                    total = total + self._phase_weights[phase * self._taps + m]
                self._phase_sums[phase] = total
        self._reset()

    def __dealloc__(self):
        PyMem_Free(self._phase_weights)
        PyMem_Free(self._phase_sums)
        PyMem_Free(self._scratch)
        PyMem_Free(self._buffer)

    @property
    def rate_in(self) -> int:
        return self._rate_in

    @property
    def rate_out(self) -> int:
        return self._rate_out

    @property
    def taps(self) -> int:
        """Input samples weighed per output sample."""
        return self._taps

    @property
    def latency(self) -> int:
        """Input samples held back until the samples after them arrive."""
        return self._half

    cdef void _fill_weights(self, int64_t remainder, double* out) noexcept:
        """Weights of taps centre-K+1 .. centre+K for an output at centre + remainder/rate_out."""
        cdef int m
        cdef int64_t distance
        for m in range(self._taps):
            distance = <int64_t>(m - self._half + 1) * self._rate_out - remainder
            out[m] = _weight(distance, self._scale)

    cdef int _reset(self) except -1:
        self._length = 0
        self._base = -self._half
        self._next_output = 0
        self._consumed = 0
        self._append_zeros(self._half)
        return 0

    cdef int _reserve(self, Py_ssize_t extra) except -1:
        cdef Py_ssize_t wanted = self._length + extra
        cdef int16_t* grown
        if wanted <= self._capacity:
            return 0
        if wanted < 2 * self._capacity:
            wanted = 2 * self._capacity
        grown = <int16_t*>PyMem_Realloc(self._buffer, wanted * sizeof(int16_t))
        if grown == NULL:
            raise MemoryError()
        self._buffer = grown
        self._capacity = wanted
        return 0

    cdef int _append_zeros(self, Py_ssize_t count) except -1:
        self._reserve(count)
        memset(self._buffer + self._length, 0, count * sizeof(int16_t))
        self._length += count
        return 0

    cdef int _append(self, const uint8_t* data, Py_ssize_t count) except -1:
        cdef Py_ssize_t s
        cdef int16_t* out
        self._reserve(count)
        out = self._buffer + self._length
        for s in range(count):
            out[s] = <int16_t>(data[2 * s] | (data[2 * s + 1] << 8))
        self._length += count
        self._consumed += count
        return 0

    cdef int64_t _ready(self, int64_t limit) noexcept:
        """How many outputs from _next_output have all their taps in the buffer (at most limit)."""
        cdef int64_t last = self._base + self._length - 1  # newest input index held
        cdef int64_t count = 0
        cdef int64_t n = self._next_output
        while count < limit and (n * self._rate_in) // self._rate_out + self._half <= last:
            count += 1
            n += 1
        return count

    cdef bytes _produce(self, int64_t count):
        """Compute ``count`` outputs, then drop the inputs no later output needs."""
        cdef bytes result = PyBytes_FromStringAndSize(NULL, count * 2)
        cdef uint8_t* out = <uint8_t*>PyBytes_AS_STRING(result)
        cdef int64_t i, n, numerator, centre, remainder, drop
        cdef Py_ssize_t start, m
        cdef const double* weights
        cdef double total
        cdef int16_t value
        cdef int taps = self._taps
        for i in range(count):
            n = self._next_output + i
            numerator = n * self._rate_in
            centre = numerator // self._rate_out
            remainder = numerator - centre * self._rate_out
            if self._phase_weights != NULL:
                weights = self._phase_weights + (remainder // self._step) * taps
                total = self._phase_sums[remainder // self._step]
            else:
                self._fill_weights(remainder, self._scratch)
                weights = self._scratch
                total = 0.0
                for m in range(taps):
                    total = total + self._scratch[m]
            start = <Py_ssize_t>(centre - self._half + 1 - self._base)
            value = _round_clip(_dot(self._buffer + start, weights, taps) / total)
            out[2 * i] = <uint8_t>(<uint16_t>value & 0xFF)
            out[2 * i + 1] = <uint8_t>((<uint16_t>value >> 8) & 0xFF)
        self._next_output += count
        drop = (self._next_output * self._rate_in) // self._rate_out - self._half + 1 - self._base
        if drop > self._length:
            drop = self._length
        if drop > 0:
            memmove(self._buffer, self._buffer + drop, (self._length - drop) * sizeof(int16_t))
            self._length -= <Py_ssize_t>drop
            self._base += drop
        return result

    def feed(self, pcm) -> bytes:
        """Resample more input; return the output samples that are now complete."""
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
        if self._rate_in == self._rate_out:
            self._consumed += size >> 1
            return pcm if type(pcm) is bytes else bytes(pcm)
        if size:
            self._append(data, size >> 1)
        return self._produce(self._ready(1 << 62))

    def flush(self) -> bytes:
        """End of stream: the remaining outputs (input after the end taken as silence); reset."""
        cdef int64_t total, count
        cdef bytes result
        if self._rate_in == self._rate_out:
            self._consumed = 0
            return b""
        total = (self._consumed * self._rate_out + self._rate_in - 1) // self._rate_in
        self._append_zeros(self._half + 1)
        count = total - self._next_output
        result = self._produce(count) if count > 0 else b""
        self._reset()
        return result



def resample(pcm, int rate_in, int rate_out=8000) -> bytes:
    """A whole signal of signed 16-bit mono PCM from ``rate_in`` to ``rate_out``."""
    resampler = Resampler(rate_in, rate_out)
    return resampler.feed(pcm) + resampler.flush()


def mix_to_mono(pcm, int channels) -> bytes:
    """Interleaved ``channels``-channel 16-bit PCM -> mono: the average, rounded half up."""
    cdef const uint8_t[::1] view
    cdef const uint8_t* data
    cdef Py_ssize_t size, frames, f, c, index
    cdef int64_t total, numerator, quotient, denominator
    cdef bytes result
    cdef uint8_t* out
    cdef int16_t value
    if channels < 1:
        raise ValueError(f"channels must be at least 1, got {channels}")
    view = _byte_view(pcm)
    size = view.shape[0]
    if size % (2 * channels):
        raise ValueError(
            f"{channels}-channel 16-bit PCM needs a multiple of {2 * channels} bytes, got {size}"
        )
    if channels == 1:
        return bytes(view)
    frames = size // (2 * channels)
    data = &view[0] if size else NULL
    result = PyBytes_FromStringAndSize(NULL, frames * 2)
    out = <uint8_t*>PyBytes_AS_STRING(result)
    denominator = 2 * <int64_t>channels
    for f in range(frames):
        total = 0
        for c in range(channels):
            index = 2 * (f * channels + c)
            total += <int16_t>(data[index] | (data[index + 1] << 8))
        numerator = 2 * total + channels
        quotient = numerator / denominator  # C truncates: make it floor
        if numerator % denominator != 0 and numerator < 0:
            quotient -= 1
        value = <int16_t>quotient
        out[2 * f] = <uint8_t>(<uint16_t>value & 0xFF)
        out[2 * f + 1] = <uint8_t>((<uint16_t>value >> 8) & 0xFF)
    return result


def float_to_pcm16(data, int width) -> bytes:
    """Little-endian IEEE float samples (``width`` 4 or 8 bytes) -> signed 16-bit PCM."""
    cdef const uint8_t[::1] view
    cdef const uint8_t* raw
    cdef Py_ssize_t size, count, s, k
    cdef uint32_t bits32
    cdef uint64_t bits64
    cdef float single
    cdef double sample
    cdef bytes result
    cdef uint8_t* out
    cdef int16_t value
    if width != 4 and width != 8:
        raise ValueError(f"float samples are 4 or 8 bytes wide, got {width}")
    view = _byte_view(data)
    size = view.shape[0]
    if size % width:
        raise ValueError(f"{width}-byte float samples need a multiple of {width} bytes, got {size}")
    count = size // width
    raw = &view[0] if size else NULL
    result = PyBytes_FromStringAndSize(NULL, count * 2)
    out = <uint8_t*>PyBytes_AS_STRING(result)
    for s in range(count):
        if width == 4:
            bits32 = 0
            for k in range(4):
                bits32 |= (<uint32_t>raw[4 * s + k]) << (8 * k)
            memcpy(&single, &bits32, 4)
            sample = <double>single
        else:
            bits64 = 0
            for k in range(8):
                bits64 |= (<uint64_t>raw[8 * s + k]) << (8 * k)
            memcpy(&sample, &bits64, 8)
        value = _round_clip(sample * 32768.0)
        out[2 * s] = <uint8_t>(<uint16_t>value & 0xFF)
        out[2 * s + 1] = <uint8_t>((<uint16_t>value >> 8) & 0xFF)
    return result
