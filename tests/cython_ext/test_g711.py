"""G.711: the Cython hot path against the pure-Python reference, and against audioop.

The reference (``cython_ext/reference/g711.py``) is the oracle everywhere. The
standard library's ``audioop`` is a second, independent one where it exists:
deprecated since Python 3.11 and removed in 3.13, so there those comparisons
are skipped with the reason (the reference comparisons still run).
"""

from __future__ import annotations

import struct
import warnings
from array import array
from collections.abc import Callable
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cython_ext import g711
from cython_ext.reference import g711 as reference

ALL_PCM = struct.pack("<65536h", *range(-32768, 32768))
ALL_CODES = bytes(range(256))

Codec = Callable[[bytes], bytes]
# audioop's name for the function -> (Cython, reference)
ENCODERS: dict[str, tuple[Codec, Codec]] = {
    "lin2alaw": (g711.alaw_encode, reference.alaw_encode),
    "lin2ulaw": (g711.ulaw_encode, reference.ulaw_encode),
}
DECODERS: dict[str, tuple[Codec, Codec]] = {
    "alaw2lin": (g711.alaw_decode, reference.alaw_decode),
    "ulaw2lin": (g711.ulaw_decode, reference.ulaw_decode),
}


@pytest.fixture(scope="module")
def audioop() -> ModuleType:
    """The standard library's audioop; the test is skipped where it is gone (Python 3.13+)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "deprecated ... removal in 3.13"
        return pytest.importorskip(
            "audioop", reason="audioop was removed in Python 3.13; compared with the reference only"
        )


@pytest.mark.parametrize(("fast", "slow"), ENCODERS.values(), ids=ENCODERS.keys())
def test_encoders_agree_on_all_65536_samples(fast: Codec, slow: Codec) -> None:
    assert fast(ALL_PCM) == slow(ALL_PCM)


@pytest.mark.parametrize(("fast", "slow"), DECODERS.values(), ids=DECODERS.keys())
def test_decoders_agree_on_all_256_codes(fast: Codec, slow: Codec) -> None:
    assert fast(ALL_CODES) == slow(ALL_CODES)


@pytest.mark.parametrize("audioop_name", ENCODERS)
def test_encoders_agree_with_audioop(audioop: ModuleType, audioop_name: str) -> None:
    fast, _ = ENCODERS[audioop_name]
    assert getattr(audioop, audioop_name)(ALL_PCM, 2) == fast(ALL_PCM)


@pytest.mark.parametrize("audioop_name", DECODERS)
def test_decoders_agree_with_audioop(audioop: ModuleType, audioop_name: str) -> None:
    fast, _ = DECODERS[audioop_name]
    assert getattr(audioop, audioop_name)(ALL_CODES, 2) == fast(ALL_CODES)


def test_known_codes() -> None:
    # Idle A-law octet 0xD5 is +8 (the smallest positive step); 0x55 is -8.
    assert g711.alaw_decode(b"\xd5\x55") == struct.pack("<2h", 8, -8)
    # mu-law 0xFF is +0, 0x7F is -0; full-scale codes.
    assert g711.ulaw_decode(b"\xff\x7f\x80\x00") == struct.pack("<4h", 0, 0, 32124, -32124)
    assert g711.alaw_decode(b"\xaa\x2a") == struct.pack("<2h", 32256, -32256)
    assert g711.alaw_encode(struct.pack("<2h", 0, -1)) == b"\xd5\x55"


def test_encode_truncates_like_audioop_not_like_sox() -> None:
    # 8..23 truncate to 13-bit 1..2 -> code step 0 for A-law (sox would round 15 up).
    assert g711.alaw_encode(struct.pack("<h", 15)) == g711.alaw_encode(struct.pack("<h", 8))


def test_round_trip_is_idempotent_after_one_pass() -> None:
    once = g711.alaw_decode(g711.alaw_encode(ALL_PCM))
    assert g711.alaw_decode(g711.alaw_encode(once)) == once
    once = g711.ulaw_decode(g711.ulaw_encode(ALL_PCM))
    assert g711.ulaw_decode(g711.ulaw_encode(once)) == once


@pytest.mark.parametrize("encode", [g711.alaw_encode, g711.ulaw_encode, reference.alaw_encode])
def test_odd_pcm_length_is_refused(encode: Callable[[bytes], bytes]) -> None:
    with pytest.raises(ValueError, match="even number of bytes, got 3"):
        encode(b"\x00\x01\x02")


def test_empty_input() -> None:
    for function in (g711.alaw_encode, g711.ulaw_encode, g711.alaw_decode, g711.ulaw_decode):
        assert function(b"") == b""
        assert function(bytearray()) == b""


def test_any_bytes_like_buffer() -> None:
    samples = array("h", [0, 1, -1, 1000, -32768, 32767])
    pcm = samples.tobytes()  # native order is little-endian on every target
    expected = g711.alaw_encode(pcm)
    assert g711.alaw_encode(bytearray(pcm)) == expected
    assert g711.alaw_encode(memoryview(pcm)) == expected
    assert g711.alaw_encode(memoryview(pcm)[2:]) == expected[1:]
    assert g711.alaw_encode(samples) == expected  # type: ignore[arg-type]
    assert g711.ulaw_encode(samples) == g711.ulaw_encode(pcm)  # type: ignore[arg-type]
    assert g711.alaw_decode(bytearray(expected)) == g711.alaw_decode(expected)
    assert g711.ulaw_decode(memoryview(expected)) == g711.ulaw_decode(expected)


def test_large_buffer_releases_the_gil_path() -> None:
    pcm = ALL_PCM * 4  # over the no-GIL threshold
    assert g711.alaw_encode(pcm) == g711.alaw_encode(ALL_PCM) * 4
    codes = ALL_CODES * 256
    assert g711.ulaw_decode(codes) == g711.ulaw_decode(ALL_CODES) * 256


@given(st.binary(max_size=400).map(lambda data: data[: len(data) // 2 * 2]))
def test_cython_matches_reference_on_random_pcm(pcm: bytes) -> None:
    assert g711.alaw_encode(pcm) == reference.alaw_encode(pcm)
    assert g711.ulaw_encode(pcm) == reference.ulaw_encode(pcm)


@given(st.binary(max_size=400))
def test_cython_matches_reference_on_random_codes(codes: bytes) -> None:
    assert g711.alaw_decode(codes) == reference.alaw_decode(codes)
    assert g711.ulaw_decode(codes) == reference.ulaw_decode(codes)
