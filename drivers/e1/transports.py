"""Byte pipes a span stream reads from, each opened from a URL (the layer under ``sources``).

URL grammar, told apart in this order (pyserial's "every transport is a URL")::

    tcp://HOST:PORT      a TCP connection to a tap or capture server ([v6] in brackets)
    unix:///PATH         a unix-domain socket: SOCK_STREAM, or SOCK_SEQPACKET when the
                         listener is one (connect() says EPROTOTYPE; each read is then
                         one message)
    file:///PATH         a recording, replayed (percent-encoding allowed)
    SCHEME://...         any other scheme with a pyserial handler: socket://, rfc2217://,
                         loop://, spy://, hwgrep://, and edge112's record://; opened with
                         ``serial.serial_for_url`` (an unknown scheme is refused at once).
                         pyserial's socket:// drops what arrives before it is open and
                         reads a byte per call: for a raw E1 over TCP use tcp://
    PATH                 no scheme: what is there decides, when opened: a regular file is
                         replayed, a terminal (/dev/ttyUSB0, /dev/serial/by-id/..., a PTY)
                         is a serial port opened exclusively, a FIFO is read live

A transport's ``read()`` returns the octets that came (at most
``READ_OCTETS``), None when nothing came within ``POLL_S`` (so its reader
can check whether to stop), and b"" only at the end of a replay; a live
transport raises ``OSError`` when it fails or its far end closes it.
``close()`` may be called from another thread and makes a ``read`` in
progress return or raise at once. A replay is paced: the octets up to
offset ``n`` are handed over ``n / (rate * speed)`` s after opening
(``speed`` 0 or no rate: as fast as the file reads).
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import re
import select
import socket
import stat
import threading
import time
import urllib.parse
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, cast

import serial

OPEN_TIMEOUT_S = 5.0  # a TCP or unix connect
POLL_S = 0.1  # a read blocks this long at most
READ_OCTETS = 65536  # one read from a live transport, at most
REPLAY_CHUNK_S = 0.02  # a paced replay hands over 20 ms of line at a time
REPLAY_BLOCK_OCTETS = 65536  # an unpaced replay reads this much at a time
DEFAULT_BAUDRATE = 115200  # a serial port's; a PTY or a network URL ignores it

_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

if "drivers.urlhandler" not in serial.protocol_handler_packages:  # record://
    serial.protocol_handler_packages.append("drivers.urlhandler")


class TransportKind(StrEnum):
    TCP = "tcp"
    UNIX = "unix"
    FILE = "file"
    SERIAL = "serial"  # a pyserial URL
    PATH = "path"  # no scheme: a file, a terminal or a FIFO, decided when opened


class SourceUrlError(ValueError):
    """A stream URL or setting that cannot work: a configuration error."""


@dataclass(frozen=True)
class StreamUrl:
    """A parsed stream URL: the transport and what it points at."""

    url: str
    kind: TransportKind
    target: str  # a path, or the pyserial URL
    host: str = ""
    port: int = 0


def parse_stream_url(url: str) -> StreamUrl:
    """Tell a stream URL's transport apart (see the module docstring) and check its form."""
    if not isinstance(url, str) or not url.strip():
        raise SourceUrlError(f"a stream URL must be a non-empty string, got {url!r}")
    match = _URL_SCHEME.match(url)
    if match is None:
        return StreamUrl(url, TransportKind.PATH, url)
    scheme = match.group(1).lower()
    if scheme == "tcp":
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port
        except ValueError as exc:
            raise SourceUrlError(f"{url}: bad port ({exc})") from None
        if not parts.hostname or port is None or parts.path not in ("", "/") or parts.query:
            raise SourceUrlError(f"{url}: expected tcp://HOST:PORT")
        return StreamUrl(url, TransportKind.TCP, url, parts.hostname, port)
    if scheme in ("unix", "file"):
        parts = urllib.parse.urlsplit(url)
        path = urllib.parse.unquote(parts.path)
        if parts.netloc or not path.startswith("/") or parts.query:
            raise SourceUrlError(f"{url}: expected {scheme}:///ABSOLUTE/PATH")
        return StreamUrl(url, TransportKind(scheme), path)
    for package in serial.protocol_handler_packages:
        with contextlib.suppress(ImportError, ValueError):
            if importlib.util.find_spec(f"{package}.protocol_{scheme}") is not None:
                return StreamUrl(url, TransportKind.SERIAL, url)
    raise SourceUrlError(
        f"{url}: unknown scheme {scheme}:// (tcp://, unix://, file:// or a pyserial URL)"
    )


class ByteTransport(Protocol):
    live: bool  # a live stream (stamped on arrival), not a replay (line time)
    messages: bool  # each read() is one message (SOCK_SEQPACKET)

    def read(self) -> bytes | None: ...

    def close(self) -> None: ...


