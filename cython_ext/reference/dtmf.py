"""Streaming DTMF detector for one channel (ITU-T Q.24, ETSI ES 201 235-3).

Signal conventions: signed 16-bit little-endian PCM, one channel, 8,000 Hz
by default. Levels in dBm0 follow G.711 A-law: a full-scale sine is
+3.14 dBm0, so 0 dBm0 is a sine of peak 32768 * 10**(-3.14/20) = 22,779.

Requirements (as summarised in spandsp's ``dtmf.h``) and how they are met:

======================================  ==========================================
requirement                             design
======================================  ==========================================
40 ms tones detected, under 20 ms not;  102-sample blocks (12.75 ms at 8 kHz),
gaps likewise; 10 digits/s              the pair holds 85 % of the block's power
                                        (a block at most 15 samples short of
                                        tone), each tone within 8 dB in both
                                        halves; a digit starts on two agreeing
                                        blocks (next to each other, or with one
                                        empty block between) and ends after
                                        three blocks without it (or two
                                        agreeing on another digit)
frequency within 1.5 % detected,        the frequency of each tone is *measured*
beyond 3.5 % rejected                   (phase advance between the block halves)
                                        and must lie within 2.45 % of nominal
twist: row (low group) up to 8 dB       tone powers measured per tone; the two
louder accepted ("normal"), column      blocks that start a digit, summed, within
up to 4 dB louder ("reverse")           9 dB normal, 5 dB reverse (1 dB margin);
                                        one block alone within 14 dB / 10 dB
                                        (a mobile codec swings the twist of a
                                        block by up to 5 dB, see below)
26 dB level range                       each tone above -42 dBm0, no upper limit
S/N 15 dB                               the two tones must hold 85 % of the
                                        block's power: 15 dB S/N leaves 97 %
talk-off (no digits out of speech)      relative-peak test (other tones of each
                                        group 8 dB down), power-fraction test,
                                        both frequencies within 2.45 %, the
                                        column's second harmonic 12 dB down
                                        (voices and instruments have harmonics,
                                        DTMF sources do not), two blocks
======================================  ==========================================

Analysis of one block of N = 102 samples (two halves of M = 51): for each of
the 8 DTMF frequencies the correlation ``Y = sum x[n] exp(-j w n)`` over each
half (16 float32 multiply-adds per sample, no recursion, so it vectorises,
4 lanes wide on SSE and NEON; everything after is in double precision). The
full-block spectrum ``X = Y0 + exp(-j w M) Y1`` picks the strongest row and
column and feeds the relative-peak test (a 102-sample window separates
adjacent DTMF tones by 20 dB or more). Then, for the chosen pair only, the
complex amplitude of each tone in each half is solved from a 2x2 model that
removes the leakage of the other tone (a 51-sample window alone would let
the stronger tone bend the weaker one's phase by up to 18 Hz); the phase
advance of a tone from the first half to the second gives its frequency,
unambiguous within +-78 Hz. Near the 1.5-3.5 % decision band the model is
solved once more with the measured frequencies. The tone powers come from
the half amplitudes, ``p = (|a0| + |a1|)**2 / 2``. Last, for a block that
passed everything else, the stored block is correlated with twice the
measured column frequency (2418-3266 Hz, where no fundamental leaks in; the
row's harmonics sit next to the columns and cannot be measured cleanly in
102 samples).

Timing: the tone powers measured from the half amplitudes are the block's
power times the fraction of the block the tone fills, so the 85 % power
test fails a block with more than about 15 samples of silence (the estimate
of a partly filled half is not exact: 80 % let some 20 ms tones through). A
20 ms tone (160 samples) can never fill two blocks that well (that takes
2 x 87, or 87 + 102 + 87 with a block between) and is never reported; a 40 ms
tone (320) always holds two whole blocks. A gap of up to about 17 ms spoils
at most two blocks and is bridged (ending a digit takes three); a 40 ms gap
always spoils three or more.
Between 20 and 40 ms (tones) or 17 and 40 ms (gaps) the outcome depends on
where the block boundaries fall, as the standards allow.

Audio from a GSM modem crossed a mobile codec (GSM full rate, AMR-NB; see
``tests/gateway/audio/test_codecs.py``). The codec keeps the frequencies but
not the envelope: from one 5 ms subframe to the next the level of each tone
swings by up to 4-5 dB, so the two halves of a block differ as much and the
twist of one block moves by up to 5 dB either way; AMR also delays the tone
by 5 ms and builds it up over its first 7 ms. Testing duration by the
power fraction (a mean over the block, which such swings barely lower: 4 dB
between halves costs 5 %) rather than by the balance of the halves, and
twist on the two blocks that start the digit rather than on each block,
keeps the 20 ms / 40 ms and 8 dB / 4 dB requirements on clean tones and
finds the digits a codec lets through. The halves must still agree within
8 dB (a tone that starts or stops mid-block, seen through noise). Now and
then a codec garbles one block in the middle of a tone (a spurious
neighbour tone, a dropout): two agreeing blocks with one empty block between
start the digit too. What is left: AMR 12.2 shortens a 40 ms tone to about
33 ms, less than two blocks can promise, and its lower rates and GSM-FR
garble some tones throughout; the test file prints the rates.

Reporting: each digit is reported **once, when it ends** (three blocks, 38 ms,
after the tone stops), as ``(digit, start_sample, end_sample)``: ``start`` is
the first sample of the first of the two agreeing blocks, ``end`` the sample
after the last block that held the digit (both exact to a block, 12.75 ms).
``flush()`` reports a digit still sounding at the end of the stream.

This is the slow, obviously-correct model of ``cython_ext/dtmf.pyx``. Both do
the same IEEE operations (float32 sums, double elsewhere) in the same order
(and the Cython build turns off floating-point contraction), so they report
the same digits at the same samples.
"""

