"""Serial AT channel: one reader per modem port, command responses kept apart from URCs.

A modem port carries two interleaved streams: the responses to the command the
gateway sent, and unsolicited result codes (URCs) the modem emits whenever
something happens (a call rings, an SMS arrives, the SIM becomes ready). Line
layout, ITU-T V.250 with verbose result codes (``ATV1``)::

    gateway -> modem   AT+CLCC<CR>
    modem -> gateway   AT+CLCC<CR>                                   echo (until ATE0)
                       <CR><LF>+CLCC: 1,1,4,0,0,"+62812...",145<CR><LF>   information line
                       <CR><LF>OK<CR><LF>                            final result code
                       <CR><LF>RING<CR><LF>                          URC, at any moment
                       <CR><CR><LF>+CRING: VOICE<CR><CR><LF>         same, SIM7600 framing

Layers, bottom up, each usable alone:

* ``LineFramer`` cuts bytes into lines at every CR or LF and drops empty
  lines, so all framings above read alike. Over-long lines are discarded up
  to the next line end.
* ``decode_line`` turns a line into text, hunting past a garbage prefix.
* ``classify_line`` decides what a line is, given the command in flight: its
  echo, an information line, its final result code, a URC, or an unknown
  unsolicited line.
* ``AtChannel`` owns the port (any pyserial URL: ``/dev/serial/by-id/...``,
  ``socket://host:port``, ``loop://``, ``spy://...``, ``record://...`` from
  ``drivers.urlhandler``), runs the one reader
  thread, serialises commands and calls back with URCs, problems and a lost
  port.

Bad input never stops the reader: each oddity becomes a ``ChannelProblem``
(logged on ``edge112.drivers.at`` and handed to ``on_problem``) and the
channel keeps working. A vanished port is reported once through ``on_lost``.
"""

from __future__ import annotations

import logging
import re
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Protocol, TypeVar, cast

import serial

from gateway.privacy import mask_digit_runs

# Our own URL handlers (record://) next to pyserial's; once, however often this is imported.
if "drivers.urlhandler" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append("drivers.urlhandler")

logger = logging.getLogger("edge112.drivers.at")

_T = TypeVar("_T")

BAUD_RATE = 115200
READ_TIMEOUT_S = 0.5  # how long one idle read blocks (close() cuts it short where the port can)
WRITE_TIMEOUT_S = 1.0  # a write that cannot finish in this time means the device is gone
COMMAND_TIMEOUT_S = 5.0
PARTIAL_LINE_TIMEOUT_S = 1.0  # a modem never pauses this long inside a line
MAX_LINE_BYTES = 512
CLOSE_TIMEOUT_S = 1.0
EXCERPT_CHARS = 48

# What a vanished USB serial device raises (pyserial #341, #401); is_open stays True.
PORT_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError, termios.error)
CANCEL_ERRORS: tuple[type[BaseException], ...] = (NotImplementedError, *PORT_ERRORS)

FINAL_OK_LINES = frozenset({"OK"})
FINAL_ERROR_LINES = frozenset({"ERROR", "COMMAND NOT SUPPORT", "TOO MANY PARAMETERS"})
FINAL_ERROR_PREFIXES = ("+CME ERROR:", "+CMS ERROR:")
# Final result codes of ATD/ATA; anywhere else these lines are URCs.
CALL_CONTROL_FINAL_LINES = frozenset({"NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE"})
CALL_CONTROL_CONNECT_PREFIX = "CONNECT"

# Lines a modem sends on its own. Whole lines first, then prefixes.
UNSOLICITED_LINES = frozenset(
    {
        "RING",
        "NO CARRIER",
        "BUSY",
        "NO ANSWER",
        "RDY",
        "Call Ready",
        "SMS Ready",
        "PB DONE",
        "SMS DONE",
        "NORMAL POWER DOWN",
        "POWERED DOWN",
    }
)
UNSOLICITED_PREFIXES = (
    # 3GPP TS 27.007 / 27.005
    "+CRING:",
    "+CLIP:",
    "+CCWA:",
    "+CLCC:",
    "+COLP:",
    "+CSSI:",
    "+CSSU:",
    "+CUSD:",
    "+CMTI:",
    "+CMT:",
    "+CDSI:",
    "+CDS:",
    "+CBM:",
    "+CREG:",
    "+CGREG:",
    "+CEREG:",
    "+CPIN:",
    "+CFUN:",
    "+CTZV:",
    "+CTZE:",
    "+CGEV:",
    # Quectel
    "+QIND:",
    "+QUSIM:",
    # SIMCom
    "VOICE CALL:",
    "MISSED_CALL:",
    "*PSUTTZ:",
    "DST:",
    # Huawei
    "^CEND:",
    "^CONN:",
    "^ORIG:",
    "^CONF:",
    "^BOOT:",
    "^RSSI:",
    "^HCSQ:",
    "^MODE:",
    "^SRVST:",
    "^SIMST:",
    "^DSFLOWRPT:",
    "^SMMEMFULL:",
)

