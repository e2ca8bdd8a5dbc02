"""pcap and pcapng files of D-channel frames: a reader and writers, with the frame's direction.

Link types (tcpdump.org LINKTYPE_*):

- ``LINKTYPE_LAPD`` (203): the LAPD frame from its address field, no FCS, no
  pseudo-header. Classic pcap carries no direction; pcapng carries it per
  packet in the Enhanced Packet Block's ``epb_flags`` (bits 1-0: 01 inbound,
  10 outbound). Wireshark reads *inbound as network -> user* and *outbound as
  user -> network*, and so do we.
- ``LINKTYPE_LINUX_LAPD`` (177, mISDN/DAHDI captures): a 16-octet pseudo-header
  before the frame::

      octet 0-1   packet type (big-endian): 0 to us, 3 to another host, 4 sent by us
            2-3   hardware type (ARPHRD_LAPD, 8445)
            4-5   hardware address length (1)
            6-13  hardware address: octet 6 is 1 when the capturing side is the network
           14-15  protocol (ETH_P_LAPD, 0x0030)

  Sent by us from the network side, or received by us on the user side, is
  network -> user; the reverse is user -> network; type 3 has no direction.

Classic pcap::

    global header (24): magic a1b2c3d4 (us) / a1b23c4d (ns), either byte order, version,
                        thiszone, sigfigs, snaplen, link type (low 16 bits)
    per packet (16):    seconds, us or ns, captured length, original length; the octets

pcapng (blocks of: type, total length, body, total length again; padded to 4)::

    0x0A0D0D0A section header: byte-order magic 1A2B3C4D, version 1.0, section length
    0x00000001 interface description: link type, snaplen, options (if_tsresol 9,
               if_tsoffset 14)
    0x00000006 enhanced packet: interface, timestamp high/low, captured and original
               length, octets, options (epb_flags 2)
    0x00000002 packet (obsolete): the same with a 16-bit interface and drops count
    0x00000003 simple packet: no interface, no timestamp (skipped: no time to give it)
    any other block is skipped by its length

``CaptureReader`` reads either (it tells them apart by the first four octets)
and yields ``CapturedPacket`` for every packet of a LAPD link type; packets
of other interfaces, simple packets and packets stamped before 1970 or after
9999 (a damaged timestamp) are counted in ``skipped``.
Anything malformed raises ``PcapError`` naming the problem and the file
offset; packets before it have been yielded. ``PcapngWriter`` and
``PcapWriter`` write the files ``edge112 e1 pcap`` produces and the tests read.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import BinaryIO

from drivers.e1.lapd import Direction

LINKTYPE_LAPD = 203
LINKTYPE_LINUX_LAPD = 177
LAPD_LINKTYPES = frozenset({LINKTYPE_LAPD, LINKTYPE_LINUX_LAPD})

PCAP_MAGIC_MICRO = 0xA1B2C3D4
PCAP_MAGIC_NANO = 0xA1B23C4D
PCAPNG_SECTION_HEADER = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
BLOCK_INTERFACE = 0x00000001
BLOCK_PACKET = 0x00000002  # obsolete, still read
BLOCK_SIMPLE_PACKET = 0x00000003
BLOCK_ENHANCED_PACKET = 0x00000006
OPTION_END = 0
OPTION_COMMENT = 1
OPTION_SHB_USERAPPL = 4
OPTION_IF_NAME = 2
OPTION_IF_TSRESOL = 9
OPTION_IF_TSOFFSET = 14
OPTION_EPB_FLAGS = 2
FLAGS_INBOUND = 0b01
FLAGS_OUTBOUND = 0b10
FLAGS_DIRECTION_MASK = 0b11

LINUX_LAPD_HEADER_OCTETS = 16
LINUX_LAPD_TO_US = 0
LINUX_LAPD_OTHER_HOST = 3
LINUX_LAPD_OUTGOING = 4
ARPHRD_LAPD = 8445
ETH_P_LAPD = 0x0030

SNAPLEN = 65535
LATEST_TIME_NS = 253_402_300_799 * 1_000_000_000  # 9999-12-31T23:59:59Z: later is damage
MAX_BLOCK_OCTETS = 16 * 1024 * 1024  # a longer block is damage, not a LAPD capture
NANOSECONDS = 1_000_000_000


class PcapProblem(StrEnum):
    NOT_A_CAPTURE = "not_a_capture"  # neither pcap nor pcapng magic
    TRUNCATED = "truncated"  # the file ends inside a header, block or packet
    BAD_BLOCK = "bad_block"  # lengths that do not add up, an unknown byte order
    UNSUPPORTED_LINKTYPE = "unsupported_linktype"  # a classic pcap of another link type
    UNKNOWN_INTERFACE = "unknown_interface"  # a packet of an interface never described


class PcapError(ValueError):
    """A capture file that cannot be read on; ``problem`` says why, ``offset`` where."""

    def __init__(self, problem: PcapProblem, detail: str, offset: int) -> None:
        super().__init__(f"{problem.value} at offset {offset}: {detail}")
        self.problem = problem
        self.offset = offset


@dataclass(frozen=True)
class CapturedPacket:
    """One LAPD frame from a capture: pseudo-header removed, with its time and direction."""

    time_ns: int  # since the Unix epoch
    data: bytes
    direction: Direction | None  # None: the file does not say (classic LINKTYPE_LAPD)
    linktype: int
    original_length: int  # more than len(data) when the capture cut the packet short

    @property
    def time(self) -> float:
        return self.time_ns / NANOSECONDS

    @property
    def truncated(self) -> bool:
        return self.original_length > len(self.data)


def linux_lapd_direction(header: bytes) -> Direction | None:
    """The direction a LINKTYPE_LINUX_LAPD pseudo-header gives (as Wireshark reads it)."""
    packet_type = int.from_bytes(header[0:2], "big")
    we_are_network = header[6] != 0
    if packet_type == LINUX_LAPD_OTHER_HOST:
        return None
    sent_by_us = packet_type == LINUX_LAPD_OUTGOING
    if sent_by_us == we_are_network:
        return Direction.NETWORK_TO_USER
    return Direction.USER_TO_NETWORK


def linux_lapd_header(direction: Direction, *, we_are_network: bool = False) -> bytes:
    """A pseudo-header saying ``direction`` (by default written as seen from the user side)."""
    sent_by_us = (direction is Direction.NETWORK_TO_USER) == we_are_network
    packet_type = LINUX_LAPD_OUTGOING if sent_by_us else LINUX_LAPD_TO_US
    address = bytes((1 if we_are_network else 0,)) + bytes(7)
    return struct.pack(">HHH8sH", packet_type, ARPHRD_LAPD, 1, address, ETH_P_LAPD)


# -- reading -------------------------------------------------------------------------------


@dataclass
class _Interface:
    linktype: int
    units_per_second: int  # timestamp resolution
    offset_s: int  # if_tsoffset


class CaptureReader:
    """Iterate the LAPD packets of a pcap or pcapng stream (see the module doc)."""

    def __init__(self, stream: BinaryIO, name: str = "capture") -> None:
        self.stream = stream
        self.name = name
        self.format = ""  # "pcap" or "pcapng" once the header is read
        self.packets = 0
        self.skipped: Counter[str] = Counter()
        self._offset = 0

    def __iter__(self) -> Iterator[CapturedPacket]:
        head = self._read(4, "the file header", allow_empty=True)
        if not head:
            raise PcapError(PcapProblem.NOT_A_CAPTURE, f"{self.name} is empty", 0)
        if head == PCAPNG_SECTION_HEADER.to_bytes(4, "little"):
            self.format = "pcapng"
            yield from self._pcapng(head)
            return
        for order in ("<", ">"):
            magic = struct.unpack(order + "I", head)[0]
            if magic in (PCAP_MAGIC_MICRO, PCAP_MAGIC_NANO):
                self.format = "pcap"
                yield from self._pcap(order, magic == PCAP_MAGIC_NANO)
                return
        raise PcapError(
            PcapProblem.NOT_A_CAPTURE, f"{self.name}: magic {head.hex()} is not pcap or pcapng", 0
        )

    def _read(self, count: int, what: str, *, allow_empty: bool = False) -> bytes:
        data = self.stream.read(count)
        if len(data) != count and not (allow_empty and not data):
            raise PcapError(
                PcapProblem.TRUNCATED,
                f"{self.name} ends inside {what} ({len(data)} of {count} octets)",
                self._offset,
            )
        self._offset += len(data)
        return data

    # classic pcap

    def _pcap(self, order: str, nanoseconds: bool) -> Iterator[CapturedPacket]:
        header = self._read(20, "the pcap header")
        _major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack(order + "HHiIII", header)
        linktype = network & 0xFFFF  # the upper bits may carry the FCS length
        if linktype not in LAPD_LINKTYPES:
            raise PcapError(
                PcapProblem.UNSUPPORTED_LINKTYPE,
                f"{self.name}: link type {linktype}, not LAPD (203) or LINUX_LAPD (177)",
                20,
            )
        per_second = NANOSECONDS if nanoseconds else 1_000_000
        while True:
            start = self._offset
            record = self._read(16, "a packet header", allow_empty=True)
            if not record:
                return
            seconds, fraction, captured, original = struct.unpack(order + "IIII", record)
            if captured > MAX_BLOCK_OCTETS:
                raise PcapError(PcapProblem.BAD_BLOCK, f"a packet of {captured} octets", start)
            data = self._read(captured, "a packet")
            time_ns = seconds * NANOSECONDS + fraction * (NANOSECONDS // per_second)
            packet = self._packet(linktype, time_ns, data, original, None, start)
            if packet is not None:
                yield packet

    # pcapng

    def _pcapng(self, head: bytes) -> Iterator[CapturedPacket]:
        order = "<"
        interfaces: list[_Interface] = []
        first = True
        while True:
            start = self._offset - (4 if first else 0)
            if first:
                block_type_raw = head
                first = False
            else:
                block_type_raw = self._read(4, "a block", allow_empty=True)
                if not block_type_raw:
                    return
            length_raw = self._read(4, "a block length")
            if block_type_raw == PCAPNG_SECTION_HEADER.to_bytes(4, "little"):
                magic = self._read(4, "the byte-order magic")
                if magic == PCAPNG_BYTE_ORDER_MAGIC.to_bytes(4, "little"):
                    order = "<"
                elif magic == PCAPNG_BYTE_ORDER_MAGIC.to_bytes(4, "big"):
                    order = ">"
                else:
                    raise PcapError(
                        PcapProblem.BAD_BLOCK, f"byte-order magic {magic.hex()}", start + 8
                    )
                total = struct.unpack(order + "I", length_raw)[0]
                self._check_block_length(total, 28, start)
                self._read(total - 16, "the section header")
                self._check_trailer(order, total, start)
                interfaces = []  # every section describes its own interfaces
                continue
            block_type = struct.unpack(order + "I", block_type_raw)[0]
            total = struct.unpack(order + "I", length_raw)[0]
            self._check_block_length(total, 12, start)
            body = self._read(total - 12, "a block body")
            self._check_trailer(order, total, start)
            if block_type == BLOCK_INTERFACE:
                interfaces.append(self._interface(order, body, start))
            elif block_type in (BLOCK_ENHANCED_PACKET, BLOCK_PACKET):
                packet = self._enhanced(order, block_type, body, interfaces, start)
                if packet is not None:
                    yield packet
            elif block_type == BLOCK_SIMPLE_PACKET:
                self.skipped["simple packet (no timestamp)"] += 1

    def _check_block_length(self, total: int, minimum: int, start: int) -> None:
        if total < minimum or total % 4 or total > MAX_BLOCK_OCTETS:
            raise PcapError(PcapProblem.BAD_BLOCK, f"block length {total}", start + 4)

    def _check_trailer(self, order: str, total: int, start: int) -> None:
        trailer = struct.unpack(order + "I", self._read(4, "a block's closing length"))[0]
        if trailer != total:
            raise PcapError(
                PcapProblem.BAD_BLOCK, f"block length {total} closed by {trailer}", start
            )

    def _interface(self, order: str, body: bytes, start: int) -> _Interface:
        if len(body) < 8:
            raise PcapError(PcapProblem.BAD_BLOCK, "interface description too short", start)
        linktype, _reserved, _snaplen = struct.unpack(order + "HHI", body[:8])
        interface = _Interface(linktype, 1_000_000, 0)
        for code, value in _options(order, body[8:]):
            if code == OPTION_IF_TSRESOL and value:
                exponent = value[0] & 0x7F
                base = 2 if value[0] & 0x80 else 10
                interface.units_per_second = base**exponent
            elif code == OPTION_IF_TSOFFSET and len(value) == 8:
                interface.offset_s = struct.unpack(order + "q", value)[0]
        return interface

    def _enhanced(
        self,
        order: str,
        block_type: int,
        body: bytes,
        interfaces: list[_Interface],
        start: int,
    ) -> CapturedPacket | None:
        if block_type == BLOCK_ENHANCED_PACKET:
            if len(body) < 20:
                raise PcapError(PcapProblem.BAD_BLOCK, "enhanced packet too short", start)
            index, high, low, captured, original = struct.unpack(order + "IIIII", body[:20])
        else:
            if len(body) < 20:
                raise PcapError(PcapProblem.BAD_BLOCK, "packet block too short", start)
            index, _drops, high, low, captured, original = struct.unpack(
                order + "HHIIII", body[:20]
            )
        padded = captured + (-captured % 4)
        if 20 + padded > len(body):
            raise PcapError(
                PcapProblem.BAD_BLOCK, f"{captured} captured octets in a shorter block", start
            )
        if index >= len(interfaces):
            raise PcapError(
                PcapProblem.UNKNOWN_INTERFACE, f"packet of interface {index}, none described", start
            )
        interface = interfaces[index]
        if interface.linktype not in LAPD_LINKTYPES:
            self.skipped[f"link type {interface.linktype}"] += 1
            return None
        flags = 0
        for code, value in _options(order, body[20 + padded :]):
            if code == OPTION_EPB_FLAGS and len(value) == 4:
                flags = struct.unpack(order + "I", value)[0]
        direction = {
            FLAGS_INBOUND: Direction.NETWORK_TO_USER,
            FLAGS_OUTBOUND: Direction.USER_TO_NETWORK,
        }.get(flags & FLAGS_DIRECTION_MASK)
        units = (high << 32) | low
        time_ns = (units * NANOSECONDS) // interface.units_per_second
        time_ns += interface.offset_s * NANOSECONDS
        data = body[20 : 20 + captured]
        return self._packet(interface.linktype, time_ns, data, original, direction, start)

    def _packet(
        self,
        linktype: int,
        time_ns: int,
        data: bytes,
        original: int,
        direction: Direction | None,
        start: int,
    ) -> CapturedPacket | None:
        if not 0 <= time_ns <= LATEST_TIME_NS:
            self.skipped["timestamp before 1970 or after 9999"] += 1
            return None
        if linktype == LINKTYPE_LINUX_LAPD:
            if len(data) < LINUX_LAPD_HEADER_OCTETS:
                self.skipped["LINUX_LAPD packet shorter than its pseudo-header"] += 1
                return None
            header, data = data[:LINUX_LAPD_HEADER_OCTETS], data[LINUX_LAPD_HEADER_OCTETS:]
            direction = linux_lapd_direction(header)
            original -= LINUX_LAPD_HEADER_OCTETS
        self.packets += 1
        return CapturedPacket(time_ns, data, direction, linktype, max(original, len(data)))


def _options(order: str, raw: bytes) -> Iterator[tuple[int, bytes]]:
    """(code, value) of each option until opt_endofopt or the end (a broken tail is ignored)."""
    offset = 0
    while offset + 4 <= len(raw):
        code, length = struct.unpack(order + "HH", raw[offset : offset + 4])
        if code == OPTION_END:
            return
        value = raw[offset + 4 : offset + 4 + length]
        if len(value) < length:
            return
        yield code, value
        offset += 4 + length + (-length % 4)


# -- writing ---------------------------------------------------------------------------------


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def _time_ns(time: float | int) -> int:
    return time if isinstance(time, int) else round(time * NANOSECONDS)


class PcapngWriter:
    """Writes LAPD frames to a pcapng stream with each frame's direction.

    ``LINKTYPE_LAPD`` puts the direction in ``epb_flags`` (inbound: network ->
    user); ``LINKTYPE_LINUX_LAPD`` in the pseudo-header as well. Timestamps in
    nanoseconds (``if_tsresol`` 9).
    """

    def __init__(
        self,
        stream: BinaryIO,
        linktype: int = LINKTYPE_LAPD,
        *,
        interface_name: str = "e1 d-channel",
        application: str = "edge112",
    ) -> None:
        if linktype not in LAPD_LINKTYPES:
            raise ValueError(f"link type {linktype} is not LAPD (203) or LINUX_LAPD (177)")
        self.stream = stream
        self.linktype = linktype
        self.frames = 0
        section = struct.pack("<IHHq", PCAPNG_BYTE_ORDER_MAGIC, 1, 0, -1)
        section += _option(OPTION_SHB_USERAPPL, application.encode()) + _option(OPTION_END, b"")
        interface = struct.pack("<HHI", linktype, 0, SNAPLEN)
        interface += _option(OPTION_IF_NAME, interface_name.encode())
        interface += _option(OPTION_IF_TSRESOL, bytes((9,))) + _option(OPTION_END, b"")
        stream.write(_block(PCAPNG_SECTION_HEADER, section) + _block(BLOCK_INTERFACE, interface))

    def write(
        self,
        frame: bytes,
        time: float | int,
        direction: Direction | None,
        *,
        comment: str | None = None,
    ) -> None:
        """One frame at ``time`` (epoch seconds, or nanoseconds as an int)."""
        data = bytes(frame)
        if self.linktype == LINKTYPE_LINUX_LAPD:
            if direction is None:
                raise ValueError("a LINUX_LAPD packet needs a direction")
            data = linux_lapd_header(direction) + data
        units = _time_ns(time)
        if not 0 <= units < 1 << 64:
            raise ValueError(f"time {time!r} does not fit a pcapng timestamp in nanoseconds")
        body = struct.pack("<IIIII", 0, units >> 32, units & 0xFFFFFFFF, len(data), len(data))
        body += data + bytes(-len(data) % 4)
        options = b""
        if direction is not None:
            flags = FLAGS_INBOUND if direction is Direction.NETWORK_TO_USER else FLAGS_OUTBOUND
            options += _option(OPTION_EPB_FLAGS, struct.pack("<I", flags))
        if comment:
            options += _option(OPTION_COMMENT, comment.encode())
        if options:
            body += options + _option(OPTION_END, b"")
        self.stream.write(_block(BLOCK_ENHANCED_PACKET, body))
        self.frames += 1


class PcapWriter:
    """Writes a classic pcap (microseconds, little-endian). With ``LINKTYPE_LAPD`` the
    direction is lost (a reader infers it from C/R); ``LINKTYPE_LINUX_LAPD`` keeps it."""

    def __init__(self, stream: BinaryIO, linktype: int = LINKTYPE_LAPD) -> None:
        if linktype not in LAPD_LINKTYPES:
            raise ValueError(f"link type {linktype} is not LAPD (203) or LINUX_LAPD (177)")
        self.stream = stream
        self.linktype = linktype
        self.frames = 0
        stream.write(struct.pack("<IHHiIII", PCAP_MAGIC_MICRO, 2, 4, 0, 0, SNAPLEN, linktype))

    def write(self, frame: bytes, time: float | int, direction: Direction | None = None) -> None:
        data = bytes(frame)
        if self.linktype == LINKTYPE_LINUX_LAPD:
            if direction is None:
                raise ValueError("a LINUX_LAPD packet needs a direction")
            data = linux_lapd_header(direction) + data
        micros = (_time_ns(time) + 500) // 1000  # the nearest microsecond
        seconds, fraction = divmod(micros, 1_000_000)
        if not 0 <= seconds < 1 << 32:
            raise ValueError(f"time {time!r} does not fit a classic pcap timestamp")
        self.stream.write(struct.pack("<IIII", seconds, fraction, len(data), len(data)) + data)
        self.frames += 1
