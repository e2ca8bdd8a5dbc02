"""Whether the system clock is synchronised: the kernel's own word (``adjtimex``).

A Raspberry Pi has no battery-backed clock: until NTP (systemd-timesyncd,
chrony) has set it, the time is 1970 or the last shutdown's. The kernel
clears ``STA_UNSYNC`` in the ``adjtimex`` status once a time daemon has
disciplined the clock; ``adjtimex`` then returns ``TIME_OK`` (not
``TIME_ERROR``). This is what ``timedatectl show -p NTPSynchronized``
reports, read without D-Bus. Read-only: ``modes = 0`` changes nothing, so it
works under ``ProtectClock=yes``.
"""

from __future__ import annotations

import ctypes
import ctypes.util

TIME_ERROR = 5  # adjtimex return value: the clock is not synchronised
STA_UNSYNC = 0x0040


class _Timex(ctypes.Structure):  # struct timex (Linux), only the leading fields we read
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("padding", ctypes.c_int * 11),
    ]


def clock_synchronised() -> bool | None:
    """True when the kernel says the clock is synchronised, False when not, None if unknown."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR and not timex.status & STA_UNSYNC
