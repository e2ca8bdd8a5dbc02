"""pcap and pcapng: our writers read back by our reader and by tshark, files written by
text2pcap read by ours, both byte orders and time resolutions, and damaged files refused
with a typed error after the packets before the damage."""

from __future__ import annotations

import contextlib
import io
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.e1.lapd import Direction, IFrame, SFrame, Supervisory, UFrame, Unnumbered, cr_bit
from drivers.e1.pcap import (
    LINKTYPE_LAPD,
    LINKTYPE_LINUX_LAPD,
    CapturedPacket,
    CaptureReader,
    PcapError,
    PcapngWriter,
    PcapProblem,
    PcapWriter,
    linux_lapd_direction,
    linux_lapd_header,
)
from drivers.e1.q931 import CallReference, MessageType, Q931Message
from drivers.e1.q931_ie import Cause
from tests.conftest import require_tool

N2U = Direction.NETWORK_TO_USER
U2N = Direction.USER_TO_NETWORK
T0_NS = 1_764_300_000_123_456_789


def sample_frames() -> list[tuple[bytes, int, Direction]]:
    """(frame, time in ns, direction): I frames both ways, an RR, a SABME and its UA."""
    disconnect = Q931Message(MessageType.DISCONNECT, CallReference(5), (Cause(16, 2),))
    release = Q931Message(MessageType.RELEASE, CallReference(5, 1))
    return [
        (UFrame(0, 1, 0, Unnumbered.SABME, True).to_bytes(), T0_NS, N2U),
        (UFrame(0, 1, 0, Unnumbered.UA, True).to_bytes(), T0_NS + 1_000, U2N),
        (
            IFrame(0, cr_bit(N2U, command=True), 0, 0, 0, False, disconnect.to_bytes()).to_bytes(),
            T0_NS + 2_000_000,
            N2U,
        ),
        (
            IFrame(0, cr_bit(U2N, command=True), 0, 0, 1, False, release.to_bytes()).to_bytes(),
            T0_NS + 3_000_001,
            U2N,
        ),
        (SFrame(0, 0, 0, Supervisory.RR, 1, False).to_bytes(), T0_NS + 4_000_000, N2U),
    ]


def read_all(data: bytes) -> tuple[list[CapturedPacket], CaptureReader]:
    reader = CaptureReader(io.BytesIO(data), "test")
    return list(reader), reader


@pytest.mark.parametrize("linktype", [LINKTYPE_LAPD, LINKTYPE_LINUX_LAPD])
def test_pcapng_round_trip_keeps_time_and_direction(linktype: int) -> None:
    out = io.BytesIO()
    writer = PcapngWriter(out, linktype)
    for frame, time_ns, direction in sample_frames():
        writer.write(frame, time_ns, direction)
    packets, reader = read_all(out.getvalue())
    assert reader.format == "pcapng"
    assert [(p.data, p.time_ns, p.direction) for p in packets] == sample_frames()
    assert {p.linktype for p in packets} == {linktype}
    assert not any(p.truncated for p in packets)


