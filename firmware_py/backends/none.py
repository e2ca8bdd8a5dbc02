"""Backend ``none``: a board without GPIO.

Outputs are remembered by the ``Board`` and do nothing; inputs read inactive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from firmware_py.board import BoardBackend
from firmware_py.board_settings import PinSpec


class NoBackend(BoardBackend):
    name = "none"

    def open(self, pins: Sequence[PinSpec], initial: Mapping[str, bool]) -> None:
        self._pins = {spec.name: spec for spec in pins}

    def write(self, spec: PinSpec, level: bool) -> None:
        pass

    def read(self, spec: PinSpec) -> bool:
        return spec.active_low  # the inactive level

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return "none (no GPIO: LEDs, button and modem power control do nothing)"
