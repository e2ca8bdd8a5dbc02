"""Span sources over real transports: files (paced and not), TCP and unix sockets on loopback,
a FIFO, a raw PTY as a serial port; formats, bit order, time order, typed errors, close."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.e1 import generator as gen
from drivers.e1.framing import E1Receiver
from drivers.e1.lapd import Direction
from drivers.e1.sources import (
    BitOrder,
    Chunk,
    SourceClosed,
    SourceEnded,
    SourceError,
    SourceFormatError,
    SourceLost,
    SourceOpenError,
    SourceUrlError,
    SpanSource,
    StreamFormat,
    TransportKind,
    lapd_record,
    parse_stream_url,
)
from drivers.simulated.links import open_linked_pty
from gateway.events import Event, LineStatus
from gateway.lines import Emit, LineDriverBase, SessionEnd
from tests.conftest import wait_until
from tests.drivers.conftest import PtyPair

N2U = Direction.NETWORK_TO_USER
U2N = Direction.USER_TO_NETWORK
E1_RATE = 256_000


def read_until(source: SpanSource, octets: int, timeout: float = 5.0) -> list[Chunk]:
    """Chunks until ``octets`` have come (fails the test after ``timeout``)."""
    chunks: list[Chunk] = []
    deadline = time.monotonic() + timeout
    while sum(len(chunk.data) for chunk in chunks) < octets:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {sum(len(c.data) for c in chunks)} of {octets} octets came"
        chunk = source.read(remaining)
        if chunk is not None:
            chunks.append(chunk)
    return chunks


def read_error(source: SpanSource, timeout: float = 5.0) -> BaseException:
    """Read until ``read`` raises; return what it raised."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            source.read(0.2)
        except Exception as exc:
            return exc
    raise AssertionError("read never failed")


def joined(chunks: list[Chunk], direction: Direction) -> bytes:
    return b"".join(chunk.data for chunk in chunks if chunk.direction is direction)


class Peer:
    """A listening socket on loopback (TCP, or unix stream/seqpacket) that serves one
    connection with ``script(connection)`` in a thread."""

    def __init__(self, family: int, kind: int = socket.SOCK_STREAM, path: Path | None = None):
        self.listener = socket.socket(family, kind)
        if family == socket.AF_UNIX:
            assert path is not None
            self.listener.bind(str(path))
            self.url = f"unix://{path}"
        else:
            self.listener.bind(("127.0.0.1", 0))
            self.url = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.listener.listen(1)
        self.listener.settimeout(5.0)
        self.thread: threading.Thread | None = None
        self.done = threading.Event()

    def serve(self, script: Callable[[socket.socket], object]) -> None:
        def run() -> None:
            connection, _ = self.listener.accept()
            with connection:
                script(connection)
            self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        if self.thread is not None:
            self.thread.join(5.0)
        self.listener.close()


@pytest.fixture
def tcp_peer() -> Iterator[Peer]:
    peer = Peer(socket.AF_INET)
    yield peer
    peer.close()


def no_reader_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("edge112-e1-source")]


# -- URLs and settings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "target"),
    [
        ("tcp://127.0.0.1:5000", TransportKind.TCP, "tcp://127.0.0.1:5000"),
        ("tcp://[::1]:5000", TransportKind.TCP, "tcp://[::1]:5000"),
        ("unix:///run/e1/ts16.sock", TransportKind.UNIX, "/run/e1/ts16.sock"),
        ("file:///srv/rec/a%20b.e1", TransportKind.FILE, "/srv/rec/a b.e1"),
        ("/dev/ttyUSB0", TransportKind.PATH, "/dev/ttyUSB0"),
        ("recordings/n2u.e1", TransportKind.PATH, "recordings/n2u.e1"),
        ("socket://10.0.0.5:4001", TransportKind.SERIAL, "socket://10.0.0.5:4001"),
        ("rfc2217://10.0.0.5:2217", TransportKind.SERIAL, "rfc2217://10.0.0.5:2217"),
        ("loop://", TransportKind.SERIAL, "loop://"),
        ("spy:///dev/ttyUSB0", TransportKind.SERIAL, "spy:///dev/ttyUSB0"),
        (
            "record://loop://?file=/tmp/x.jsonl",
            TransportKind.SERIAL,
            "record://loop://?file=/tmp/x.jsonl",
        ),
    ],
)
def test_each_url_is_told_apart(url: str, kind: TransportKind, target: str) -> None:
    parsed = parse_stream_url(url)
    assert (parsed.kind, parsed.target) == (kind, target)
    if kind is TransportKind.TCP:
        assert parsed.port == 5000 and parsed.host in ("127.0.0.1", "::1")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("tcp://host", "expected tcp://HOST:PORT"),
        ("tcp://host:5000/path", "expected tcp://HOST:PORT"),
        ("tcp://host:99999", "bad port"),
        ("unix://relative/path", "expected unix:///ABSOLUTE/PATH"),
        ("file://server/share/x.e1", "expected file:///ABSOLUTE/PATH"),
        ("ftp://host/x.e1", "unknown scheme ftp://"),
        ("", "non-empty"),
    ],
)
def test_bad_urls_are_refused_at_once(url: str, problem: str) -> None:
    with pytest.raises(SourceUrlError, match=problem):
        SpanSource(url)


