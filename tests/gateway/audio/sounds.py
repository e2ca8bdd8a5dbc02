"""Test audio made in the test (tones, DTMF, noise) and helpers around sox, espeak-ng, multimon-ng.

Kept here rather than imported from ``tests/cython_ext/audio_signals.py`` (or
``drivers/simulated/audio_signals.py``), which may move. The external tools
are optional locally: a helper that needs a missing one skips the test through
``tests.conftest.require_tool`` (and fails it when ``EDGE112_REQUIRE_TOOLS=1``,
as in CI). Tests that need a tool say so with ``@pytest.mark.requires_tool``.
"""

from __future__ import annotations

import math
import random
import struct
import subprocess
from pathlib import Path

from tests.conftest import require_tool

ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
DIGITS = "123A456B789C*0#D"


def pack(values: list[float] | list[int]) -> bytes:
    """Round, clip and pack as signed 16-bit little-endian."""
    clipped = [max(-32768, min(32767, round(value))) for value in values]
    return struct.pack(f"<{len(clipped)}h", *clipped)


def unpack(pcm: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


def tone(
    frequencies: tuple[float, ...], ms: float, rate: int = 8000, amplitude: float = 8000.0
) -> list[float]:
    count = round(ms * rate / 1000)
    return [
        sum(amplitude * math.sin(2 * math.pi * f * n / rate) for f in frequencies)
        for n in range(count)
    ]


def silence(ms: float, rate: int = 8000) -> list[float]:
    return [0.0] * round(ms * rate / 1000)


def dtmf(digits: str, tone_ms: float = 100, gap_ms: float = 100, rate: int = 8000) -> list[float]:
    out: list[float] = []
    for digit in digits:
        index = DIGITS.index(digit)
        out += tone((ROWS[index // 4], COLUMNS[index % 4]), tone_ms, rate, amplitude=6000.0)
        out += silence(gap_ms, rate)
    return out


def noise(ms: float, rms: float, rate: int = 8000, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(0.0, rms) for _ in range(round(ms * rate / 1000))]


def rms_db(pcm: bytes, skip: int = 0) -> float:
    """RMS level in dB relative to 1 (skip samples at each end)."""
    values = unpack(pcm)
    if skip:
        values = values[skip:-skip]
    mean_square = sum(value * value for value in values) / max(1, len(values))
    return 10 * math.log10(max(mean_square, 1e-12))


def sox(*args: str | Path) -> None:
    """Run sox with ``args`` (the test is skipped when sox is not installed)."""
    __tracebackhide__ = True
    subprocess.run([require_tool("sox"), *map(str, args)], check=True, capture_output=True)


def sox_reads(path: Path) -> bool:
    """Whether ``sox FILE -n stat`` opens the file as a player would."""
    __tracebackhide__ = True
    result = subprocess.run([require_tool("sox"), str(path), "-n", "stat"], capture_output=True)
    return result.returncode == 0


def sox_dtmf(path: Path, digits: str, rate: int, channels: int) -> None:
    """A DTMF recording made by sox: per digit 100 ms of the two tones, then 100 ms of silence.

    ``synth 0.1 sine 770 sine 1336`` gives, in a mono file, the two tones
    mixed; in a stereo file one tone per channel (the reader's mixdown must
    put them back together).
    """
    __tracebackhide__ = True
    effects: list[str] = []
    for digit in digits:
        index = DIGITS.index(digit)
        low, high = ROWS[index // 4], COLUMNS[index % 4]
        effects += ["synth", "0.1", "sine", f"{low:g}", "sine", f"{high:g}", "vol", "0.4", ":"]
        effects += ["synth", "0.1", "sine", "0", ":"]
    sox("-n", "-r", str(rate), "-c", str(channels), "-b", "16", path, *effects[:-1])


def espeak(path: Path, text: str) -> None:
    """espeak-ng speech (22,050 Hz, mono, 16-bit) written to ``path``."""
    __tracebackhide__ = True
    subprocess.run(
        [require_tool("espeak-ng"), "-w", str(path), text], check=True, capture_output=True
    )


def multimon_dtmf(pcm_22050: bytes) -> str:
    """Digits multimon-ng hears in raw 22,050 Hz 16-bit PCM."""
    __tracebackhide__ = True
    result = subprocess.run(
        [require_tool("multimon-ng"), "-q", "-a", "DTMF", "-t", "raw", "-"],
        input=pcm_22050,
        capture_output=True,
        check=True,
    )
    return "".join(
        line.split(":", 1)[1].strip()
        for line in result.stdout.decode().splitlines()
        if line.startswith("DTMF:")
    )
