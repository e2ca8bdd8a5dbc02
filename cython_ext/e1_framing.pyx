# cython: language_level=3
"""E1 frame alignment (ITU-T G.704 / G.706) for a passive tap (hot path).

Octets of one direction in (any chunking, first line bit = MSB), aligned
32-octet frames and events out::

    G.704 Table 5A          bit:  1    2    3    4    5    6    7    8
    frame with the FAS          | Si | 0  | 0  | 1  | 1  | 0  | 1  | 1  |   FAS = 0011011
    frame without it (NFAS)     | Si | 1  | A  |Sa4 |Sa5 |Sa6 |Sa7 |Sa8 |   A = remote alarm

    CRC-4 multiframe (Table 5B), Si of frames 0..15:
           C1  0 C2  0 C3  1 C4  0 C1  1 C2  1 C3  E C4  E

The search (FAS, NFAS bit 2 = 1, FAS; from any bit or octet), the loss
rules (3 errored FAS words, 3 NFAS bit-2 errors, 915 of 1000 CRC-4 blocks),
CRC-4 multiframe alignment and checking, E bits, RAI, LOS, AIS and slips are
specified, with their sources, in ``reference/e1_framing.py``: this module
does exactly the same, and the tests compare the two bit for bit.

Speed: the stream monitor (LOS, AIS) costs a few table lookups per octet;
an aligned frame costs one check of time slot 0 and a 32-octet copy (a
shifted copy when frames do not start on an octet boundary), plus in CRC-4
mode 32 independent table lookups (the CRC is linear, so a frame's share is
an XOR of per-position tables rather than a chain of register updates). The search tests each candidate bit
only as far as its first word, so hunting through noise is a few
instructions per bit. Python objects are made only for the runs handed back
and for events.
"""

from collections import namedtuple
from enum import IntEnum

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy, memmove
from cython_ext.buffers cimport byte_view as _byte_view

FRAME_OCTETS = 32
FRAME_BITS = 256
LINE_BITS_PER_SECOND = 2_048_000
FRAMES_PER_SECOND = 8000
FAS_WORD = 0x1B
FAS_MASK = 0x7F
NFAS_BIT2 = 0x40
A_BIT = 0x20
SI_BIT = 0x80
MULTIFRAME_ALIGNMENT_SIGNAL = 0b001011
MULTIFRAME_FRAMES = 16
SUB_MULTIFRAME_FRAMES = 8
CRC4_POLY = 0x3
LOSS_FAS_ERRORS = 3
LOSS_NFAS_ERRORS = 3
CRC4_LOSS_ERRORED_BLOCKS = 915
CRC4_LOSS_WINDOW_BLOCKS = 1000
MULTIFRAME_SEARCH_FRAMES = 64
CRC4_ABSENT_FRAMES = 3200
RAI_NFAS_WORDS = 3
LOS_ZERO_BITS = 2048
LOS_CLEAR_WINDOW_OCTETS = 32
LOS_CLEAR_ONES = 32
AIS_WINDOW_OCTETS = 64
AIS_MAX_ZEROS = 2
AIS_WINDOWS = 2
SLIP_WINDOW_FRAMES = 16
COUNTER_NAMES = (
    "octets_in",
    "frames",
    "fas_errors",
    "nfas_errors",
    "crc4_blocks",
    "crc4_errors",
    "e_bits",
    "alignments",
    "losses",
    "slips",
)

cdef enum:
    C_FRAME_OCTETS = 32
    C_FRAME_BITS = 256
    C_FAS_WORD = 0x1B
    C_FAS_MASK = 0x7F
    C_NFAS_BIT2 = 0x40
    C_A_BIT = 0x20
    C_MFAS = 0b001011
    C_LOSS_FAS_ERRORS = 3
    C_LOSS_NFAS_ERRORS = 3
    C_CRC4_LOSS_ERRORED_BLOCKS = 915
    C_CRC4_LOSS_WINDOW_BLOCKS = 1000
    C_MULTIFRAME_SEARCH_FRAMES = 64
    C_CRC4_ABSENT_FRAMES = 3200
    C_RAI_NFAS_WORDS = 3
    C_LOS_ZERO_BITS = 2048
    C_LOS_WINDOW_MASK = 31  # LOS_CLEAR_WINDOW_OCTETS - 1
    C_LOS_CLEAR_ONES = 32
    C_AIS_WINDOW_MASK = 63  # AIS_WINDOW_OCTETS - 1
    C_AIS_MAX_ZEROS = 2
    C_AIS_WINDOWS = 2
    C_SLIP_WINDOW_BITS = 16 * 256

