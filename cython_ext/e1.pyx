# cython: language_level=3
"""E1 timeslot demultiplexer: 32-byte frames in, one byte stream per timeslot out (hot path).

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
See ``reference/e1.py``.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t
from cython_ext.buffers cimport byte_view as _byte_view

TIMESLOTS = 32
FRAME_BYTES = 32


cdef inline void _transpose(
    const uint8_t* frames, Py_ssize_t count, uint8_t** streams
) noexcept nogil:
    cdef Py_ssize_t frame
    cdef int timeslot
    cdef const uint8_t* row
    for frame in range(count):
        row = frames + 32 * frame
        for timeslot in range(32):
            streams[timeslot][frame] = row[timeslot]


cdef Py_ssize_t _frame_count(Py_ssize_t size) except -1:
    if size % 32:
        raise ValueError(
            f"E1 input must be whole 32-byte frames, got {size} bytes ({size % 32} left over)"
        )
    return size // 32


def demux(frames) -> list:
    """The 32 timeslot streams (index = timeslot number) of whole E1 frames."""
    cdef const uint8_t[::1] view
    cdef const uint8_t* data
    cdef Py_ssize_t size, count
    cdef uint8_t* streams[32]
    cdef int timeslot
    if type(frames) is bytes:
        data = <const uint8_t*>PyBytes_AS_STRING(frames)
        size = PyBytes_GET_SIZE(frames)
    else:
        view = _byte_view(frames)
        size = view.shape[0]
        data = &view[0] if size else NULL
    count = _frame_count(size)
    result = []
    for timeslot in range(32):
        stream = PyBytes_FromStringAndSize(NULL, count)
        streams[timeslot] = <uint8_t*>PyBytes_AS_STRING(stream)
        result.append(stream)
    if count:
        _transpose(data, count, streams)
    return result


def demux_into(frames, uint8_t[::1] out not None) -> int:
    """Write the timeslot streams into ``out``, timeslot-major; return the frame count.

    With ``n`` frames, timeslot ``t`` lands in ``out[t * n:(t + 1) * n]``;
    ``out`` must be writable and hold at least ``32 * n`` bytes. No
    allocation: slice ``memoryview(out)`` to hand each stream on.
    """
    cdef const uint8_t[::1] view
    cdef const uint8_t* data
    cdef Py_ssize_t size, count
    cdef uint8_t* streams[32]
    cdef int timeslot
    if type(frames) is bytes:
        data = <const uint8_t*>PyBytes_AS_STRING(frames)
        size = PyBytes_GET_SIZE(frames)
    else:
        view = _byte_view(frames)
        size = view.shape[0]
        data = &view[0] if size else NULL
    count = _frame_count(size)
    if out.shape[0] < 32 * count:
        raise ValueError(f"out holds {out.shape[0]} bytes, {32 * count} needed")
    if count:
        for timeslot in range(32):
            streams[timeslot] = &out[timeslot * count]
        _transpose(data, count, streams)
    return count
