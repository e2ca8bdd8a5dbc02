"""Backend ``gpiod``: the kernel GPIO character device through libgpiod v2 (PyPI ``gpiod``).

Works on every recent board: Raspberry Pi 5 (the RP1 chip), Pi 4 and older,
Compute Modules, any Linux board with ``/dev/gpiochipN``. Pin numbers are
line offsets on the chip; on a Raspberry Pi they equal the BCM GPIO numbers.
All pins are requested at once under the consumer name ``edge112`` (so
``gpioinfo`` shows who holds them); another process holding a line makes
``open`` fail with a ``BoardError`` naming the pin.

``[board] chip``: a path (``/dev/gpiochip4``), a name (``gpiochip0``) or a
label (``pinctrl-rp1``); ``auto`` takes the first chip whose label is a
Raspberry Pi's header bank (:data:`PI_HEADER_LABELS`), else ``/dev/gpiochip0``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from typing import Any

import gpiod
from gpiod.line import Bias, Direction, Value

from firmware_py.board import BackendOptions, BoardBackend, BoardError
from firmware_py.board_settings import PinSpec

CONSUMER = "edge112"
# The chips that carry the 40-pin header: Pi 5 (RP1), Pi 4, Pi 3 and older.
PI_HEADER_LABELS = ("pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835")
CHIP_GLOB = "/dev/gpiochip*"


def _label(path: str) -> str:
    try:
        with gpiod.Chip(path) as chip:
            return str(chip.get_info().label)
    except OSError:
        return ""


def find_chip(wanted: str, chip_glob: str = CHIP_GLOB) -> str:
    """The device path for ``[board] chip``; raises ``BoardError`` when there is none."""
    paths = sorted(glob.glob(chip_glob), key=lambda p: (len(p), p))
    if wanted.startswith("/"):
        if not os.path.exists(wanted):
            raise BoardError(f"board.chip: no such GPIO chip {wanted}")
        return wanted
    if not paths:
        raise BoardError(f"no GPIO chip on this machine ({chip_glob})")
    if wanted == "auto":
        for path in paths:
            if _label(path) in PI_HEADER_LABELS:
                return path
        return paths[0]
    for path in paths:
        if os.path.basename(path) == wanted or _label(path) == wanted:
            return path
    raise BoardError(f"board.chip: no GPIO chip named or labelled {wanted!r} among {paths}")


class GpiodBackend(BoardBackend):
    name = "gpiod"

    def __init__(self, options: BackendOptions) -> None:
        super().__init__(options)
        self._request: Any = None
        self._chip: Any = None
        self.path = ""
        self.label = ""

    def open(self, pins: Sequence[PinSpec], initial: Mapping[str, bool]) -> None:
        self.path = find_chip(self.options.chip)
        try:
            self._chip = gpiod.Chip(self.path)
            info = self._chip.get_info()
        except OSError as error:
            raise BoardError(f"cannot open {self.path}: {error.strerror or error}") from error
        self.label, lines = str(info.label), int(info.num_lines)
        config: dict[int, Any] = {}
        for spec in pins:
            if spec.pin >= lines:
                self._chip.close()
                raise BoardError(
                    f"board.pins.{spec.name} = {spec.pin}: {self.path} ({self.label}) has "
                    f"{lines} lines (0-{lines - 1})"
                )
            if spec.is_input:
                bias = Bias.PULL_UP if spec.active_low else Bias.PULL_DOWN
                config[spec.pin] = gpiod.LineSettings(direction=Direction.INPUT, bias=bias)
            else:
                value = Value.ACTIVE if initial.get(spec.name) else Value.INACTIVE
                config[spec.pin] = gpiod.LineSettings(
                    direction=Direction.OUTPUT, output_value=value
                )
        try:
            self._request = self._chip.request_lines(config=config, consumer=CONSUMER)
        except OSError as error:
            self._chip.close()
            busy = [f"{spec.name} = {spec.pin}" for spec in pins]
            raise BoardError(
                f"cannot claim {', '.join(busy)} on {self.path}: {error.strerror or error} "
                "(held by another program? see gpioinfo)"
            ) from error

    def write(self, spec: PinSpec, level: bool) -> None:
        try:
            self._request.set_value(spec.pin, Value.ACTIVE if level else Value.INACTIVE)
        except OSError as error:
            raise BoardError(f"{spec.name}: {error}") from error

    def read(self, spec: PinSpec) -> bool:
        try:
            return bool(self._request.get_value(spec.pin) == Value.ACTIVE)
        except OSError as error:
            raise BoardError(f"{spec.name}: {error}") from error

    def close(self) -> None:
        if self._request is not None:
            self._request.release()
            self._request = None
        if self._chip is not None:
            self._chip.close()
            self._chip = None

    def describe(self) -> str:
        version = getattr(gpiod, "__version__", "?")
        return f"gpiod (libgpiod bindings {version}, {self.path or 'no chip'} {self.label})".strip()
