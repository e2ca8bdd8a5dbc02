"""HDLC (ISO/IEC 13239) deframer and framer for the ISDN D-channel: the pure-Python reference.

A 64 kbit/s timeslot carries LAPD frames as an HDLC bit stream::

    ... 01111110 | address | control | information ... | FCS lo | FCS hi | 01111110 ...
        flag       2 oct.    1-2 oct.  0-260 octets     CRC-16/X.25       flag (may open
                                                        (LSB octet first) the next frame)

- Every HDLC octet is sent least significant bit first.
- The transmitter inserts a 0 after any five consecutive 1s inside a frame
  (zero-bit stuffing), so six 1s only appear in a flag ``01111110``; seven or
  more 1s are an abort (and fifteen or more an idle "mark" line).
- One flag may close a frame and open the next one (shared flag); a line
  idles with flags or with 1s between frames.
- The FCS is CRC-16/X.25 over address..information; running it over the
  frame *and* its FCS leaves the residue 0xF0B8 (``cython_ext.reference.crc16``).

Bit order of the byte stream handed over by the hardware:

- ``"msb-first"`` (default): the first bit on the line is the most
  significant bit of each stream octet, as an E1 framer hands over TS16
  (and as Wireshark's HDLC bit-stream decoder expects); every HDLC octet
  therefore arrives bit-reversed.
- ``"lsb-first"``: the first bit on the line is the least significant bit.

The deframer is a receive state machine fed arbitrary chunks (one byte at a
time or a second of line at once gives the same result)::

    hunting --flag--> in frame --flag--> deliver / count, stay in frame (shared flag)
       ^                 |  7 ones: abort (counted if the frame had begun)
       +-----------------+  more than max_frame_octets: too long

A frame closes at a flag; it is then, in this order, *too short* (fewer than
``MIN_FRAME_OCTETS`` = address 2 + control 1 + FCS 2), *not aligned* (not a
whole number of octets), has a *bad FCS*, or is delivered. Back-to-back flags
(with or without a shared 0) deliver nothing and count nothing.

Each delivered frame carries the line bit offset of its first address bit,
counted from the first bit ever fed (octet ``bit_offset // 8`` of the
stream): at 64 kbit/s the frame started ``bit_offset / 64000`` s after the
stream did.

This is the slow, obviously-correct model of ``cython_ext/hdlc.pyx``; the
framer (``HdlcEncoder``, ``encode``) lives only here: the simulator and the
tests use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from cython_ext.reference.crc16 import crc16_x25, fcs_ok

BytesLike = bytes | bytearray | memoryview

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

_ABORT_ONES = 7  # seven 1s in a row abort the frame
_FLAG_ONES = 6  # six 1s then a 0 are a flag
_STUFF_ONES = 5  # five 1s then a 0: that 0 was stuffed


class HdlcFrame(NamedTuple):
    """One good frame: address, control and information (FCS removed)."""

    bit_offset: int  # line bit of the first address bit, from the first bit fed
    data: bytes

    @property
    def octet_index(self) -> int:
        """The stream octet that holds the frame's first address bit."""
        return self.bit_offset // 8


def check_bit_order(bit_order: str) -> str:
    if bit_order not in BIT_ORDERS:
        raise ValueError(f"bit_order must be one of {BIT_ORDERS}, got {bit_order!r}")
    return bit_order


def _line_bits(octet: int, bit_order: str) -> range:
    """The bit positions of ``octet`` in line order."""
    return range(7, -1, -1) if bit_order == MSB_FIRST else range(8)


