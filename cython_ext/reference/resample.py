"""Sample-rate and sample-format conversion to 8 kHz signed 16-bit PCM: the pure-Python model.

This is the slow, obviously-correct model of ``cython_ext/resample.pyx``
(whose docstring gives the design and the measured response); the tests
hold the two equal bit for bit.

Band-limited interpolation (J. O. Smith, "Digital Audio Resampling Home
Page"): output sample ``n`` of a stream at ``rate_out`` lies at input position
``t = n * rate_in / rate_out``; its value is the weighted sum of the input
samples ``k`` around ``t``, with weights from a Kaiser-windowed sinc whose
first zero crossing is one period of the cutoff ``0.45 * min(rate_in,
rate_out)`` away, divided by the sum of those weights::

    distance(k)  = k * rate_out - n * rate_in          (exact integer, in 1/rate_out samples)
    u            = |distance| * scale                   (table points; scale per rate pair)
    weight(k)    = T[j] + (u - j) * (T[j + 1] - T[j])   (j = floor(u); 0 beyond the table)
    y[n]         = floor(sum(x[k] * weight(k)) / sum(weight(k)) + 0.5), clipped to 16 bits

with ``T[j] = sinc(j / 256) * I0(beta * sqrt(1 - (j / 256 / 32)**2)) / I0(beta)``
for 32 zero crossings at 256 points each. Taps run from ``centre - K + 1``
to ``centre + K`` (``centre = floor(t)``, ``K = half_width``), in that order;
the weights are summed in that order, the products into four partial sums
(tap ``m`` into sum ``m % 4``, then ``(s0 + s1) + (s2 + s3)``). Samples
before the stream and after its end are zeros.

Every arithmetic step below is the same IEEE double operation, in the same
order, as in the Cython module (which turns off fused multiply-add), and
``math.sin``/``math.sqrt`` are the C library's, so results are identical.
"""

from __future__ import annotations

import math
import struct

BytesLike = bytes | bytearray | memoryview

CUTOFF = 0.45
ZERO_CROSSINGS = 32
KAISER_BETA = 8.6
KAISER_TERMS = 40
TABLE_RESOLUTION = 256
MIN_RATE = 4000
MAX_RATE = 192000
PHASE_TABLE_LIMIT = 1 << 20
_LIMIT = float(ZERO_CROSSINGS * TABLE_RESOLUTION)


def _bessel_i0(x: float) -> float:
    """Modified Bessel function of the first kind, order 0: a fixed-length power series."""
    half = x / 2.0
    term = 1.0
    total = 1.0
    for k in range(1, KAISER_TERMS + 1):
        term = term * half / float(k)
        total = total + term * term
    return total


def _build_kernel() -> list[float]:
    scale = _bessel_i0(KAISER_BETA)
    table = []
    for j in range(ZERO_CROSSINGS * TABLE_RESOLUTION + 1):
        x = float(j) / float(TABLE_RESOLUTION)
        sinc = 1.0 if j == 0 else math.sin(math.pi * x) / (math.pi * x)
        ratio = x / float(ZERO_CROSSINGS)
        inside = max(0.0, 1.0 - ratio * ratio)
        table.append(sinc * (_bessel_i0(KAISER_BETA * math.sqrt(inside)) / scale))
    table.append(0.0)  # pad: T[j + 1] for the last point
    return table


_KERNEL = _build_kernel()


def kernel_table() -> list[float]:
    """The tabulated kernel: ZERO_CROSSINGS * TABLE_RESOLUTION + 2 values."""
    return list(_KERNEL)


def _check_rate(name: str, rate: int) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"{name} must be {MIN_RATE}..{MAX_RATE} Hz, got {rate}")


def half_width(rate_in: int, rate_out: int) -> int:
    """Input samples each side of an output sample that the kernel may reach."""
    lowest = min(rate_in, rate_out)
    crossings_per_input = (2.0 * CUTOFF * float(lowest)) / float(rate_in)
    return int(float(ZERO_CROSSINGS) / crossings_per_input) + 2


def kernel_scale(rate_in: int, rate_out: int) -> float:
    """Table points per 1/rate_out of an input sample."""
    lowest = min(rate_in, rate_out)
    return (2.0 * CUTOFF * float(lowest) * float(TABLE_RESOLUTION)) / (
        float(rate_in) * float(rate_out)
    )


def _weight(distance: int, scale: float) -> float:
    u = float(abs(distance)) * scale
    if u >= _LIMIT:
        return 0.0
    j = int(u)
    return _KERNEL[j] + (u - float(j)) * (_KERNEL[j + 1] - _KERNEL[j])


def _round_clip(value: float) -> int:
    if value != value:  # NaN
        return 0
    rounded = math.floor(value + 0.5) if math.isfinite(value) else value
    return int(max(-32768.0, min(32767.0, rounded)))