from __future__ import annotations

import math
import operator
import sys
from array import array

BytesLike = bytes | bytearray | memoryview

ROW_FREQUENCIES = (697.0, 770.0, 852.0, 941.0)
COLUMN_FREQUENCIES = (1209.0, 1336.0, 1477.0, 1633.0)
DIGITS = "123A456B789C*0#D"  # row-major: DIGITS[4 * row + column]

BLOCK_SAMPLES_8KHZ = 102
MIN_LEVEL_DBM0 = -42.0
DBM0_TO_DBOV = -6.15  # 0 dBm0 sine: 3.14 dB below a full-scale sine (-3.01 dBov)
NORMAL_TWIST_DB = 9.0  # row louder than column
REVERSE_TWIST_DB = 5.0  # column louder than row
RELATIVE_PEAK_DB = 8.0
MIN_POWER_FRACTION = 0.85
SECOND_HARMONIC_DB = 12.0  # the column's 2nd harmonic must be this far below it
HALF_BALANCE_DB = 8.0  # each tone's amplitude in the two halves of a block
BLOCK_NORMAL_TWIST_DB = 14.0  # one block; the two that start a digit: NORMAL_TWIST_DB
BLOCK_REVERSE_TWIST_DB = 10.0  # one block; the two that start a digit: REVERSE_TWIST_DB
FREQUENCY_TOLERANCE = 0.0245
REFINE_LOW = 0.015
REFINE_HIGH = 0.035
START_BLOCKS = 2
END_BLOCKS = 3

_FULL_SCALE_POWER = 1073741824.0  # 32768.0 ** 2
_TINY = 1e-12


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