cdef enum:  # FramerEventKind
    K_LOS_ON = 1
    K_LOS_OFF = 2
    K_AIS_ON = 3
    K_AIS_OFF = 4
    K_ALIGNED = 5
    K_ALIGNMENT_LOST = 6
    K_SLIP = 7
    K_RAI_ON = 8
    K_RAI_OFF = 9
    K_MULTIFRAME_ALIGNED = 10
    K_CRC4_ABSENT = 11

cdef enum:  # AlignmentLoss
    L_FAS_ERRORS = 1
    L_NFAS_ERRORS = 2
    L_CRC4_ERRORS = 3


class FramerEventKind(IntEnum):
    """What a ``FramerEvent`` reports (see ``reference/e1_framing.py``)."""

    LOS_ON = 1
    LOS_OFF = 2
    AIS_ON = 3
    AIS_OFF = 4
    ALIGNED = 5
    ALIGNMENT_LOST = 6
    SLIP = 7
    RAI_ON = 8
    RAI_OFF = 9
    MULTIFRAME_ALIGNED = 10
    CRC4_ABSENT = 11


class AlignmentLoss(IntEnum):
    """Why frame alignment was lost (G.706 4.1.1 and 4.3.2)."""

    FAS_ERRORS = 1
    NFAS_ERRORS = 2
    CRC4_ERRORS = 3


class FrameRun(namedtuple("FrameRun", ("bit", "frames"))):
    """Aligned frames back to back; the first starts at line bit ``bit``."""

    __slots__ = ()

    @property
    def frame_count(self):
        return len(self.frames) // FRAME_OCTETS


class FramerEvent(namedtuple("FramerEvent", ("bit", "kind", "value"))):
    """Something the framer saw, known at line bit ``bit`` (the end of the deciding octet)."""

    __slots__ = ()


_new_tuple = tuple.__new__
_KINDS = {int(kind): kind for kind in FramerEventKind}
_LOSSES = {int(loss): loss for loss in AlignmentLoss}


# -- tables -------------------------------------------------------------------------------

cdef uint8_t _CRC4[256]  # the CRC-4 register after octet v from 0 (poly 0x3, not reflected)
# The CRC is linear: over a frame, register_out = SHIFT[register_in] ^ XOR of AT[i][octet i],
# where AT[i][v] is what octet v at position i adds and SHIFT is 32 octets of zeros. The 32
# lookups do not wait for one another as a chain of register updates would.
cdef uint8_t _CRC4_AT[32][256]
cdef uint8_t _CRC4_SHIFT[16]
cdef uint8_t _LEADING_ZEROS[256]
cdef uint8_t _TRAILING_ZEROS[256]
cdef uint8_t _ONES[256]


cdef void _build_tables() noexcept:
    cdef int value, index, register, feedback
    for value in range(256):
        register = 0
        for index in range(7, -1, -1):
            feedback = ((register >> 3) & 1) ^ ((value >> index) & 1)
            register = (register << 1) & 0xF
            if feedback:
                register ^= 0x3
        _CRC4[value] = register
        _ONES[value] = 0
        _LEADING_ZEROS[value] = 8
        _TRAILING_ZEROS[value] = 8
        for index in range(8):
            if value & (1 << index):
                _ONES[value] += 1
                if _TRAILING_ZEROS[value] == 8:
                    _TRAILING_ZEROS[value] = index
                _LEADING_ZEROS[value] = 7 - index
    for value in range(256):
        _CRC4_AT[31][value] = _CRC4[value]
        for index in range(30, -1, -1):
            _CRC4_AT[index][value] = _CRC4[_CRC4_AT[index + 1][value] << 4]
    for value in range(16):
        register = value
        for index in range(32):
            register = _CRC4[register << 4]
        _CRC4_SHIFT[value] = register


_build_tables()


def crc4(data, int register=0):
    """CRC-4 of G.704 2.3.3.5 (width 4, poly 0x3, init 0, not reflected) over ``data``."""
    cdef const uint8_t[::1] view = _byte_view(data)
    cdef Py_ssize_t i
    cdef int crc = register & 0xF
    for i in range(view.shape[0]):
        crc = _CRC4[(crc << 4) ^ view[i]]
    return crc


cdef inline int64_t _end_of_octet(int64_t bit) noexcept nogil:
    return (bit + 7) & ~(<int64_t>7)


