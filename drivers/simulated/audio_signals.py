"""Synthetic call audio: DTMF, noise, speech-like and music-like signals at 8 kHz.

The simulated caller speaks with these (``drivers.simulated.caller_audio``),
and the audio tests use them as conformance and talk-off signals. Signals
are lists (or endless iterators) of float samples at full 16-bit scale;
``to_pcm`` rounds, clips and packs them as signed 16-bit little-endian PCM,
the format GSM modems deliver call audio in.

Levels: dBm0 as in G.711 A-law (0 dBm0 = a sine of peak ``ZERO_DBM0_PEAK``),
dBov as 10*log10 of the mean square over 32768**2.

The endless generators (``speech_samples``, ``noise_samples``) let the
simulator render a three-minute call frame by frame; ``speech_like`` and
``white_noise`` are their first ``n`` samples, bit for bit.
"""

from __future__ import annotations

import itertools
import math
import random
import struct
from collections.abc import Iterable, Iterator

RATE = 8000
ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
DIGITS = "123A456B789C*0#D"
ZERO_DBM0_PEAK = 32768.0 * 10.0 ** (-3.14 / 20.0)
PCM16_MIN = -32768
PCM16_MAX = 32767

# Vowel formants (F1, F2, F3) in Hz, after Peterson and Barney.
VOWELS = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
    "ae": (660.0, 1720.0, 2410.0),
    "er": (490.0, 1350.0, 1690.0),
}
FORMANT_BANDWIDTHS_HZ = (90.0, 110.0, 170.0)


def samples_for(ms: float, rate: int = RATE) -> int:
    return round(ms * rate / 1000.0)


def silence(ms: float, rate: int = RATE) -> list[float]:
    return [0.0] * samples_for(ms, rate)


