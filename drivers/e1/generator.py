"""E1 line signals for the simulator and the tests: framed streams and the faults to put in them.

``E1Generator`` is the transmit side of ITU-T G.704 section 2.3: it writes
time slot 0 over payload frames::

    frame (multiframe position)   0    1    2    3    4    5    6    7    8 ... 13   14   15
    TS0 bit 1 (Si), CRC-4 mode   C1    0   C2    0   C3    1   C4    0   C1 ...  E   C4    E
    TS0 bits 2..8                FAS  NFAS FAS  NFAS ...
        FAS  = 0011011
        NFAS = 1 A Sa4 Sa5 Sa6 Sa7 Sa8        (A = remote alarm; Sa = 11111 when unused)

Without CRC-4, Si is 1 (G.704 2.3.2: "fixed at 1" when not used). With
CRC-4, C1..C4 of a sub-multiframe (frames 0-7, 8-15) are the CRC-4 of the
previous one, computed with its C bits at 0 (G.704 2.3.3.5.2); E bits are 1
unless ``report_remote_errors`` asked for zeros. Octets are msb-first: the
first line bit is the octet's most significant bit. The CRC here is computed
bit by bit by polynomial division, independently of the framer's tables, so
a shared mistake cannot hide in the tests.

The faults are pure functions over a byte stream, so any source (a file, a
socket writer, ``edge112 sim e1``) can apply them: bit errors, octets or
frames dropped or repeated (slips), a bit shift (a raw tap that starts
mid-octet), LOS (all zeros), AIS (all ones), FAS words broken to lose
alignment, and bit-order reversal.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

FRAME_OCTETS = 32
FRAME_BITS = 256
FRAMES_PER_SECOND = 8000
OCTETS_PER_SECOND = FRAME_OCTETS * FRAMES_PER_SECOND
FAS_WORD = 0x1B
NFAS_BIT2 = 0x40
A_BIT = 0x20
SA_UNUSED = 0x1F  # Sa4..Sa8 = 1
IDLE_OCTET = 0xD5  # A-law idle pattern (G.711 "zero" with even bits inverted)
CRC4_POLY = 0x3  # x^4 + x + 1

# Si of the NFAS frames of a CRC-4 multiframe (positions 1, 3, ..., 11): 001011.
_MULTIFRAME_SI = {1: 0, 3: 0, 5: 1, 7: 0, 9: 1, 11: 1}


def crc4_bitwise(data: bytes, register: int = 0) -> int:
    """CRC-4 of G.704 by long division, one line bit at a time (slow, obviously right)."""
    for octet in data:
        for index in range(7, -1, -1):
            feedback = ((register >> 3) & 1) ^ ((octet >> index) & 1)
            register = (register << 1) & 0xF
            if feedback:
                register ^= CRC4_POLY
    return register


_CRC4_AFTER = [crc4_bitwise(bytes((value,))) for value in range(256)]


def _crc4(data: bytes, register: int) -> int:
    # Same function as crc4_bitwise, an octet at a time (the register is linear in its input).
    for octet in data:
        register = _CRC4_AFTER[(register << 4) ^ octet]
    return register


class E1Generator:
    """Writes time slot 0 (G.704) over payload frames, keeping the multiframe across calls."""

    def __init__(
        self, *, crc4: bool = True, remote_alarm: bool = False, sa_bits: int = SA_UNUSED
    ) -> None:
        if not 0 <= sa_bits <= 0x1F:
            raise ValueError(f"sa_bits holds Sa4..Sa8 (5 bits), got {sa_bits:#x}")
        self.crc4 = crc4
        self.remote_alarm = remote_alarm
        self.sa_bits = sa_bits
        self.frame_number = 0  # frames written so far; frame 0 is a FAS frame (multiframe 0)
        self._remote_errors = 0
        self._crc = 0  # of the sub-multiframe being written
        self._previous_crc = 0  # sent in the C bits of the current one

    @property
    def multiframe_position(self) -> int:
        """The multiframe position (0..15) of the next frame."""
        return self.frame_number % 16

    def report_remote_errors(self, count: int = 1) -> None:
        """Send the next ``count`` E bits as 0 (as a receiver reports errored SMFs)."""
        self._remote_errors += count

    def time_slot_0(self) -> int:
        """The TS0 octet of the next frame, with C bits as they go on the line."""
        position = self.multiframe_position
        if position % 2 == 0:
            # C1..C4 in FAS frames 0, 2, 4, 6 of the sub-multiframe (C1 the MSB); 1 without CRC-4
            si = (self._previous_crc >> (3 - (position % 8) // 2)) & 1 if self.crc4 else 1
            return (si << 7) | FAS_WORD
        if not self.crc4:
            si = 1
        elif position in _MULTIFRAME_SI:
            si = _MULTIFRAME_SI[position]
        elif self._remote_errors:
            self._remote_errors -= 1
            si = 0
        else:
            si = 1
        return (si << 7) | NFAS_BIT2 | (A_BIT if self.remote_alarm else 0) | self.sa_bits

    def frames(self, payload: bytes | bytearray) -> bytes:
        """Whole payload frames (their TS0 octets are replaced) as framed line octets."""
        if len(payload) % FRAME_OCTETS:
            raise ValueError(f"payload must be whole {FRAME_OCTETS}-octet frames")
        out = bytearray(payload)
        for start in range(0, len(out), FRAME_OCTETS):
            position = self.multiframe_position
            if position % 8 == 0:
                self._previous_crc = self._crc
                self._crc = 0
            word = self.time_slot_0()
            out[start] = word
            if self.crc4:
                masked = word & 0x7F if position % 2 == 0 else word  # C bits count as 0
                rest = bytes(out[start + 1 : start + FRAME_OCTETS])
                self._crc = _crc4(bytes((masked,)) + rest, self._crc)
            self.frame_number += 1
        return bytes(out)

    def idle(self, count: int, fill: int = IDLE_OCTET) -> bytes:
        """``count`` frames with every other time slot at ``fill``."""
        return self.frames(bytes((fill,)) * (FRAME_OCTETS * count))

    def random(self, count: int, rng: random.Random) -> bytes:
        """``count`` frames of random payload (which may imitate a FAS word: a fair test)."""
        return self.frames(rng.randbytes(FRAME_OCTETS * count))


def mux(timeslots: Mapping[int, bytes], count: int, fill: int = IDLE_OCTET) -> bytes:
    """``count`` payload frames with time slot ``t`` from ``timeslots[t]`` (TS0 left at ``fill``).

    Each stream gives one octet per frame; a short stream is padded with ``fill``.
    """
    out = bytearray(bytes((fill,)) * (FRAME_OCTETS * count))
    for timeslot, stream in timeslots.items():
        if not 1 <= timeslot < FRAME_OCTETS:
            raise ValueError(f"time slots with payload are 1..31, got {timeslot}")
        data = bytes(stream[:count]) + bytes((fill,)) * max(0, count - len(stream))
        out[timeslot::FRAME_OCTETS] = data
    return bytes(out)


def generate(
    frames: int, *, crc4: bool = True, seed: int | None = 0, remote_alarm: bool = False
) -> bytes:
    """A framed stream of ``frames`` frames of random payload (a fresh generator)."""
    generator = E1Generator(crc4=crc4, remote_alarm=remote_alarm)
    return generator.random(frames, random.Random(seed))


# -- faults ------------------------------------------------------------------------------


def flip_bits(stream: bytes, bits: Iterable[int]) -> bytes:
    """Invert the line bits at ``bits`` (bit 0 is the first octet's MSB)."""
    out = bytearray(stream)
    for bit in bits:
        out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


def drop_octets(stream: bytes, at: int, count: int = 1) -> bytes:
    """Lose ``count`` octets at ``at`` (a tap's buffer overrun)."""
    return stream[:at] + stream[at + count :]


def repeat_octets(stream: bytes, at: int, count: int = 1) -> bytes:
    """Deliver the ``count`` octets at ``at`` twice."""
    return stream[: at + count] + stream[at:]


def drop_frames(stream: bytes, frame: int, count: int = 1) -> bytes:
    """Delete ``count`` whole frames from frame ``frame`` on (a controlled slip, G.822)."""
    return drop_octets(stream, frame * FRAME_OCTETS, count * FRAME_OCTETS)


def repeat_frames(stream: bytes, frame: int, count: int = 1) -> bytes:
    """Repeat ``count`` whole frames from frame ``frame`` on (a controlled slip)."""
    return repeat_octets(stream, frame * FRAME_OCTETS, count * FRAME_OCTETS)


def delay_bits(stream: bytes, bits: int, fill_bit: int = 1) -> bytes:
    """Prepend ``bits`` (0..7) copies of ``fill_bit``, as a raw tap that starts mid-octet would.

    The tail is padded with ``fill_bit`` up to a whole octet.
    """
    if not 0 <= bits < 8:
        raise ValueError(f"bits must be 0..7, got {bits}")
    if bits == 0:
        return bytes(stream)
    fill = (1 << bits) - 1 if fill_bit else 0
    out = bytearray()
    carry = fill
    for octet in stream:
        out.append(((carry << (8 - bits)) | (octet >> bits)) & 0xFF)
        carry = octet & ((1 << bits) - 1)
    tail = (carry << (8 - bits)) | (((1 << (8 - bits)) - 1) if fill_bit else 0)
    out.append(tail & 0xFF)
    return bytes(out)


def loss_of_signal(frames: int) -> bytes:
    """``frames`` frames' worth of zeros: no pulses on the line."""
    return bytes(FRAME_OCTETS * frames)


def alarm_indication(frames: int) -> bytes:
    """``frames`` frames' worth of ones: AIS, the unframed all-ones signal."""
    return b"\xff" * (FRAME_OCTETS * frames)


def break_fas_words(stream: bytes, first_frame: int, count: int = 3) -> bytes:
    """Invert bit 8 of the FAS word of ``count`` FAS frames from ``first_frame`` (a FAS frame)."""
    return flip_bits(stream, ((first_frame + 2 * n) * FRAME_BITS + 7 for n in range(count)))


_REVERSED = bytes(int(f"{value:08b}"[::-1], 2) for value in range(256))


def reverse_bit_order(stream: bytes) -> bytes:
    """Reverse the bits of every octet (msb-first <-> lsb-first)."""
    return bytes(stream).translate(_REVERSED)