def test_bad_settings_are_refused_at_once() -> None:
    with pytest.raises(SourceUrlError, match="format must be one of"):
        SpanSource("/x", format="pcap")
    with pytest.raises(SourceUrlError, match="bit_order must be one of"):
        SpanSource("/x", bit_order="big-endian")
    with pytest.raises(SourceUrlError, match="speed must be >= 0"):
        SpanSource("/x", speed=-1)
    with pytest.raises(SourceUrlError, match="at least one stream"):
        SpanSource(None, None)
    with pytest.raises(SourceClosed):
        SpanSource("/x").read(0)  # never opened
    assert issubclass(SourceUrlError, ValueError)
    assert all(issubclass(e, OSError) for e in (SourceOpenError, SourceLost, SourceEnded))


# -- files --------------------------------------------------------------------------------------


def test_a_replay_delivers_both_files_in_time_order(tmp_path: Path) -> None:
    n2u, u2n = gen.generate(2000, seed=1), gen.generate(1000, seed=2)  # 250 and 125 ms
    (tmp_path / "n2u.e1").write_bytes(n2u)
    (tmp_path / "u2n.e1").write_bytes(u2n)
    source = SpanSource(
        str(tmp_path / "n2u.e1"), f"file://{tmp_path}/u2n.e1", speed=0, start_time=1000.0
    )
    with source:
        chunks = list(source.chunks(timeout=5))
    assert joined(chunks, N2U) == n2u and joined(chunks, U2N) == u2n
    stamps = [chunk.timestamp for chunk in chunks]
    assert stamps == sorted(stamps)
    offset = {N2U: 0, U2N: 0}
    for chunk in chunks:  # line time: start + offset / 256,000
        assert chunk.timestamp == pytest.approx(1000.0 + offset[chunk.direction] / E1_RATE)
        offset[chunk.direction] += len(chunk.data)
    assert no_reader_threads()