def _event_bit(event):
    return event[0]


cdef class E1Framer:
    """Streaming E1 receiver for one direction: ``feed(chunk)`` -> ``(runs, events)``."""

    cdef readonly bint crc4, bit_search
    cdef readonly uint64_t octets_in, frames, fas_errors, nfas_errors
    cdef readonly uint64_t crc4_blocks, crc4_errors, e_bits, alignments, losses, slips
    cdef readonly bint los, ais, aligned, rai, multiframe_aligned, crc4_absent
    # stream monitor
    cdef int64_t _zero_run
    cdef int _los_window_ones, _ais_window_zeros, _ais_low_windows, _ais_high_windows
    # octets not yet used (_buf[0] is line bit _data_bit) and the frames going out
    cdef uint8_t* _buf
    cdef Py_ssize_t _buf_len, _buf_capacity
    cdef int64_t _data_bit
    cdef uint8_t* _out
    cdef Py_ssize_t _out_capacity
    # frame aligner
    cdef int64_t _hunt_bit, _frame_bit, _frame_index, _loss_bit, _loss_phase
    cdef bint _fas_next
    cdef int _fas_run, _nfas_run, _rai_run
    # CRC-4 multiframe
    cdef int _nfas_seen, _si_history, _mf_position, _crc, _received_crc, _previous_crc
    cdef int _window_blocks, _window_errors
    cdef int64_t _mfas_frame
    cdef bint _smf_started

    def __cinit__(self, *args, **kwargs):
        self._buf = NULL
        self._out = NULL
        self._buf_capacity = 0
        self._out_capacity = 0

    def __init__(self, crc4=False, bit_search=True):
        self.crc4 = bool(crc4)
        self.bit_search = bool(bit_search)
        self.reset()

    def __dealloc__(self):
        free(self._buf)
        free(self._out)

    def reset(self):
        """Forget everything, counters included: the next octet fed is line bit 0."""
        self.octets_in = self.frames = self.fas_errors = self.nfas_errors = 0
        self.crc4_blocks = self.crc4_errors = self.e_bits = 0
        self.alignments = self.losses = self.slips = 0
        self.los = self.ais = False
        self._zero_run = 0
        self._los_window_ones = self._ais_window_zeros = 0
        self._ais_low_windows = self._ais_high_windows = 0
        self._buf_len = 0
        self._data_bit = 0
        self.aligned = False
        self._hunt_bit = self._frame_bit = 0
        self._fas_next = True
        self._fas_run = self._nfas_run = 0
        self.rai = False
        self._rai_run = 0
        self._frame_index = 0
        self._loss_bit = -1
        self._loss_phase = 0
        self._reset_multiframe()

    cdef void _reset_multiframe(self) noexcept:
        self.multiframe_aligned = False
        self.crc4_absent = False
        self._nfas_seen = 0
        self._si_history = 0
        self._mfas_frame = -1
        self._mf_position = 0
        self._smf_started = False
        self._crc = 0
        self._received_crc = 0
        self._previous_crc = -1
        self._window_blocks = 0
        self._window_errors = 0

    @property
    def bit_offset(self):
        """Where frames start within an octet (0..7) when aligned, else -1."""
        return self._frame_bit & 7 if self.aligned else -1

    def counters(self):
        return {
            "octets_in": self.octets_in,
            "frames": self.frames,
            "fas_errors": self.fas_errors,
            "nfas_errors": self.nfas_errors,
            "crc4_blocks": self.crc4_blocks,
            "crc4_errors": self.crc4_errors,
            "e_bits": self.e_bits,
            "alignments": self.alignments,
            "losses": self.losses,
            "slips": self.slips,
        }

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, data):
        cdef const uint8_t[::1] view
        cdef const uint8_t* chunk
        cdef Py_ssize_t size
        if type(data) is bytes:
            chunk = <const uint8_t*>PyBytes_AS_STRING(data)
            size = PyBytes_GET_SIZE(data)
        else:
            view = _byte_view(data)
            size = view.shape[0]
            chunk = &view[0] if size else NULL
        cdef list stream_events = []
        cdef list framer_events = []
        cdef list runs = []
        if size:
            self._monitor(chunk, size, stream_events)
            self.octets_in += size
            self._append(chunk, size)
            self._align(runs, framer_events)
            self._trim()
        if not stream_events:
            return runs, framer_events
        if not framer_events:
            return runs, stream_events
        return runs, sorted(stream_events + framer_events, key=_event_bit)

    cdef int _append(self, const uint8_t* chunk, Py_ssize_t size) except -1:
        cdef Py_ssize_t needed = self._buf_len + size + 1  # +1: a shifted read may look ahead
        cdef uint8_t* grown
        if needed > self._buf_capacity:
            grown = <uint8_t*>realloc(self._buf, needed + needed // 2 + 256)
            if grown == NULL:
                raise MemoryError()
            self._buf = grown
            self._buf_capacity = needed + needed // 2 + 256
        memcpy(self._buf + self._buf_len, chunk, size)
        self._buf_len += size
        self._buf[self._buf_len] = 0
        return 0

    cdef void _trim(self) noexcept:
        cdef int64_t keep_from = (self._frame_bit if self.aligned else self._hunt_bit) & ~(<int64_t>7)
        cdef Py_ssize_t drop = <Py_ssize_t>((keep_from - self._data_bit) >> 3)
        if drop > 0:
            memmove(self._buf, self._buf + drop, self._buf_len - drop)
            self._buf_len -= drop
            self._data_bit = keep_from

    cdef inline void _event(self, list events, int64_t bit, int kind, int64_t value) except *:
        cdef object typed_value = value
        if kind == K_ALIGNMENT_LOST:
            typed_value = _LOSSES[value]
        events.append(_new_tuple(FramerEvent, (bit, _KINDS[kind], typed_value)))

    # -- stream monitor: LOS and AIS ------------------------------------------------------------

    cdef int _monitor(self, const uint8_t* chunk, Py_ssize_t size, list events) except -1:
        # A 32-octet LOS window at a time (an AIS window is two); within one, an octet
        # costs three table lookups and a rarely taken branch.
        cdef int64_t first = <int64_t>self.octets_in
        cdef int64_t zero_run = self._zero_run
        cdef int64_t run_end, position
        cdef int los_ones = self._los_window_ones
        cdef int ais_zeros = self._ais_window_zeros
        cdef int octet, ones
        cdef Py_ssize_t i = 0, stop
        while i < size:
            position = first + i
            stop = i + (C_LOS_WINDOW_MASK + 1 - (position & C_LOS_WINDOW_MASK))
            if stop > size:
                stop = size
            ones = 0
            while i < stop:
                octet = chunk[i]
                ones += _ONES[octet]
                run_end = zero_run + _LEADING_ZEROS[octet]
                if run_end >= C_LOS_ZERO_BITS:
                    if not self.los:
                        self.los = True
                        self._event(events, 8 * (first + i + 1), K_LOS_ON, 0)
                    run_end = C_LOS_ZERO_BITS
                zero_run = run_end if octet == 0 else _TRAILING_ZEROS[octet]
                i += 1
            los_ones += ones
            ais_zeros += 8 * (stop - (position - first)) - ones
            position = first + stop - 1
            if (position & C_LOS_WINDOW_MASK) != C_LOS_WINDOW_MASK:
                break  # the chunk ends inside a window
            if self.los and los_ones >= C_LOS_CLEAR_ONES:
                self.los = False
                self._event(events, 8 * (position + 1), K_LOS_OFF, 0)
            los_ones = 0
            if (position & C_AIS_WINDOW_MASK) == C_AIS_WINDOW_MASK:
                if ais_zeros <= C_AIS_MAX_ZEROS:
                    self._ais_low_windows += 1
                    self._ais_high_windows = 0
                else:
                    self._ais_high_windows += 1
                    self._ais_low_windows = 0
                if not self.ais and self._ais_low_windows >= C_AIS_WINDOWS:
                    self.ais = True
                    self._event(events, 8 * (position + 1), K_AIS_ON, 0)
                elif self.ais and self._ais_high_windows >= C_AIS_WINDOWS:
                    self.ais = False
                    self._event(events, 8 * (position + 1), K_AIS_OFF, 0)
                ais_zeros = 0
        self._zero_run = zero_run
        self._los_window_ones = los_ones
        self._ais_window_zeros = ais_zeros
        return 0

    # -- frame aligner ------------------------------------------------------------------------

    cdef inline int _octet_at(self, int64_t bit) noexcept nogil:
        cdef int64_t relative = bit - self._data_bit
        cdef const uint8_t* at = self._buf + (relative >> 3)
        cdef int shift = relative & 7
        if shift == 0:
            return at[0]
        return ((at[0] << shift) | (at[1] >> (8 - shift))) & 0xFF

    cdef int _align(self, list runs, list events) except -1:
        cdef int64_t end_bit = self._data_bit + 8 * <int64_t>self._buf_len
        cdef int64_t frame_bit, run_bit = -1
        cdef Py_ssize_t out_len = 0, run_start = 0
        cdef Py_ssize_t most = self._buf_len + C_FRAME_OCTETS
        cdef uint8_t* frame
        cdef const uint8_t* source
        cdef int shift, i
        cdef uint8_t* grown
        if most > self._out_capacity:
            grown = <uint8_t*>realloc(self._out, most)
            if grown == NULL:
                raise MemoryError()
            self._out = grown
            self._out_capacity = most
        while True:
            if not self.aligned:
                if not self._hunt(end_bit):
                    break
                self._declare_aligned(events)
                continue
            frame_bit = self._frame_bit
            if _end_of_octet(frame_bit + C_FRAME_BITS) > end_bit:
                break
            frame = self._out + out_len
            source = self._buf + ((frame_bit - self._data_bit) >> 3)
            shift = frame_bit & 7
            if shift == 0:
                memcpy(frame, source, C_FRAME_OCTETS)
            else:
                for i in range(C_FRAME_OCTETS):
                    frame[i] = <uint8_t>((source[i] << shift) | (source[i + 1] >> (8 - shift)))
            if not self._check_frame(frame, events):
                continue
            if run_bit < 0 or run_bit + 8 * <int64_t>(out_len - run_start) != frame_bit:
                if out_len > run_start:
                    runs.append(_new_tuple(FrameRun, (
                        run_bit, PyBytes_FromStringAndSize(<char*>self._out + run_start, out_len - run_start)
                    )))
                run_bit = frame_bit
                run_start = out_len
            out_len += C_FRAME_OCTETS
            self.frames += 1
        if out_len > run_start:
            runs.append(_new_tuple(FrameRun, (
                run_bit, PyBytes_FromStringAndSize(<char*>self._out + run_start, out_len - run_start)
            )))
        return 0

    cdef bint _hunt(self, int64_t end_bit) noexcept:
        """Search from ``_hunt_bit`` while data lasts; True once a candidate holds."""
        cdef int64_t bit = self._hunt_bit
        cdef int step = 1 if self.bit_search else 8
        while _end_of_octet(bit + 2 * C_FRAME_BITS + 8) <= end_bit:
            if (
                (self._octet_at(bit) & C_FAS_MASK) == C_FAS_WORD
                and (self._octet_at(bit + C_FRAME_BITS) & C_NFAS_BIT2)
                and (self._octet_at(bit + 2 * C_FRAME_BITS) & C_FAS_MASK) == C_FAS_WORD
            ):
                self._hunt_bit = bit
                self._frame_bit = bit
                self.aligned = True
                return True
            bit += step
        self._hunt_bit = bit
        return False

    cdef int _declare_aligned(self, list events) except -1:
        cdef int64_t bit = self._frame_bit
        cdef int64_t decided = _end_of_octet(bit + 2 * C_FRAME_BITS + 8)
        cdef int64_t moved
        self.alignments += 1
        self._event(events, decided, K_ALIGNED, bit)
        if self._loss_bit >= 0 and bit - self._loss_bit <= C_SLIP_WINDOW_BITS:
            moved = (bit - self._loss_phase) & (2 * C_FRAME_BITS - 1)  # modulo 512, also below 0
            if moved > C_FRAME_BITS:
                moved -= 2 * C_FRAME_BITS
            if moved:
                self.slips += 1
                self._event(events, decided, K_SLIP, moved)
        self._loss_bit = -1
        self._fas_next = True
        self._fas_run = 0
        self._nfas_run = 0
        self._rai_run = 0
        self._frame_index = 0
        self._reset_multiframe()
        return 0

    cdef bint _check_frame(self, const uint8_t* frame, list events) except -1:
        """Check the frame at ``_frame_bit``; False when it made alignment lost."""
        cdef int64_t decided = _end_of_octet(self._frame_bit + C_FRAME_BITS)
        cdef int word = frame[0]
        cdef bint fas_frame = self._fas_next
        cdef bint a_bit
        if fas_frame:
            if (word & C_FAS_MASK) == C_FAS_WORD:
                self._fas_run = 0
            else:
                self.fas_errors += 1
                self._fas_run += 1
                if self._fas_run >= C_LOSS_FAS_ERRORS:
                    self._lose(L_FAS_ERRORS, decided, events)
                    return False
        else:
            if word & C_NFAS_BIT2:
                self._nfas_run = 0
            else:
                self.nfas_errors += 1
                self._nfas_run += 1
                if self._nfas_run >= C_LOSS_NFAS_ERRORS:
                    self._lose(L_NFAS_ERRORS, decided, events)
                    return False
            a_bit = (word & C_A_BIT) != 0
            if a_bit == self.rai:
                self._rai_run = 0
            else:
                self._rai_run += 1
                if self._rai_run >= C_RAI_NFAS_WORDS:
                    self.rai = a_bit
                    self._rai_run = 0
                    self._event(events, decided, K_RAI_ON if a_bit else K_RAI_OFF, 0)
        if self.crc4 and not self._check_crc4(frame, fas_frame, decided, events):
            return False
        self._fas_next = not fas_frame
        self._frame_bit += C_FRAME_BITS
        self._frame_index += 1
        return True

    cdef bint _check_crc4(
        self, const uint8_t* frame, bint fas_frame, int64_t decided, list events
    ) except -1:
        cdef int si = frame[0] >> 7
        cdef int64_t apart
        cdef int position, crc, i, errored
        if not self.multiframe_aligned:
            if not fas_frame:
                self._nfas_seen += 1
                self._si_history = ((self._si_history << 1) | si) & 0x3F
                if self._nfas_seen >= 6 and self._si_history == C_MFAS:
                    apart = self._frame_index - self._mfas_frame
                    if self._mfas_frame >= 0 and apart % 16 == 0 and apart <= C_MULTIFRAME_SEARCH_FRAMES:
                        self.multiframe_aligned = True
                        self._mf_position = 12
                        self._event(events, decided, K_MULTIFRAME_ALIGNED, 0)
                    else:
                        self._mfas_frame = self._frame_index
            if (
                not self.multiframe_aligned
                and not self.crc4_absent
                and self._frame_index + 1 >= C_CRC4_ABSENT_FRAMES
            ):
                self.crc4_absent = True
                self._event(events, decided, K_CRC4_ABSENT, 0)
            return True
        position = self._mf_position
        self._mf_position = (position + 1) & 15
        if (position & 7) == 0:
            self._smf_started = True
            self._crc = 0
            self._received_crc = 0
        if not self._smf_started:
            return True
        if fas_frame:
            crc = _CRC4_SHIFT[self._crc] ^ _CRC4_AT[0][frame[0] & C_FAS_MASK]
            self._received_crc = (self._received_crc << 1) | si
        else:
            crc = _CRC4_SHIFT[self._crc] ^ _CRC4_AT[0][frame[0]]
            if (position == 13 or position == 15) and not si:
                self.e_bits += 1
        for i in range(1, C_FRAME_OCTETS):
            crc ^= _CRC4_AT[i][frame[i]]
        self._crc = crc
        if (position & 7) != 7:
            return True
        if self._previous_crc >= 0:
            self.crc4_blocks += 1
            self._window_blocks += 1
            if self._received_crc != self._previous_crc:
                self.crc4_errors += 1
                self._window_errors += 1
            if self._window_blocks == C_CRC4_LOSS_WINDOW_BLOCKS:
                errored = self._window_errors
                self._window_blocks = 0
                self._window_errors = 0
                if errored >= C_CRC4_LOSS_ERRORED_BLOCKS:
                    self._lose(L_CRC4_ERRORS, decided, events)
                    return False
        self._previous_crc = crc
        return True

    cdef int _lose(self, int reason, int64_t decided, list events) except -1:
        cdef int64_t frame_bit = self._frame_bit
        cdef int64_t fas_position = frame_bit if self._fas_next else frame_bit + C_FRAME_BITS
        self.losses += 1
        self._event(events, decided, K_ALIGNMENT_LOST, reason)
        if self.rai:
            self.rai = False
            self._event(events, decided, K_RAI_OFF, 0)
        self.aligned = False
        self._hunt_bit = frame_bit
        self._loss_bit = frame_bit
        self._loss_phase = fas_position % (2 * C_FRAME_BITS)
        self._reset_multiframe()
        return 0


def frame_all(data, crc4=False, bit_search=True):
    """The runs, events and counters of one whole stream (a fresh framer)."""
    framer = E1Framer(crc4, bit_search)
    runs, events = framer.feed(data)
    return runs, events, framer.counters()