class SocketTransport:
    live = True

    def __init__(self, sock: socket.socket, messages: bool) -> None:
        self._socket = sock
        self.messages = messages
        sock.settimeout(POLL_S)

    def read(self) -> bytes | None:
        try:
            data = self._socket.recv(READ_OCTETS)
        except TimeoutError:
            return None
        if not data:
            raise ConnectionResetError(errno.ECONNRESET, "Closed by the far end")
        return data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()


class SerialTransport:
    live = True
    messages = False

    def __init__(self, port: serial.SerialBase) -> None:
        self._port = cast(serial.Serial, port)  # serial_for_url's ports all have in_waiting

    def read(self) -> bytes | None:
        port = self._port
        try:
            data = bytes(port.read(max(1, port.in_waiting)))
        except serial.SerialException as exc:
            raise OSError(errno.EIO, str(exc)) from exc
        except (TypeError, AttributeError) as exc:  # pyserial, port closed under the read
            raise OSError(errno.EBADF, "port closed") from exc
        # Some handlers (socket://) only say whether anything waits: gather it all. A failure
        # here shows again on the next read, after the octets already read are handed over.
        with contextlib.suppress(serial.SerialException):
            while data and len(data) < READ_OCTETS and (waiting := port.in_waiting):
                data += port.read(min(waiting, READ_OCTETS - len(data)))
        return data or None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            cancel = getattr(self._port, "cancel_read", None)
            if cancel is not None:
                cancel()
        self._port.close()


class FifoTransport:
    """A named pipe, opened read-write so that writers may come and go without an EOF."""

    live = True
    messages = False

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)

    def read(self) -> bytes | None:
        ready, _, _ = select.select([self._fd], [], [], POLL_S)
        if not ready:
            return None
        try:
            return os.read(self._fd, READ_OCTETS) or None
        except BlockingIOError:
            return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class ReplayTransport:
    """A recorded file, read in pieces and paced at ``rate * speed`` octets a second."""

    live = False
    messages = False

    def __init__(self, path: str, rate: int | None, speed: float, stop: threading.Event) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close())
        self._rate = rate
        self._speed = speed
        self._stop = stop
        self._offset = 0
        self._began = time.monotonic()

    def read(self) -> bytes | None:
        if self._rate is None or self._speed == 0:
            return self._file.read(REPLAY_BLOCK_OCTETS)
        size = max(1, int(self._rate * REPLAY_CHUNK_S))
        due = self._began + (self._offset + size) / (self._rate * self._speed)
        wait = due - time.monotonic()
        if wait > 0 and (self._stop.wait(min(wait, POLL_S)) or time.monotonic() < due):
            return None
        data = self._file.read(size)
        self._offset += len(data)
        return data

    def close(self) -> None:
        self._file.close()


def open_transport(
    url: StreamUrl, *, rate: int | None, speed: float, baudrate: int, stop: threading.Event
) -> ByteTransport:
    """Open ``url``; raises ``OSError``, ``serial.SerialException`` or ``ValueError``.

    ``rate`` (octets a second, None for frames) and ``speed`` pace a replay;
    ``stop`` interrupts a replay's pacing.
    """
    if url.kind is TransportKind.TCP:
        sock = socket.create_connection((url.host, url.port), timeout=OPEN_TIMEOUT_S)
        return SocketTransport(sock, messages=False)
    if url.kind is TransportKind.UNIX:
        return _open_unix(url.target)
    if url.kind is TransportKind.FILE:
        return ReplayTransport(url.target, rate, speed, stop)
    if url.kind is TransportKind.SERIAL:
        return _open_serial(url.target, baudrate, exclusive=False)
    mode = os.stat(url.target).st_mode  # TransportKind.PATH
    if stat.S_ISREG(mode):
        return ReplayTransport(url.target, rate, speed, stop)
    if stat.S_ISFIFO(mode):
        return FifoTransport(url.target)
    if stat.S_ISCHR(mode) and _is_terminal(url.target):
        return _open_serial(url.target, baudrate, exclusive=True)
    raise OSError(errno.ENODEV, "Not a regular file, a FIFO or a terminal (serial port)")


def _open_unix(path: str) -> ByteTransport:
    for kind, messages in ((socket.SOCK_STREAM, False), (socket.SOCK_SEQPACKET, True)):
        sock = socket.socket(socket.AF_UNIX, kind)
        sock.settimeout(OPEN_TIMEOUT_S)
        try:
            sock.connect(path)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EPROTOTYPE and not messages:
                continue  # the listener is SOCK_SEQPACKET
            raise
        return SocketTransport(sock, messages)
    raise AssertionError("unreachable")


def _open_serial(url: str, baudrate: int, exclusive: bool) -> ByteTransport:
    port = serial.serial_for_url(url, do_not_open=True)
    port.baudrate = baudrate
    port.timeout = POLL_S
    if exclusive:
        port.exclusive = True  # one reader owns the port
    port.open()
    return SerialTransport(port)


def _is_terminal(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return True  # let pyserial say what is wrong with it
    try:
        return os.isatty(fd)
    finally:
        os.close(fd)
