"""USB port power through sysfs: switch one hub port off and on (Linux 6.0 and later).

A modem on a USB hub port can be disconnected and, where the hub switches
power per port, unpowered, without touching the rest of the bus. The kernel
exposes each hub port as ``<hub>:1.0/<hub>-port<N>/`` under the hub's
interface; writing ``1`` to its ``disable`` attribute turns the port off
(the device disconnects, and on a hub with per-port power switching VBUS
goes off too), ``0`` turns it on again. Port paths are the kernel's
``bus-port[.port...]`` names seen in ``/sys/bus/usb/devices``::

    usb_port   hub device   port   attribute
    1-1.3      1-1          3      /sys/bus/usb/devices/1-1:1.0/1-1-port3/disable
    1-2        usb1         2      /sys/bus/usb/devices/1-0:1.0/usb1-port2/disable   (root hub)

Many hubs gang their ports (one switch for all; the Raspberry Pi 4's VL805
and the Pi 3B+'s LAN7515 do): ``disable`` still disconnects the device
logically, which is what un-wedges most modems, but VBUS stays on, so a
modem that needs a real power cut needs ``power_enable_<line>`` wiring.
``uhubctl -l <hub> -p <N>`` lists what a hub supports.

Permissions: the attribute is root's. ``systemd/99-edge112-gpio.rules``
gives the ``edge112`` group write access to every hub's port ``disable``
files, and the unit must then allow writing below ``/sys/devices`` (see
the unit's comment); otherwise the action fails with a clear
``UsbPowerError`` and is reported as ``failed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from firmware_py.board_settings import USB_PORT_PATTERN

SYSFS_ROOT = Path("/sys")
USB_OFF_S = 2.0  # long enough for the modem's rails to drain on a switched port


class UsbPowerError(OSError):
    """The port cannot be switched here (no such port, kernel too old, no permission)."""


def disable_attribute(port: str, sysfs_root: Path = SYSFS_ROOT) -> Path:
    """The ``disable`` attribute of USB port ``port`` (``1-1.3``)."""
    if not USB_PORT_PATTERN.match(port):
        raise UsbPowerError(f"not a USB port path: {port!r} (expected e.g. '1-1.3')")
    bus, _, chain = port.partition("-")
    hops = chain.split(".")
    if len(hops) == 1:  # a root hub port
        hub, interface = f"usb{bus}", f"{bus}-0:1.0"
    else:
        hub = f"{bus}-{'.'.join(hops[:-1])}"
        interface = f"{hub}:1.0"
    return sysfs_root / "bus/usb/devices" / interface / f"{hub}-port{hops[-1]}" / "disable"


def port_available(port: str, sysfs_root: Path = SYSFS_ROOT) -> bool:
    try:
        return disable_attribute(port, sysfs_root).exists()
    except UsbPowerError:
        return False


def set_port_power(port: str, on: bool, sysfs_root: Path = SYSFS_ROOT) -> None:
    path = disable_attribute(port, sysfs_root)
    if not path.exists():
        raise UsbPowerError(
            f"USB port {port}: no {path} (no such hub port, or a kernel older than 6.0)"
        )
    try:
        path.write_text("0\n" if on else "1\n")
    except OSError as error:
        raise UsbPowerError(f"USB port {port}: cannot write {path}: {error.strerror}") from error


def cycle_port(
    port: str,
    off_s: float = USB_OFF_S,
    *,
    sysfs_root: Path = SYSFS_ROOT,
    wait: Callable[[float], object] = time.sleep,
) -> None:
    """Port off, ``off_s``, port on (on again even if the wait is interrupted)."""
    set_port_power(port, False, sysfs_root)
    try:
        wait(off_s)
    finally:
        set_port_power(port, True, sysfs_root)
