"""The simulated modem's power key and supply: for the recovery ladder, or wired to a board.

Two ways to power a ``SimulatedGsmModem``, as a real modem is powered:

* ``SimulatedModemPower`` is ``drivers.gsm.power.ModemPower`` straight onto the
  modem (no board): a power-key restart or a power cut end the call in
  progress, forget every setting and boot the modem (banner, or a
  re-enumerated port), unless the modem was told to hang harder than the
  action reaches (``SimulatedGsmModem.hang(cured_by=...)``). Like the board,
  an action that ran is ``done`` whether or not the modem came back: the
  driver sees that in its next session. ``actions`` records what was done.
* ``BoardPinFollower`` wires the modem to a *simulated board*'s pins for its
  line, so the gateway's real power path (ladder -> ``BoardModemPower`` ->
  ``ModemPowerControl`` -> ``Board`` pins) reaches it::

      pin (logical level)        change                  the modem
      power_key_<line>           a pulse ends (released) on: switched off (a hang that
                                                         only a power cut cures: stays on,
                                                         hung); off: switched on, boots
      power_enable_<line>        inactive / active       supply off / on (boots)
      reset_<line>               a pulse ends            restarts as by its power key

  In one process (the demo, tests), :meth:`BoardPinFollower.attach` listens
  to the ``SimulatedBackend`` directly. Across processes (``edge112 run``
  with ``[board] backend = "simulated"`` and ``state_file``; ``edge112 sim
  gsm --board-state FILE``), :class:`BoardStateWatcher` polls that state
  file and replays pulses it was too slow to see (its ``edges`` count).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from drivers.gsm.power import PowerResult, Progress
from drivers.simulated.gsm_modem import POWER_OFF_S, Cure, SimulatedGsmModem
from firmware_py.backends.simulated import SimulatedBackend
from gateway.events import RecoveryOutcome

logger = logging.getLogger("edge112.simulated.power")

STATE_POLL_S = 0.05  # how often BoardStateWatcher reads the board's state file


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


class BoardPinFollower:
    """One simulated modem following the power pins of line ``line`` on a simulated board."""

    def __init__(self, modem: SimulatedGsmModem, line: str) -> None:
        self.modem = modem
        self.line = line
        self.power_key = f"power_key_{line}"
        self.power_enable = f"power_enable_{line}"
        self.reset = f"reset_{line}"
        self.seen: list[tuple[str, str]] = []  # (pin change, what the modem did), for a log
        self._held: set[str] = set()  # pulse pins now active
        self._lock = threading.Lock()

    @property
    def pins(self) -> tuple[str, str, str]:
        return (self.power_key, self.power_enable, self.reset)

    def attach(self, backend: SimulatedBackend) -> None:
        """Follow ``backend``'s pin changes from now on (in-process)."""

        def listener(name: str, level: bool) -> None:
            spec = backend.specs.get(name)
            if spec is not None and name in self.pins:
                self.pin_changed(name, level != spec.active_low)

        backend.add_listener(listener)

    def pin_changed(self, name: str, active: bool) -> None:
        """Pin ``name`` is now logically ``active`` (True) or not."""
        with self._lock:
            if name == self.power_enable:
                self._supply(active)
            elif name in (self.power_key, self.reset):
                if active:
                    self._held.add(name)
                elif name in self._held:
                    self._held.discard(name)
                    self._pulse_ended(name)

    def _supply(self, on: bool) -> None:
        if on:
            self.modem.power_on()
            self._note(f"{self.power_enable} on", "supply back: boots")
        else:
            off = self.modem.power_off(Cure.POWER_CUT)
            self._note(f"{self.power_enable} off", "off" if off else "stays hung")

    def _pulse_ended(self, name: str) -> None:
        if name == self.reset:
            revived = self.modem.powered and self.modem.power_key_pulse()
            self._note(f"{name} pulse", "restarts" if revived else "nothing")
        elif self.modem.powered:
            off = self.modem.power_off(Cure.POWER_KEY)
            self._note(f"{name} pulse", "switched off" if off else "stays hung")
        else:
            self.modem.power_on()
            self._note(f"{name} pulse", "switched on: boots")

    def _note(self, change: str, outcome: str) -> None:
        self.seen.append((change, outcome))
        logger.info("simulated modem of %s: %s -> %s", self.line, change, outcome)


class BoardStateWatcher:
    """Feeds :class:`BoardPinFollower` s from a simulated board's state file (another process).

    Reads the file every ``poll_s``; a pin whose ``edges`` count grew by two
    or more while its level looks unchanged had pulses too short to see, and
    they are replayed (active then inactive) in order.
    """

    def __init__(
        self,
        state_file: str | Path,
        followers: Iterable[BoardPinFollower],
        *,
        poll_s: float = STATE_POLL_S,
    ) -> None:
        self.state_file = Path(state_file)
        self.followers = list(followers)
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._known: dict[str, tuple[bool, int]] = {}  # pin -> (active, edges) last seen
        self._lock = threading.Lock()  # one poll at a time (the thread, or a caller)
        self._thread = threading.Thread(target=self._run, name="edge112-sim-board", daemon=True)

    def start(self) -> BoardStateWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)

    def poll(self) -> None:
        """Read the state file once and pass on what changed."""
        with self._lock, contextlib.suppress(OSError, ValueError):
            state = json.loads(self.state_file.read_text())
            if not isinstance(state, dict):
                return
            outputs, edges = state.get("outputs", {}), state.get("edges", {})
            if not isinstance(outputs, dict) or not isinstance(edges, dict):
                return
            for follower in self.followers:
                for pin in follower.pins:
                    if pin in outputs:
                        self._update(follower, pin, bool(outputs[pin]), edges.get(pin))

    def _update(self, follower: BoardPinFollower, pin: str, active: bool, edges: object) -> None:
        count = edges if isinstance(edges, int) else 0
        known = self._known.get(pin)
        self._known[pin] = (active, count)
        if known is None:  # the first look: the state as it is, no change
            return
        was_active, was_count = known
        missed = max(0, count - was_count - (active != was_active))
        for _ in range(missed // 2):  # whole pulses (or cuts) that came and went unseen
            follower.pin_changed(pin, not was_active)
            follower.pin_changed(pin, was_active)
        if active != was_active:
            follower.pin_changed(pin, active)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()