def test_classic_pcap_lapd_has_no_direction_linux_lapd_has() -> None:
    plain, linux = io.BytesIO(), io.BytesIO()
    plain_writer, linux_writer = PcapWriter(plain), PcapWriter(linux, LINKTYPE_LINUX_LAPD)
    for frame, time_ns, direction in sample_frames():
        plain_writer.write(frame, time_ns)
        linux_writer.write(frame, time_ns, direction)
    packets, reader = read_all(plain.getvalue())
    assert reader.format == "pcap"
    assert [p.direction for p in packets] == [None] * 5
    assert [p.time_ns for p in packets] == [(t + 500) // 1000 * 1000 for _, t, _ in sample_frames()]
    packets, _ = read_all(linux.getvalue())
    assert [(p.data, p.direction) for p in packets] == [(f, d) for f, _, d in sample_frames()]


def test_linux_lapd_pseudo_header_both_vantage_points() -> None:
    for direction in Direction:
        for network in (False, True):
            header = linux_lapd_header(direction, we_are_network=network)
            assert len(header) == 16
            assert linux_lapd_direction(header) is direction
    other_host = struct.pack(">HHH8sH", 3, 8445, 1, bytes(8), 0x30)
    assert linux_lapd_direction(other_host) is None


def big_endian_pcapng(resolution: int, offset_s: int, units: int) -> bytes:
    """A pcapng written by hand in big-endian order, with if_tsresol and if_tsoffset."""

    def block(kind: int, body: bytes) -> bytes:
        total = 12 + len(body)
        return struct.pack(">II", kind, total) + body + struct.pack(">I", total)

    def option(code: int, value: bytes) -> bytes:
        return struct.pack(">HH", code, len(value)) + value + bytes(-len(value) % 4)

    frame = SFrame(0, 1, 0, Supervisory.RR, 3, True).to_bytes()
    section = block(0x0A0D0D0A, struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1))
    ethernet = block(1, struct.pack(">HHI", 1, 0, 65535))  # another interface: skipped
    interface = block(
        1,
        struct.pack(">HHI", 203, 0, 65535)
        + option(9, bytes((resolution,)))
        + option(14, struct.pack(">q", offset_s))
        + option(0, b""),
    )
    packet = struct.pack(">IIIII", 1, units >> 32, units & 0xFFFFFFFF, len(frame), len(frame))
    packet += frame + bytes(-len(frame) % 4) + option(2, struct.pack(">I", 2)) + option(0, b"")
    other = struct.pack(">IIIII", 0, 0, 0, 4, 4) + b"\x00" * 4
    simple = block(3, struct.pack(">I", 4) + b"\x00" * 4)
    return section + ethernet + interface + block(6, other) + block(6, packet) + simple


def test_big_endian_pcapng_with_binary_resolution_and_offset() -> None:
    data = big_endian_pcapng(0x80 | 20, 100, 3 << 20)  # 2^-20 s units: 3 s, plus 100 s
    packets, reader = read_all(data)
    [packet] = packets
    assert packet.time_ns == 103 * 1_000_000_000
    assert packet.direction is U2N  # outbound
    assert reader.skipped == {"link type 1": 1, "simple packet (no timestamp)": 1}


def test_nanosecond_big_endian_classic_pcap() -> None:
    frame = UFrame(0, 1, 0, Unnumbered.DISC, True).to_bytes()
    header = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 203)
    record = struct.pack(">IIII", 1_764_300_000, 999_999_999, len(frame), len(frame) + 2)
    [packet], _ = read_all(header + record + frame)
    assert packet.time_ns == 1_764_300_000_999_999_999
    assert packet.truncated  # the original was longer than what the capture kept


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", PcapProblem.NOT_A_CAPTURE),
        (b"GIF89a" + bytes(40), PcapProblem.NOT_A_CAPTURE),
        (
            struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1),
            PcapProblem.UNSUPPORTED_LINKTYPE,
        ),
        (struct.pack("<IHH", 0xA1B2C3D4, 2, 4), PcapProblem.TRUNCATED),
        (struct.pack("<II", 0x0A0D0D0A, 28) + b"\x00\x00\x00\x00", PcapProblem.BAD_BLOCK),
    ],
)
def test_what_is_not_a_lapd_capture_is_refused_with_a_typed_error(
    data: bytes, problem: PcapProblem
) -> None:
    with pytest.raises(PcapError) as raised:
        read_all(data)
    assert raised.value.problem is problem


def pcapng_bytes(linktype: int = LINKTYPE_LAPD) -> bytes:
    out = io.BytesIO()
    writer = PcapngWriter(out, linktype)
    for frame, time_ns, direction in sample_frames():
        writer.write(frame, time_ns, direction)
    return out.getvalue()


def test_a_file_cut_short_yields_the_packets_before_the_cut_then_says_where() -> None:
    data = pcapng_bytes()
    reader = CaptureReader(io.BytesIO(data[:-10]), "cut.pcapng")
    packets = []
    with pytest.raises(PcapError) as raised:
        for packet in reader:
            packets.append(packet)
    assert len(packets) == 4
    assert raised.value.problem is PcapProblem.TRUNCATED
    assert "cut.pcapng" in str(raised.value)


