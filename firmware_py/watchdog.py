"""Service watchdog: the systemd notify protocol (``sd_notify``) without libsystemd.

``READY=1`` once the gateway runs, ``WATCHDOG=1`` only from a healthy main
loop (``WatchdogSec=`` in the unit), ``STOPPING=1`` on the way out. Outside
systemd (no ``NOTIFY_SOCKET``) every call is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import socket


def notify(state: str) -> bool:
    """Send one notify message; True if a service manager received it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(state.encode())
        return True
    return False


def watchdog_interval_s() -> float | None:
    """Half of ``WATCHDOG_USEC`` (how often to ping), or None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    with contextlib.suppress(ValueError):
        return int(usec) / 2_000_000
    return None
