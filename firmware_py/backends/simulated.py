"""Backend ``simulated``: a board in memory, shipped in the product, scriptable and readable.

Used by the demo, by ``edge112 sim board`` and by the tests; a simulated
modem can listen to its power key the way the real one does. What it offers
beyond the contract:

* ``levels`` (electrical) and ``active()`` (logical, by pin name): the state now;
* ``history``: every change as ``(monotonic time, pin name, level)``;
* ``add_listener(callback)``: ``callback(name, level)`` after each change (from the
  writing thread; keep it quick);
* ``set_input(name, active)``: press or release a button;
* fault injection: ``chip_lines`` (a pin at or past it is one the chip lacks, as on
  a real chip), ``vanish()`` (every later write or read fails, as when a USB GPIO
  expander is unplugged);
* a state file (``[board] state_file``): the outputs as JSON, rewritten on every
  change, so another process (``edge112 sim board --watch``) sees the LEDs;
  ``<state_file>.inputs`` (JSON ``{"button": true}``), written by
  ``edge112 sim board --press``, sets inputs from outside.

State file layout::

    {"backend": "simulated", "pid": 1234, "changes": 17, "updated": 1767225600.5,
     "outputs": {"led_ready": true, ...},      # logical: true = active (LED lit)
     "levels": {"led_ready": true, ...},       # electrical: true = high
     "inputs": {"button": false},
     "edges": {"led_ready": 3, ...}}           # changes per output: pulses a reader missed

A simulated modem follows its power pins (``power_key_<line>``,
``power_enable_<line>``, ``reset_<line>``) through ``add_listener`` in one
process or this state file in another:
``drivers.simulated.gsm_power.BoardPinFollower``.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from firmware_py.board import BackendOptions, BoardBackend, BoardError
from firmware_py.board_settings import PinSpec

SIMULATED_CHIP_LINES = 54  # like the BCM2835 family's GPIO bank
HISTORY_MAX = 10_000
INPUTS_SUFFIX = ".inputs"

Listener = Callable[[str, bool], None]


def inputs_path(state_file: str | Path) -> Path:
    """Where ``edge112 sim board --press`` writes the inputs for a state file."""
    return Path(f"{state_file}{INPUTS_SUFFIX}")


class SimulatedBackend(BoardBackend):
    name = "simulated"

    def __init__(self, options: BackendOptions, *, chip_lines: int = SIMULATED_CHIP_LINES) -> None:
        super().__init__(options)
        self.chip_lines = chip_lines
        self.levels: dict[str, bool] = {}
        self.history: list[tuple[float, str, bool]] = []
        self.specs: dict[str, PinSpec] = {}
        self.opened = False
        self.closed = False
        self._inputs: dict[str, bool] = {}  # logical, set by set_input
        self._listeners: list[Listener] = []
        self._vanished = False
        self._lock = threading.Lock()
        self._changes = 0
        self._edges: dict[str, int] = {}  # changes per pin
        self._state_file = Path(options.state_file) if options.state_file else None

    # ------------------------------------------------------------ the contract

    def open(self, pins: Sequence[PinSpec], initial: Mapping[str, bool]) -> None:
        for spec in pins:
            if spec.pin >= self.chip_lines:
                raise BoardError(
                    f"board.pins.{spec.name} = {spec.pin}: the simulated chip has "
                    f"{self.chip_lines} lines (0-{self.chip_lines - 1})"
                )
        self.specs = {spec.name: spec for spec in pins}
        with self._lock:
            for spec in pins:
                self.levels[spec.name] = (
                    spec.active_low if spec.is_input else initial.get(spec.name, False)
                )
            self.opened = True
        self._write_state()

    def write(self, spec: PinSpec, level: bool) -> None:
        self._check()
        with self._lock:
            changed = self.levels.get(spec.name) != level
            self.levels[spec.name] = level
            if changed:
                self._changes += 1
                self._edges[spec.name] = self._edges.get(spec.name, 0) + 1
                self.history.append((time.monotonic(), spec.name, level))
                del self.history[:-HISTORY_MAX]
            listeners = list(self._listeners)
        if changed:
            self._write_state()
            for listener in listeners:
                listener(spec.name, level)

    def read(self, spec: PinSpec) -> bool:
        self._check()
        self._read_inputs_file()
        with self._lock:
            active = self._inputs.get(spec.name, False)
        return active != spec.active_low

    def close(self) -> None:
        self.closed = True
        self._write_state()

    def describe(self) -> str:
        where = f", state in {self._state_file}" if self._state_file else ""
        return f"simulated ({self.chip_lines} lines{where})"

    # ------------------------------------------------------------ scripting

    def active(self, name: str) -> bool:
        """The logical state of pin ``name`` (an output: lit/asserted; an input: pressed)."""
        spec = self.specs[name]
        if spec.is_input:
            return self._inputs.get(name, False)
        return self.levels.get(name, spec.active_low) != spec.active_low

    def set_input(self, name: str, active: bool) -> None:
        """Press (True) or release an input."""
        if name not in self.specs or not self.specs[name].is_input:
            raise KeyError(f"no input {name!r} on the simulated board")
        with self._lock:
            self._inputs[name] = active
            spec = self.specs[name]
            self.levels[name] = active != spec.active_low
        self._write_state()

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def changes_of(self, name: str) -> list[tuple[float, bool]]:
        """``(time, level)`` of each change of pin ``name``, oldest first."""
        with self._lock:
            return [(when, level) for when, pin, level in self.history if pin == name]

    def vanish(self) -> None:
        """From now on every write and read fails, as when the chip is unplugged."""
        self._vanished = True

    # ------------------------------------------------------------ internals

    def _check(self) -> None:
        if self._vanished:
            raise BoardError("the simulated GPIO chip vanished")

    def _read_inputs_file(self) -> None:
        if self._state_file is None:
            return
        with contextlib.suppress(OSError, ValueError):
            wanted = json.loads(inputs_path(self._state_file).read_text())
            if isinstance(wanted, dict):
                with self._lock:
                    for name, active in wanted.items():
                        if name in self.specs and self.specs[name].is_input:
                            self._inputs[name] = bool(active)

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "backend": self.name,
                "pid": os.getpid(),
                "changes": self._changes,
                "updated": time.time(),
                "closed": self.closed,
                "outputs": {
                    name: self.levels.get(name, False) != spec.active_low
                    for name, spec in self.specs.items()
                    if not spec.is_input
                },
                "levels": dict(self.levels),
                "inputs": {
                    name: self._inputs.get(name, False)
                    for name, spec in self.specs.items()
                    if spec.is_input
                },
                "edges": {
                    name: self._edges.get(name, 0)
                    for name, spec in self.specs.items()
                    if not spec.is_input
                },
            }

    def _write_state(self) -> None:
        if self._state_file is None:
            return
        text = json.dumps(self.snapshot(), sort_keys=True)
        temporary = self._state_file.with_name(
            f".{self._state_file.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        )
        try:
            temporary.write_text(text)
            os.replace(temporary, self._state_file)
        except OSError:  # a state file is a convenience: never a reason to fail a LED
            with contextlib.suppress(OSError):
                temporary.unlink()
