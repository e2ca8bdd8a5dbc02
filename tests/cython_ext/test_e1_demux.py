"""E1 timeslot demultiplexer: the Cython hot path against the reference."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cython_ext import e1
from cython_ext.reference import e1 as reference


def _frames(count: int) -> bytes:
    """Frame f carries (f * 7 + timeslot) & 0xFF in each timeslot."""
    return bytes((frame * 7 + timeslot) & 0xFF for frame in range(count) for timeslot in range(32))


def test_each_timeslot_gets_its_octet_from_every_frame() -> None:
    count = 8000  # one second
    streams = e1.demux(_frames(count))
    assert len(streams) == 32
    for timeslot, stream in enumerate(streams):
        assert stream == bytes((frame * 7 + timeslot) & 0xFF for frame in range(count))


def test_demux_into_lays_out_timeslot_major() -> None:
    count = 160
    out = bytearray(32 * count + 5)
    assert e1.demux_into(_frames(count), out) == count
    streams = e1.demux(_frames(count))
    for timeslot in range(32):
        assert out[timeslot * count : (timeslot + 1) * count] == streams[timeslot]
    assert out[32 * count :] == bytes(5)
    view = memoryview(bytearray(32 * count))
    assert e1.demux_into(memoryview(_frames(count)), view) == count
    assert bytes(view) == bytes(out[: 32 * count])


@pytest.mark.parametrize("module", [e1, reference])
def test_partial_frame_is_refused(module: object) -> None:
    with pytest.raises(ValueError, match="whole 32-byte frames, got 33 bytes"):
        module.demux(bytes(33))  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="whole 32-byte frames"):
        module.demux_into(bytes(31), bytearray(64))  # type: ignore[attr-defined]


@pytest.mark.parametrize("module", [e1, reference])
def test_demux_into_refuses_small_or_read_only_output(module: object) -> None:
    with pytest.raises(ValueError, match="out holds 63 bytes, 64 needed"):
        module.demux_into(bytes(64), bytearray(63))  # type: ignore[attr-defined]
    with pytest.raises(BufferError):
        module.demux_into(bytes(64), bytes(64))  # type: ignore[attr-defined]


def test_empty_input() -> None:
    assert e1.demux(b"") == [b""] * 32
    assert e1.demux_into(b"", bytearray()) == 0


@given(
    st.integers(0, 40).flatmap(lambda count: st.binary(min_size=32 * count, max_size=32 * count))
)
def test_cython_matches_reference(frames: bytes) -> None:
    assert e1.demux(frames) == reference.demux(frames)
    assert e1.demux(bytearray(frames)) == reference.demux(frames)
    fast_out = bytearray(len(frames))
    slow_out = bytearray(len(frames))
    assert e1.demux_into(frames, fast_out) == reference.demux_into(frames, slow_out)
    assert fast_out == slow_out