class HdlcDeframer:
    """Streaming HDLC receiver: ``feed(chunk)`` returns the good frames that closed in it."""

    def __init__(
        self, bit_order: str = MSB_FIRST, max_frame_octets: int = DEFAULT_MAX_FRAME_OCTETS
    ) -> None:
        self.bit_order = check_bit_order(bit_order)
        if max_frame_octets < MIN_FRAME_OCTETS:
            raise ValueError(f"max_frame_octets must be >= {MIN_FRAME_OCTETS}")
        self.max_frame_octets = max_frame_octets
        self.frames = 0
        self.bad_fcs = 0
        self.aborts = 0
        self.too_short = 0
        self.too_long = 0
        self.not_aligned = 0
        self.bytes_in = 0
        self._hunting = True
        self._ones = 0  # consecutive 1s seen on the line
        self._zero_was_data = False  # the last 0 was a data bit (not stuffed, not a flag's)
        self._octets = bytearray()  # completed octets of the current frame
        self._partial = 0  # data bits of the next octet, first bit in bit 0
        self._partial_bits = 0
        self._start = 0  # line bit of the current frame's first bit

    def counters(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTER_NAMES}

    def reset(self) -> None:
        """Drop the frame in progress and hunt for a flag (e.g. after loss of signal)."""
        self._hunting = True
        self._ones = 0

    def feed(self, data: BytesLike) -> list[HdlcFrame]:
        out: list[HdlcFrame] = []
        chunk = bytes(data)
        position = self.bytes_in * 8
        self.bytes_in += len(chunk)
        for octet in chunk:
            for bit_index in _line_bits(octet, self.bit_order):
                self._bit((octet >> bit_index) & 1, position, out)
                position += 1
        return out

    # -- one line bit --------------------------------------------------------

    def _bit(self, bit: int, position: int, out: list[HdlcFrame]) -> None:
        if bit:
            self._ones += 1
            if self._ones == _ABORT_ONES:
                if not self._hunting:
                    # The run's first five 1s went in as data; anything before them is a frame.
                    if self._frame_bits() > _STUFF_ONES:
                        self.aborts += 1
                    self._hunting = True
            elif self._ones <= _STUFF_ONES and not self._hunting:
                self._data_bit(1)
            return
        ones, self._ones = self._ones, 0
        if ones == _FLAG_ONES:
            if not self._hunting:
                self._close(out)
            self._open(position + 1)
        elif self._hunting or ones > _FLAG_ONES:
            return
        elif ones == _STUFF_ONES:
            self._zero_was_data = False  # a stuffed 0: removed
        else:
            self._data_bit(0)
            self._zero_was_data = True

    def _data_bit(self, bit: int) -> None:
        self._partial |= bit << self._partial_bits
        self._partial_bits += 1
        if self._partial_bits == 8:
            self._octets.append(self._partial)
            self._partial = 0
            self._partial_bits = 0
            if len(self._octets) > self.max_frame_octets:
                self.too_long += 1
                self._hunting = True

    def _frame_bits(self) -> int:
        return 8 * len(self._octets) + self._partial_bits

    def _open(self, start: int) -> None:
        self._hunting = False
        self._octets = bytearray()
        self._partial = 0
        self._partial_bits = 0
        self._zero_was_data = False
        self._start = start

    def _close(self, out: list[HdlcFrame]) -> None:
        # The flag's 0 (when it was taken as data) and its first five 1s went in as data.
        flag_bits = _STUFF_ONES + (1 if self._zero_was_data else 0)
        bits = self._frame_bits() - flag_bits
        if bits <= 0:
            return  # flag after flag
        if bits < 8 * MIN_FRAME_OCTETS:
            self.too_short += 1
        elif bits % 8:
            self.not_aligned += 1
        elif not fcs_ok(self._octets):
            self.bad_fcs += 1
        else:
            self.frames += 1
            out.append(HdlcFrame(self._start, bytes(self._octets[:-FCS_OCTETS])))


def deframe(data: BytesLike, bit_order: str = MSB_FIRST) -> tuple[list[HdlcFrame], dict[str, int]]:
    """The frames and counters of one whole stream (a fresh deframer)."""
    deframer = HdlcDeframer(bit_order)
    frames = deframer.feed(data)
    return frames, deframer.counters()


# -- framer ------------------------------------------------------------------


