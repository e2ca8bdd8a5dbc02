"""USB port power: the kernel's sysfs names for a port, and clear errors where it cannot work.

There is no USB hub on a test machine: a directory tree laid out as
``/sys/bus/usb/devices`` stands in for sysfs (the kernel interface is
plain files, so the code under test is the same).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_py.usb_power import (
    UsbPowerError,
    cycle_port,
    disable_attribute,
    port_available,
    set_port_power,
)


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ("1-1.3", "bus/usb/devices/1-1:1.0/1-1-port3/disable"),
        ("1-2", "bus/usb/devices/1-0:1.0/usb1-port2/disable"),
        ("2-1.4.2", "bus/usb/devices/2-1.4:1.0/2-1.4-port2/disable"),
    ],
)
def test_port_paths_follow_the_kernels_names(port: str, expected: str) -> None:
    assert disable_attribute(port, Path("/sys")) == Path("/sys") / expected


def test_cycle_writes_off_then_on(tmp_path: Path) -> None:
    attribute = disable_attribute("1-1.3", tmp_path)
    attribute.parent.mkdir(parents=True)
    attribute.write_text("0\n")
    seen: list[str] = []
    cycle_port(
        "1-1.3", 0.5, sysfs_root=tmp_path, wait=lambda _s: seen.append(attribute.read_text())
    )
    assert seen == ["1\n"] and attribute.read_text() == "0\n"
    assert port_available("1-1.3", tmp_path) and not port_available("1-1.4", tmp_path)


def test_missing_port_or_bad_name_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UsbPowerError, match=r"no such hub port, or a kernel older than 6\.0"):
        set_port_power("1-1.3", False, tmp_path)
    with pytest.raises(UsbPowerError, match="not a USB port path"):
        disable_attribute("/dev/ttyUSB0")
