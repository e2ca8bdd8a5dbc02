"""Stable binding: find a modem's AT port by its IMEI or ICCID, wherever USB put it this time.

``/dev/ttyUSB*`` numbers change after a USB reset or a reboot (gammu #198,
chan_dongle #171), and a re-enumerated modem gets a new node while the old
one is still held open (pyserial #36). A line may therefore name its modem
instead of its port::

    port = "/dev/serial/by-id/usb-Quectel_EC25-if02-port0"   a fixed port (or any pyserial URL)
    port = "imei:861234567890123"                            the modem with this IMEI
    port = "iccid:8962100012345678901"                       the modem holding this SIM

``find_at_port`` probes each candidate port (``/dev/serial/by-id/*`` first,
then ``/dev/ttyUSB*`` and ``/dev/ttyACM*``; the same device once), opening
it exclusively (a port another line holds is skipped), sending ``AT`` and,
when it answers, asking the identity. A Quectel EC25 exposes four ports
(diagnostics, NMEA/audio, AT, modem): the first two never answer ``AT`` and
are passed over after ``PROBE_TIMEOUT_S``. The last port found is tried
first next time, so a rebind after re-enumeration costs one probe of the
new candidates, not of all of them.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from drivers.at_channel import BAUD_RATE, PORT_ERRORS, SerialPort, open_port

logger = logging.getLogger("edge112.drivers.gsm.binding")

PROBE_GLOBS = ("/dev/serial/by-id/*", "/dev/ttyUSB*", "/dev/ttyACM*")
PROBE_TIMEOUT_S = 0.6  # per command while probing (a modem answers AT in milliseconds)
ICCID_QUERIES = ("AT+CCID", "AT+QCCID", "AT^ICCID?", "AT+ICCID")
_DIGITS = re.compile(r"\d{6,22}[Ff]?")


@dataclass(frozen=True)
class Binding:
    """What a line's ``port`` names: a fixed URL, or a modem by IMEI or ICCID."""

    kind: str  # "url", "imei", "iccid"
    value: str

    @property
    def by_identity(self) -> bool:
        return self.kind != "url"

    def describe(self) -> str:
        return self.value if self.kind == "url" else f"the modem with {self.kind} {self.value}"


class NoModemFoundError(OSError):
    """No candidate port answered with the wanted identity."""


def parse_binding(port: str) -> Binding:
    """``imei:<digits>`` / ``iccid:<digits>`` bind by identity; anything else is a port URL."""
    kind, separator, value = port.partition(":")
    if separator and kind.lower() in ("imei", "iccid") and "/" not in value:
        value = value.strip()
        if not value.isdigit():
            raise ValueError(f"{kind.lower()} must be digits, got {value!r}")
        return Binding(kind.lower(), value)
    return Binding("url", port)


def candidate_ports(globs: Iterable[str] = PROBE_GLOBS, first: str | None = None) -> list[str]:
    """Every port the globs match, ``first`` first, each device once (by its real path)."""
    seen: set[str] = set()
    found: list[str] = []
    globbed = [path for pattern in globs for path in sorted(glob.glob(pattern))]
    for path in ([first] if first else []) + globbed:
        real = os.path.realpath(path)
        if real in seen or not os.path.exists(real):
            continue
        seen.add(real)
        found.append(path)
    return found


def find_at_port(
    binding: Binding,
    *,
    globs: Iterable[str] = PROBE_GLOBS,
    first: str | None = None,
    baudrate: int = BAUD_RATE,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> str:
    """The path of the port where the bound modem answers AT; NoModemFoundError otherwise."""
    tried = []
    for path in candidate_ports(globs, first):
        identity = probe_identity(path, binding.kind, baudrate=baudrate, timeout_s=timeout_s)
        tried.append(path)
        if identity is not None and identity == binding.value:
            logger.info("%s is on %s", binding.describe(), path)
            return path
    raise NoModemFoundError(f"{binding.describe()} is on none of {len(tried)} port(s) probed")


def probe_identity(
    path: str, kind: str, *, baudrate: int = BAUD_RATE, timeout_s: float = PROBE_TIMEOUT_S
) -> str | None:
    """The IMEI (``kind`` imei) or ICCID of the modem on ``path``; None if it does not answer."""
    try:
        port = open_port(path, timeout_s=0.05, baudrate=baudrate)
    except PORT_ERRORS:
        return None  # gone, or held by another line (opened exclusively)
    try:
        if _ask(port, "AT", timeout_s) is None:
            return None
        if kind == "imei":
            return _first_number(_ask(port, "AT+CGSN", timeout_s))
        for query in ICCID_QUERIES:
            number = _first_number(_ask(port, query, timeout_s))
            if number:
                return number.rstrip("Ff")
        return None
    except PORT_ERRORS:
        return None
    finally:
        with contextlib.suppress(*PORT_ERRORS):
            port.close()


def _ask(port: SerialPort, command: str, timeout_s: float) -> str | None:
    """Send ``command``; the text up to a final OK, or None on ERROR or silence."""
    port.write(command.encode("ascii") + b"\r")
    received = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        received += port.read(256)
        text = received.decode("ascii", "replace")
        if re.search(r"(^|\r|\n)OK\r?\n", text):
            return text
        if re.search(r"(^|\r|\n)(ERROR|\+CME ERROR[^\r\n]*|COMMAND NOT SUPPORT)\r?\n", text):
            return None
    return None


def _first_number(text: str | None) -> str | None:
    if text is None:
        return None
    for line in text.replace("\r", "\n").split("\n"):
        value = line.split(":", 1)[-1].strip().strip('"')
        if _DIGITS.fullmatch(value):
            return value
    return None
