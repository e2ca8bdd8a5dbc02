"""What the GSM recovery ladder needs of a modem's power: the ``ModemPower`` protocol.

The driver decides *when* a modem is hung; an implementation of this
protocol does *what* the hardware allows, for one modem (one line)::

    implementation                              where
    SimulatedModemPower                         drivers.simulated.gsm_power (the simulator)
    (board: GPIO power key, load switch)        firmware_py.recovery.ModemPowerControl, to be wired

Both methods block in the caller's thread (the line's worker) until the
action is done, calling ``on_progress`` at least every second while they
wait (the driver passes its progress note, so the daemon does not take the
worker for stuck), and return what happened; they never raise for a
hardware refusal. ``RecoveryOutcome`` is the contract's enum:
``done``, ``failed``, ``rate_limited``, ``not_wired``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.events import RecoveryOutcome

Progress = Callable[[], None]


@dataclass(frozen=True)
class PowerResult:
    outcome: RecoveryOutcome
    detail: str


class ModemPower(Protocol):
    """Power control of one modem."""

    def pulse_power_key(self, on_progress: Progress) -> PowerResult:
        """Restart the modem with its power key: the off pulse, the shut-down wait, the on pulse."""
        ...

    def cut_power(self, on_progress: Progress) -> PowerResult:
        """Switch the modem's supply off, wait for the rails to drain, switch it on again."""
        ...


class NoModemPower:
    """A line without power control: every action is ``not_wired``."""

    def pulse_power_key(self, on_progress: Progress) -> PowerResult:
        return PowerResult(RecoveryOutcome.NOT_WIRED, "no power key wired for this modem")

    def cut_power(self, on_progress: Progress) -> PowerResult:
        return PowerResult(RecoveryOutcome.NOT_WIRED, "no power switch wired for this modem")
