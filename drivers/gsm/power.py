"""What the GSM recovery ladder needs of a modem's power: the ``ModemPower`` protocol.

The driver decides *when* a modem is hung; an implementation of this
protocol does *what* the hardware allows, for one modem (one line)::

    implementation          where                               used by
    BoardModemPower         firmware_py.recovery (the board's   every GSM line of the daemon
                            ModemPowerControl: GPIO power key,  (gateway.daemon builds one per
                            load switch, USB port, reset)       line, through the family)
    SimulatedModemPower     drivers.simulated.gsm_power         the simulator without a board
    NoModemPower            here                                a driver built without power

``pulse_power_key`` is ladder step 3 (a power-key restart), ``cut_power``
step 4 (the strongest supply action the hardware has). An implementation
does not emit events: the ladder reports each step once, as a
``line.recovery`` with ``step``, ``reason`` and ``attempt``, carrying the
implementation's outcome and ``detail``.

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


class PowerReport(Protocol):
    """What a power action did (read-only): ``PowerResult`` here, or the board's own result
    (``firmware_py.recovery.ActionResult``: the board layer imports nothing from drivers)."""

    @property
    def outcome(self) -> RecoveryOutcome: ...

    @property
    def detail(self) -> str: ...


@dataclass(frozen=True)
class PowerResult:
    outcome: RecoveryOutcome
    detail: str


class ModemPower(Protocol):
    """Power control of one modem."""

    def pulse_power_key(self, on_progress: Progress) -> PowerReport:
        """Restart the modem with its power key: the off pulse, the shut-down wait, the on pulse."""
        ...

    def cut_power(self, on_progress: Progress) -> PowerReport:
        """Switch the modem's supply off, wait for the rails to drain, switch it on again."""
        ...


class NoModemPower:
    """A line without power control: every action is ``not_wired``."""

    def pulse_power_key(self, on_progress: Progress) -> PowerResult:
        return PowerResult(RecoveryOutcome.NOT_WIRED, "no power key wired for this modem")

    def cut_power(self, on_progress: Progress) -> PowerResult:
        return PowerResult(RecoveryOutcome.NOT_WIRED, "no power switch wired for this modem")