def _samples(pcm: BytesLike) -> list[int]:
    data = bytes(pcm)
    if len(data) % 2:
        raise ValueError(
            f"16-bit PCM needs an even number of bytes, got {len(data)} "
            "(a sample was split between two buffers?)"
        )
    return list(struct.unpack(f"<{len(data) // 2}h", data))


def _pack(values: list[int]) -> bytes:
    return struct.pack(f"<{len(values)}h", *values)


class Resampler:
    """Streaming resampler of one channel of signed 16-bit PCM."""

    def __init__(self, rate_in: int, rate_out: int = 8000) -> None:
        _check_rate("rate_in", rate_in)
        _check_rate("rate_out", rate_out)
        self.rate_in = rate_in
        self.rate_out = rate_out
        self.latency = half_width(rate_in, rate_out)
        self.taps = 2 * self.latency
        self._scale = kernel_scale(rate_in, rate_out)
        self._reset()

    def _reset(self) -> None:
        self._buffer = [0] * self.latency  # silence before the stream
        self._base = -self.latency
        self._next_output = 0
        self._consumed = 0

    def _weights(self, remainder: int) -> list[float]:
        half = self.latency
        return [
            _weight((m - half + 1) * self.rate_out - remainder, self._scale)
            for m in range(self.taps)
        ]

    def _output(self, n: int) -> int:
        numerator = n * self.rate_in
        centre = numerator // self.rate_out
        weights = self._weights(numerator - centre * self.rate_out)
        total = 0.0
        for weight in weights:
            total = total + weight
        start = centre - self.latency + 1 - self._base
        sums = [0.0, 0.0, 0.0, 0.0]  # tap m goes into sum m % 4
        for m, weight in enumerate(weights):
            sums[m % 4] = sums[m % 4] + float(self._buffer[start + m]) * weight
        return _round_clip(((sums[0] + sums[1]) + (sums[2] + sums[3])) / total)

    def _produce(self, limit: int | None) -> bytes:
        last = self._base + len(self._buffer) - 1
        out: list[int] = []
        while limit is None or len(out) < limit:
            n = self._next_output
            if limit is None and (n * self.rate_in) // self.rate_out + self.latency > last:
                break
            out.append(self._output(n))
            self._next_output += 1
        drop = (self._next_output * self.rate_in) // self.rate_out - self.latency + 1 - self._base
        drop = min(drop, len(self._buffer))
        if drop > 0:
            del self._buffer[:drop]
            self._base += drop
        return _pack(out)

    def feed(self, pcm: BytesLike) -> bytes:
        """Resample more input; return the output samples that are now complete."""
        samples = _samples(pcm)
        self._consumed += len(samples)
        if self.rate_in == self.rate_out:
            return bytes(pcm)
        self._buffer.extend(samples)
        return self._produce(None)

    def flush(self) -> bytes:
        """End of stream: the remaining outputs (input after the end taken as silence); reset."""
        if self.rate_in == self.rate_out:
            self._consumed = 0
            return b""
        total = (self._consumed * self.rate_out + self.rate_in - 1) // self.rate_in
        self._buffer.extend([0] * (self.latency + 1))
        count = total - self._next_output
        result = self._produce(count) if count > 0 else b""
        self._reset()
        return result


def resample(pcm: BytesLike, rate_in: int, rate_out: int = 8000) -> bytes:
    """A whole signal of signed 16-bit mono PCM from ``rate_in`` to ``rate_out``."""
    resampler = Resampler(rate_in, rate_out)
    return resampler.feed(pcm) + resampler.flush()


def mix_to_mono(pcm: BytesLike, channels: int) -> bytes:
    """Interleaved ``channels``-channel 16-bit PCM -> mono: the average, rounded half up."""
    if channels < 1:
        raise ValueError(f"channels must be at least 1, got {channels}")
    data = bytes(pcm)
    if len(data) % (2 * channels):
        raise ValueError(
            f"{channels}-channel 16-bit PCM needs a multiple of {2 * channels} bytes, "
            f"got {len(data)}"
        )
    samples = _samples(data)
    mono = [
        (2 * sum(samples[start : start + channels]) + channels) // (2 * channels)
        for start in range(0, len(samples), channels)
    ]
    return _pack(mono)


def float_to_pcm16(data: BytesLike, width: int) -> bytes:
    """Little-endian IEEE float samples (``width`` 4 or 8 bytes) -> signed 16-bit PCM."""
    if width not in (4, 8):
        raise ValueError(f"float samples are 4 or 8 bytes wide, got {width}")
    raw = bytes(data)
    if len(raw) % width:
        raise ValueError(
            f"{width}-byte float samples need a multiple of {width} bytes, got {len(raw)}"
        )
    code = "f" if width == 4 else "d"
    values = struct.unpack(f"<{len(raw) // width}{code}", raw)
    return _pack([_round_clip(value * 32768.0) for value in values])
