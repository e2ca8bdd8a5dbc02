"""E1 frame alignment (ITU-T G.704 / G.706) for a passive tap: the pure-Python reference.

A 2048 kbit/s line carries 8,000 frames a second of 256 bits (32 octets).
Bits 1 to 8 of every frame are time slot 0; bit 1 goes first on the line and
is the most significant bit of each octet handed over (``msb-first``)::

    G.704 Table 5A          bit:  1    2    3    4    5    6    7    8
    frame with the FAS          | Si | 0  | 0  | 1  | 1  | 0  | 1  | 1  |   FAS = 0011011
    frame without it (NFAS)     | Si | 1  | A  |Sa4 |Sa5 |Sa6 |Sa7 |Sa8 |   A = remote alarm

With CRC-4 (G.704 Table 5B) 16 frames form a multiframe of two
sub-multiframes (SMF I: frames 0-7, SMF II: 8-15), and Si carries::

    frame   0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
    Si     C1  0 C2  0 C3  1 C4  0 C1  1 C2  1 C3  E C4  E
               '--- multiframe alignment signal 001011 ---'  E = 0: the far end got an
                                                              errored SMF (E bits, FEBE)

C1..C4 of an SMF are the CRC-4 (x^4 + x + 1, first line bit the most
significant, C1 the most significant bit of the remainder) of the *previous*
SMF, computed with its own C bits set to 0 (G.704 2.3.3.5.2).

The framer is fed the octets of one direction in chunks of any size and
returns the aligned frames and what it saw. It runs two machines over the
same octets.

**Stream monitor** (per octet, needs no alignment; ``LOS_*``, ``AIS_*``):

- LOS: 2048 consecutive 0s (1 ms), cleared by a 256-bit window (32 octets,
  counted from the first octet fed) with at least 32 ones. These are the
  DS2155 / DS21Q55 framer criteria (2048-zero option; "at least 32 ones in
  255 bit times"), after G.775. On a decoded bit stream a *framed* signal can
  hold 257 zeros in a row (an all-zero payload next to an NFAS word with A and
  Sa at 0), so G.775's analogue 10..255 pulse intervals would be too short.
- AIS (all ones): at most two 0s in each of two consecutive 512-bit windows
  (double frames, counted from the first octet fed); cleared by two
  consecutive windows with three or more (G.775 for 2048 kbit/s, as we read
  it; the DS2155 applies O.162 1.6.1.2's single window, "fewer than three
  0s in 512 bits"). A framed signal never trips it: every FAS word holds
  three 0s.

**Frame aligner** (G.706 section 4):

- Search (4.1.2): from any bit (``bit_search``, for raw taps that do not
  know where octets start) or any octet: a FAS word, 256 bits later bit 2 = 1
  (an NFAS word), 512 bits later a FAS word again. Alignment is declared once
  the third word is in; the frames are delivered from the first FAS frame on.
  A failed candidate moves the search one bit (octet) on.
- Loss (4.1.1): three consecutive errored FAS words, or three consecutive
  NFAS words with bit 2 = 0 (4.1.1's second criterion). In CRC-4 mode also
  915 or more errored CRC-4 blocks out of 1000 (4.3.2: false alignment). The
  frame that makes alignment lost is not delivered, and the search resumes at
  its first bit.
- RAI: the A bit at 1 in three consecutive NFAS words, cleared by three at 0
  (O.162 2.1.4, as the DS2155 applies it); cleared when alignment is lost
  (the A bit can no longer be read).
- CRC-4 multiframe (4.2): two multiframe alignment signals 001011, 2 ms or a
  multiple of 2 ms apart and at most 8 ms apart. Then every SMF's CRC-4 is
  compared with the C bits of the next one (a *block*: counted, an error
  counted) and E bits at 0 are counted. If no multiframe alignment is found
  within 400 ms of frame alignment the far end is taken to send no CRC-4
  (G.706 Annex B interworking): reported once, and the search goes on.
  Deviation: G.706 4.2 restarts the frame search after 8 ms without
  multiframe alignment (Annex B does it in parallel, keeping the primary
  alignment). A tap must not stop delivering traffic, so the primary
  alignment is kept and no parallel search is run; a false alignment is still
  lost by the FAS rule, and in CRC-4 mode by the 915/1000 rule.

**Slips** as a passive tap sees them. The aligner only sees where frames
start. When alignment is regained within ``SLIP_WINDOW_FRAMES`` of being lost,
the new FAS position is compared with where the old alignment would have put
a FAS word; a difference (modulo the 512-bit double frame, in -255..256) is
a slip of that many bits: 256 is a whole-frame (controlled, G.822) slip, a
frame repeated or deleted (FAS alone cannot tell which); a multiple of 8 is
octets lost (negative) or repeated (positive) on the way to us, e.g. by the
tap's own buffers; anything else is a bit slip of a raw serial tap. A slip of
two whole frames keeps the FAS phase and is invisible here (in CRC-4 mode it
shows as CRC-4 errors); a slip while alignment holds is not a slip.

Output of ``feed``: ``(runs, events)``. A ``FrameRun(bit, frames)`` is
aligned frames back to back (32 octets each, time slot 0 untouched), the
first starting at line bit ``bit`` (counted from the first bit fed: the
frame began ``bit / 2_048_000`` s after the stream). A ``FramerEvent(bit,
kind, value)`` is stamped with the line bit at which it became known: the end
of the octet that decided it. Events are in ``bit`` order (the stream
monitor's first when equal), so any chunking of the same stream yields the
same events; runs are only split where chunks end.

This is the slow, obviously-correct model of ``cython_ext/e1_framing.pyx``;
the tests compare the two bit for bit.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

BytesLike = bytes | bytearray | memoryview

FRAME_OCTETS = 32
FRAME_BITS = 256
LINE_BITS_PER_SECOND = 2_048_000
FRAMES_PER_SECOND = 8000

FAS_WORD = 0x1B  # bits 2..8 of time slot 0: 0011011
FAS_MASK = 0x7F
NFAS_BIT2 = 0x40  # always 1 in an NFAS word
A_BIT = 0x20  # remote alarm indication, NFAS bit 3
SI_BIT = 0x80  # bit 1: C bits, the multiframe alignment signal, E bits
MULTIFRAME_ALIGNMENT_SIGNAL = 0b001011  # Si of NFAS frames 1, 3, 5, 7, 9, 11
MULTIFRAME_FRAMES = 16
SUB_MULTIFRAME_FRAMES = 8
CRC4_POLY = 0x3  # x^4 + x + 1 without the x^4 term

# G.706 4.1.1: frame alignment is lost after this many consecutive errored FAS words ...
LOSS_FAS_ERRORS = 3
# ... or NFAS words with bit 2 = 0.
LOSS_NFAS_ERRORS = 3
# G.706 4.3.2: false frame alignment when >= 915 of 1000 CRC-4 blocks are errored.
CRC4_LOSS_ERRORED_BLOCKS = 915
CRC4_LOSS_WINDOW_BLOCKS = 1000
# G.706 4.2: two multiframe alignment signals at most 8 ms apart.
MULTIFRAME_SEARCH_FRAMES = 64  # 8 ms
# G.706 Annex B: no multiframe alignment 400 ms after frame alignment: no CRC-4 at the far end.
CRC4_ABSENT_FRAMES = 3200  # 400 ms
# O.162 2.1.4 (DS2155 RRA): A = 1 (A = 0) in this many consecutive NFAS words sets (clears) RAI.
RAI_NFAS_WORDS = 3
# LOS, DS2155 RCL (G.775): 2048 consecutive 0s (1 ms); cleared by >= 32 ones in a 256-bit window.
LOS_ZERO_BITS = 2048
LOS_CLEAR_WINDOW_OCTETS = 32  # 256 bits
LOS_CLEAR_ONES = 32  # 12.5 % ones density
# AIS, G.775: <= 2 zeros in each of 2 consecutive double frames (512 bits); >= 3 in each clears.
AIS_WINDOW_OCTETS = 64  # 512 bits
AIS_MAX_ZEROS = 2
AIS_WINDOWS = 2
# Realigned within this many frames of the loss: the move of the FAS phase is a slip.
SLIP_WINDOW_FRAMES = 16  # 2 ms

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


class FramerEventKind(IntEnum):
    """What a ``FramerEvent`` reports; ``value`` is described per kind."""

    LOS_ON = 1  # value 0
    LOS_OFF = 2
    AIS_ON = 3
    AIS_OFF = 4
    ALIGNED = 5  # value: line bit where the first aligned frame (a FAS frame) starts
    ALIGNMENT_LOST = 6  # value: an AlignmentLoss
    SLIP = 7  # value: the move of the frame phase in bits, -255..256
    RAI_ON = 8
    RAI_OFF = 9
    MULTIFRAME_ALIGNED = 10
    CRC4_ABSENT = 11  # no multiframe alignment 400 ms after frame alignment (G.706 Annex B)


class AlignmentLoss(IntEnum):
    """Why frame alignment was lost (G.706 4.1.1 and 4.3.2)."""

    FAS_ERRORS = 1
    NFAS_ERRORS = 2
    CRC4_ERRORS = 3


class FrameRun(NamedTuple):
    """Aligned frames back to back; the first starts at line bit ``bit``."""

    bit: int
    frames: bytes

    @property
    def frame_count(self) -> int:
        return len(self.frames) // FRAME_OCTETS


class FramerEvent(NamedTuple):
    """Something the framer saw, known at line bit ``bit`` (the end of the deciding octet)."""

    bit: int
    kind: FramerEventKind
    value: int


def _crc4_table() -> list[int]:
    """Entry ``v``: the CRC-4 register after octet ``v`` from 0, by polynomial long division."""
    table = []
    for value in range(256):
        register = 0
        for index in range(7, -1, -1):  # the first line bit is the octet's MSB
            feedback = ((register >> 3) & 1) ^ ((value >> index) & 1)
            register = (register << 1) & 0xF
            if feedback:
                register ^= CRC4_POLY
        table.append(register)
    return table


_CRC4_TABLE = _crc4_table()


def crc4(data: BytesLike, register: int = 0) -> int:
    """CRC-4 of G.704 2.3.3.5 (width 4, poly 0x3, init 0, not reflected) over ``data``."""
    for octet in bytes(data):
        register = _CRC4_TABLE[(register << 4) ^ octet]
    return register


def _count_leading_zeros(octet: int) -> int:
    return 8 - octet.bit_length()


def _count_trailing_zeros(octet: int) -> int:
    return 8 if octet == 0 else (octet & -octet).bit_length() - 1


def _end_of_octet(bit: int) -> int:
    """The first bit after the octet holding bit ``bit - 1`` (round ``bit`` up to an octet)."""
    return (bit + 7) // 8 * 8


class E1Framer:
    """Streaming E1 receiver for one direction: ``feed(chunk)`` -> ``(runs, events)``."""

    def __init__(self, crc4: bool = False, bit_search: bool = True) -> None:
        self.crc4 = bool(crc4)
        self.bit_search = bool(bit_search)
        self.reset()

    def reset(self) -> None:
        """Forget everything, counters included: the next octet fed is line bit 0."""
        self.octets_in = 0
        self.frames = 0
        self.fas_errors = 0
        self.nfas_errors = 0
        self.crc4_blocks = 0
        self.crc4_errors = 0
        self.e_bits = 0
        self.alignments = 0
        self.losses = 0
        self.slips = 0
        # stream monitor
        self.los = False
        self.ais = False
        self._zero_run = 0
        self._los_window_ones = 0
        self._ais_window_zeros = 0
        self._ais_low_windows = 0
        self._ais_high_windows = 0
        # the octets not yet used; _data[0] is line bit _data_bit
        self._data = bytearray()
        self._data_bit = 0
        # frame aligner
        self.aligned = False
        self._hunt_bit = 0
        self._frame_bit = 0
        self._fas_next = True
        self._fas_run = 0
        self._nfas_run = 0
        self.rai = False
        self._rai_run = 0  # consecutive NFAS words with A different from the current RAI state
        self._frame_index = 0  # frames since alignment
        self._loss_bit = -1  # first bit of the frame that lost alignment, -1: none pending
        self._loss_phase = 0  # where the lost alignment had a FAS word, modulo 512
        self._reset_multiframe()

    def _reset_multiframe(self) -> None:
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
    def bit_offset(self) -> int:
        """Where frames start within an octet (0..7) when aligned, else -1."""
        return self._frame_bit % 8 if self.aligned else -1

    def counters(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTER_NAMES}

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, data: BytesLike) -> tuple[list[FrameRun], list[FramerEvent]]:
        chunk = bytes(memoryview(data).cast("B"))
        stream_events: list[FramerEvent] = []
        first = self.octets_in
        for index, octet in enumerate(chunk):
            self._monitor(first + index, octet, stream_events)
        self.octets_in += len(chunk)
        self._data += chunk
        runs: list[FrameRun] = []
        framer_events: list[FramerEvent] = []
        self._align(runs, framer_events)
        keep_from = (self._frame_bit if self.aligned else self._hunt_bit) // 8 * 8
        del self._data[: (keep_from - self._data_bit) // 8]
        self._data_bit = keep_from
        events = sorted(stream_events + framer_events, key=lambda event: event.bit)
        return runs, events

    # -- stream monitor: LOS and AIS ------------------------------------------------------------

    def _monitor(self, index: int, octet: int, events: list[FramerEvent]) -> None:
        end = 8 * (index + 1)
        run_end = self._zero_run + _count_leading_zeros(octet)
        if not self.los and run_end >= LOS_ZERO_BITS:
            self.los = True
            events.append(FramerEvent(end, FramerEventKind.LOS_ON, 0))
        self._zero_run = run_end if octet == 0 else _count_trailing_zeros(octet)
        ones = bin(octet).count("1")
        self._los_window_ones += ones
        if index % LOS_CLEAR_WINDOW_OCTETS == LOS_CLEAR_WINDOW_OCTETS - 1:
            if self.los and self._los_window_ones >= LOS_CLEAR_ONES:
                self.los = False
                events.append(FramerEvent(end, FramerEventKind.LOS_OFF, 0))
            self._los_window_ones = 0
        self._ais_window_zeros += 8 - ones
        if index % AIS_WINDOW_OCTETS == AIS_WINDOW_OCTETS - 1:
            if self._ais_window_zeros <= AIS_MAX_ZEROS:
                self._ais_low_windows += 1
                self._ais_high_windows = 0
            else:
                self._ais_high_windows += 1
                self._ais_low_windows = 0
            if not self.ais and self._ais_low_windows >= AIS_WINDOWS:
                self.ais = True
                events.append(FramerEvent(end, FramerEventKind.AIS_ON, 0))
            elif self.ais and self._ais_high_windows >= AIS_WINDOWS:
                self.ais = False
                events.append(FramerEvent(end, FramerEventKind.AIS_OFF, 0))
            self._ais_window_zeros = 0

    # -- frame aligner ------------------------------------------------------------------------

    def _end_bit(self) -> int:
        return self._data_bit + 8 * len(self._data)

    def _octet_at(self, bit: int) -> int:
        """The 8 line bits from ``bit`` as an octet (first bit the MSB)."""
        index, shift = divmod(bit - self._data_bit, 8)
        if shift == 0:
            return self._data[index]
        return ((self._data[index] << shift) | (self._data[index + 1] >> (8 - shift))) & 0xFF

    def _align(self, runs: list[FrameRun], events: list[FramerEvent]) -> None:
        run_bit = -1
        run = bytearray()
        while True:
            if not self.aligned:
                if _end_of_octet(self._hunt_bit + 2 * FRAME_BITS + 8) > self._end_bit():
                    break
                self._hunt()
                if self.aligned:
                    self._declare_aligned(events)
                continue
            if _end_of_octet(self._frame_bit + FRAME_BITS) > self._end_bit():
                break
            frame_bit = self._frame_bit
            frame = bytes(self._octet_at(frame_bit + 8 * i) for i in range(FRAME_OCTETS))
            if self._check_frame(frame, events):
                if run_bit < 0 or run_bit + 8 * len(run) != frame_bit:
                    if run:
                        runs.append(FrameRun(run_bit, bytes(run)))
                    run_bit = frame_bit
                    run = bytearray()
                run += frame
                self.frames += 1
        if run:
            runs.append(FrameRun(run_bit, bytes(run)))

    def _hunt(self) -> None:
        """Test the candidate at ``_hunt_bit``; on success become aligned, else move on."""
        bit = self._hunt_bit
        if (
            self._octet_at(bit) & FAS_MASK == FAS_WORD
            and self._octet_at(bit + FRAME_BITS) & NFAS_BIT2
            and self._octet_at(bit + 2 * FRAME_BITS) & FAS_MASK == FAS_WORD
        ):
            self.aligned = True
            self._frame_bit = bit
        else:
            self._hunt_bit = bit + (1 if self.bit_search else 8)

    def _declare_aligned(self, events: list[FramerEvent]) -> None:
        bit = self._frame_bit
        decided = _end_of_octet(bit + 2 * FRAME_BITS + 8)
        self.alignments += 1
        events.append(FramerEvent(decided, FramerEventKind.ALIGNED, bit))
        if self._loss_bit >= 0 and bit - self._loss_bit <= SLIP_WINDOW_FRAMES * FRAME_BITS:
            moved = (bit - self._loss_phase) % (2 * FRAME_BITS)
            if moved > FRAME_BITS:
                moved -= 2 * FRAME_BITS
            if moved:
                self.slips += 1
                events.append(FramerEvent(decided, FramerEventKind.SLIP, moved))
        self._loss_bit = -1
        self._fas_next = True
        self._fas_run = 0
        self._nfas_run = 0
        self._rai_run = 0
        self._frame_index = 0
        self._reset_multiframe()

    def _check_frame(self, frame: bytes, events: list[FramerEvent]) -> bool:
        """Check the frame at ``_frame_bit``; False when it made alignment lost."""
        frame_bit = self._frame_bit
        decided = _end_of_octet(frame_bit + FRAME_BITS)
        word = frame[0]
        fas_frame = self._fas_next
        if fas_frame:
            if word & FAS_MASK == FAS_WORD:
                self._fas_run = 0
            else:
                self.fas_errors += 1
                self._fas_run += 1
                if self._fas_run >= LOSS_FAS_ERRORS:
                    self._lose(AlignmentLoss.FAS_ERRORS, decided, events)
                    return False
        else:
            if word & NFAS_BIT2:
                self._nfas_run = 0
            else:
                self.nfas_errors += 1
                self._nfas_run += 1
                if self._nfas_run >= LOSS_NFAS_ERRORS:
                    self._lose(AlignmentLoss.NFAS_ERRORS, decided, events)
                    return False
            self._remote_alarm(bool(word & A_BIT), decided, events)
        if self.crc4 and not self._check_crc4(frame, fas_frame, decided, events):
            return False
        self._fas_next = not fas_frame
        self._frame_bit = frame_bit + FRAME_BITS
        self._frame_index += 1
        return True

    def _remote_alarm(self, a_bit: bool, decided: int, events: list[FramerEvent]) -> None:
        if a_bit == self.rai:
            self._rai_run = 0
            return
        self._rai_run += 1
        if self._rai_run >= RAI_NFAS_WORDS:
            self.rai = a_bit
            self._rai_run = 0
            kind = FramerEventKind.RAI_ON if a_bit else FramerEventKind.RAI_OFF
            events.append(FramerEvent(decided, kind, 0))

    def _check_crc4(
        self, frame: bytes, fas_frame: bool, decided: int, events: list[FramerEvent]
    ) -> bool:
        si = frame[0] >> 7
        if not self.multiframe_aligned:
            if not fas_frame:
                self._nfas_seen += 1
                self._si_history = ((self._si_history << 1) | si) & 0x3F
                if self._nfas_seen >= 6 and self._si_history == MULTIFRAME_ALIGNMENT_SIGNAL:
                    index = self._frame_index
                    apart = index - self._mfas_frame
                    if (
                        self._mfas_frame >= 0
                        and apart % MULTIFRAME_FRAMES == 0
                        and apart <= MULTIFRAME_SEARCH_FRAMES
                    ):
                        self.multiframe_aligned = True
                        self._mf_position = 12  # the signal ends in frame 11
                        events.append(FramerEvent(decided, FramerEventKind.MULTIFRAME_ALIGNED, 0))
                    else:
                        self._mfas_frame = index
            if (
                not self.multiframe_aligned
                and not self.crc4_absent
                and self._frame_index + 1 >= CRC4_ABSENT_FRAMES
            ):
                self.crc4_absent = True
                events.append(FramerEvent(decided, FramerEventKind.CRC4_ABSENT, 0))
            return True
        position = self._mf_position
        self._mf_position = (position + 1) % MULTIFRAME_FRAMES
        if position % SUB_MULTIFRAME_FRAMES == 0:
            self._smf_started = True
            self._crc = 0
            self._received_crc = 0
        if not self._smf_started:
            return True  # the rest of the multiframe in which alignment was found
        if fas_frame:
            self._crc = crc4(bytes((frame[0] & FAS_MASK,)) + frame[1:], self._crc)
            self._received_crc = (self._received_crc << 1) | si
        else:
            self._crc = crc4(frame, self._crc)
            if position in (13, 15) and not si:
                self.e_bits += 1
        if position % SUB_MULTIFRAME_FRAMES != SUB_MULTIFRAME_FRAMES - 1:
            return True
        if self._previous_crc >= 0:
            self.crc4_blocks += 1
            self._window_blocks += 1
            if self._received_crc != self._previous_crc:
                self.crc4_errors += 1
                self._window_errors += 1
            if self._window_blocks == CRC4_LOSS_WINDOW_BLOCKS:
                errored = self._window_errors
                self._window_blocks = 0
                self._window_errors = 0
                if errored >= CRC4_LOSS_ERRORED_BLOCKS:
                    self._lose(AlignmentLoss.CRC4_ERRORS, decided, events)
                    return False
        self._previous_crc = self._crc
        return True

    def _lose(self, reason: AlignmentLoss, decided: int, events: list[FramerEvent]) -> None:
        frame_bit = self._frame_bit
        self.losses += 1
        events.append(FramerEvent(decided, FramerEventKind.ALIGNMENT_LOST, reason))
        if self.rai:
            self.rai = False
            events.append(FramerEvent(decided, FramerEventKind.RAI_OFF, 0))
        self.aligned = False
        self._hunt_bit = frame_bit
        self._loss_bit = frame_bit
        fas_position = frame_bit if self._fas_next else frame_bit + FRAME_BITS
        self._loss_phase = fas_position % (2 * FRAME_BITS)
        self._reset_multiframe()


def frame_all(
    data: BytesLike, crc4: bool = False, bit_search: bool = True
) -> tuple[list[FrameRun], list[FramerEvent], dict[str, int]]:
    """The runs, events and counters of one whole stream (a fresh framer)."""
    framer = E1Framer(crc4, bit_search)
    runs, events = framer.feed(data)
    return runs, events, framer.counters()
