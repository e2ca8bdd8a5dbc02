"""The simulated modem's power key and supply: ``drivers.gsm.power.ModemPower`` for the simulator.

What the board does with GPIOs (``firmware_py``), this does to a
``SimulatedGsmModem``: a power-key restart or a power cut end the call in
progress, forget every setting and boot the modem (banner, or a re-enumerated
port), unless the modem was told to hang harder than the action reaches
(``SimulatedGsmModem.hang(cured_by=...)``). Like the board, an action that
ran is ``done`` whether or not the modem came back: the driver sees that in
its next session. ``actions`` records what was done, for tests.
"""

from __future__ import annotations

from drivers.gsm.power import PowerResult, Progress
from drivers.simulated.gsm_modem import POWER_OFF_S, SimulatedGsmModem
from gateway.events import RecoveryOutcome


class SimulatedModemPower:
    """Power control of one simulated modem."""

    def __init__(self, modem: SimulatedGsmModem, *, off_s: float = POWER_OFF_S) -> None:
        self.modem = modem
        self.off_s = off_s
        self.actions: list[tuple[str, bool]] = []  # (action, whether the modem came back)

    def pulse_power_key(self, on_progress: Progress) -> PowerResult:
        revived = self.modem.power_key_pulse()
        on_progress()
        self.actions.append(("power_key", revived))
        return PowerResult(RecoveryOutcome.DONE, _detail("power key off and on", revived))

    def cut_power(self, on_progress: Progress) -> PowerResult:
        revived = self.modem.power_cut(self.off_s)
        on_progress()
        self.actions.append(("power_cut", revived))
        return PowerResult(
            RecoveryOutcome.DONE, _detail(f"supply off {self.off_s:g} s and on", revived)
        )


def _detail(action: str, revived: bool) -> str:
    return f"simulated: {action}" + ("" if revived else " (the modem stays hung)")
