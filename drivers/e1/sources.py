"""Span sources: the two receive streams of a tapped E1 span, each read from a URL.

A passive tap sees a span as two receive streams, network -> user (``n2u``)
and user -> network (``u2n``). ``SpanSource`` opens both, reads each in a
thread of its own and hands the E1 driver's worker ``Chunk(direction,
timestamp, data)`` in time order::

    SpanSource(n2u_url, u2n_url, format=...).open()
        reader thread per stream: transport -> bit order -> format -> bounded queue
    read(timeout) -> Chunk | None        the earliest head of the two queues
    close()                              from any thread: a read in progress returns

Stream URLs (grammar in ``transports.py``): ``tcp://HOST:PORT``,
``unix:///PATH`` (stream or seqpacket), ``file:///PATH`` (replayed), any
pyserial URL (``socket://``, ``rfc2217://``, ``record://``, ...: a card that
hands the D-channel over a serial port), or a bare path: a regular file is
replayed, a terminal is a serial port, a FIFO is read live (e.g. fed by
osmo-e1d's ``osmo-e1d-pipe``, which copies one timeslot to stdout).

Stream formats (``StreamFormat``)::

    e1        raw line octets: 32 per frame, 256,000 a second; E1Receiver frames them
    timeslot  one timeslot's octets, 8,000 a second: e.g. TS16's HDLC bit stream
    lapd      deframed LAPD frames (address, control, information; no flags, no FCS),
              each as a 2-octet big-endian length and the frame; over SOCK_SEQPACKET
              one message is one frame. ``lapd_record`` writes one.

Bit order (``e1`` and ``timeslot``): ``msb-first`` (default) when the first
line bit is each octet's most significant bit, as a framer hands over a
timeslot; ``lsb-first`` streams are reversed octet by octet as they are
read, so everything after the source sees msb-first line order.

Timestamps (seconds since the epoch, of a chunk's first octet): a replay
uses line time, ``start_time`` (the wall clock at open unless given) plus
the octet's offset at the format's rate, and is paced so that an octet is
handed over when a real line would have delivered it, times ``speed``
(``speed=0``: as fast as possible, with the same timestamps). A live stream
is stamped on arrival less the chunk's duration at line rate (its last octet
just arrived). ``lapd`` frames carry no line time: they are stamped as read
(and a ``lapd`` replay is not paced).

Errors are typed and name the stream (direction and URL): ``SourceUrlError``
(a ``ValueError``: bad configuration, raised at construction) and, all
``OSError`` so the line-driver base treats them as expected, ``SourceOpenError``,
``SourceLost`` (a live stream failed or its far end closed it),
``SourceFormatError`` (a broken ``lapd`` record), ``SourceEnded`` (every
replayed file has been read) and ``SourceClosed`` (read after ``close``).

Threads: one reader per stream owns its transport; ``read`` is for one
consumer thread; ``close`` may be called from any thread.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Iterator
from enum import StrEnum
from typing import NamedTuple

import serial

from drivers.e1.lapd import Direction
from drivers.e1.transports import (
    DEFAULT_BAUDRATE,
    POLL_S,
    ByteTransport,
    SourceUrlError,
    StreamUrl,
    TransportKind,
    open_transport,
    parse_stream_url,
)

JOIN_TIMEOUT_S = 2.0  # close() waits this long for each reader
QUEUE_CHUNKS = 64  # per stream; a full queue holds its reader back (backpressure)
LAPD_LENGTH_OCTETS = 2
LAPD_MIN_FRAME_OCTETS = 3  # address 2 + control 1
LAPD_MAX_FRAME_OCTETS = 1024  # as cython_ext.hdlc's default limit (LAPD needs 2 + 2 + 260)

__all__ = [  # with what transports.py lends: a URL's parts, its errors
    "BitOrder",
    "Chunk",
    "SourceClosed",
    "SourceEnded",
    "SourceError",
    "SourceFormatError",
    "SourceLost",
    "SourceOpenError",
    "SourceUrlError",
    "SpanSource",
    "StreamFormat",
    "StreamUrl",
    "TransportKind",
    "lapd_record",
    "parse_stream_url",
]

_REVERSED = bytes(int(f"{value:08b}"[::-1], 2) for value in range(256))


class StreamFormat(StrEnum):
    E1 = "e1"
    TIMESLOT = "timeslot"
    LAPD = "lapd"

    @property
    def octets_per_second(self) -> int | None:
        """Line rate of a raw format; None for lapd (frames, not a line)."""
        return {StreamFormat.E1: 256_000, StreamFormat.TIMESLOT: 8000}.get(self)


class BitOrder(StrEnum):
    MSB_FIRST = "msb-first"
    LSB_FIRST = "lsb-first"


_DIRECTION_NAMES = {
    Direction.NETWORK_TO_USER: "network-to-user",
    Direction.USER_TO_NETWORK: "user-to-network",
}


class Chunk(NamedTuple):
    """Octets (``e1``, ``timeslot``) or one frame (``lapd``) from one direction."""

    direction: Direction
    timestamp: float  # of the first octet, seconds since the epoch
    data: bytes


# -- errors ---------------------------------------------------------------------------------


class SourceError(OSError):
    """A stream failed; says which one (``direction``, ``url``) and what happened."""

    def __new__(cls, *args: object, **kwargs: object) -> SourceError:
        return super().__new__(cls)  # not OSError's (errno, strerror, filename) reading of args

    def __init__(self, direction: Direction | None, url: str, problem: str) -> None:
        self.direction = direction
        self.url = url
        self.problem = problem
        where = f"{_DIRECTION_NAMES[direction]} stream {url}" if direction else f"stream {url}"
        super().__init__(f"{where}: {problem}")
        self.args = (f"{where}: {problem}",)  # OSError keeps what __new__ was given


class SourceOpenError(SourceError):
    """The stream could not be opened (no such file, connection refused, ...)."""


class SourceLost(SourceError):
    """A live stream failed or was closed by its far end."""


class SourceFormatError(SourceError):
    """The stream's octets break its format (a ``lapd`` record with a bad length)."""


