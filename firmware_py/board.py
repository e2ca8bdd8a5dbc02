"""The board contract: named pins over a GPIO backend chosen by name, imported when used.

The gateway, the LED controller and the GSM recovery ladder speak to a
:class:`Board` in *names* and *functions* (``board.set("led_alarm", True)``
lights the alarm LED, ``board.pulse("power_key_gsm0", 0.6)`` holds the key);
the board turns them into electrical levels (``active_low``) and hands those
to one backend. A backend is a subclass of :class:`BoardBackend` that claims
pins, writes and reads levels, and nothing else. The model is python-can's
``can/interfaces/__init__.py``::

    backend     module                              class             needs
    rpi         firmware_py.backends.rpi_gpio      RpiGpioBackend    RPi.GPIO (Pi 4 and older)
    gpiod       firmware_py.backends.libgpiod      GpiodBackend      gpiod >= 2 (any Linux board)
    simulated   firmware_py.backends.simulated     SimulatedBackend  nothing: shipped, scriptable
    none        firmware_py.backends.none          NoBackend         nothing: pins do nothing
    auto        picks one of the above (:func:`resolve_auto`) and says which and why

Failure policy: the gateway never stops forwarding calls because of a LED.
:func:`open_board` with ``degrade=True`` (the daemon) turns a backend that
cannot be imported or cannot claim its pins into ``none`` and reports it
once through ``on_alarm`` (a ``board_unavailable`` alarm); with
``degrade=False`` (``edge112 board ...``, ``doctor``) it raises
:class:`BoardError` with the reason.

Threads: every method of ``Board`` may be called from any thread; one lock
serialises the backend. By convention the LED controller owns the ``led_*``
pins and the recovery ladder the power pins.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

from firmware_py.board_settings import BoardSettings, PinSpec

log = logging.getLogger("edge112.board")

DEVICE_TREE_MODEL = Path("/proc/device-tree/model")
GPIO_CHIP_GLOB = "/dev/gpiochip*"
PULSE_MAX_S = 40.0  # a pulse longer than this is a mistake (SIM800 powers *on* again past 33 s)


class BoardError(RuntimeError):
    """The board cannot do what was asked: a library missing, a chip or pin unavailable."""


class BackendEntry(NamedTuple):
    module: str
    class_name: str
    needs: str  # how to get what it needs, for the message when it is missing


BACKENDS: dict[str, BackendEntry] = {
    "rpi": BackendEntry(
        "firmware_py.backends.rpi_gpio",
        "RpiGpioBackend",
        "RPi.GPIO: pip install 'edge112[rpi]' or apt install python3-rpi.gpio",
    ),
    "gpiod": BackendEntry(
        "firmware_py.backends.libgpiod",
        "GpiodBackend",
        "the libgpiod v2 bindings: pip install 'edge112[gpiod]'",
    ),
    "simulated": BackendEntry("firmware_py.backends.simulated", "SimulatedBackend", "nothing"),
    "none": BackendEntry("firmware_py.backends.none", "NoBackend", "nothing"),
}


@dataclass(frozen=True)
class BackendOptions:
    chip: str = "auto"  # gpiod: which chip
    state_file: str | None = None  # simulated: where to write the state


class BoardBackend(ABC):
    """Claims pins and drives their *electrical* levels (True = high). Subclass per library."""

    name: ClassVar[str]

    def __init__(self, options: BackendOptions) -> None:
        self.options = options

    @abstractmethod
    def open(self, pins: Sequence[PinSpec], initial: Mapping[str, bool]) -> None:
        """Claim every pin (outputs at their ``initial`` level, inputs with a pull-up/down
        matching ``active_low``). Raise :class:`BoardError` naming the pin that fails."""

    @abstractmethod
    def write(self, spec: PinSpec, level: bool) -> None:
        """Drive an output high (True) or low."""

    @abstractmethod
    def read(self, spec: PinSpec) -> bool:
        """An input's level (True = high)."""

    @abstractmethod
    def close(self) -> None:
        """Release every pin (outputs go back to inputs where the library does that)."""

    def describe(self) -> str:
        """One line for logs and ``doctor``: which library, which chip."""
        return self.name


class BackendUnavailable(BoardError):
    """The backend's library is missing or refuses to load on this machine."""


def load_backend_class(name: str) -> type[BoardBackend]:
    """The backend class registered as ``name``, its module imported now."""
    entry = BACKENDS.get(name)
    if entry is None:
        raise BoardError(f"no board backend {name!r} (known: {', '.join(sorted(BACKENDS))}, auto)")
    try:
        module = importlib.import_module(entry.module)
    except ImportError as error:
        raise BackendUnavailable(
            f"board backend {name!r} is not available: {error}; it needs {entry.needs}"
        ) from error
    except RuntimeError as error:  # RPi.GPIO off a Raspberry Pi: "This module can only be run..."
        raise BackendUnavailable(
            f"board backend {name!r} refused to load on this machine ({error}); "
            "RPi.GPIO works only on a Raspberry Pi 4 or older: use backend = 'gpiod'"
        ) from error
    backend_class = getattr(module, entry.class_name)
    assert issubclass(backend_class, BoardBackend)
    return backend_class


