# cython: language_level=3
"""HDLC deframer for the ISDN D-channel: bit stream in, LAPD frames out (hot path).

A 64 kbit/s timeslot carries LAPD frames as an HDLC bit stream::

    ... 01111110 | address | control | information ... | FCS lo | FCS hi | 01111110 ...
        flag       2 oct.    1-2 oct.  0-260 octets     CRC-16/X.25       flag (may open
                                                        (LSB octet first) the next frame)

Zero-bit stuffing (a 0 after five 1s is removed), aborts (seven 1s), shared
flags, frames too short, too long or not octet-aligned, and the FCS
(CRC-16/X.25 as defined by ``cython_ext.crc16``) are handled exactly as in
``reference/hdlc.py``, which documents the state machine and the bit orders;
the tests compare the two bit for bit.

Speed: the receiver runs a byte at a time. The bit-level machine of the
reference is run once, at import, for every (count of 1s before the byte,
byte) pair in both modes (hunting, in a frame), and the outcome stored as a
``Step``: the data bits the byte yields, and at most one event (a flag, or
an abort) at a known bit, with the data bits after a flag. A byte then costs
a table lookup and a shift, whatever its bits; only a frame's end calls out
to Python (the FCS check runs in C over the frame buffer).
"""

from collections import namedtuple

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint16_t, uint64_t
from libc.stdlib cimport free, malloc
from cython_ext.buffers cimport byte_view as _byte_view

from cython_ext import crc16

MSB_FIRST = "msb-first"
LSB_FIRST = "lsb-first"
BIT_ORDERS = (MSB_FIRST, LSB_FIRST)
FLAG = 0x7E
FCS_OCTETS = 2
MIN_FRAME_OCTETS = 5  # address 2 + control 1 + FCS 2 (a U frame)
DEFAULT_MAX_FRAME_OCTETS = 1024  # between flags, FCS included (LAPD needs 2 + 2 + 260 + 2)
COUNTER_NAMES = (
    "frames",
    "bad_fcs",
    "aborts",
    "too_short",
    "too_long",
    "not_aligned",
    "bytes_in",
)

cdef enum:
    ABORT_ONES = 7  # seven 1s in a row abort the frame
    FLAG_ONES = 6  # six 1s then a 0 are a flag
    STUFF_ONES = 5  # five 1s then a 0: that 0 was stuffed
    C_FCS_OCTETS = 2
    C_MIN_FRAME_OCTETS = 5

cdef enum:  # Step.event
    NO_EVENT = 0
    FLAG_EVENT = 1
    ABORT_EVENT = 2

cdef enum:  # Step.zero_at_event / Step.zero_out: was the last 0 a data bit?
    ZERO_STUFFED = 0
    ZERO_DATA = 1
    ZERO_UNCHANGED = 2  # no 0 in this byte (before the event): as before the byte


class HdlcFrame(namedtuple("HdlcFrame", ("bit_offset", "data"))):
    """One good frame: address, control and information (FCS removed)."""

    __slots__ = ()

    @property
    def octet_index(self):
        """The stream octet that holds the frame's first address bit."""
        return self.bit_offset // 8


_new_tuple = tuple.__new__


# -- the FCS ----------------------------------------------------------------------------
# The table of cython_ext.crc16, read out of it (entry i of a reflected CRC's table is the
# register after octet i from 0), so the check runs in C over the frame buffer.
cdef uint16_t _CRC_TABLE[256]
cdef uint16_t _CRC_INIT = crc16.INIT
cdef uint16_t _CRC_GOOD_RESIDUE = crc16.GOOD_RESIDUE
for _value in range(256):
    _CRC_TABLE[_value] = crc16.crc16_x25_update(0, bytes((_value,)))


cdef inline bint _fcs_ok(const uint8_t* frame, Py_ssize_t size) noexcept nogil:
    cdef uint16_t crc = _CRC_INIT
    cdef Py_ssize_t i
    for i in range(size):
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ frame[i]) & 0xFF]
    return crc == _CRC_GOOD_RESIDUE


# -- the byte steps ---------------------------------------------------------------------

ctypedef struct Step:
    uint8_t data_bits  # data bits before the event (all of them without one), first in bit 0
    uint8_t data
    uint8_t event  # NO_EVENT, FLAG_EVENT or ABORT_EVENT
    uint8_t at  # the bit (0..7, line order) that completed the event (the last flag's)
    uint8_t zero_at_event  # ZERO_*: the last 0 before a flag's run of 1s
    uint8_t bits_after  # data bits of the new frame after a flag
    uint8_t after
    uint8_t abort_after  # the new frame was aborted (idle 1s) before the byte ended
    uint8_t ones_out  # 1s in a row at the end of the byte (at most 7)
    uint8_t zero_out  # ZERO_*: the last 0 of the byte


