"""Where the simulated span's two directions go, and the loop that paces them.

Output URLs, the mirror of a span source's (``drivers/e1/transports.py``),
so that what ``edge112 sim e1`` writes, ``[[spans]]`` reads unchanged::

    tcp://HOST:PORT      listen there; every connected tap gets the stream from the moment
                         it connects (the gateway's tcp:// source connects to it)
    unix:///PATH         listen on a unix stream socket at PATH (a stale socket is replaced)
    file:///PATH, PATH   write a file (replayed by the gateway); a FIFO is written live

Formats, as the source reads them: ``e1`` (32-octet frames, 256,000 octets a
second), ``timeslot`` (TS16 only, 8,000 a second) or ``lapd`` (each good
frame as a 2-octet length and the frame).

``run_span`` asks the span for a block every 20 ms of line time and writes
it to both outputs, paced at ``speed`` times real time (0: as fast as the
outputs take it). Sockets first wait for a tap on both directions, so a
scripted call mix is not played to nobody. A slow or vanished client is
dropped after ``SEND_TIMEOUT_S``; the line goes on.
"""

from __future__ import annotations

import contextlib
import socket
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Protocol

from drivers.e1.lapd import Direction
from drivers.e1.sources import lapd_record
from drivers.simulated.e1_script import N2U, U2N, SpanCallRecord
from drivers.simulated.e1_span import BLOCK_S, SimulatedSpan, SpanBlock

SEND_TIMEOUT_S = 5.0  # a client that takes no data this long is dropped
ACCEPT_POLL_S = 0.1
TAIL_S = 1.0  # after the last call: this much more idle line, then stop (when until_done)


class OutputFormat(StrEnum):
    E1 = "e1"
    TIMESLOT = "timeslot"
    LAPD = "lapd"


class SpanOutput(Protocol):
    url: str

    def write(self, data: bytes) -> None: ...

    def ready(self) -> bool: ...

    def drop_clients(self) -> None: ...

    def close(self) -> None: ...


class FileOutput:
    """A file (or a FIFO, opened when a reader is there: ``open`` blocks until then)."""

    def __init__(self, url: str, path: str) -> None:
        self.url = url
        self.path = Path(path)
        live = self.path.exists() and stat.S_ISFIFO(self.path.stat().st_mode)
        self._file: BinaryIO = open(self.path, "wb", buffering=0 if live else -1)  # noqa: SIM115

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def ready(self) -> bool:
        return True

    def drop_clients(self) -> None:
        """A file has no clients to drop."""

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()


class ListenerOutput:
    """A listening socket; what is written goes to every connected client."""

    def __init__(self, url: str, listener: socket.socket, unix_path: Path | None = None) -> None:
        self.url = url
        self._listener = listener
        self._unix_path = unix_path
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.connections = 0  # clients accepted so far
        listener.settimeout(ACCEPT_POLL_S)
        self._thread = threading.Thread(
            target=self._accept, name=f"edge112-sim-e1-accept {url}", daemon=True
        )
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(SEND_TIMEOUT_S)
            if self._listener.family == socket.AF_INET:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._clients.append(client)
                self.connections += 1

    def write(self, data: bytes) -> None:
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            try:
                client.sendall(data)
            except OSError:
                self._drop(client)

    def ready(self) -> bool:
        with self._lock:
            return bool(self._clients)

    def drop_clients(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            _close_socket(client)

    def _drop(self, client: socket.socket) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)
        _close_socket(client)

    def close(self) -> None:
        self._closed.set()
        self.drop_clients()
        self._listener.close()
        self._thread.join(2 * ACCEPT_POLL_S + 1)
        if self._unix_path is not None:
            with contextlib.suppress(OSError):
                self._unix_path.unlink()


def _close_socket(client: socket.socket) -> None:
    with contextlib.suppress(OSError):
        client.shutdown(socket.SHUT_RDWR)
    client.close()


def open_output(url: str) -> SpanOutput:
    """The output ``url`` names (see the module docstring); ``OSError`` or ``ValueError``."""
    if url.startswith("tcp://"):
        parts = urllib.parse.urlsplit(url)
        if not parts.hostname or parts.port is None or parts.path not in ("", "/"):
            raise ValueError(f"{url}: expected tcp://HOST:PORT")
        family = socket.AF_INET6 if ":" in parts.hostname else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((parts.hostname, parts.port))
            listener.listen(4)
        except OSError:
            listener.close()
            raise
        return ListenerOutput(url, listener)
    if url.startswith("unix://"):
        path = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
        if not path.is_absolute():
            raise ValueError(f"{url}: expected unix:///ABSOLUTE/PATH")
        if path.exists() and stat.S_ISSOCK(path.stat().st_mode):
            path.unlink()  # a stale socket from an earlier run
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(path))
            listener.listen(4)
        except OSError:
            listener.close()
            raise
        return ListenerOutput(url, listener, path)
    if url.startswith("file://"):
        path_text = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
        if not path_text.startswith("/"):
            raise ValueError(f"{url}: expected file:///ABSOLUTE/PATH")
        return FileOutput(url, path_text)
    if "://" in url:
        raise ValueError(f"{url}: expected tcp://, unix://, file:// or a path")
    return FileOutput(url, url)


def block_data(block: SpanBlock, direction: Direction, stream_format: OutputFormat) -> bytes:
    """One direction of ``block`` in ``stream_format``."""
    if stream_format is OutputFormat.E1:
        return block.e1[direction]
    if stream_format is OutputFormat.TIMESLOT:
        return block.timeslot[direction]
    return b"".join(lapd_record(frame) for frame in block.frames[direction])


@dataclass
class RunReport:
    blocks: int = 0
    octets: dict[Direction, int] = field(default_factory=lambda: {N2U: 0, U2N: 0})
    line_s: float = 0.0
    stopped: bool = False  # by ``stop``, before the end


def run_span(
    span: SimulatedSpan,
    outputs: dict[Direction, SpanOutput],
    *,
    stream_format: OutputFormat = OutputFormat.E1,
    speed: float = 1.0,
    stop: threading.Event | None = None,
    until_done: bool = True,
    duration_s: float | None = None,
    wait_for_clients: bool = True,
    on_call_done: Callable[[SpanCallRecord], None] | None = None,
) -> RunReport:
    """Write ``span`` block by block to ``outputs`` until it is done (plus ``TAIL_S``), until
    ``duration_s`` of line, or until ``stop``; paced at ``speed`` (0: as fast as possible)."""
    stop = stop or threading.Event()
    report = RunReport()
    if wait_for_clients:
        while not all(output.ready() for output in outputs.values()):
            if stop.wait(ACCEPT_POLL_S):
                report.stopped = True
                return report
    span.on_call_done = on_call_done
    began = time.monotonic()
    done_at: float | None = None
    while not stop.is_set():
        if duration_s is not None and span.time_s >= duration_s - 1e-9:
            break
        if until_done and span.done:
            done_at = span.time_s if done_at is None else done_at
            if span.time_s >= done_at + TAIL_S:
                break
        if speed > 0:
            due = began + span.time_s / speed
            wait = due - time.monotonic()
            if wait > 0 and stop.wait(wait):
                break
        block = span.block()
        if block.disconnect:
            for output in outputs.values():
                output.drop_clients()
        for direction, output in outputs.items():
            data = block_data(block, direction, stream_format)
            if data:
                output.write(data)
                report.octets[direction] += len(data)
        report.blocks += 1
    report.stopped = stop.is_set()
    report.line_s = report.blocks * BLOCK_S
    return report