class HdlcEncoder:
    """Builds an HDLC line bit stream: flags, stuffed frames with FCS, idle 1s, aborts.

    Bits accumulate in line order; ``take()`` returns the whole octets so far
    (packed in the chosen bit order) and keeps the rest for the next call, so
    a stream can be produced in chunks. Consecutive ``add_frame`` calls share
    one flag between frames.
    """

    def __init__(self, bit_order: str = MSB_FIRST) -> None:
        self.bit_order = check_bit_order(bit_order)
        self._bits: list[int] = []
        self._after_flag = False
        self.bits_written = 0  # line bits handed out by take()/flush() so far

    @property
    def bit_position(self) -> int:
        """The line bit offset the next added bit will have."""
        return self.bits_written + len(self._bits)

    def add_bits(self, bits: Iterable[int]) -> None:
        """Raw line bits, unstuffed (for corrupting a stream on purpose)."""
        for bit in bits:
            self._bits.append(1 if bit else 0)
        self._after_flag = False

    def add_flags(self, count: int = 1) -> None:
        for _ in range(count):
            self._bits.extend((0, 1, 1, 1, 1, 1, 1, 0))
        if count:
            self._after_flag = True

    def add_ones(self, count: int) -> None:
        """Idle 1s (mark idle); seven or more abort a frame in progress."""
        self._bits.extend([1] * count)
        if count:
            self._after_flag = False

    def add_frame(
        self,
        data: BytesLike,
        *,
        fcs: BytesLike | None = None,
        abort_after_bits: int | None = None,
    ) -> int:
        """Flag (unless one was just sent), stuffed ``data`` + FCS, closing flag.

        ``fcs`` overrides the two FCS octets (a bad FCS on purpose);
        ``abort_after_bits`` sends only that many stuffed bits of the frame and
        then seven 1s instead of the rest and the closing flag. Returns the line
        bit offset of the frame's first address bit.
        """
        if not self._after_flag:
            self.add_flags(1)
        start = self.bit_position
        body = bytes(data)
        trailer = crc16_x25(body).to_bytes(2, "little") if fcs is None else bytes(fcs)
        stuffed = stuff(body + trailer)
        if abort_after_bits is not None:
            self._bits.extend(stuffed[:abort_after_bits])
            self.add_ones(_ABORT_ONES)
            return start
        self._bits.extend(stuffed)
        self.add_flags(1)
        return start

    def take(self) -> bytes:
        """The whole octets built so far; a partial last octet stays for later."""
        whole = len(self._bits) - len(self._bits) % 8
        out = pack_bits(self._bits[:whole], self.bit_order)
        del self._bits[:whole]
        self.bits_written += whole
        return out

    def flush(self) -> bytes:
        """Everything, the last octet filled up with idle 1s."""
        if len(self._bits) % 8:
            self._bits.extend([1] * (8 - len(self._bits) % 8))
            self._after_flag = False
        return self.take()


def stuff(octets: bytes) -> list[int]:
    """Line bits of ``octets`` (each LSB first) with a 0 inserted after five 1s."""
    bits: list[int] = []
    ones = 0
    for octet in octets:
        for index in range(8):
            bit = (octet >> index) & 1
            bits.append(bit)
            if bit:
                ones += 1
                if ones == _STUFF_ONES:
                    bits.append(0)
                    ones = 0
            else:
                ones = 0
    return bits


def pack_bits(bits: list[int], bit_order: str = MSB_FIRST) -> bytes:
    """Line bits (a multiple of 8) packed into stream octets in ``bit_order``."""
    if len(bits) % 8:
        raise ValueError(f"{len(bits)} bits are not whole octets")
    out = bytearray()
    for start in range(0, len(bits), 8):
        octet = 0
        for index, bit in enumerate(bits[start : start + 8]):
            octet |= bit << (7 - index if bit_order == MSB_FIRST else index)
        out.append(octet)
    return bytes(out)


def encode(
    frames: Iterable[BytesLike],
    bit_order: str = MSB_FIRST,
    *,
    flags_between: int = 0,
    ones_between: int = 0,
    leading_flags: int = 1,
) -> bytes:
    """A whole stream: leading flags, the frames (one shared flag between them, plus
    ``flags_between`` more flags or ``ones_between`` idle 1s), padded with 1s."""
    encoder = HdlcEncoder(bit_order)
    encoder.add_flags(leading_flags)
    for index, frame in enumerate(frames):
        if index:
            encoder.add_ones(ones_between)
            encoder.add_flags(flags_between)
        encoder.add_frame(frame)
    return encoder.flush()
