"""E1 timeslot demultiplexer: 32-byte frames in, one byte stream per timeslot out.

An E1 frame (ITU-T G.704) is 32 octets, one per timeslot, 8,000 frames a
second::

    octet:   0     1     2    ...   15    16    17   ...   31
           +-----+-----+-----+---+-----+-----+-----+---+-----+
           | TS0 | TS1 | TS2 |...| TS15| TS16| TS17|...| TS31|
           +-----+-----+-----+---+-----+-----+-----+---+-----+
             FAS/  B1    B2        B15   D-    B16       B30
             CRC-4                       chan.

TS0 carries frame alignment and CRC-4, TS16 the ISDN D-channel on a PRI,
and the other 30 timeslots carry one A-law B-channel each (64 kbit/s). The
demultiplexer does not check alignment: it expects frames already aligned
by the span driver, and returns every timeslot, 0 to 31, untouched.

This is the slow, obviously-correct model of ``cython_ext/e1.pyx``.
"""

from __future__ import annotations

BytesLike = bytes | bytearray | memoryview

TIMESLOTS = 32
FRAME_BYTES = 32


def _frames(frames: BytesLike) -> memoryview:
    data = memoryview(frames).cast("B")
    if len(data) % FRAME_BYTES:
        raise ValueError(
            f"E1 input must be whole {FRAME_BYTES}-byte frames, got {len(data)} bytes "
            f"({len(data) % FRAME_BYTES} left over)"
        )
    return data


def demux(frames: BytesLike) -> list[bytes]:
    """The 32 timeslot streams (index = timeslot number) of whole E1 frames."""
    data = bytes(_frames(frames))
    return [data[timeslot::FRAME_BYTES] for timeslot in range(TIMESLOTS)]


def demux_into(frames: BytesLike, out: bytearray | memoryview) -> int:
    """Write the timeslot streams into ``out``, timeslot-major; return the frame count.

    With ``n`` frames, timeslot ``t`` lands in ``out[t * n:(t + 1) * n]``;
    ``out`` must be writable and hold at least ``32 * n`` bytes.
    """
    data = bytes(_frames(frames))
    count = len(data) // FRAME_BYTES
    target = memoryview(out).cast("B")
    if target.readonly:
        raise BufferError("out must be a writable buffer")
    if len(target) < TIMESLOTS * count:
        raise ValueError(f"out holds {len(target)} bytes, {TIMESLOTS * count} needed")
    for timeslot in range(TIMESLOTS):
        target[timeslot * count : (timeslot + 1) * count] = data[timeslot::FRAME_BYTES]
    return count