def test_a_packet_of_an_interface_never_described() -> None:
    data = pcapng_bytes()
    section_length = struct.unpack("<I", data[4:8])[0]
    interface_length = struct.unpack("<I", data[section_length + 4 : section_length + 8])[0]
    packet = section_length + interface_length  # the first enhanced packet block
    assert struct.unpack("<I", data[packet : packet + 4])[0] == 6
    damaged = data[: packet + 8] + struct.pack("<I", 7) + data[packet + 12 :]  # interface 7
    with pytest.raises(PcapError) as raised:
        read_all(damaged)
    assert raised.value.problem is PcapProblem.UNKNOWN_INTERFACE


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_damaged_captures_raise_only_pcap_errors(data: st.DataObject) -> None:
    original = bytearray(pcapng_bytes() if data.draw(st.booleans()) else classic_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        index = data.draw(st.integers(0, len(original) - 1))
        original[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(original)))
    with contextlib.suppress(PcapError):
        read_all(bytes(original[:cut]))


def classic_bytes() -> bytes:
    out = io.BytesIO()
    writer = PcapWriter(out)
    for frame, time_ns, _ in sample_frames():
        writer.write(frame, time_ns)
    return out.getvalue()


def test_writers_refuse_what_they_cannot_write() -> None:
    with pytest.raises(ValueError, match="link type 1"):
        PcapngWriter(io.BytesIO(), 1)
    with pytest.raises(ValueError, match="needs a direction"):
        PcapngWriter(io.BytesIO(), LINKTYPE_LINUX_LAPD).write(b"\x00\x01\x03", 0, None)


# -- Wireshark --------------------------------------------------------------------------------

TSHARK_FIELDS = ("frame.time_epoch", "lapd.direction", "lapd.sapi", "lapd.cr", "lapd.control.n_s")


def tshark_rows(path: Path) -> list[list[str]]:
    tshark = require_tool("tshark")
    command = [tshark, "-r", str(path), "-T", "fields", "-E", "separator=\t"]
    for name in TSHARK_FIELDS:
        command += ["-e", name]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return [line.split("\t") for line in result.stdout.splitlines()]


@pytest.mark.parametrize("linktype", [LINKTYPE_LAPD, LINKTYPE_LINUX_LAPD])
def test_tshark_reads_our_pcapng_with_the_directions(tmp_path: Path, linktype: int) -> None:
    path = tmp_path / "ours.pcapng"
    path.write_bytes(pcapng_bytes(linktype))
    rows = tshark_rows(path)
    # lapd.direction: 0 user -> network, 1 network -> user (Wireshark's value string)
    expected_direction = {U2N: "0", N2U: "1"}
    assert [row[1] for row in rows] == [expected_direction[d] for _, _, d in sample_frames()]
    assert [int(row[0].replace(".", "")) for row in rows] == [t for _, t, _ in sample_frames()]
    assert [row[2:4] for row in rows] == [["0", str(f[0] >> 1 & 1)] for f, _, _ in sample_frames()]
    assert [row[4] for row in rows] == ["", "", "0", "0", ""]


def test_we_read_what_text2pcap_writes(tmp_path: Path) -> None:
    """text2pcap (Wireshark's own writer): classic pcap without directions, pcapng with the
    inbound/outbound flag it sets from an I or O before each packet (-D)."""
    text2pcap = require_tool("text2pcap")
    dump = tmp_path / "frames.txt"
    dump.write_text(
        "".join(
            f"{'I' if direction is N2U else 'O'} 000000 {frame.hex(' ')}\n"
            for frame, _, direction in sample_frames()
        )
    )
    for file_type in ("pcap", "pcapng"):
        path = tmp_path / f"theirs.{file_type}"
        subprocess.run(
            [text2pcap, "-q", "-D", "-F", file_type, "-l", "203", str(dump), str(path)],
            check=True,
        )
        packets, reader = read_all(path.read_bytes())
        assert reader.format == file_type
        assert [p.data for p in packets] == [frame for frame, _, _ in sample_frames()]
        directions = [d for _, _, d in sample_frames()]
        assert [p.direction for p in packets] == (
            directions if file_type == "pcapng" else [None] * 5
        )


def test_packets_stamped_outside_1970_to_9999_are_skipped_and_counted() -> None:
    for offset_s, units in ((0, 300_000_000_000 * 10**6), (-(10**12), 10**6)):  # 11476, -29719
        packets, reader = read_all(big_endian_pcapng(6, offset_s, units))
        assert packets == []
        assert reader.skipped["timestamp before 1970 or after 9999"] == 1
    with pytest.raises(ValueError, match="time"):
        PcapngWriter(io.BytesIO()).write(b"\x00\x01\x03", 2**64, N2U)