_LINE_END = re.compile(rb"[\r\n]")
_COMMAND_NAME = re.compile(r"^AT([+^$#%*][A-Z0-9]+)", re.IGNORECASE)
_NOT_TEXT = re.compile("[\ufffd\x00-\x08\x0a-\x1f\x7f]")


class ProblemKind(StrEnum):
    NOT_TEXT = "not_text"  # bytes that are not UTF-8 text, or control characters
    LINE_TOO_LONG = "line_too_long"  # longer than the cap; discarded up to the next line end
    HALF_LINE = "half_line"  # an unterminated line followed by silence; discarded
    UNKNOWN_UNSOLICITED = "unknown_unsolicited"  # a line nobody asked for and no known URC


@dataclass(frozen=True)
class ChannelProblem:
    """Something odd on the wire; ``excerpt`` is printable and has numbers masked."""

    kind: ProblemKind
    excerpt: str


class AtError(Exception):
    """Base of the channel's errors."""


class AtCommandError(AtError):
    """The modem answered a command with an error final result code."""

    def __init__(self, command: str, final: str, lines: list[str] | None = None) -> None:
        super().__init__(f"{command} -> {final}")
        self.command = command
        self.final = final
        self.lines = lines or []


class AtTimeoutError(AtError):
    """No final result code arrived in time."""

    def __init__(self, command: str, timeout_s: float) -> None:
        super().__init__(f"{command}: no final result code within {timeout_s:g} s")
        self.command = command
        self.timeout_s = timeout_s


class AtChannelClosedError(AtError):
    """The channel was closed, or its port vanished."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def printable_excerpt(raw: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    """A short, printable, number-masked rendering of ``raw`` for logs and reports."""
    data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
    text = data[:limit].decode("ascii", "backslashreplace")
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    if len(data) > limit:
        text += "..."
    return mask_digit_runs(text)


class LineFramer:
    """Cuts a byte stream into lines at every CR or LF; empty lines vanish.

    ``feed`` returns complete lines (bytes, terminator removed) and problems,
    in wire order. A line growing past ``max_line_bytes`` is reported once and
    discarded up to the next line end. An unterminated tail stays buffered
    until more bytes come or the owner calls ``take_partial``.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._discarding = False

    @property
    def has_partial(self) -> bool:
        return bool(self._buffer) and not self._discarding

    def feed(self, data: bytes) -> list[bytes | ChannelProblem]:
        items: list[bytes | ChannelProblem] = []
        *terminated, tail = _LINE_END.split(data)
        for piece in terminated:
            self._finish_line(piece, items)
        self._extend_partial(tail, items)
        return items

    def take_partial(self) -> ChannelProblem | None:
        """Discard the unterminated tail, if any, and report it as a half line."""
        if not self.has_partial:
            return None
        problem = ChannelProblem(ProblemKind.HALF_LINE, printable_excerpt(bytes(self._buffer)))
        self._buffer.clear()
        return problem

    def _finish_line(self, piece: bytes, items: list[bytes | ChannelProblem]) -> None:
        if self._discarding:
            self._discarding = False
            return
        self._buffer += piece
        if len(self._buffer) > self._max_line_bytes:
            items.append(self._too_long())
        elif self._buffer:
            items.append(bytes(self._buffer))
        self._buffer.clear()

    def _extend_partial(self, tail: bytes, items: list[bytes | ChannelProblem]) -> None:
        if self._discarding or not tail:
            return
        self._buffer += tail
        if len(self._buffer) > self._max_line_bytes:
            items.append(self._too_long())
            self._buffer.clear()
            self._discarding = True

    def _too_long(self) -> ChannelProblem:
        return ChannelProblem(ProblemKind.LINE_TOO_LONG, printable_excerpt(bytes(self._buffer)))


