"""G.711 A-law and mu-law companding, bit-exact with Python 3.11's ``audioop``.

Signal conventions: linear PCM is signed 16-bit little-endian, one channel;
a G.711 code is one octet per sample as it travels on the line (A-law with
the even bits inverted, mu-law with all bits inverted). This is the slow,
obviously-correct model of ``cython_ext/g711.pyx``; the tests compare the two
over every input.

Like ``audioop.lin2alaw`` the A-law encoder *truncates* the 16-bit sample to
13 bits (arithmetic shift right by 3) and the mu-law encoder truncates to 14
bits (shift right by 2) before companding; ``sox`` rounds instead, so about
1,000 of the 65,536 inputs differ from sox by one step. Decoding agrees with
every implementation.
"""

from __future__ import annotations

import sys
from array import array

BytesLike = bytes | bytearray | memoryview

_A_LAW_SEGMENT_ENDS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
_MU_LAW_SEGMENT_ENDS = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_MU_LAW_BIAS = 0x84
_MU_LAW_CLIP = 32635
_QUANT_MASK = 0x0F
_SEGMENT_MASK = 0x70
_SEGMENT_SHIFT = 4
_SIGN_BIT = 0x80


def _segment(value: int, ends: tuple[int, ...]) -> int:
    for index, end in enumerate(ends):
        if value <= end:
            return index
    return len(ends)


def linear13_to_alaw(pcm_value: int) -> int:
    """One A-law code from a 13-bit two's complement sample (-4096..4095)."""
    if pcm_value >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm_value = -pcm_value - 1
    segment = _segment(pcm_value, _A_LAW_SEGMENT_ENDS)
    if segment >= 8:
        return 0x7F ^ mask
    code = segment << _SEGMENT_SHIFT
    if segment < 2:
        code |= (pcm_value >> 1) & _QUANT_MASK
    else:
        code |= (pcm_value >> segment) & _QUANT_MASK
    return code ^ mask


def linear14_to_ulaw(pcm_value: int) -> int:
    """One mu-law code from a 14-bit two's complement sample (-8192..8191)."""
    if pcm_value < 0:
        pcm_value = -pcm_value
        mask = 0x7F
    else:
        mask = 0xFF
    pcm_value = min(pcm_value, _MU_LAW_CLIP)
    pcm_value += _MU_LAW_BIAS >> 2
    segment = _segment(pcm_value, _MU_LAW_SEGMENT_ENDS)
    if segment >= 8:
        return 0x7F ^ mask
    code = (segment << 4) | ((pcm_value >> (segment + 1)) & 0x0F)
    return code ^ mask


def alaw_to_linear16(code: int) -> int:
    """The 16-bit sample an A-law code stands for."""
    code ^= 0x55
    value = (code & _QUANT_MASK) << 4
    segment = (code & _SEGMENT_MASK) >> _SEGMENT_SHIFT
    if segment == 0:
        value += 8
    elif segment == 1:
        value += 0x108
    else:
        value = (value + 0x108) << (segment - 1)
    return value if code & _SIGN_BIT else -value


def ulaw_to_linear16(code: int) -> int:
    """The 16-bit sample a mu-law code stands for."""
    code = ~code & 0xFF
    value = ((code & _QUANT_MASK) << 3) + _MU_LAW_BIAS
    value <<= (code & _SEGMENT_MASK) >> _SEGMENT_SHIFT
    return _MU_LAW_BIAS - value if code & _SIGN_BIT else value - _MU_LAW_BIAS


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


def _pcm_bytes(samples: array[int]) -> bytes:
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def alaw_encode(pcm: BytesLike) -> bytes:
    """Signed 16-bit little-endian PCM to A-law codes (like ``audioop.lin2alaw(pcm, 2)``)."""
    return bytes(linear13_to_alaw(sample >> 3) for sample in _samples(pcm))


def ulaw_encode(pcm: BytesLike) -> bytes:
    """Signed 16-bit little-endian PCM to mu-law codes (like ``audioop.lin2ulaw(pcm, 2)``)."""
    return bytes(linear14_to_ulaw(sample >> 2) for sample in _samples(pcm))


def alaw_decode(codes: BytesLike) -> bytes:
    """A-law codes to signed 16-bit little-endian PCM (like ``audioop.alaw2lin(codes, 2)``)."""
    data = memoryview(codes).cast("B")
    return _pcm_bytes(array("h", (alaw_to_linear16(code) for code in data)))


def ulaw_decode(codes: BytesLike) -> bytes:
    """Mu-law codes to signed 16-bit little-endian PCM (like ``audioop.ulaw2lin(codes, 2)``)."""
    data = memoryview(codes).cast("B")
    return _pcm_bytes(array("h", (ulaw_to_linear16(code) for code in data)))
