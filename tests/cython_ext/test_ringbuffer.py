"""Ring buffer: the Cython hot path against the reference, wraparound and edges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cython_ext import ringbuffer
from cython_ext.reference import ringbuffer as reference

IMPLEMENTATIONS = [ringbuffer.RingBuffer, reference.RingBuffer]


@pytest.mark.parametrize("ring_class", IMPLEMENTATIONS)
def test_fills_then_wraps_keeping_the_newest(ring_class: type[ringbuffer.RingBuffer]) -> None:
    ring = ring_class(8)
    assert len(ring) == 0
    assert ring.read_all() == b""
    ring.write(b"abc")
    assert ring.read_all() == b"abc"
    ring.write(b"defgh")
    assert ring.read_all() == b"abcdefgh"
    assert len(ring) == 8
    ring.write(b"ij")
    assert ring.read_all() == b"cdefghij"
    ring.write(b"klmnopq")
    assert ring.read_all() == b"jklmnopq"
    assert ring.total_written == 3 + 5 + 2 + 7
    assert ring.capacity == 8


@pytest.mark.parametrize("ring_class", IMPLEMENTATIONS)
def test_write_larger_than_capacity_keeps_its_tail(
    ring_class: type[ringbuffer.RingBuffer],
) -> None:
    ring = ring_class(4)
    ring.write(b"xy")
    ring.write(b"0123456789")
    assert ring.read_all() == b"6789"
    ring.write(b"ab")
    assert ring.read_all() == b"89ab"
    ring.write(b"WXYZ")
    assert ring.read_all() == b"WXYZ"


@pytest.mark.parametrize("ring_class", IMPLEMENTATIONS)
def test_capacity_must_be_positive(ring_class: type[ringbuffer.RingBuffer]) -> None:
    with pytest.raises(ValueError, match="positive"):
        ring_class(0)


def test_accepts_bytes_like_and_reading_does_not_consume() -> None:
    ring = ringbuffer.RingBuffer(6)
    ring.write(bytearray(b"ab"))
    ring.write(memoryview(b"cdef")[1:])
    ring.write(b"")
    assert ring.read_all() == b"abdef"
    assert ring.read_all() == b"abdef"


def test_last_seconds_of_pcm() -> None:
    seconds = 2
    ring = ringbuffer.RingBuffer(seconds * 16000)
    frame = bytes(range(160)) * 2  # 20 ms of 16-bit PCM at 8 kHz
    for _ in range(250):  # 5 s
        ring.write(frame)
    assert len(ring) == 32000
    assert ring.read_all() == frame * 100
    assert ring.total_written == 250 * 320


@given(
    st.integers(1, 40),
    st.lists(st.binary(max_size=60), max_size=30),
)
def test_cython_matches_reference(capacity: int, writes: list[bytes]) -> None:
    fast = ringbuffer.RingBuffer(capacity)
    slow = reference.RingBuffer(capacity)
    for data in writes:
        fast.write(data)
        slow.write(data)
        assert fast.read_all() == slow.read_all()
        assert len(fast) == len(slow)
        assert fast.total_written == slow.total_written
