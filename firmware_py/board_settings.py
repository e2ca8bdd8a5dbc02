"""The ``[board]`` configuration: which backend drives the GPIO pins, and which pin is what.

Read by ``gateway.config`` (which turns a :class:`BoardSettingsError` into a
``ConfigError`` naming the file); this module imports nothing from the
gateway, so the board layer stays below it::

    [board]
    backend = "auto"          # auto | rpi | gpiod | simulated | none
    chip = "auto"             # gpiod: /dev/gpiochipN, a chip name or label; auto finds the Pi's
    state_file = "..."        # simulated: where the board's state is written (edge112 sim board)
    backlog_warn = 100        # the backlog LED blinks from this many unsent events

    [board.pins]              # BCM GPIO numbers (the line offset on the chip)
    led_ready = 17            # a number ...
    power_key_gsm0 = { pin = 5, active_low = true }   # ... or a table
    button = { pin = 26, active_low = true }

    [board.modems.gsm0]       # per modem line: how to power it
    model = "quectel-ec25"    # power-key timings (firmware_py.recovery.POWER_PROFILES)
    usb_port = "1-1.3"        # its USB hub port, for port power switching (sysfs)

Pin names (``<line>`` is a configured line's name)::

    led_ready  led_broker  led_backlog  led_alarm      system LEDs (outputs)
    button                                             push button (input, pull-up)
    led_<line>                                         the line's LED
    power_key_<line>  reset_<line>  power_enable_<line>   modem power control (outputs)

Every output rests inactive (at start and when the gateway stops) except
``power_enable_<line>``, which rests *active*: stopping the gateway never cuts
a modem's supply.

``active_low`` says the pin's *electrical* level is low when the function is
active (a LED wired to 3V3, a button to ground, a key driven directly rather
than through the usual NPN transistor). Inputs default to active low (a
button to ground with the pull-up on); outputs to active high.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

BACKEND_NAMES = ("auto", "rpi", "gpiod", "simulated", "none")
SYSTEM_OUTPUTS = ("led_ready", "led_broker", "led_backlog", "led_alarm")
SYSTEM_INPUTS = ("button",)
POWER_ENABLE_PREFIX = "power_enable_"
LINE_OUTPUT_PREFIXES = ("led_", "power_key_", "reset_", POWER_ENABLE_PREFIX)
PIN_MAX = 1023  # a line offset; the chip's real size is checked when it is opened
BACKLOG_WARN_DEFAULT = 100
USB_PORT_PATTERN = re.compile(r"^\d+-\d+(\.\d+)*$")  # sysfs port path: bus-port[.port...]
_KEYS = ("backend", "chip", "state_file", "backlog_warn", "pins", "modems")
_MODEM_KEYS = ("model", "usb_port")
_PIN_KEYS = ("pin", "active_low")


class BoardSettingsError(ValueError):
    """A ``[board]`` problem: ``key`` is its dotted path (``board.pins.led_ready``)."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


@dataclass(frozen=True)
class PinSpec:
    """One named pin: its offset on the chip and whether its function is active low."""

    name: str
    pin: int
    active_low: bool = False

    @property
    def is_input(self) -> bool:
        return self.name in SYSTEM_INPUTS

    @property
    def rest_active(self) -> bool:
        """The output's level at rest (at open and close): a modem's supply stays on."""
        return self.name.startswith(POWER_ENABLE_PREFIX)

    def line(self) -> str | None:
        """The line a per-line pin belongs to (``power_key_gsm0`` -> ``gsm0``), else None."""
        if self.name in SYSTEM_OUTPUTS or self.name in SYSTEM_INPUTS:
            return None
        for prefix in LINE_OUTPUT_PREFIXES:
            if self.name.startswith(prefix):
                return self.name[len(prefix) :]
        return None


@dataclass(frozen=True)
class ModemWiring:
    """How the board powers one modem line (``[board.modems.<line>]``)."""

    line: str
    model: str = "generic"
    usb_port: str | None = None


@dataclass(frozen=True)
class BoardSettings:
    backend: str = "auto"
    chip: str = "auto"
    state_file: str | None = None
    backlog_warn: int = BACKLOG_WARN_DEFAULT
    pins: tuple[PinSpec, ...] = ()
    modems: tuple[ModemWiring, ...] = ()

    def pin(self, name: str) -> PinSpec | None:
        return next((spec for spec in self.pins if spec.name == name), None)

    def modem(self, line: str) -> ModemWiring | None:
        return next((wiring for wiring in self.modems if wiring.line == line), None)


def pin_names_for(lines: Iterable[str]) -> list[str]:
    """Every pin name a configuration with these lines may use, system names first."""
    names = [*SYSTEM_OUTPUTS, *SYSTEM_INPUTS]
    for line in lines:
        names += [prefix + line for prefix in LINE_OUTPUT_PREFIXES]
    return names