def decode_line(raw: bytes) -> tuple[str, ChannelProblem | None]:
    """UTF-8 text of a line, stripped; garbage is reported and hunted past.

    When a line holds bytes that are not text, everything up to the last such
    byte is dropped: line noise before a real line (``\\xff\\xfeRING``) still
    yields ``RING``, while garbage in the middle leaves only the clean tail,
    which then reads as an unknown line rather than a wrong one.
    """
    text = raw.decode("utf-8", errors="replace")
    bad = [match.end() for match in _NOT_TEXT.finditer(text)]
    if not bad:
        return text.strip(), None
    return text[bad[-1] :].strip(), ChannelProblem(ProblemKind.NOT_TEXT, printable_excerpt(raw))


def response_prefix(command: str) -> str | None:
    """The prefix of the information lines ``command`` answers with: AT+CLCC -> ``+CLCC:``."""
    match = _COMMAND_NAME.match(command.strip())
    return f"{match.group(1).upper()}:" if match else None


def is_unsolicited(line: str) -> bool:
    return line in UNSOLICITED_LINES or line.startswith(UNSOLICITED_PREFIXES)


def is_call_control(command: str) -> bool:
    """ATD (dial) and ATA (answer) end with NO CARRIER, BUSY, ... instead of ERROR."""
    return command.strip().upper().startswith(("ATD", "ATA"))


class LineRole(Enum):
    ECHO = "echo"
    INFORMATION = "information"
    FINAL_OK = "final_ok"
    FINAL_ERROR = "final_error"
    UNSOLICITED = "unsolicited"
    UNKNOWN = "unknown"


@dataclass
class PendingCommand:
    """The one command in flight and what has come back for it so far."""

    command: str
    lines: list[str] = field(default_factory=list)
    final: str | None = None
    succeeded: bool = False
    closed_reason: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    expected_prefix: str | None = field(init=False)
    call_control: bool = field(init=False)

    def __post_init__(self) -> None:
        self.expected_prefix = response_prefix(self.command)
        self.call_control = is_call_control(self.command)


def classify_line(line: str, pending: PendingCommand | None) -> LineRole:
    """What ``line`` is, given the command in flight (``None`` when idle)."""
    if pending is None:
        return LineRole.UNSOLICITED if is_unsolicited(line) else LineRole.UNKNOWN
    if line.upper() == pending.command.upper():
        return LineRole.ECHO
    if pending.expected_prefix and line.upper().startswith(pending.expected_prefix):
        return LineRole.INFORMATION
    if line in FINAL_OK_LINES:
        return LineRole.FINAL_OK
    if line in FINAL_ERROR_LINES or line.startswith(FINAL_ERROR_PREFIXES):
        return LineRole.FINAL_ERROR
    if pending.call_control and line in CALL_CONTROL_FINAL_LINES:
        return LineRole.FINAL_ERROR
    if pending.call_control and line.startswith(CALL_CONTROL_CONNECT_PREFIX):
        return LineRole.FINAL_OK
    if is_unsolicited(line):
        return LineRole.UNSOLICITED
    return LineRole.INFORMATION