class SourceEnded(SourceError):
    """Every replayed file has been read to its end."""


class SourceClosed(SourceError):
    """``read`` after ``close``."""


def lapd_record(frame: bytes) -> bytes:
    """One ``lapd`` stream record: the 2-octet big-endian length, then the frame."""
    if not LAPD_MIN_FRAME_OCTETS <= len(frame) <= LAPD_MAX_FRAME_OCTETS:
        raise ValueError(
            f"a LAPD frame has {LAPD_MIN_FRAME_OCTETS}..{LAPD_MAX_FRAME_OCTETS} octets, "
            f"got {len(frame)}"
        )
    return len(frame).to_bytes(LAPD_LENGTH_OCTETS, "big") + frame


# -- one stream ------------------------------------------------------------------------------


class _Stream:
    """One direction: opens its transport, and its reader thread fills ``queue``."""

    def __init__(
        self,
        direction: Direction,
        url: StreamUrl,
        source: SpanSource,
    ) -> None:
        self.direction = direction
        self.url = url
        self._source = source
        self.queue: collections.deque[Chunk | SourceError] = collections.deque()
        self.finished = False  # its end (or failure) has been taken from the queue
        self._stop = threading.Event()
        self._transport: ByteTransport | None = None
        self._thread: threading.Thread | None = None
        self.replay = False  # a file replayed: its next chunk's time is known only once read
        self._lapd_buffer = bytearray()
        self._offset = 0  # octets handed over (line time of a replay)

    def error(self, kind: type[SourceError], problem: str) -> SourceError:
        return kind(self.direction, self.url.url, problem)

    # opening --------------------------------------------------------------------------

    def open(self) -> None:
        try:
            self._transport = open_transport(
                self.url,
                rate=self._source.format.octets_per_second,
                speed=self._source.speed,
                baudrate=self._source.baudrate,
                stop=self._stop,
            )
            self.replay = not self._transport.live
        except SourceError:
            raise
        except (OSError, serial.SerialException, ValueError) as exc:
            raise self.error(SourceOpenError, _describe(exc)) from exc
        self._thread = threading.Thread(
            target=self._run, name=f"edge112-e1-source-{self.direction.value}", daemon=True
        )
        self._thread.start()

    # reading --------------------------------------------------------------------------

    def _run(self) -> None:
        transport = self._transport
        assert transport is not None
        try:
            while not self._stop.is_set():
                data = transport.read()
                arrived = time.time()
                if data is None:
                    continue
                if not data:  # only a replay ends
                    if self._lapd_buffer:
                        raise self.error(
                            SourceFormatError,
                            f"file ends inside a lapd record ({len(self._lapd_buffer)} octets)",
                        )
                    raise self.error(SourceEnded, "end of file")
                for chunk in self._chunks(data, arrived, transport):
                    if not self._put(chunk):
                        return
        except SourceError as exc:
            self._put(exc)
        except (OSError, ValueError) as exc:
            if not self._stop.is_set():
                self._put(self.error(SourceLost, _describe(exc)))

    def _chunks(self, data: bytes, arrived: float, transport: ByteTransport) -> Iterator[Chunk]:
        source = self._source
        rate = source.format.octets_per_second
        if rate is not None:  # e1, timeslot
            if source.bit_order is BitOrder.LSB_FIRST:
                data = data.translate(_REVERSED)
            if transport.live:
                stamp = arrived - len(data) / rate
            else:
                stamp = source.start_time_s + self._offset / rate
            self._offset += len(data)
            yield Chunk(self.direction, stamp, data)
            return
        if transport.messages:  # lapd over SOCK_SEQPACKET: one message, one frame
            self._check_lapd_length(len(data))
            yield Chunk(self.direction, arrived, data)
            return
        buffer = self._lapd_buffer
        buffer += data
        while len(buffer) >= LAPD_LENGTH_OCTETS:
            length = int.from_bytes(buffer[:LAPD_LENGTH_OCTETS], "big")
            self._check_lapd_length(length)
            if len(buffer) < LAPD_LENGTH_OCTETS + length:
                break
            frame = bytes(buffer[LAPD_LENGTH_OCTETS : LAPD_LENGTH_OCTETS + length])
            del buffer[: LAPD_LENGTH_OCTETS + length]
            yield Chunk(self.direction, arrived, frame)

    def _check_lapd_length(self, length: int) -> None:
        if not LAPD_MIN_FRAME_OCTETS <= length <= LAPD_MAX_FRAME_OCTETS:
            raise self.error(
                SourceFormatError,
                f"lapd record of {length} octets (a frame has "
                f"{LAPD_MIN_FRAME_OCTETS}..{LAPD_MAX_FRAME_OCTETS})",
            )

    def _put(self, item: Chunk | SourceError) -> bool:
        """Queue ``item``, waiting while the queue is full; False once stopping."""
        condition = self._source._condition
        with condition:
            while len(self.queue) >= QUEUE_CHUNKS and not self._stop.is_set():
                condition.wait(POLL_S)
            if self._stop.is_set():
                return False
            self.queue.append(item)
            condition.notify_all()
        return True

    # closing --------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        transport = self._transport
        if transport is not None:
            with contextlib.suppress(Exception):
                transport.close()

    def join(self, timeout: float) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