cdef uint8_t _REVERSE[256]
cdef Step _FRAME_STEP[8][256]  # indexed by (1s before the byte, byte with first line bit in bit 0)
cdef Step _HUNT_STEP[8][256]


cdef Step _simulate(int ones, int value, bint in_frame) except *:
    """One byte through the bit-level machine of reference/hdlc.py."""
    cdef Step step
    cdef int index, run
    cdef bint after_flag = False
    step.data_bits = step.data = step.event = step.at = 0
    step.bits_after = step.after = step.abort_after = 0
    step.zero_at_event = step.zero_out = ZERO_UNCHANGED
    for index in range(8):
        if (value >> index) & 1:
            if ones >= ABORT_ONES:
                continue
            ones += 1
            if ones == ABORT_ONES:
                if in_frame and after_flag:
                    step.abort_after = 1
                elif in_frame:
                    step.event = ABORT_EVENT
                    step.at = index
                in_frame = False
            elif ones <= STUFF_ONES and in_frame:
                if after_flag:
                    step.after |= 1 << step.bits_after
                    step.bits_after += 1
                else:
                    step.data |= 1 << step.data_bits
                    step.data_bits += 1
            continue
        run = ones
        ones = 0
        if run == FLAG_ONES and after_flag:
            # A second flag sharing the first one's closing 0 (0111111 0 after six 1s):
            # the frame between them is empty, so the new frame just starts later.
            if step.bits_after != STUFF_ONES or step.abort_after:
                raise AssertionError("two events in one byte")
            step.at = index
            step.bits_after = step.after = 0
            step.zero_out = ZERO_STUFFED
        elif run == FLAG_ONES:
            if step.event != NO_EVENT:
                raise AssertionError("two events in one byte")
            step.event = FLAG_EVENT
            step.at = index
            step.zero_at_event = step.zero_out
            step.zero_out = ZERO_STUFFED
            in_frame = True
            after_flag = True
        elif not in_frame or run > FLAG_ONES:
            pass
        elif run == STUFF_ONES:
            step.zero_out = ZERO_STUFFED
        else:
            step.zero_out = ZERO_DATA
            if after_flag:
                step.bits_after += 1
            else:
                step.data_bits += 1
    step.ones_out = ones
    return step


cdef void _build_tables() except *:
    cdef int value, index, ones
    for value in range(256):
        _REVERSE[value] = 0
        for index in range(8):
            if value & (1 << index):
                _REVERSE[value] |= 1 << (7 - index)
    for ones in range(8):
        for value in range(256):
            _FRAME_STEP[ones][value] = _simulate(ones, value, True)
            _HUNT_STEP[ones][value] = _simulate(ones, value, False)


_build_tables()


def check_bit_order(bit_order):
    if bit_order not in BIT_ORDERS:
        raise ValueError(f"bit_order must be one of {BIT_ORDERS}, got {bit_order!r}")
    return bit_order