class SerialPort(Protocol):
    """What the channel needs of a pyserial port (every URL handler has it)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1, /) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


def open_port(url: str, timeout_s: float = READ_TIMEOUT_S, baudrate: int = BAUD_RATE) -> SerialPort:
    """Open any pyserial URL exclusively (no ModemManager or second gateway alongside).

    Every handler in pyserial 3.5 accepts ``exclusive``; it locks device nodes
    with flock and is a no-op for ``socket://`` or ``loop://``.
    """
    port = serial.serial_for_url(
        url,
        baudrate=baudrate,
        timeout=timeout_s,
        write_timeout=WRITE_TIMEOUT_S,
        exclusive=True,
    )
    return cast(SerialPort, port)


class _ProblemLogLimiter:
    """At most ``burst`` problem warnings per ``window_s``; a flood becomes one summary."""

    def __init__(self, burst: int = 10, window_s: float = 10.0) -> None:
        self._burst = burst
        self._window_s = window_s
        self._window_start = 0.0
        self._count = 0
        self._suppressed = 0

    def log(self, name: str, problem: ChannelProblem) -> None:
        now = time.monotonic()
        if now - self._window_start >= self._window_s:
            if self._suppressed:
                logger.warning("%s: %d more line problems not logged", name, self._suppressed)
            self._window_start, self._count, self._suppressed = now, 0, 0
        self._count += 1
        if self._count <= self._burst:
            logger.warning("%s: %s: %s", name, problem.kind.value, problem.excerpt)
        else:
            self._suppressed += 1


class AtChannel:
    """An open modem port with its reader thread.

    ``command`` may be called from any thread except the reader itself (that
    is, never from ``on_urc``, ``on_problem`` or ``on_lost``: hand the work to
    another thread). Callbacks run on the reader thread and must be quick.
    """

    def __init__(
        self,
        url: str,
        *,
        on_urc: Callable[[str], None],
        on_problem: Callable[[ChannelProblem], None] | None = None,
        on_lost: Callable[[str], None] | None = None,
        name: str | None = None,
        partial_line_timeout_s: float = PARTIAL_LINE_TIMEOUT_S,
        max_line_bytes: int = MAX_LINE_BYTES,
        baudrate: int = BAUD_RATE,
    ) -> None:
        self.name = name or url
        self._on_urc = on_urc
        self._on_problem = on_problem
        self._on_lost = on_lost
        self._partial_line_timeout_s = partial_line_timeout_s
        self._framer = LineFramer(max_line_bytes)
        self._problem_log = _ProblemLogLimiter()
        self._command_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._pending: PendingCommand | None = None
        self._partial_began_during: PendingCommand | None = None  # reader thread only
        self._lost_reason: str | None = None
        self._closing = threading.Event()
        self._closed = False
        self._port = open_port(url, baudrate=baudrate)
        self._reader = threading.Thread(
            target=self._read_loop, name=f"edge112-at-{self.name}", daemon=True
        )
        self._reader.start()

    def __enter__(self) -> AtChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def lost_reason(self) -> str | None:
        """Why the port was lost, or ``None`` while it works."""
        return self._lost_reason

    def command(self, command: str, timeout: float = COMMAND_TIMEOUT_S) -> list[str]:
        """Send one command; return its information lines once ``OK`` (or ``CONNECT``) comes.

        Raises ``AtCommandError`` for an error final result code, ``AtTimeoutError``
        when none arrives in time, ``AtChannelClosedError`` when the channel is
        closed or its port vanished. Commands run one at a time.
        """
        if threading.current_thread() is self._reader:
            raise RuntimeError("AtChannel.command() called from a reader callback")
        command = command.strip()
        with self._command_lock:
            pending = self._start(command)
            logger.debug("%s: -> %s", self.name, mask_digit_runs(command))
            try:
                self._port.write(command.encode("ascii") + b"\r")
            except PORT_ERRORS as exc:
                self._report_lost(f"write failed: {exc}")
            finished = pending.done.wait(timeout)
            with self._state_lock:
                finished = finished or pending.done.is_set()
                if self._pending is pending:
                    self._pending = None
        return self._outcome(pending, finished, timeout)

    def close(self) -> None:
        """Stop the reader (at once, or within ``READ_TIMEOUT_S``) and close the port."""
        self._closing.set()
        self._cancel_read()
        self._fail_pending("channel closed")
        if threading.current_thread() is not self._reader:
            self._reader.join(CLOSE_TIMEOUT_S)
        got_lock = self._command_lock.acquire(timeout=CLOSE_TIMEOUT_S)
        try:
            with self._close_lock:
                if not self._closed:
                    self._closed = True
                    self._close_port()
        finally:
            if got_lock:
                self._command_lock.release()

    def _start(self, command: str) -> PendingCommand:
        with self._state_lock:
            if self._closing.is_set():
                raise AtChannelClosedError("channel closed")
            if self._lost_reason is not None:
                raise AtChannelClosedError(self._lost_reason)
            pending = PendingCommand(command)
            self._pending = pending
            return pending

    @staticmethod
    def _outcome(pending: PendingCommand, finished: bool, timeout: float) -> list[str]:
        if pending.closed_reason is not None:
            raise AtChannelClosedError(pending.closed_reason)
        if not finished:
            raise AtTimeoutError(pending.command, timeout)
        if not pending.succeeded:
            raise AtCommandError(pending.command, pending.final or "", pending.lines)
        return pending.lines

    def _cancel_read(self) -> None:
        """Wake a reader blocked in ``read``: a local serial port or PTY can (pyserial's
        ``cancel_read``); other URL handlers return within ``READ_TIMEOUT_S`` anyway."""
        cancel = getattr(self._port, "cancel_read", None)
        if cancel is None:
            return
        try:
            cancel()
        except CANCEL_ERRORS as exc:
            logger.debug("%s: cancelling the read failed: %s", self.name, exc)

    def _close_port(self) -> None:
        try:
            self._port.close()
        except PORT_ERRORS as exc:  # closing a vanished device may fail; it is gone anyway
            logger.debug("%s: closing the port failed: %s", self.name, exc)

    # Reader thread ---------------------------------------------------------

    def _read_loop(self) -> None:
        last_data_at = time.monotonic()
        while not self._closing.is_set():
            try:
                data = self._port.read(self._port.in_waiting or 1)
            except PORT_ERRORS as exc:
                self._report_lost(f"read failed: {exc}")
                return
            now = time.monotonic()
            if data:
                last_data_at = now
                self._take(data)
            elif now - last_data_at >= self._partial_line_timeout_s:
                half_line = self._framer.take_partial()
                if half_line is not None:
                    self._report_problem(half_line)

    def _take(self, data: bytes) -> None:
        """Frame ``data``; remember which command was in flight when each line began.

        A line that began before the current command was sent (a half line
        the response then terminated, a URC cut across two reads) cannot be
        part of that command's response, so it is judged as if idle.
        """
        continues_partial = self._framer.has_partial
        with self._state_lock:
            current = self._pending
        items = self._framer.feed(data)
        for index, item in enumerate(items):
            began_during = (
                self._partial_began_during if index == 0 and continues_partial else current
            )
            self._handle(item, began_during)
        if items or not continues_partial:
            self._partial_began_during = current

    def _handle(self, item: bytes | ChannelProblem, began_during: PendingCommand | None) -> None:
        if isinstance(item, ChannelProblem):
            self._report_problem(item)
            return
        line, problem = decode_line(item)
        if problem is not None:
            self._report_problem(problem)
        if line:
            self._dispatch(line, began_during)

    def _dispatch(self, line: str, began_during: PendingCommand | None) -> None:
        with self._state_lock:
            pending = self._pending if began_during is self._pending else None
            role = classify_line(line, pending)
            if pending is not None:
                self._record(pending, role, line)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s: <- %s (%s)", self.name, mask_digit_runs(line), role.value)
        if role is LineRole.UNSOLICITED:
            self._call_back(self._on_urc, line)
        elif role is LineRole.UNKNOWN:
            self._report_problem(
                ChannelProblem(ProblemKind.UNKNOWN_UNSOLICITED, printable_excerpt(line))
            )

    def _record(self, pending: PendingCommand, role: LineRole, line: str) -> None:
        """Add ``line`` to the command in flight; caller holds ``_state_lock``."""
        if role is LineRole.INFORMATION:
            pending.lines.append(line)
        elif role in (LineRole.FINAL_OK, LineRole.FINAL_ERROR):
            pending.final = line
            pending.succeeded = role is LineRole.FINAL_OK
            self._pending = None
            pending.done.set()

    def _report_problem(self, problem: ChannelProblem) -> None:
        self._problem_log.log(self.name, problem)
        if self._on_problem is not None:
            self._call_back(self._on_problem, problem)

    def _report_lost(self, reason: str) -> None:
        with self._state_lock:
            if self._lost_reason is not None or self._closing.is_set():
                return
            self._lost_reason = reason
        self._fail_pending(reason)
        logger.warning("%s: port lost: %s", self.name, reason)
        if self._on_lost is not None:
            self._call_back(self._on_lost, reason)

    def _fail_pending(self, reason: str) -> None:
        with self._state_lock:
            pending, self._pending = self._pending, None
            if pending is not None:
                pending.closed_reason = reason
                pending.done.set()

    def _call_back(self, callback: Callable[[_T], None], argument: _T) -> None:
        try:
            callback(argument)
        except Exception:
            logger.exception("%s: callback %r failed", self.name, callback)