# -- the span ----------------------------------------------------------------------------------


class SpanSource:
    """Both receive streams of one span; ``open``, ``read(timeout)``, ``close``."""

    def __init__(
        self,
        network_to_user: str | None,
        user_to_network: str | None = None,
        *,
        format: StreamFormat | str = StreamFormat.E1,
        bit_order: BitOrder | str = BitOrder.MSB_FIRST,
        speed: float = 1.0,
        start_time: float | None = None,
        baudrate: int = DEFAULT_BAUDRATE,
    ) -> None:
        try:
            self.format = StreamFormat(format)
        except ValueError:
            raise SourceUrlError(
                f"format must be one of {[f.value for f in StreamFormat]}, got {format!r}"
            ) from None
        try:
            self.bit_order = BitOrder(bit_order)
        except ValueError:
            raise SourceUrlError(
                f"bit_order must be one of {[b.value for b in BitOrder]}, got {bit_order!r}"
            ) from None
        if not speed >= 0:
            raise SourceUrlError(f"speed must be >= 0 (0: as fast as possible), got {speed!r}")
        self.speed = float(speed)
        self.start_time = start_time
        self.baudrate = baudrate
        urls = {
            Direction.NETWORK_TO_USER: network_to_user,
            Direction.USER_TO_NETWORK: user_to_network,
        }
        self.urls = {d: parse_stream_url(u) for d, u in urls.items() if u is not None}
        if not self.urls:
            raise SourceUrlError("a span needs at least one stream URL")
        self.start_time_s = 0.0
        self._condition = threading.Condition()
        self._streams: list[_Stream] = []
        self._last_end: SourceEnded | None = None
        self._closed = True

    @property
    def directions(self) -> tuple[Direction, ...]:
        return tuple(self.urls)

    def __enter__(self) -> SpanSource:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> SpanSource:
        """Open every stream (all or none) and start reading; reopening after close is fine."""
        self.close()
        self._last_end = None
        self.start_time_s = time.time() if self.start_time is None else self.start_time
        streams = [_Stream(direction, url, self) for direction, url in self.urls.items()]
        opened: list[_Stream] = []
        try:
            for stream in streams:
                stream.open()
                opened.append(stream)
        except BaseException:
            for stream in opened:
                stream.stop()
            for stream in opened:
                stream.join(JOIN_TIMEOUT_S)
            raise
        with self._condition:
            self._streams = streams
            self._closed = False
        return self

    def read(self, timeout: float | None = None) -> Chunk | None:
        """The next chunk in time order; None if none within ``timeout`` (None: wait)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while True:
                if self._closed:
                    raise SourceClosed(None, self._describe_urls(), "source closed")
                item = self._take()
                if item is not None:
                    self._condition.notify_all()  # a reader may wait for room
                    return item
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._condition.wait(remaining)

    def _take(self) -> Chunk | None:
        """The earliest head, or None when there is none yet or a replay's next is unknown."""
        while True:
            if self._streams and all(stream.finished for stream in self._streams):
                raise self._ended()
            heads: list[tuple[float, _Stream]] = []
            for stream in self._streams:
                if stream.finished:
                    continue
                if not stream.queue:
                    if stream.replay:
                        return None  # its next chunk may be earlier than any head
                    continue
                head = stream.queue[0]
                if isinstance(head, SourceError):
                    stream.queue.popleft()
                    stream.finished = True
                    if isinstance(head, SourceEnded):
                        self._last_end = head
                        break  # look again without it
                    raise head
                heads.append((head.timestamp, stream))
            else:
                if not heads:
                    return None
                _, earliest = min(heads, key=lambda pair: pair[0])
                chunk = earliest.queue.popleft()
                assert isinstance(chunk, Chunk)
                return chunk

    def _ended(self) -> SourceEnded:
        if len(self._streams) == 1 and self._last_end is not None:
            return self._last_end
        return SourceEnded(None, self._describe_urls(), "every stream has ended")

    def chunks(self, timeout: float | None = None) -> Iterator[Chunk]:
        """Every chunk until the replay ends (``SourceEnded`` ends the iteration)."""
        while True:
            try:
                chunk = self.read(timeout)
            except SourceEnded:
                return
            if chunk is not None:
                yield chunk

    def close(self) -> None:
        """Stop the readers and close the transports; a ``read`` in progress raises."""
        with self._condition:
            streams, self._streams = self._streams, []
            self._closed = True
            self._condition.notify_all()
        for stream in streams:
            stream.stop()
        for stream in streams:
            stream.join(JOIN_TIMEOUT_S)

    def _describe_urls(self) -> str:
        return " + ".join(url.url for url in self.urls.values())

    def __repr__(self) -> str:
        streams = ", ".join(f"{d.value}={u.url}" for d, u in self.urls.items())
        return f"SpanSource({streams}, format={self.format.value})"
