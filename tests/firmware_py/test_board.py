"""The board contract: backends by name, auto with its reason, degrade to none, real libraries.

RPi.GPIO and the gpiod bindings are the real libraries (the test extra
installs them): RPi.GPIO refuses to import off a Raspberry Pi and gpiod
finds no chip on a machine without GPIO, and both must become clear
messages. Real GPIO lines are driven only where the kernel gives a chip
(``gpio_sim_chip``); elsewhere those tests are skipped with the reason.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from firmware_py.backends.simulated import SimulatedBackend, inputs_path
from firmware_py.board import (
    BACKENDS,
    BackendOptions,
    BackendUnavailable,
    Board,
    BoardError,
    load_backend_class,
    open_board,
    resolve_auto,
)
from firmware_py.board_settings import BoardSettings, PinSpec
from tests.firmware_py.conftest import GpioSim

PINS = (
    PinSpec("led_ready", 17),
    PinSpec("led_alarm", 27, active_low=True),
    PinSpec("power_key_gsm0", 5),
    PinSpec("button", 26, active_low=True),
)


def simulated(pins: tuple[PinSpec, ...] = PINS, **options: Any) -> Board:
    board = open_board(BoardSettings(backend="simulated", pins=pins, **options), degrade=False)
    assert isinstance(board.backend, SimulatedBackend)
    return board


def test_registry_names_every_backend_and_imports_none_until_asked() -> None:
    assert set(BACKENDS) == {"rpi", "gpiod", "simulated", "none"}
    for name in BACKENDS:
        assert BACKENDS[name].module.startswith("firmware_py.backends.")
    with pytest.raises(BoardError, match="no board backend 'wiringpi'"):
        load_backend_class("wiringpi")


def test_logical_levels_follow_active_low_on_the_wire() -> None:
    board = simulated()
    backend = board.backend
    assert isinstance(backend, SimulatedBackend)
    # at open: every output inactive, so the active-low LED's wire is high
    assert backend.levels["led_ready"] is False and backend.levels["led_alarm"] is True
    board.set("led_alarm", True)
    assert backend.levels["led_alarm"] is False and backend.active("led_alarm")
    assert board.state()["led_alarm"] is True
    assert board.get("button") is False
    backend.set_input("button", True)  # pressed: the wire goes low (pull-up, to ground)
    assert backend.levels["button"] is False and board.get("button") is True
    with pytest.raises(ValueError, match="is an input"):
        board.set("button", True)
    with pytest.raises(KeyError, match="no pin 'led_gsm1'"):
        board.set("led_gsm1", True)
    board.close()
    assert backend.closed and backend.levels["led_alarm"] is True  # released inactive


def test_pulse_holds_the_pin_for_the_time_and_releases_it() -> None:
    board = simulated()
    backend = board.backend
    assert isinstance(backend, SimulatedBackend)
    held = board.pulse("power_key_gsm0", 0.2)
    changes = backend.changes_of("power_key_gsm0")
    assert [level for _, level in changes] == [True, False]
    assert 0.2 <= changes[1][0] - changes[0][0] < 0.3
    assert held >= 0.2
    with pytest.raises(ValueError, match="at most 40 s"):
        board.pulse("power_key_gsm0", 41)
    stop = threading.Event()
    stop.set()
    assert board.pulse("power_key_gsm0", 30, stop=stop) < 1  # a stop cuts it short
    assert board.state()["power_key_gsm0"] is False


def test_a_pin_the_chip_lacks_is_a_clear_error_or_a_degraded_board() -> None:
    pins = (*PINS, PinSpec("led_broker", 60))
    settings = BoardSettings(backend="simulated", pins=pins)
    with pytest.raises(BoardError, match=r"board.pins.led_broker = 60: .* 54 lines \(0-53\)"):
        open_board(settings, degrade=False)
    alarms: list[tuple[str, dict[str, str]]] = []
    board = open_board(settings, on_alarm=lambda message, detail: alarms.append((message, detail)))
    assert board.backend_name == "none"
    assert "degraded from simulated" in board.why
    board.set("led_ready", True)  # does nothing, but never fails
    assert board.state()["led_ready"] is True
    assert board.get("button") is False
    [(message, detail)] = alarms
    assert "running without LEDs" in message
    assert detail["backend"] == "simulated" and "led_broker = 60" in detail["error"]


def test_auto_says_which_backend_and_why(tmp_path: Path) -> None:
    model = tmp_path / "model"
    no_chips = str(tmp_path / "gpiochip*")
    name, why = resolve_auto(model, no_chips)
    assert name == "none" and "no device-tree model" in why and "no GPIO chip" in why
    model.write_bytes(b"Raspberry Pi 4 Model B Rev 1.5\0")
    name, why = resolve_auto(model, no_chips)
    # RPi.GPIO is installed by the test extra: on a Pi 4 without a chip node, rpi is the choice
    assert (name, "'Raspberry Pi 4 Model B Rev 1.5'" in why) == ("rpi", True)
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    name, why = resolve_auto(model, no_chips)
    assert name == "none" and "needs the gpiod bindings" in why
    (tmp_path / "gpiochip0").touch()
    name, why = resolve_auto(model, str(tmp_path / "gpiochip*"))
    assert name == "gpiod" and "gpiochip0 present" in why


def test_auto_without_pins_is_none_and_never_probes() -> None:
    board = open_board(BoardSettings(backend="auto"), degrade=False)
    assert (board.backend_name, board.why) == ("none", "no pins configured")


@pytest.mark.skipif(
    importlib.util.find_spec("RPi") is None, reason="RPi.GPIO not installed (test extra)"
)
def test_rpi_gpio_off_a_raspberry_pi_is_a_clear_message() -> None:
    if (
        Path("/proc/device-tree/model").exists()
        and b"Raspberry Pi" in Path("/proc/device-tree/model").read_bytes()
    ):
        pytest.skip("this is a Raspberry Pi: RPi.GPIO loads here")
    with pytest.raises(BackendUnavailable) as caught:
        load_backend_class("rpi")
    message = str(caught.value)
    assert "refused to load on this machine" in message and "use backend = 'gpiod'" in message
    alarms: list[str] = []
    board = open_board(
        BoardSettings(backend="rpi", pins=PINS), on_alarm=lambda m, d: alarms.append(d["error"])
    )
    assert board.backend_name == "none" and "RPi.GPIO works only" in alarms[0]


def test_a_missing_library_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "gpiod", None)  # as if the bindings were not installed
    monkeypatch.delitem(sys.modules, "firmware_py.backends.libgpiod", raising=False)
    with pytest.raises(BackendUnavailable, match=r"pip install 'edge112\[gpiod\]'"):
        load_backend_class("gpiod")


@pytest.mark.skipif(importlib.util.find_spec("gpiod") is None, reason="gpiod not installed")
def test_gpiod_without_a_chip_degrades_with_the_reason() -> None:
    if glob.glob("/dev/gpiochip*"):
        pytest.skip("this machine has a GPIO chip")
    settings = BoardSettings(backend="gpiod", pins=PINS)
    with pytest.raises(BoardError, match="no GPIO chip on this machine"):
        open_board(settings, degrade=False)
    with pytest.raises(BoardError, match="no such GPIO chip /dev/gpiochip9"):
        open_board(BoardSettings(backend="gpiod", chip="/dev/gpiochip9", pins=PINS), degrade=False)
    assert open_board(settings).backend_name == "none"


def test_gpiod_drives_real_lines_on_gpio_sim(gpio_sim_chip: GpioSim) -> None:
    chip, value, pull = gpio_sim_chip
    pins = (
        PinSpec("led_ready", 3),
        PinSpec("led_alarm", 4, active_low=True),
        PinSpec("button", 7, active_low=True),
    )
    board = open_board(BoardSettings(backend="gpiod", chip=chip, pins=pins), degrade=False)
    try:
        assert board.backend_name == "gpiod"
        assert (value(3), value(4)) == (0, 1)
        board.set("led_ready", True)
        board.set("led_alarm", True)
        assert (value(3), value(4)) == (1, 0)
        pull(7, False)  # the button pulls the line to ground: pressed
        assert board.get("button") is True
        pull(7, True)
        assert board.get("button") is False
        with pytest.raises(BoardError, match="cannot claim"):  # one owner per line
            open_board(BoardSettings(backend="gpiod", chip=chip, pins=pins), degrade=False)
    finally:
        board.close()
    with pytest.raises(BoardError, match=r"has 32 lines \(0-31\)"):
        open_board(
            BoardSettings(backend="gpiod", chip=chip, pins=(PinSpec("led_ready", 40),)),
            degrade=False,
        )


def test_simulated_state_file_and_inputs_from_another_process(tmp_path: Path) -> None:
    state = tmp_path / "board.json"
    board = simulated(state_file=str(state))
    board.set("led_ready", True)
    snapshot = json.loads(state.read_text())
    assert snapshot["backend"] == "simulated" and snapshot["pid"] == os.getpid()
    assert snapshot["outputs"]["led_ready"] is True
    assert snapshot["outputs"]["led_alarm"] is False and snapshot["levels"]["led_alarm"] is True
    inputs_path(state).write_text(json.dumps({"button": True}))
    assert board.get("button") is True
    assert json.loads(state.read_text())["changes"] >= 1


def test_simulated_fault_injection_vanishing_chip() -> None:
    board = simulated()
    backend = board.backend
    assert isinstance(backend, SimulatedBackend)
    seen: list[tuple[str, bool]] = []
    backend.add_listener(lambda name, level: seen.append((name, level)))
    board.set("led_ready", True)
    assert seen == [("led_ready", True)]
    backend.vanish()
    with pytest.raises(BoardError, match="vanished"):
        board.set("led_ready", False)


def test_backend_options_reach_the_backend() -> None:
    backend = SimulatedBackend(BackendOptions(chip="gpiochip4"), chip_lines=8)
    assert backend.options.chip == "gpiochip4" and "8 lines" in backend.describe()
    started = time.monotonic()
    with pytest.raises(BoardError):
        backend.open([PinSpec("led_ready", 8)], {})
    assert time.monotonic() - started < 1


def test_a_modems_supply_stays_on_at_start_and_stop() -> None:
    board = simulated((PinSpec("power_enable_gsm0", 13), PinSpec("led_ready", 17)))
    backend = board.backend
    assert isinstance(backend, SimulatedBackend)
    assert backend.active("power_enable_gsm0") and not backend.active("led_ready")
    board.set("led_ready", True)
    board.close()
    assert backend.active("power_enable_gsm0") and not backend.active("led_ready")
