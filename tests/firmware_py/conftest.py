"""Board test scaffolding: real GPIO chips where the kernel gives them, else a visible skip.

``gpio_sim_chip`` makes a real GPIO character device with the kernel's
``gpio-sim`` module (configfs) and yields ``(chip path, value(offset),
pull(offset, up))``: the test drives lines through libgpiod and reads the
simulated pin's level from sysfs. When the kernel has no gpio-sim (or no
GPIO support at all, or this is not root) the test is skipped and says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CONFIGFS_GPIO_SIM = Path("/sys/kernel/config/gpio-sim")
SIM_LINES = 32

GpioSim = tuple[str, Callable[[int], int], Callable[[int, bool], None]]


def _no_gpio_sim_reason() -> str | None:
    if os.geteuid() != 0:
        return "gpio-sim needs root (configfs)"
    if not CONFIGFS_GPIO_SIM.is_dir() and shutil.which("modprobe"):
        subprocess.run(["modprobe", "gpio-sim"], capture_output=True, check=False)
    if not CONFIGFS_GPIO_SIM.is_dir():
        kernel = os.uname().release
        return (
            f"kernel {kernel} offers no gpio-sim (no {CONFIGFS_GPIO_SIM}; "
            "CONFIG_GPIO_SIM, CONFIG_CONFIGFS_FS or CONFIG_GPIOLIB not built, or no modules)"
        )
    return None


@pytest.fixture
def gpio_sim_chip() -> Iterator[GpioSim]:
    reason = _no_gpio_sim_reason()
    if reason:
        pytest.skip(reason)
    pytest.importorskip("gpiod", reason="the gpiod bindings are not installed")
    device = CONFIGFS_GPIO_SIM / f"edge112-{uuid.uuid4().hex[:8]}"
    bank = device / "bank0"
    device.mkdir()
    bank.mkdir()
    (bank / "num_lines").write_text(str(SIM_LINES))
    (device / "live").write_text("1")
    try:
        dev_name = (device / "dev_name").read_text().strip()
        chip_name = (bank / "chip_name").read_text().strip()
        sysfs = Path("/sys/devices/platform") / dev_name / chip_name

        def value(offset: int) -> int:
            return int((sysfs / f"sim_gpio{offset}" / "value").read_text())

        def pull(offset: int, up: bool) -> None:
            (sysfs / f"sim_gpio{offset}" / "pull").write_text("pull-up" if up else "pull-down")

        yield f"/dev/{chip_name}", value, pull
    finally:
        with contextlib.suppress(OSError):
            (device / "live").write_text("0")
        with contextlib.suppress(OSError):
            bank.rmdir()
            device.rmdir()
