"""A simulated modem wired to a simulated board's power pins, in one process or through the
board's state file: a power-key pulse switches it off or on, a cut supply stops it, it boots."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from drivers.simulated.gsm_modem import Cure, SimulatedGsmModem
from drivers.simulated.gsm_power import BoardPinFollower, BoardStateWatcher
from firmware_py.backends.simulated import SimulatedBackend
from firmware_py.board import Board, open_board
from firmware_py.board_settings import BoardSettings, PinSpec
from tests.conftest import PROCESS_TIMEOUT_S, wait_until

PINS = (
    PinSpec("power_key_gsm0", 5),
    PinSpec("power_enable_gsm0", 6),
    PinSpec("reset_gsm0", 7, active_low=True),
)


@pytest.fixture
def modem(tmp_path: Path) -> Iterator[SimulatedGsmModem]:
    with SimulatedGsmModem(tmp_path / "gsm0", model="quectel_ec25") as simulated:
        yield simulated


def board(state_file: Path | None = None) -> Board:
    settings = BoardSettings(
        backend="simulated", pins=PINS, state_file=None if state_file is None else str(state_file)
    )
    return open_board(settings, degrade=False)


def answers(modem: SimulatedGsmModem) -> bool:
    with serial.Serial(str(modem.link), timeout=0.5) as port:
        port.reset_input_buffer()
        port.write(b"AT\r")
        return b"OK" in port.read(64)


def banner_after(modem: SimulatedGsmModem, action) -> bytes:  # type: ignore[no-untyped-def]
    with serial.Serial(str(modem.link), timeout=0.2) as port:
        action()
        seen = bytearray()

        def booted() -> bool:
            seen.extend(port.read(256))
            return b"RDY" in seen

        wait_until(booted, what="boot banner")
        return bytes(seen)


def test_a_power_key_pulse_switches_a_hung_modem_off_and_the_next_one_boots_it(
    modem: SimulatedGsmModem,
) -> None:
    wired = board()
    follower = BoardPinFollower(modem, "gsm0")
    assert isinstance(wired.backend, SimulatedBackend)
    follower.attach(wired.backend)
    modem.hang(Cure.POWER_KEY)
    assert not answers(modem)
    wired.pulse("power_key_gsm0", 0.05)
    assert not modem.powered and not answers(modem)
    resets = modem.resets
    banner_after(modem, lambda: wired.pulse("power_key_gsm0", 0.05))
    assert modem.powered and modem.resets == resets + 1 and answers(modem)
    assert follower.seen == [
        ("power_key_gsm0 pulse", "switched off"),
        ("power_key_gsm0 pulse", "switched on: boots"),
    ]


def test_a_hang_only_a_power_cut_cures_ignores_the_key_until_the_supply_is_cut(
    modem: SimulatedGsmModem,
) -> None:
    wired = board()
    assert isinstance(wired.backend, SimulatedBackend)
    BoardPinFollower(modem, "gsm0").attach(wired.backend)
    modem.hang(Cure.POWER_CUT)
    wired.pulse("power_key_gsm0", 0.05)
    wired.pulse("reset_gsm0", 0.05)
    assert modem.powered and not answers(modem)  # still on, still hung

    wired.set("power_enable_gsm0", False)
    assert not modem.powered
    banner_after(modem, lambda: wired.set("power_enable_gsm0", True))
    assert answers(modem)


def test_another_process_board_reaches_the_modem_through_the_state_file(
    modem: SimulatedGsmModem, tmp_path: Path
) -> None:
    state = tmp_path / "board.json"
    wired = board(state)
    follower = BoardPinFollower(modem, "gsm0")
    watcher = BoardStateWatcher(state, [follower], poll_s=3600)  # polled by hand below
    watcher.poll()  # the state as it is: nothing to do
    modem.hang(Cure.POWER_KEY)
    wired.pulse("power_key_gsm0", 0.01)  # a whole pulse between two polls
    watcher.poll()
    assert not modem.powered, "a pulse the watcher did not see is replayed from its edges"
    wired.set("power_key_gsm0", True)
    watcher.poll()
    assert not modem.powered  # the key is held: nothing until it is released
    banner_after(modem, lambda: (wired.set("power_key_gsm0", False), watcher.poll()))
    assert answers(modem)
    assert [outcome for _, outcome in follower.seen] == ["switched off", "switched on: boots"]


def test_a_damaged_state_file_changes_nothing(modem: SimulatedGsmModem, tmp_path: Path) -> None:
    state = tmp_path / "board.json"
    watcher = BoardStateWatcher(state, [BoardPinFollower(modem, "gsm0")], poll_s=0.01)
    watcher.start()
    try:
        for text in ("", "{", "[1, 2]", '{"outputs": 3}', '{"outputs": {"power_key_gsm0": 1}}'):
            state.write_text(text)
            os.utime(state)
            watcher.poll()
    finally:
        watcher.stop()
    assert modem.powered and answers(modem)


def test_edge112_sim_gsm_follows_a_board_in_another_process(tmp_path: Path) -> None:
    """``edge112 sim gsm --board-state``: a modem hung by its scenario, its power key pulsed
    by a board in this process, boots and answers again."""
    scenario = tmp_path / "hang.toml"
    scenario.write_text('[[faults]]\nat_s = 0.0\nkind = "hang"\ncured_by = "power_key"\n')
    state, link = tmp_path / "board.json", tmp_path / "gsm0"
    wired = board(state)
    command = [sys.executable, "-m", "drivers.simulated.cli", "--link", str(link)]
    command += ["--scenario", str(scenario), "--board-state", str(state), "--line", "gsm0"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, cwd=Path(__file__).parents[3])
    try:
        assert process.stderr is not None
        wait_until(lambda: b"following the power pins" in process.stderr.readline(), what="up")
        wait_until(link.exists, what="the modem's link")
        with serial.Serial(str(link), timeout=0.3) as port:

            def hung() -> bool:
                port.write(b"AT\r")
                return b"OK" not in port.read(64)

            wait_until(hung, what="hung by its scenario")
            wired.pulse("power_key_gsm0", 0.2)  # off
            wired.pulse("power_key_gsm0", 0.2)  # on: boots
            seen = bytearray()

            def booted() -> bool:
                seen.extend(port.read(256))
                return b"RDY" in seen

            wait_until(booted, timeout=PROCESS_TIMEOUT_S, what="boot banner")
            port.write(b"AT\r")
            wait_until(lambda: b"OK" in port.read(64), what="answers again")
    finally:
        process.terminate()
        process.wait(PROCESS_TIMEOUT_S)