def _module_installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def resolve_auto(
    model_path: Path = DEVICE_TREE_MODEL, chip_glob: str = GPIO_CHIP_GLOB
) -> tuple[str, str]:
    """``(backend, why)`` for ``backend = "auto"``, from the device tree and what is installed.

    Raspberry Pi 5 and Compute Module 5: gpiod (RPi.GPIO does not support them).
    Any other board with a GPIO character device: gpiod when its bindings are
    installed, else rpi on a Raspberry Pi with RPi.GPIO. Otherwise none.
    """
    try:
        model = model_path.read_bytes().rstrip(b"\0").decode(errors="replace").strip()
    except OSError:
        model = ""
    chips = sorted(glob.glob(chip_glob))
    where = f"{model!r}" if model else "no device-tree model (not a Raspberry Pi or similar)"
    has_gpiod, has_rpi = _module_installed("gpiod"), _module_installed("RPi.GPIO")
    is_pi = model.startswith("Raspberry Pi")
    if chips and has_gpiod:
        return "gpiod", f"{where}, {chips[0]} present and the gpiod bindings installed"
    if is_pi and ("Raspberry Pi 5" in model or "Compute Module 5" in model):
        return "none", f"{where} needs the gpiod bindings (pip install 'edge112[gpiod]')"
    if is_pi and has_rpi:
        return "rpi", f"{where} and RPi.GPIO installed (no gpiod bindings)"
    if is_pi:
        return "none", f"{where} but neither gpiod nor RPi.GPIO is installed"
    if chips:
        return "none", f"{where}: {chips[0]} present but the gpiod bindings are not installed"
    return "none", f"{where}: no GPIO chip ({chip_glob})"


class Board:
    """Named pins on one backend. Levels are *logical*: True = the function is active."""

    def __init__(self, backend: BoardBackend, pins: Sequence[PinSpec], why: str = "") -> None:
        self.backend = backend
        self.pins: dict[str, PinSpec] = {spec.name: spec for spec in pins}
        self.why = why  # how the backend was chosen (auto) or why it degraded
        self._lock = threading.RLock()
        self._state: dict[str, bool] = {s.name: s.rest_active for s in pins if not s.is_input}
        self._closed = False

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def open(self) -> None:
        initial = {spec.name: self._level(spec, spec.rest_active) for spec in self.pins.values()}
        with self._lock:
            self.backend.open(list(self.pins.values()), initial)

    def has(self, name: str) -> bool:
        return name in self.pins

    def _spec(self, name: str, *, output: bool) -> PinSpec:
        spec = self.pins.get(name)
        if spec is None:
            raise KeyError(f"no pin {name!r} on this board (configured: {', '.join(self.pins)})")
        if spec.is_input == output:
            raise ValueError(f"pin {name!r} is an {'input' if spec.is_input else 'output'}")
        return spec

    @staticmethod
    def _level(spec: PinSpec, active: bool) -> bool:
        return active != spec.active_low

    def set(self, name: str, active: bool) -> None:
        """Make output ``name`` active (True) or inactive."""
        spec = self._spec(name, output=True)
        with self._lock:
            if self._closed:
                return
            self.backend.write(spec, self._level(spec, active))
            self._state[name] = active

    def get(self, name: str) -> bool:
        """Whether input ``name`` is active (a button: pressed)."""
        spec = self._spec(name, output=False)
        with self._lock:
            return self._level(spec, self.backend.read(spec))

    def pulse(self, name: str, seconds: float, *, stop: threading.Event | None = None) -> float:
        """Hold output ``name`` active for ``seconds``, then release it; returns the time held.

        A set ``stop`` cuts the pulse short (the pin is released at once).
        """
        if not 0 < seconds <= PULSE_MAX_S:
            raise ValueError(f"a pulse lasts more than 0 and at most {PULSE_MAX_S:g} s")
        started = time.monotonic()
        self.set(name, True)
        try:
            if stop is not None:
                stop.wait(seconds)
            else:
                time.sleep(seconds)
        finally:
            self.set(name, False)
        return time.monotonic() - started

    def state(self) -> dict[str, bool]:
        """Every output's last logical level and every input's current one."""
        with self._lock:
            levels = dict(self._state)
            for spec in self.pins.values():
                if spec.is_input:
                    try:
                        levels[spec.name] = self._level(spec, self.backend.read(spec))
                    except Exception:
                        log.debug("reading %s failed", spec.name, exc_info=True)
            return levels

    def close(self) -> None:
        """Outputs back at rest (inactive; power enables on), pins released. Safe twice."""
        with self._lock:
            if self._closed:
                return
            for name, spec in self.pins.items():
                if not spec.is_input:
                    try:
                        self.backend.write(spec, self._level(spec, spec.rest_active))
                    except Exception:
                        log.debug("releasing %s failed", name, exc_info=True)
            self._closed = True
            self.backend.close()

    def describe(self) -> str:
        text = self.backend.describe()
        return f"{text} ({self.why})" if self.why else text


AlarmCallback = Callable[[str, dict[str, str]], None]  # (message, detail)


def open_board(
    settings: BoardSettings,
    *,
    degrade: bool = True,
    on_alarm: AlarmCallback | None = None,
    model_path: Path = DEVICE_TREE_MODEL,
    chip_glob: str = GPIO_CHIP_GLOB,
) -> Board:
    """The configured board, opened. See the module docstring for ``degrade``."""
    name, why = settings.backend, ""
    if not settings.pins and name == "auto":
        name, why = "none", "no pins configured"
    elif name == "auto":
        name, why = resolve_auto(model_path, chip_glob)
        log.info("board backend auto: %s (%s)", name, why)
    options = BackendOptions(chip=settings.chip, state_file=settings.state_file)
    try:
        board = Board(load_backend_class(name)(options), settings.pins, why)
        board.open()
        return board
    except BoardError as error:
        if not degrade:
            raise
        from firmware_py.backends.none import NoBackend

        message = f"board backend {name!r} unavailable, running without LEDs and power control"
        log.error("%s: %s", message, error)
        if on_alarm is not None:
            on_alarm(message, {"backend": name, "error": str(error)})
        fallback = Board(NoBackend(options), settings.pins, f"degraded from {name}: {error}")
        fallback.open()
        return fallback
