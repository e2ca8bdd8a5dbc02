"""Backend ``rpi``: RPi.GPIO, BCM numbering (Raspberry Pi 4, 3, Zero and older).

RPi.GPIO installs anywhere but raises ``RuntimeError`` on import off a
Raspberry Pi ("This module can only be run on a Raspberry Pi!"), and it does
not support the Raspberry Pi 5 (use ``gpiod`` there): ``firmware_py.board``
turns both into a clear ``BackendUnavailable``. It drives the pins through
``/dev/gpiomem``, so the service user needs the ``gpio`` group (Raspberry Pi
OS) or the udev rule in ``systemd/99-edge112-gpio.rules``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import RPi.GPIO as GPIO

from firmware_py.board import BoardBackend, BoardError
from firmware_py.board_settings import PinSpec

BCM_HEADER_PINS = range(0, 28)  # GPIO0-GPIO27 reach the 40-pin header


class RpiGpioBackend(BoardBackend):
    name = "rpi"

    def open(self, pins: Sequence[PinSpec], initial: Mapping[str, bool]) -> None:
        for spec in pins:
            if spec.pin not in BCM_HEADER_PINS:
                raise BoardError(
                    f"board.pins.{spec.name} = {spec.pin}: RPi.GPIO drives BCM GPIO "
                    f"{BCM_HEADER_PINS.start}-{BCM_HEADER_PINS.stop - 1} (the 40-pin header)"
                )
        GPIO.setwarnings(False)
        GPIO.setmode(GPIO.BCM)
        for spec in pins:
            try:
                if spec.is_input:
                    pull = GPIO.PUD_UP if spec.active_low else GPIO.PUD_DOWN
                    GPIO.setup(spec.pin, GPIO.IN, pull_up_down=pull)
                else:
                    level = GPIO.HIGH if initial.get(spec.name) else GPIO.LOW
                    GPIO.setup(spec.pin, GPIO.OUT, initial=level)
            except (RuntimeError, ValueError) as error:
                GPIO.cleanup()
                raise BoardError(f"board.pins.{spec.name} = {spec.pin}: {error}") from error
        self._pins = [spec.pin for spec in pins]

    def write(self, spec: PinSpec, level: bool) -> None:
        GPIO.output(spec.pin, GPIO.HIGH if level else GPIO.LOW)

    def read(self, spec: PinSpec) -> bool:
        return bool(GPIO.input(spec.pin))

    def close(self) -> None:
        if getattr(self, "_pins", None):
            GPIO.cleanup(self._pins)

    def describe(self) -> str:
        return f"rpi (RPi.GPIO {getattr(GPIO, 'VERSION', '?')}, BCM numbering)"