def block_samples(sample_rate: int) -> int:
    """Samples per analysis block: 102 at 8 kHz, scaled (rounded) and kept even."""
    return 2 * ((BLOCK_SAMPLES_8KHZ // 2 * sample_rate + 4000) // 8000)


def _kernel(theta: float, length: int) -> tuple[float, float]:
    """sum(exp(j theta n) for n in range(length)) as (real, imaginary)."""
    half_sine = math.sin(theta / 2.0)
    if -_TINY < half_sine < _TINY:
        return float(length), 0.0
    magnitude = math.sin(float(length) * theta / 2.0) / half_sine
    phase = theta * float(length - 1) / 2.0
    return magnitude * math.cos(phase), magnitude * math.sin(phase)


class _Tables:
    """Constants of one sample rate."""

    def __init__(self, sample_rate: int) -> None:
        self.block = block_samples(sample_rate)
        self.half = self.block // 2
        frequencies = ROW_FREQUENCIES + COLUMN_FREQUENCIES
        self.omega = [2.0 * math.pi * f / float(sample_rate) for f in frequencies]
        # Correlation table, float32: per n in the half, cos(w n) for the 8 tones,
        # then sin(w n) (array("f") rounds each value as a C cast to float does).
        self.rows: list[list[float]] = []
        for n in range(self.half):
            row = array("f", [math.cos(w * float(n)) for w in self.omega])
            row.extend(math.sin(w * float(n)) for w in self.omega)
            self.rows.append(list(row))
        # exp(-j w M): moves a half's phase reference to the block start.
        self.advance = [
            (math.cos(w * float(self.half)), -math.sin(w * float(self.half))) for w in self.omega
        ]
        # Leakage of column c into row r's correlator (nominal frequencies).
        self.leak = [
            _kernel(self.omega[4 + c] - self.omega[r], self.half)
            for r in range(4)
            for c in range(4)
        ]
        # Second harmonics of the 4 columns over the full block: cos, then sin.
        self.harmonic = [
            [math.cos(2.0 * self.omega[4 + c] * float(n)) for n in range(self.block)]
            + [math.sin(2.0 * self.omega[4 + c] * float(n)) for n in range(self.block)]
            for c in range(4)
        ]
        self.tolerance = [FREQUENCY_TOLERANCE * w for w in self.omega]
        self.refine_low = [REFINE_LOW * w for w in self.omega]
        self.refine_high = [REFINE_HIGH * w for w in self.omega]
        min_power = _FULL_SCALE_POWER * 10.0 ** ((MIN_LEVEL_DBM0 + DBM0_TO_DBOV) / 10.0)
        self.min_power = min_power
        # Coherent-energy gate: a tone of power p on its bin gives |X|^2 = p N^2 / 2;
        # allow 6 dB for frequency error.
        self.gate = min_power * float(self.block) * float(self.block) / 8.0
        self.relative_peak = 10.0 ** (RELATIVE_PEAK_DB / 10.0)
        self.normal_twist = 10.0 ** (NORMAL_TWIST_DB / 10.0)
        self.reverse_twist = 10.0 ** (REVERSE_TWIST_DB / 10.0)
        self.block_normal_twist = 10.0 ** (BLOCK_NORMAL_TWIST_DB / 10.0)
        self.block_reverse_twist = 10.0 ** (BLOCK_REVERSE_TWIST_DB / 10.0)
        self.balance = 10.0 ** (-HALF_BALANCE_DB / 20.0)
        self.second_harmonic = (
            float(self.block) * float(self.block) / 2.0 * 10.0 ** (-SECOND_HARMONIC_DB / 10.0)
        )


_TABLES: dict[int, _Tables] = {}


def _tables(sample_rate: int) -> _Tables:
    if sample_rate not in _TABLES:
        _TABLES[sample_rate] = _Tables(sample_rate)
    return _TABLES[sample_rate]


def _solve(
    y: list[float],
    kernels: tuple[float, float, float, float, float, float, float, float],
) -> tuple[float, float, float, float]:
    """Complex amplitudes (row, column) of the tone pair from one half's correlations.

    ``y`` = (Yr.re, Yr.im, Yc.re, Yc.im); the model is
    Yr = ar A + ac B, Yc = ar C + ac D with ``kernels`` = (A, B, C, D).
    """
    yrr, yri, ycr, yci = y[0], y[1], y[2], y[3]
    a_r, a_i, b_r, b_i, c_r, c_i, d_r, d_i = kernels
    det_r = (a_r * d_r - a_i * d_i) - (b_r * c_r - b_i * c_i)
    det_i = (a_r * d_i + a_i * d_r) - (b_r * c_i + b_i * c_r)
    norm = det_r * det_r + det_i * det_i
    inv_r = det_r / norm
    inv_i = -det_i / norm
    # row = (D Yr - B Yc) / det, column = (A Yc - C Yr) / det
    num_r = (d_r * yrr - d_i * yri) - (b_r * ycr - b_i * yci)
    num_i = (d_r * yri + d_i * yrr) - (b_r * yci + b_i * ycr)
    row_r = num_r * inv_r - num_i * inv_i
    row_i = num_r * inv_i + num_i * inv_r
    num_r = (a_r * ycr - a_i * yci) - (c_r * yrr - c_i * yri)
    num_i = (a_r * yci + a_i * ycr) - (c_r * yri + c_i * yrr)
    col_r = num_r * inv_r - num_i * inv_i
    col_i = num_r * inv_i + num_i * inv_r
    return row_r, row_i, col_r, col_i


def _offset(
    first_r: float, first_i: float, second_r: float, second_i: float, advance: tuple[float, float]
) -> float:
    """Angular frequency offset (rad/sample * M) of a tone from its two half amplitudes."""
    t_r = second_r * first_r + second_i * first_i
    t_i = second_i * first_r - second_r * first_i
    u_r = t_r * advance[0] - t_i * advance[1]
    u_i = t_r * advance[1] + t_i * advance[0]
    return math.atan2(u_i, u_r)


class DtmfDetector:
    """Streaming DTMF detector for one channel; see the module docstring."""

    def __init__(self, sample_rate: int = 8000) -> None:
        if not 4000 <= sample_rate <= 48000:
            raise ValueError(f"sample_rate must be 4000..48000 Hz, got {sample_rate}")
        self._sample_rate = sample_rate
        self._t = _tables(sample_rate)
        self._position = 0  # samples consumed
        self._block_start = 0
        self._in_block = 0
        # float32 sums per half: cos x8, then sin x8.
        self._acc = [array("f", bytes(64)), array("f", bytes(64))]
        self._block_samples = [0] * self._t.block
        self._energy = 0
        self._last_hit = -1
        self._previous_block_start = 0
        self._hit_before = -1  # the block before the previous one: its digit, start, powers
        self._before_block_start = 0
        self._before_powers = (0.0, 0.0)
        self._digit = -1
        self._digit_start = 0
        self._digit_end = 0
        self._misses = 0
        # Tone powers (row, column) of the last block that held a digit, and of the one before.
        self._hit_powers = (0.0, 0.0)
        self._previous_powers = (0.0, 0.0)

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
    def digit_in_progress(self) -> str | None:
        """The digit sounding now (already confirmed, not yet reported), or None."""
        return DIGITS[self._digit] if self._digit >= 0 else None

    def feed(self, pcm: BytesLike) -> list[tuple[str, int, int]]:
        """Analyse more samples; return the digits that ended in them."""
        events: list[tuple[str, int, int]] = []
        t = self._t
        half = t.half
        add = operator.add
        for sample in _samples(pcm):
            x = float(sample)
            n = self._in_block
            which = 0 if n < half else 1
            # float32 arithmetic: int16 * float32 is exact in a double, so rounding
            # the double product (and then the double sum) to float32 gives exactly
            # what a float32 multiply and add give (53 >= 2 * 24 + 2 bits).
            products = array("f", [x * c for c in t.rows[n - which * half]])
            self._acc[which] = array("f", map(add, self._acc[which], products))
            self._block_samples[n] = sample
            self._energy += sample * sample
            self._in_block = n + 1
            self._position += 1
            if self._in_block == t.block:
                self._end_block(events)
        return events

    def flush(self) -> list[tuple[str, int, int]]:
        """End of stream: report a digit still in progress and drop the partial block."""
        events: list[tuple[str, int, int]] = []
        if self._digit >= 0:
            events.append((DIGITS[self._digit], self._digit_start, self._digit_end))
        self._digit = -1
        self._misses = 0
        self._last_hit = -1
        self._hit_before = -1
        self._reset_block()
        return events

    def _reset_block(self) -> None:
        self._acc = [array("f", bytes(64)), array("f", bytes(64))]
        self._energy = 0
        self._in_block = 0
        self._block_start = self._position

    def _end_block(self, events: list[tuple[str, int, int]]) -> None:
        hit = self._classify()
        block_start = self._block_start
        block_end = self._position
        if self._digit >= 0:
            if hit == self._digit:
                self._misses = 0
                self._digit_end = block_end
            else:
                self._misses += 1
                changed = hit >= 0 and hit == self._last_hit
                if self._misses >= END_BLOCKS or changed:
                    events.append((DIGITS[self._digit], self._digit_start, self._digit_end))
                    self._digit = -1
                    self._misses = 0
        if self._digit < 0 and hit >= 0:
            # Two blocks agree: this one and the previous, or this one and the one
            # before a block that held nothing (a codec's dropout inside the tone).
            if hit == self._last_hit and self._pair_twist_ok(self._previous_powers):
                self._digit = hit
                self._digit_start = self._previous_block_start
            elif (
                self._last_hit < 0
                and hit == self._hit_before
                and self._pair_twist_ok(self._before_powers)
            ):
                self._digit = hit
                self._digit_start = self._before_block_start
            if self._digit >= 0:
                self._digit_end = block_end
                self._misses = 0
        self._hit_before = self._last_hit
        self._before_block_start = self._previous_block_start
        self._before_powers = self._previous_powers
        self._last_hit = hit
        self._previous_block_start = block_start
        self._previous_powers = self._hit_powers
        self._reset_block()

    def _pair_twist_ok(self, other: tuple[float, float]) -> bool:
        """Twist of the two agreeing blocks together (the digit's, not one block's)."""
        row_power = other[0] + self._hit_powers[0]
        column_power = other[1] + self._hit_powers[1]
        if row_power > column_power * self._t.normal_twist:
            return False
        return not column_power > row_power * self._t.reverse_twist

    def _classify(self) -> int:
        """The digit this block holds, or -1."""
        t = self._t
        acc = list(self._acc[0]) + list(self._acc[1])
        # Full-block spectrum at the 8 frequencies.
        power = [0.0] * 8
        for k in range(8):
            w_r, w_i = t.advance[k]
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
        half = float(t.half)
        leak_r, leak_i = t.leak[4 * row + (column - 4)]
        kernels = (half, 0.0, leak_r, leak_i, leak_r, -leak_i, half, 0.0)
        y0 = [acc[row], -acc[8 + row], acc[column], -acc[8 + column]]
        y1 = [acc[16 + row], -acc[24 + row], acc[16 + column], -acc[24 + column]]
        a0 = _solve(y0, kernels)
        a1 = _solve(y1, kernels)
        row_offset = _offset(a0[0], a0[1], a1[0], a1[1], t.advance[row])
        column_offset = _offset(a0[2], a0[3], a1[2], a1[3], t.advance[column])
        row_error = abs(row_offset) / half
        column_error = abs(column_offset) / half
        if (t.refine_low[row] <= row_error <= t.refine_high[row]) or (
            t.refine_low[column] <= column_error <= t.refine_high[column]
        ):
            # Near the decision band: solve again with the measured frequencies.
            row_delta = row_offset / half
            column_delta = column_offset / half
            gap = t.omega[column] - t.omega[row]
            a_r, a_i = _kernel(row_delta, t.half)
            b_r, b_i = _kernel(gap + column_delta, t.half)
            c_r, c_i = _kernel(-gap + row_delta, t.half)
            d_r, d_i = _kernel(column_delta, t.half)
            kernels = (a_r, a_i, b_r, b_i, c_r, c_i, d_r, d_i)
            a0 = _solve(y0, kernels)
            a1 = _solve(y1, kernels)
            row_offset = _offset(a0[0], a0[1], a1[0], a1[1], t.advance[row])
            column_offset = _offset(a0[2], a0[3], a1[2], a1[3], t.advance[column])
            row_error = abs(row_offset) / half
            column_error = abs(column_offset) / half
        if row_error > t.tolerance[row] or column_error > t.tolerance[column]:
            return -1

        # Both halves must hold each tone alike: a block the tone only partly fills fails.
        row_first = math.sqrt(a0[0] * a0[0] + a0[1] * a0[1])
        row_second = math.sqrt(a1[0] * a1[0] + a1[1] * a1[1])
        column_first = math.sqrt(a0[2] * a0[2] + a0[3] * a0[3])
        column_second = math.sqrt(a1[2] * a1[2] + a1[3] * a1[3])
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
        block_power = float(self._energy) / float(t.block)
        if row_power + column_power < MIN_POWER_FRACTION * block_power:
            return -1

        # Second harmonic of the column tone, at twice its measured frequency: the
        # table holds exp(-j 2 w n), a rotator adds exp(-j 2 delta n).
        harmonic = t.harmonic[column - 4]
        block = t.block
        column_delta = column_offset / half
        step_r = math.cos(2.0 * column_delta)
        step_i = -math.sin(2.0 * column_delta)
        rot_r = 1.0
        rot_i = 0.0
        h_r = 0.0
        h_i = 0.0
        for n in range(block):
            x = float(self._block_samples[n])
            c = harmonic[n]
            s = harmonic[block + n]
            h_r += x * (c * rot_r + s * rot_i)
            h_i += x * (c * rot_i - s * rot_r)
            next_r = rot_r * step_r - rot_i * step_i
            rot_i = rot_r * step_i + rot_i * step_r
            rot_r = next_r
        # |H|^2 = (A2 N / 2)^2 and column_power = Ac^2 / 2: compare A2^2 with Ac^2.
        if h_r * h_r + h_i * h_i > column_power * t.second_harmonic:
            return -1
        self._hit_powers = (row_power, column_power)
        return 4 * row + (column - 4)