def test_a_replay_is_paced_at_its_speed(tmp_path: Path) -> None:
    path = tmp_path / "line.e1"
    path.write_bytes(gen.generate(4000, seed=3))  # 0.5 s of line
    with SpanSource(str(path), speed=5.0) as source:  # 0.1 s
        began = time.monotonic()
        chunks = list(source.chunks(timeout=5))
        paced = time.monotonic() - began
    assert sum(len(c.data) for c in chunks) == 4000 * 32
    assert 0.08 <= paced < 3.0
    # Each piece is 20 ms of line.
    assert {len(c.data) for c in chunks[:-1]} == {E1_RATE // 50}
    with SpanSource(str(path), speed=0) as source:
        began = time.monotonic()
        assert sum(len(c.data) for c in source.chunks(timeout=5)) == 4000 * 32
        assert time.monotonic() - began < paced


def test_lsb_first_streams_are_turned_msb_first(tmp_path: Path) -> None:
    line = gen.generate(100, seed=4)
    (tmp_path / "lsb.e1").write_bytes(gen.reverse_bit_order(line))
    with SpanSource(str(tmp_path / "lsb.e1"), bit_order=BitOrder.LSB_FIRST, speed=0) as source:
        assert b"".join(c.data for c in source.chunks(5)) == line


def test_a_timeslot_stream_runs_at_64_kbit_s(tmp_path: Path) -> None:
    (tmp_path / "ts16.raw").write_bytes(bytes(range(256)) * 400)  # 12.8 s of timeslot
    with SpanSource(
        str(tmp_path / "ts16.raw"), format="timeslot", speed=0, start_time=0.0
    ) as source:
        chunks = list(source.chunks(5))
    assert b"".join(c.data for c in chunks) == bytes(range(256)) * 400
    assert chunks[1].timestamp == pytest.approx(len(chunks[0].data) / 8000)


def test_lapd_records_in_a_file(tmp_path: Path) -> None:
    frames = [bytes((0x00, 0x01, 0x7F)), bytes((0x02, 0x01)) + bytes(range(200))]
    (tmp_path / "d.lapd").write_bytes(b"".join(lapd_record(f) for f in frames))
    with SpanSource(None, str(tmp_path / "d.lapd"), format=StreamFormat.LAPD) as source:
        chunks = list(source.chunks(5))
    assert [(c.direction, c.data) for c in chunks] == [(U2N, f) for f in frames]
    assert chunks[0].timestamp == pytest.approx(time.time(), abs=5)
    with pytest.raises(ValueError, match=r"3\.\.1024 octets"):
        lapd_record(b"\x00\x01")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (lapd_record(b"\x00\x01\x03") + b"\x00\x09\x00\x01", "file ends inside a lapd record"),
        (b"\x00\x00", "lapd record of 0 octets"),
        (b"\x08\x00" + bytes(2048), "lapd record of 2048 octets"),
    ],
)
def test_a_broken_lapd_file_says_what_is_wrong(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    (tmp_path / "bad.lapd").write_bytes(content)
    with SpanSource(str(tmp_path / "bad.lapd"), format="lapd") as source:
        error = read_error(source)
    assert isinstance(error, SourceFormatError) and problem in str(error)
    assert error.direction is N2U and str(error).startswith("network-to-user stream ")


def test_what_cannot_be_opened_is_named(tmp_path: Path) -> None:
    (tmp_path / "n2u.e1").write_bytes(b"x")
    source = SpanSource(str(tmp_path / "n2u.e1"), str(tmp_path / "missing.e1"))
    with pytest.raises(SourceOpenError) as caught:
        source.open()
    error = caught.value
    assert error.direction is U2N and error.url == str(tmp_path / "missing.e1")
    assert str(error) == f"user-to-network stream {tmp_path}/missing.e1: no such file or directory"
    assert no_reader_threads()  # the stream that did open was closed again
    for odd in (str(tmp_path), "/dev/null"):
        with pytest.raises(SourceOpenError, match="not a regular file, a FIFO or a terminal"):
            SpanSource(odd).open()


def test_a_replay_through_the_receiver_is_aligned(tmp_path: Path) -> None:
    n2u, u2n = gen.generate(800, crc4=True, seed=5), gen.generate(800, crc4=True, seed=6)
    (tmp_path / "n2u.e1").write_bytes(b"\x55" * 13 + n2u)
    (tmp_path / "u2n.e1").write_bytes(u2n)
    receivers = {N2U: E1Receiver(crc4=True), U2N: E1Receiver(crc4=True)}
    frames = {N2U: b"", U2N: b""}
    with SpanSource(str(tmp_path / "n2u.e1"), str(tmp_path / "u2n.e1"), speed=0) as source:
        for chunk in source.chunks(5):
            frames[chunk.direction] += receivers[chunk.direction].feed(chunk.data).frames
    assert frames == {N2U: n2u, U2N: u2n}
    assert all(r.state.ok and r.state.multiframe_aligned for r in receivers.values())


# -- sockets ------------------------------------------------------------------------------------


def test_tcp_delivers_what_the_far_end_sends_then_reports_it_gone(tcp_peer: Peer) -> None:
    line = gen.generate(400, seed=7)
    send_rest = threading.Event()

    def script(connection: socket.socket) -> None:
        connection.sendall(line[:5000])
        send_rest.wait(5)
        for start in range(5000, len(line), 777):
            connection.sendall(line[start : start + 777])

    tcp_peer.serve(script)
    with SpanSource(tcp_peer.url) as source:
        first = read_until(source, 5000)
        before = time.time()
        assert source.read(0.05) is None  # nothing more yet
        send_rest.set()
        rest = read_until(source, len(line) - 5000)
        error = read_error(source)
    assert joined(first + rest, N2U) == line
    # Live: stamped on arrival less the chunk's duration at 256,000 octets a second.
    for chunk in rest:
        assert before - 1.0 <= chunk.timestamp + len(chunk.data) / E1_RATE <= time.time()
    assert isinstance(error, SourceLost)
    assert str(error) == f"network-to-user stream {tcp_peer.url}: closed by the far end"


def test_nobody_listening_is_an_open_error(tcp_peer: Peer) -> None:
    url = tcp_peer.url
    tcp_peer.listener.close()
    with pytest.raises(SourceOpenError, match=f"network-to-user stream {url}: connection refused"):
        SpanSource(url).open()


def test_lapd_over_tcp_one_byte_at_a_time(tcp_peer: Peer) -> None:
    frames = [bytes((0x02, 0x01, n)) + bytes(n) for n in range(30)]
    stream = b"".join(lapd_record(f) for f in frames)

    def script(connection: socket.socket) -> None:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index in range(len(stream)):
            connection.sendall(stream[index : index + 1])

    tcp_peer.serve(script)
    with SpanSource(None, tcp_peer.url, format="lapd") as source:
        chunks = read_until(source, sum(len(f) for f in frames))
    assert [c.data for c in chunks] == frames and {c.direction for c in chunks} == {U2N}


def test_a_pyserial_url_works_too(tcp_peer: Peer) -> None:
    opened = threading.Event()  # pyserial's socket:// drops what came before open() ended

    def script(connection: socket.socket) -> None:
        opened.wait(5)
        connection.sendall(b"\x7e" * 4000)

    tcp_peer.serve(script)
    with SpanSource(tcp_peer.url.replace("tcp://", "socket://"), format="timeslot") as source:
        opened.set()
        assert joined(read_until(source, 4000), N2U) == b"\x7e" * 4000


def test_unix_stream_and_seqpacket_sockets(tmp_path: Path) -> None:
    stream_peer = Peer(socket.AF_UNIX, socket.SOCK_STREAM, tmp_path / "e1.sock")
    packet_peer = Peer(socket.AF_UNIX, socket.SOCK_SEQPACKET, tmp_path / "d.sock")
    line = gen.generate(100, seed=8)
    frames = [bytes((0x00, 0x01, 0x7F)), bytes((0x02, 0x01, 0x03, 0x08))]
    try:
        stream_peer.serve(lambda connection: connection.sendall(line))
        packet_peer.serve(lambda connection: [connection.send(f) for f in frames])
        with SpanSource(stream_peer.url) as source:
            assert joined(read_until(source, len(line)), N2U) == line
        # SOCK_SEQPACKET (as osmo-e1d's HDLC timeslot sockets): one message, one frame.
        with SpanSource(packet_peer.url, format="lapd") as source:
            assert [c.data for c in read_until(source, 7)] == frames
    finally:
        stream_peer.close()
        packet_peer.close()


# -- serial port, FIFO --------------------------------------------------------------------------


def test_a_terminal_path_is_a_serial_port(pty_pair: PtyPair) -> None:
    d_channel = bytes(range(256)) * 8
    with SpanSource(pty_pair.path, format="timeslot", bit_order="lsb-first") as source:
        for start in range(0, len(d_channel), 100):
            os.write(pty_pair.master, d_channel[start : start + 100])
        chunks = read_until(source, len(d_channel))
        assert joined(chunks, N2U) == gen.reverse_bit_order(d_channel)
        os.close(pty_pair.master)  # the card goes away
        pty_pair.master = -1
        error = read_error(source)
    assert isinstance(error, SourceLost) and error.url == pty_pair.path


def test_a_fifo_is_read_live_while_writers_come_and_go(tmp_path: Path) -> None:
    path = tmp_path / "ts16.fifo"
    os.mkfifo(path)
    with SpanSource(str(path), format="timeslot") as source:
        for text in (b"first writer", b"second writer"):
            with open(path, "wb") as writer:
                writer.write(text)
            assert joined(read_until(source, len(text)), N2U) == text


# -- lifecycle ------------------------------------------------------------------------------------


def test_close_from_another_thread_ends_a_blocked_read(tcp_peer: Peer) -> None:
    tcp_peer.serve(lambda connection: tcp_peer.done.wait(5))
    source = SpanSource(tcp_peer.url).open()
    outcome: list[BaseException] = []

    def reader() -> None:
        try:
            source.read(None)
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    began = time.monotonic()
    source.close()
    thread.join(5)
    tcp_peer.done.set()
    assert not thread.is_alive() and time.monotonic() - began < 3.0
    assert isinstance(outcome[0], SourceClosed)
    assert no_reader_threads()


def test_reopening_starts_the_replay_again(tmp_path: Path) -> None:
    line = gen.generate(50, seed=9)
    (tmp_path / "a.e1").write_bytes(line)
    source = SpanSource(str(tmp_path / "a.e1"), speed=0)
    for _ in range(2):  # as the driver's worker does after a backoff
        source.open()
        assert b"".join(c.data for c in source.chunks(5)) == line
        with pytest.raises(SourceEnded, match="end of file"):
            source.read(1)
        source.close()
    with pytest.raises(SourceClosed):
        source.read(0)
    with contextlib.suppress(SourceClosed):
        source.close()  # twice is fine


def test_a_serial_port_by_its_by_id_link(tmp_path: Path) -> None:
    master, slave, _, link = open_linked_pty(tmp_path / "serial" / "by-id" / "usb-E1_card-if00")
    try:
        with SpanSource(str(link), format="lapd") as source:
            os.write(master, lapd_record(b"\x00\x01\x7f") + lapd_record(b"\x02\x01\x01\x00"))
            chunks = read_until(source, 7)
        assert [c.data for c in chunks] == [b"\x00\x01\x7f", b"\x02\x01\x01\x00"]
    finally:
        os.close(master)
        os.close(slave)


class TapDriver(LineDriverBase[SpanSource]):
    """The least an E1 driver does with a source: open it, frame what it reads, say why it
    stopped; the base reopens it with backoff."""

    FAMILY = "e1"
    SOURCE_KIND = "span"

    def __init__(self, source: SpanSource, emit: Emit) -> None:
        super().__init__("span0", emit, reopen_backoff_s=0.05)
        self.source = source
        self.receiver = E1Receiver()

    def _open_source(self) -> SpanSource:
        self.receiver = E1Receiver()
        return self.source.open()

    def _close_source(self, source: SpanSource) -> None:
        source.close()

    def _serve(self, source: SpanSource) -> SessionEnd:
        while not self._stopping.is_set():
            try:
                chunk = source.read(0.2)
            except SourceError as exc:
                return SessionEnd(str(exc), came_up=self.receiver.state.counters.frames > 0)
            self._note_progress()
            if chunk is not None:
                self.receiver.feed(chunk.data)
                state = self.receiver.state
                self._report_health("down" if state.alarm else "up", state.detail)
        return SessionEnd("driver stopped")


def test_the_line_driver_base_reopens_a_lost_source(tcp_peer: Peer) -> None:
    line = gen.generate(200, seed=10)
    sessions = threading.Semaphore(0)

    def serve_twice() -> None:
        for _ in range(2):
            connection, _ = tcp_peer.listener.accept()
            with connection:
                connection.sendall(line)
            sessions.release()

    server = threading.Thread(target=serve_twice, daemon=True)
    server.start()
    events: list[Event] = []
    driver = TapDriver(SpanSource(tcp_peer.url), events.append)
    driver.start()

    def statuses() -> list[tuple[str, str]]:
        return [(e.state, e.detail) for e in list(events) if isinstance(e, LineStatus)]

    try:
        lost = f"network-to-user stream {tcp_peer.url}: closed by the far end"
        wait_until(
            lambda: statuses().count(("down", lost)) >= 2,
            what="the source lost, reopened and lost again",
        )
    finally:
        driver.stop()
        server.join(5)
    details = statuses()
    assert details[:2] == [("up", "frame aligned"), ("down", lost)]
    assert details.count(("up", "frame aligned")) == 2
    assert driver.health().sessions >= 2
