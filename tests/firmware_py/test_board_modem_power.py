"""BoardModemPower: the GSM ladder's ModemPower through the board, silent (the ladder reports)."""

from __future__ import annotations

from drivers.gsm.power import ModemPower
from firmware_py.backends.simulated import SimulatedBackend
from firmware_py.board_settings import ModemWiring
from firmware_py.recovery import (
    RECOVERY_MAX_PER_HOUR,
    BoardModemPower,
    ModemPowerControl,
    RecoveryLimiter,
)
from gateway.events import RecoveryOutcome
from tests.firmware_py.test_recovery import FAST, Recorder, make, pulses


def adapter(
    line: str, **kwargs: object
) -> tuple[ModemPower, ModemPowerControl, SimulatedBackend, Recorder]:
    modems = {line: ModemWiring(line, "fast-test-modem")}
    control, backend, recorder = make(modems, **kwargs)
    power: ModemPower = BoardModemPower(control, line)
    return power, control, backend, recorder


def test_the_power_key_step_pulses_off_then_on_and_emits_nothing() -> None:
    power, _, backend, recorder = adapter("gsm0")
    progress: list[int] = []
    result = power.pulse_power_key(lambda: progress.append(1))
    assert result.outcome is RecoveryOutcome.DONE
    assert "power_key_gsm0" in result.detail and "off pulse 0.2 s" in result.detail
    held = pulses(backend, "power_key_gsm0")
    assert len(held) == 2 and held[0] >= FAST.off_pulse_s and held[1] >= FAST.on_pulse_s
    assert recorder.events == [], "the ladder reports the step, not the board"


def test_the_power_cut_step_takes_the_strongest_wired_action() -> None:
    power, _, backend, recorder = adapter("gsm2")  # power_enable_gsm2 only
    result = power.cut_power(lambda: None)
    assert result.outcome is RecoveryOutcome.DONE
    assert "power_enable_gsm2" in result.detail
    assert [level for _, level in backend.changes_of("power_enable_gsm2")] == [False, True]

    power, _, backend, _ = adapter("gsm0")  # a reset line, no power enable, no USB port
    result = power.cut_power(lambda: None)
    assert result.outcome is RecoveryOutcome.DONE and "reset_gsm0" in result.detail
    assert len(pulses(backend, "reset_gsm0")) == 1
    assert recorder.events == []


def test_unwired_steps_say_what_is_missing() -> None:
    power, _, _, recorder = adapter("gsm9")
    key, cut = power.pulse_power_key(lambda: None), power.cut_power(lambda: None)
    assert key.outcome is RecoveryOutcome.NOT_WIRED and "power_key_gsm9" in key.detail
    assert cut.outcome is RecoveryOutcome.NOT_WIRED
    assert "power_enable_gsm9" in cut.detail and "usb_port" in cut.detail
    assert recorder.events == []


def test_the_boards_rate_limit_reaches_the_ladder_as_rate_limited() -> None:
    limiter = lambda: RecoveryLimiter(pause_initial_s=0.0)  # noqa: E731
    power, _, _, recorder = adapter("gsm0", limiter=limiter)
    outcomes = [power.pulse_power_key(lambda: None) for _ in range(RECOVERY_MAX_PER_HOUR + 1)]
    assert [r.outcome for r in outcomes[:-1]] == [RecoveryOutcome.DONE] * RECOVERY_MAX_PER_HOUR
    assert outcomes[-1].outcome is RecoveryOutcome.RATE_LIMITED
    assert outcomes[-1].detail.startswith("board: ")
    assert recorder.events == []
