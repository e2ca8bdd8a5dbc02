"""``record://``: wrap any pyserial port and log all its traffic to a modem transcript.

URL grammar::

    record://<inner pyserial URL>?file=<path>

    record:///dev/serial/by-id/usb-Quectel_EC25-if02-port0?file=/var/log/edge112/gsm0.jsonl
    record://socket://10.0.0.5:4001?file=/tmp/gsm1.jsonl
    record://loop://?logging=debug?file=/tmp/loop.jsonl     (the inner URL keeps its own query)

Everything between ``record://`` and the *last* ``?`` is the inner URL,
opened with ``serial.serial_for_url`` and the wrapper's settings (baud rate,
timeouts, ``exclusive``). The last query holds the recorder's options; only
``file`` (required; percent-encoding allowed) exists. Every non-empty
``read`` and every ``write`` is appended to the file as a ``from_modem`` /
``to_modem`` record (format: ``drivers.transcript``). A write is logged just
before it goes out, so its reply can never appear to come first.

Each open starts a fresh single-session transcript: when ``file`` already
holds one (the gateway reopened the port after a USB glitch), the new session
goes to ``<stem>.1<suffix>``, ``<stem>.2<suffix>``, ... so nothing recorded is
overwritten and every file replays on its own.

Unlike pyserial's ``spy://``, which subclasses the native port and so only
wraps device paths, this handler delegates to the inner port object and
wraps any URL. It is found through ``serial.protocol_handler_packages``, to
which ``drivers.at_channel`` appends ``drivers.urlhandler`` at import.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import serial
from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from drivers.transcript import TranscriptWriter

SCHEME = "record://"
USAGE = "expected record://<pyserial URL>?file=<path>"


def parse_record_url(url: str) -> tuple[str, Path]:
    """Split a ``record://`` URL into the inner URL and the transcript path."""
    if not url.lower().startswith(SCHEME):
        raise SerialException(f"{USAGE}: {url!r} does not start with {SCHEME}")
    inner, separator, query = url[len(SCHEME) :].rpartition("?")
    if not separator or not inner:
        raise SerialException(f"{USAGE}: {url!r} has no inner URL or no ?file=")
    try:
        options = urllib.parse.parse_qs(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise SerialException(f"{USAGE}: bad options {query!r}") from exc
    unknown = sorted(set(options) - {"file"})
    if unknown:
        raise SerialException(f"{USAGE}: unknown option(s) {', '.join(unknown)}")
    files = options.get("file", [])
    if len(files) != 1 or not files[0]:
        raise SerialException(f"{USAGE}: exactly one non-empty file= is needed")
    return inner, Path(files[0])


def session_path(path: Path) -> Path:
    """``path`` if it holds no transcript yet, else the first free ``<stem>.<n><suffix>``."""
    if not path.exists() or path.stat().st_size == 0:
        return path
    number = 1
    while True:
        candidate = path.with_name(f"{path.stem}.{number}{path.suffix}")
        if not candidate.exists():
            return candidate
        number += 1


class Serial(SerialBase):
    """A port that forwards to an inner pyserial port and records both directions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._inner: serial.Serial | None = None
        self._writer: TranscriptWriter | None = None
        self.transcript_path: Path | None = None
        super().__init__(*args, **kwargs)

    def open(self) -> None:
        if self.is_open:
            raise SerialException("Port is already open.")
        if self.port is None:
            raise SerialException("Port must be configured before it can be used.")
        inner_url, path = parse_record_url(self.port)
        inner = serial.serial_for_url(inner_url, exclusive=self.exclusive, **self.get_settings())
        try:
            self.transcript_path = session_path(path)
            self._writer = TranscriptWriter(self.transcript_path, port=inner_url)
        except OSError as exc:
            inner.close()
            raise SerialException(f"cannot write transcript {path}: {exc}") from exc
        self._inner = inner
        self.is_open = True

    def close(self) -> None:
        self.is_open = False
        inner, self._inner = self._inner, None
        writer, self._writer = self._writer, None
        try:
            if inner is not None:
                inner.close()
        finally:
            if writer is not None:
                writer.close()

    def _reconfigure_port(self) -> None:
        if self._inner is not None:
            self._inner.apply_settings(self.get_settings())

    def _port_or_raise(self) -> serial.Serial:
        if self._inner is None:
            raise PortNotOpenError()
        return self._inner

    # Data --------------------------------------------------------------------

    def read(self, size: int = 1) -> bytes:
        data = bytes(self._port_or_raise().read(size))
        if data and self._writer is not None:
            self._writer.from_modem(data)
        return data

    def write(self, data: Any) -> int | None:
        port = self._port_or_raise()
        payload = bytes(data)
        # Logged before it goes out: the reply may be read (and logged) before write() returns.
        if self._writer is not None:
            self._writer.to_modem(payload)
        return port.write(payload)

    @property
    def in_waiting(self) -> int:
        return int(self._port_or_raise().in_waiting)

    @property
    def out_waiting(self) -> int:
        return int(getattr(self._port_or_raise(), "out_waiting", 0))

    def flush(self) -> None:
        self._port_or_raise().flush()

    def fileno(self) -> int:
        return self._port_or_raise().fileno()

    def reset_input_buffer(self) -> None:
        self._port_or_raise().reset_input_buffer()

    def reset_output_buffer(self) -> None:
        self._port_or_raise().reset_output_buffer()

    def cancel_read(self) -> None:
        self._port_or_raise().cancel_read()

    def cancel_write(self) -> None:
        self._port_or_raise().cancel_write()

    # Control lines -------------------------------------------------------------

    def _update_break_state(self) -> None:
        self._port_or_raise().break_condition = self.break_condition

    def _update_rts_state(self) -> None:
        if self._inner is not None:
            self._inner.rts = self.rts

    def _update_dtr_state(self) -> None:
        if self._inner is not None:
            self._inner.dtr = self.dtr

    @property
    def cts(self) -> bool:
        return bool(self._port_or_raise().cts)

    @property
    def dsr(self) -> bool:
        return bool(self._port_or_raise().dsr)

    @property
    def ri(self) -> bool:
        return bool(self._port_or_raise().ri)

    @property
    def cd(self) -> bool:
        return bool(self._port_or_raise().cd)