cdef class HdlcDeframer:
    """Streaming HDLC receiver: ``feed(chunk)`` returns the good frames that closed in it."""

    cdef readonly str bit_order
    cdef readonly Py_ssize_t max_frame_octets
    cdef readonly uint64_t frames, bad_fcs, aborts, too_short, too_long, not_aligned, bytes_in
    cdef bint _msb_first
    cdef bint _hunting
    cdef int _ones
    cdef bint _zero_was_data
    cdef uint8_t* _octets
    cdef Py_ssize_t _count
    cdef unsigned int _partial
    cdef int _partial_bits
    cdef uint64_t _start

    def __cinit__(self, *args, **kwargs):
        self._octets = NULL

    def __init__(self, bit_order=MSB_FIRST, Py_ssize_t max_frame_octets=DEFAULT_MAX_FRAME_OCTETS):
        self.bit_order = check_bit_order(bit_order)
        if max_frame_octets < C_MIN_FRAME_OCTETS:
            raise ValueError(f"max_frame_octets must be >= {MIN_FRAME_OCTETS}")
        self.max_frame_octets = max_frame_octets
        self._msb_first = bit_order == MSB_FIRST
        free(self._octets)
        self._octets = <uint8_t*>malloc(max_frame_octets + 2)  # room for one octet too many
        if self._octets == NULL:
            raise MemoryError()
        self.frames = self.bad_fcs = self.aborts = 0
        self.too_short = self.too_long = self.not_aligned = self.bytes_in = 0
        self._hunting = True
        self._ones = 0
        self._zero_was_data = False
        self._count = 0
        self._partial = 0
        self._partial_bits = 0
        self._start = 0

    def __dealloc__(self):
        free(self._octets)

    def counters(self):
        return {
            "frames": self.frames,
            "bad_fcs": self.bad_fcs,
            "aborts": self.aborts,
            "too_short": self.too_short,
            "too_long": self.too_long,
            "not_aligned": self.not_aligned,
            "bytes_in": self.bytes_in,
        }

    def reset(self):
        """Drop the frame in progress and hunt for a flag (e.g. after loss of signal)."""
        self._hunting = True
        self._ones = 0

    def feed(self, data):
        cdef const uint8_t[::1] view
        cdef const uint8_t* chunk
        cdef Py_ssize_t size
        if type(data) is bytes:
            chunk = <const uint8_t*>PyBytes_AS_STRING(data)
            size = PyBytes_GET_SIZE(data)
            return self._feed(chunk, size)
        view = _byte_view(data)
        size = view.shape[0]
        if size == 0:
            return []
        return self._feed(&view[0], size)

    cdef list _feed(self, const uint8_t* chunk, Py_ssize_t size):
        # The state lives in locals for the loop (stores into the frame buffer would
        # otherwise make the compiler reload every field) and is written back at the end.
        cdef list out = []
        cdef const Step* step
        cdef Py_ssize_t i
        cdef Py_ssize_t count = self._count
        cdef Py_ssize_t max_octets = self.max_frame_octets
        cdef uint8_t* octets = self._octets
        cdef int octet
        cdef int ones = self._ones
        cdef int partial_bits = self._partial_bits
        cdef unsigned int partial = self._partial
        cdef bint hunting = self._hunting
        cdef bint zero_was_data = self._zero_was_data
        cdef bint msb_first = self._msb_first
        cdef uint64_t position = self.bytes_in * 8
        cdef uint64_t start = self._start
        cdef uint64_t too_long = 0, aborts = 0
        self.bytes_in += size
        for i in range(size):
            octet = _REVERSE[chunk[i]] if msb_first else chunk[i]
            if hunting:
                step = &_HUNT_STEP[ones][octet]
                if step.event == FLAG_EVENT:
                    hunting = step.abort_after
                    count = 0
                    partial = step.after
                    partial_bits = step.bits_after
                    zero_was_data = step.zero_out == ZERO_DATA
                    start = position + step.at + 1
                ones = step.ones_out
                position += 8
                continue
            step = &_FRAME_STEP[ones][octet]
            partial |= (<unsigned int>step.data) << partial_bits
            partial_bits += step.data_bits
            if partial_bits >= 8:
                octets[count] = <uint8_t>partial
                count += 1
                partial >>= 8
                partial_bits -= 8
                if count > max_octets:
                    too_long += 1
                    hunting = True
            if step.event == FLAG_EVENT:
                if not hunting:
                    if step.zero_at_event != ZERO_UNCHANGED:
                        zero_was_data = step.zero_at_event == ZERO_DATA
                    self._close(out, count, partial_bits, zero_was_data, start)
                hunting = step.abort_after
                count = 0
                partial = step.after
                partial_bits = step.bits_after
                start = position + step.at + 1
            elif step.event == ABORT_EVENT and not hunting:
                # The run's first five 1s went in as data; anything before them is a frame.
                if 8 * count + partial_bits > STUFF_ONES:
                    aborts += 1
                hunting = True
            if step.zero_out != ZERO_UNCHANGED:
                zero_was_data = step.zero_out == ZERO_DATA
            ones = step.ones_out
            position += 8
        self._count = count
        self._ones = ones
        self._partial_bits = partial_bits
        self._partial = partial
        self._hunting = hunting
        self._zero_was_data = zero_was_data
        self._start = start
        self.too_long += too_long
        self.aborts += aborts
        return out

    cdef int _close(
        self, list out, Py_ssize_t count, int partial_bits, bint zero_was_data, uint64_t start
    ) except -1:
        # The flag's 0 (when it was taken as data) and its first five 1s went in as data.
        cdef int flag_bits = STUFF_ONES + (1 if zero_was_data else 0)
        cdef Py_ssize_t bits = 8 * count + partial_bits - flag_bits
        if bits <= 0:
            return 0  # flag after flag
        if bits < 8 * C_MIN_FRAME_OCTETS:
            self.too_short += 1
            return 0
        if bits % 8:
            self.not_aligned += 1
            return 0
        if not _fcs_ok(self._octets, count):
            self.bad_fcs += 1
            return 0
        self.frames += 1
        frame = PyBytes_FromStringAndSize(<char*>self._octets, count - C_FCS_OCTETS)
        out.append(_new_tuple(HdlcFrame, (start, frame)))
        return 0


def deframe(data, bit_order=MSB_FIRST):
    """The frames and counters of one whole stream (a fresh deframer)."""
    deframer = HdlcDeframer(bit_order)
    frames = deframer.feed(data)
    return frames, deframer.counters()