def dtmf_tone(
    digit: str,
    ms: float,
    level_dbm0: float = -10.0,
    twist_db: float = 0.0,
    row_deviation: float = 0.0,
    column_deviation: float = 0.0,
    rate: int = RATE,
    seed: int = 0,
) -> list[float]:
    """A DTMF digit: the row tone at ``level_dbm0``, the column ``twist_db`` below it.

    Positive twist is "normal" (low group louder), negative is "reverse".
    Deviations are fractions (0.015 = +1.5 %); start phases are random.
    """
    index = DIGITS.index(digit)
    row = ROWS[index // 4] * (1.0 + row_deviation)
    column = COLUMNS[index % 4] * (1.0 + column_deviation)
    row_peak = ZERO_DBM0_PEAK * 10.0 ** (level_dbm0 / 20.0)
    column_peak = row_peak * 10.0 ** (-twist_db / 20.0)
    rng = random.Random(seed)
    row_phase = rng.uniform(0.0, 2.0 * math.pi)
    column_phase = rng.uniform(0.0, 2.0 * math.pi)
    return [
        row_peak * math.sin(2.0 * math.pi * row * n / rate + row_phase)
        + column_peak * math.sin(2.0 * math.pi * column * n / rate + column_phase)
        for n in range(samples_for(ms, rate))
    ]


def digit_sequence(
    digits: str,
    tone_ms: float,
    gap_ms: float,
    lead_ms: float = 0.0,
    *,
    level_dbm0: float = -10.0,
    twist_db: float = 0.0,
    row_deviation: float = 0.0,
    column_deviation: float = 0.0,
) -> list[float]:
    """``digits`` as tones separated by silent gaps, starting after ``lead_ms``."""
    signal = silence(lead_ms)
    for position, digit in enumerate(digits):
        signal += dtmf_tone(
            digit,
            tone_ms,
            level_dbm0=level_dbm0,
            twist_db=twist_db,
            row_deviation=row_deviation,
            column_deviation=column_deviation,
            seed=position,
        )
        signal += silence(gap_ms)
    return signal


def power(signal: list[float]) -> float:
    return sum(value * value for value in signal) / max(1, len(signal))


def noise_samples(rms: float, seed: int = 1) -> Iterator[float]:
    """Endless white Gaussian noise of ``rms``."""
    rng = random.Random(seed)
    while True:
        yield rng.gauss(0.0, rms)


def white_noise(count: int, rms: float, seed: int = 1) -> list[float]:
    return list(itertools.islice(noise_samples(rms, seed), count))


def dbov_rms(level_dbov: float) -> float:
    """The RMS value of a signal at ``level_dbov``."""
    return 32768.0 * 10.0 ** (level_dbov / 20.0)


def mix(*signals: list[float]) -> list[float]:
    length = max(len(signal) for signal in signals)
    out = [0.0] * length
    for signal in signals:
        for index, value in enumerate(signal):
            out[index] += value
    return out


def with_snr(signal: list[float], snr_db: float, seed: int = 1) -> list[float]:
    """``signal`` plus white noise ``snr_db`` below the signal's power (measured where it is on)."""
    active = [value for value in signal if value != 0.0]
    rms = math.sqrt(power(active) / 10.0 ** (snr_db / 10.0))
    return mix(signal, white_noise(len(signal), rms, seed))


def _formant_gain(frequency: float, formants: tuple[float, float, float]) -> float:
    return sum(
        1.0 / (1.0 + ((frequency - formant) / bandwidth) ** 2)
        for formant, bandwidth in zip(formants, FORMANT_BANDWIDTHS_HZ, strict=True)
    )


def speech_samples(level_dbov: float = -20.0, seed: int = 1) -> Iterator[float]:
    """Endless voiced syllables: harmonics shaped by vowel formants, gliding pitch, pauses.

    A surrogate for talk-off and voice-activity tests when no speech
    synthesiser is installed: pitch 80-320 Hz with intonation and vibrato,
    formants of seven vowels, syllables of 80-350 ms with 40-250 ms pauses,
    a little aspiration noise. Harmonics sweep through every DTMF frequency.
    """
    rng = random.Random(seed)
    peak = dbov_rms(level_dbov) * 2.0
    yield from _zeros(rng.randint(0, 800))
    while True:
        length = rng.randint(640, 2800)
        yield from _syllable(rng, length, peak)
        yield from _zeros(rng.randint(320, 2000))


def _syllable(rng: random.Random, length: int, peak: float) -> Iterator[float]:
    vowel = VOWELS[rng.choice(sorted(VOWELS))]
    f0_start = rng.uniform(80.0, 320.0)
    f0_end = f0_start * rng.uniform(0.7, 1.4)
    vibrato = rng.uniform(0.0, 0.04)
    phase = 0.0
    gains: list[float] = []
    for n in range(length):
        progress = n / length
        f0 = f0_start + (f0_end - f0_start) * progress
        f0 *= 1.0 + vibrato * math.sin(2.0 * math.pi * 5.0 * n / RATE)
        phase += 2.0 * math.pi * f0 / RATE
        if n % 40 == 0:  # the formant filter follows the pitch every 5 ms
            gains = [
                _formant_gain(harmonic * f0, vowel) / harmonic**0.5
                for harmonic in range(1, int(3600.0 / f0) + 1)
            ]
        value = rng.gauss(0.0, 0.02)
        for harmonic, gain in enumerate(gains, start=1):
            value += gain * math.sin(harmonic * phase)
        envelope = math.sin(math.pi * progress) ** 0.7
        yield peak * envelope * value / 3.0


def _zeros(count: int) -> Iterator[float]:
    return itertools.repeat(0.0, count)


def speech_like(seconds: float, level_dbov: float = -20.0, seed: int = 1) -> list[float]:
    """``seconds`` of ``speech_samples``."""
    return list(itertools.islice(speech_samples(level_dbov, seed), round(seconds * RATE)))


def music_like(seconds: float, level_dbov: float = -20.0, seed: int = 2) -> list[float]:
    """Chords of 2-4 notes with decaying harmonics (piano/organ-like), 150-600 ms each.

    Notes are equal-tempered between C4 and C7, so F5 (698.5 Hz), E6, F#6 and
    friends sit within 1.5 % of DTMF frequencies, as in real music.
    """
    rng = random.Random(seed)
    count = round(seconds * RATE)
    out = [0.0] * count
    peak = dbov_rms(level_dbov) * 1.5
    position = 0
    while position < count:
        length = rng.randint(1200, 4800)
        notes = [261.63 * 2.0 ** (rng.randint(0, 36) / 12.0) for _ in range(rng.randint(2, 4))]
        harmonic_decay = rng.uniform(0.3, 0.8)
        phases = [rng.uniform(0.0, 2.0 * math.pi) for _ in range(8 * len(notes))]
        for n in range(min(length, count - position)):
            envelope = math.exp(-3.0 * n / length) * min(1.0, n / 40.0)
            value = 0.0
            for note_index, note in enumerate(notes):
                for harmonic in range(1, 9):
                    frequency = note * harmonic
                    if frequency > 3800.0:
                        break
                    value += harmonic_decay ** (harmonic - 1) * math.sin(
                        2.0 * math.pi * frequency * n / RATE + phases[8 * note_index + harmonic - 1]
                    )
            out[position + n] = peak * envelope * value / len(notes)
        position += length
    return out


def to_pcm(signal: Iterable[float]) -> bytes:
    """Round and clip to signed 16-bit little-endian PCM."""
    clipped = [max(PCM16_MIN, min(PCM16_MAX, round(value))) for value in signal]
    return struct.pack(f"<{len(clipped)}h", *clipped)