def parse_board_settings(table: Any, lines: Iterable[str], models: Iterable[str]) -> BoardSettings:
    """The ``[board]`` table (or None when absent) as settings, for these configured lines.

    ``models`` are the known power profiles (``firmware_py.recovery``).
    Raises :class:`BoardSettingsError` naming the key.
    """
    if table is None:
        return BoardSettings()
    if not isinstance(table, dict):
        raise BoardSettingsError("board", f"expected a table, got {table!r}")
    line_names = list(lines)
    for key in table:
        if key not in _KEYS:
            raise BoardSettingsError(
                f"board.{key}", f"unknown key (known keys: {', '.join(sorted(_KEYS))})"
            )
    backend = table.get("backend", "auto")
    if backend not in BACKEND_NAMES:
        expected = ", ".join(map(repr, BACKEND_NAMES))
        raise BoardSettingsError("board.backend", f"expected one of {expected}, got {backend!r}")
    chip = table.get("chip", "auto")
    if not isinstance(chip, str) or not chip:
        raise BoardSettingsError("board.chip", f"expected a non-empty string, got {chip!r}")
    state_file = table.get("state_file")
    if state_file is not None and (not isinstance(state_file, str) or not state_file):
        raise BoardSettingsError("board.state_file", f"expected a file path, got {state_file!r}")
    backlog_warn = table.get("backlog_warn", BACKLOG_WARN_DEFAULT)
    if isinstance(backlog_warn, bool) or not isinstance(backlog_warn, int) or backlog_warn < 1:
        raise BoardSettingsError(
            "board.backlog_warn", f"expected an integer of at least 1, got {backlog_warn!r}"
        )
    return BoardSettings(
        backend=backend,
        chip=chip,
        state_file=state_file,
        backlog_warn=backlog_warn,
        pins=_parse_pins(table.get("pins", {}), line_names),
        modems=_parse_modems(table.get("modems", {}), line_names, list(models)),
    )


def _parse_pins(table: Any, lines: list[str]) -> tuple[PinSpec, ...]:
    if not isinstance(table, dict):
        raise BoardSettingsError("board.pins", f"expected a table, got {table!r}")
    allowed = pin_names_for(lines)
    used: dict[int, str] = {}
    specs = []
    for name, value in table.items():
        key = f"board.pins.{name}"
        if name not in allowed:
            raise BoardSettingsError(key, _unknown_pin_problem(name, lines))
        pin, active_low = _pin_value(key, value, default_active_low=name in SYSTEM_INPUTS)
        if pin in used:
            raise BoardSettingsError(key, f"pin {pin} is already board.pins.{used[pin]}")
        used[pin] = name
        specs.append(PinSpec(name, pin, active_low))
    return tuple(specs)


def _unknown_pin_problem(name: str, lines: list[str]) -> str:
    for prefix in LINE_OUTPUT_PREFIXES:
        if name.startswith(prefix) and name not in SYSTEM_OUTPUTS:
            line = name[len(prefix) :]
            configured = ", ".join(lines) or "none"
            return f"no line named {line!r} (configured lines: {configured})"
    known = ", ".join([*SYSTEM_OUTPUTS, *SYSTEM_INPUTS])
    per_line = ", ".join(prefix + "<line>" for prefix in LINE_OUTPUT_PREFIXES)
    return f"unknown pin name (known: {known}; per line: {per_line})"


def _pin_value(key: str, value: Any, *, default_active_low: bool) -> tuple[int, bool]:
    active_low = default_active_low
    if isinstance(value, dict):
        for sub in value:
            if sub not in _PIN_KEYS:
                known = "known keys: active_low, pin"
                raise BoardSettingsError(f"{key}.{sub}", f"unknown key ({known})")
        if "pin" not in value:
            raise BoardSettingsError(f"{key}.pin", "missing required key")
        active_low = value.get("active_low", default_active_low)
        if not isinstance(active_low, bool):
            problem = f"expected true or false, got {active_low!r}"
            raise BoardSettingsError(f"{key}.active_low", problem)
        value, key = value["pin"], f"{key}.pin"
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= PIN_MAX:
        raise BoardSettingsError(
            key,
            f"expected a GPIO number from 0 to {PIN_MAX} or {{ pin = N, active_low = true }}, "
            f"got {value!r}",
        )
    return value, active_low


def _parse_modems(table: Any, lines: list[str], models: list[str]) -> tuple[ModemWiring, ...]:
    if not isinstance(table, dict):
        raise BoardSettingsError("board.modems", f"expected a table, got {table!r}")
    wirings = []
    for line, entry in table.items():
        key = f"board.modems.{line}"
        if line not in lines:
            configured = ", ".join(lines) or "none"
            problem = f"no line named {line!r} (configured lines: {configured})"
            raise BoardSettingsError(key, problem)
        if not isinstance(entry, Mapping):
            raise BoardSettingsError(key, f"expected a table, got {entry!r}")
        for sub in entry:
            if sub not in _MODEM_KEYS:
                known = ", ".join(_MODEM_KEYS)
                raise BoardSettingsError(f"{key}.{sub}", f"unknown key (known keys: {known})")
        model = entry.get("model", "generic")
        if model not in models:
            raise BoardSettingsError(
                f"{key}.model", f"expected one of {', '.join(map(repr, models))}, got {model!r}"
            )
        usb_port = entry.get("usb_port")
        if usb_port is not None and (
            not isinstance(usb_port, str) or not USB_PORT_PATTERN.match(usb_port)
        ):
            raise BoardSettingsError(
                f"{key}.usb_port",
                f"expected a USB port path such as '1-1.3' (see /sys/bus/usb/devices), got "
                f"{usb_port!r}",
            )
        wirings.append(ModemWiring(line, model, usb_port))
    return tuple(wirings)
