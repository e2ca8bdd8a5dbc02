"""Modem power control: per-model timings on the wire, rate limits, one event per action."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from firmware_py.backends.simulated import SimulatedBackend
from firmware_py.board import open_board
from firmware_py.board_settings import BoardSettings, ModemWiring, PinSpec
from firmware_py.recovery import (
    POWER_PROFILES,
    RECOVERY_MAX_PER_HOUR,
    ModemPowerControl,
    PowerProfile,
    RecoveryLimiter,
)
from gateway.events import Event, LineRecovery, RecoveryAction, RecoveryOutcome, encode
from tests.conftest import validate_event

FAST = PowerProfile(  # the shape of a real profile, in tenths of seconds
    "fast-test-modem",
    on_pulse_s=0.10,
    off_pulse_s=0.20,
    off_settle_s=0.15,
    reset_pulse_s=0.05,
    power_off_s=0.10,
    source="test",
)
PINS = (
    PinSpec("power_key_gsm0", 5, active_low=False),
    PinSpec("reset_gsm0", 6, active_low=True),
    PinSpec("power_key_gsm1", 12),
    PinSpec("power_enable_gsm2", 13),
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[LineRecovery] = []

    def __call__(self, event: Event) -> None:
        assert isinstance(event, LineRecovery)
        payload = json.loads(encode(event, seq=1, gateway_id="bontang-01", region="64.74"))
        validate_event(payload)
        self.events.append(event)

    def outcomes(self) -> list[tuple[str, str, str]]:
        return [(e.line, e.action.value, e.outcome.value) for e in self.events]


def make(
    modems: dict[str, ModemWiring] | None = None, **kwargs: object
) -> tuple[ModemPowerControl, SimulatedBackend, Recorder]:
    board = open_board(BoardSettings(backend="simulated", pins=PINS), degrade=False)
    assert isinstance(board.backend, SimulatedBackend)
    recorder = Recorder()
    wirings = modems or {"gsm0": ModemWiring("gsm0", "fast-test-modem")}
    control = ModemPowerControl(
        board,
        wirings,
        recorder,
        profiles={**POWER_PROFILES, "fast-test-modem": FAST},
        **kwargs,  # type: ignore[arg-type]
    )
    return control, board.backend, recorder


def pulses(backend: SimulatedBackend, pin: str) -> list[float]:
    """How long each pulse on ``pin`` held the function active (logical)."""
    spec = backend.specs[pin]
    changes = backend.changes_of(pin)
    held, started = [], None
    for when, level in changes:
        if level != spec.active_low:
            started = when
        elif started is not None:
            held.append(when - started)
            started = None
    return held


def test_profiles_respect_the_documented_minimums_and_maximums() -> None:
    ec25, sim7600, sim800 = (
        POWER_PROFILES[m] for m in ("quectel-ec25", "simcom-sim7600", "simcom-sim800")
    )
    assert ec25.on_pulse_s >= 0.5 and 0.65 <= ec25.off_pulse_s <= 1.5
    assert sim7600.on_pulse_s >= 0.5 and 2.5 <= sim7600.off_pulse_s <= 5.0
    assert sim800.on_pulse_s >= 1.0 and 1.5 <= sim800.off_pulse_s < 33.0
    for profile in POWER_PROFILES.values():
        assert profile.source
        total = profile.off_pulse_s + profile.off_settle_s + profile.on_pulse_s
        assert total < 60.0, "a power cycle must end well before a line counts as stuck"


def test_power_cycle_pulses_off_waits_then_on_with_the_models_timing() -> None:
    control, backend, recorder = make()
    progress: list[int] = []
    assert control.power_cycle("gsm0", on_progress=lambda: progress.append(1)) is (
        RecoveryOutcome.DONE
    )
    held = pulses(backend, "power_key_gsm0")
    assert len(held) == 2
    assert FAST.off_pulse_s <= held[0] < FAST.off_pulse_s + 0.1
    assert FAST.on_pulse_s <= held[1] < FAST.on_pulse_s + 0.1
    changes = backend.changes_of("power_key_gsm0")
    assert changes[2][0] - changes[1][0] >= FAST.off_settle_s  # the shut-down wait
    assert recorder.outcomes() == [
        ("gsm0", "power_key_off", "done"),
        ("gsm0", "power_key_on", "done"),
    ]
    assert [e.actions_last_hour for e in recorder.events] == [0, 1]
    assert "power key held 0.2 s" in recorder.events[0].detail
    assert progress, "a long wait shows progress to the caller"


def test_reset_line_is_active_low_on_the_wire() -> None:
    control, backend, recorder = make()
    assert control.reset("gsm0") is RecoveryOutcome.DONE
    assert [lvl for _, lvl in backend.changes_of("reset_gsm0")] == [False, True]  # low, released
    assert pulses(backend, "reset_gsm0")[0] >= FAST.reset_pulse_s
    assert recorder.outcomes() == [("gsm0", "reset", "done")]


def test_power_cut_is_preferred_when_wired() -> None:
    modems = {"gsm2": ModemWiring("gsm2", "fast-test-modem")}
    control, backend, recorder = make(modems)
    assert control.capabilities("gsm2") == [RecoveryAction.POWER_CUT]
    assert control.power_cycle("gsm2") is RecoveryOutcome.DONE
    assert backend.levels["power_enable_gsm2"] is True  # on at rest
    assert [lvl for _, lvl in backend.changes_of("power_enable_gsm2")] == [False, True]
    assert recorder.outcomes() == [("gsm2", "power_cut", "done")]


def test_an_action_without_wiring_is_reported_not_wired() -> None:
    control, _, recorder = make()
    assert control.reset("gsm1") is RecoveryOutcome.NOT_WIRED
    assert control.usb_power_cycle("gsm0") is RecoveryOutcome.NOT_WIRED
    assert control.power_cycle("gsm7") is RecoveryOutcome.NOT_WIRED
    assert recorder.outcomes() == [
        ("gsm1", "reset", "not_wired"),
        ("gsm0", "usb_power_cycle", "not_wired"),
        ("gsm7", "power_cut", "not_wired"),
    ]
    assert "board.modems.gsm0.usb_port" in recorder.events[1].detail


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_counts_per_hour_and_doubles_its_pause() -> None:
    clock = FakeClock()
    limiter = RecoveryLimiter(clock=clock)
    assert limiter.refusal() is None
    limiter.record()
    assert "pausing 60 s" in (limiter.refusal() or "")
    clock.now += 60
    assert limiter.refusal() is None
    limiter.record()
    clock.now += 60
    assert "pausing 120 s" in (limiter.refusal() or "")
    clock.now += 60
    limiter.record()
    clock.now += 240
    limiter.record()
    assert limiter.recent() == RECOVERY_MAX_PER_HOUR
    clock.now += 1000
    assert f"at most {RECOVERY_MAX_PER_HOUR}" in (limiter.refusal() or "")
    clock.now += 3600
    assert limiter.refusal() is None and limiter.recent() == 0
    limiter.record()
    clock.now += 61
    assert limiter.refusal() is None, "an hour of quiet starts the pause over"


def test_a_broken_modem_is_not_power_cycled_in_a_loop() -> None:
    clock = FakeClock()
    control, backend, recorder = make(
        limiter=lambda: RecoveryLimiter(clock=clock, pause_initial_s=0.0)
    )
    outcomes = [control.power_key("gsm0", on=False) for _ in range(RECOVERY_MAX_PER_HOUR + 2)]
    assert (
        outcomes
        == [RecoveryOutcome.DONE] * RECOVERY_MAX_PER_HOUR + [RecoveryOutcome.RATE_LIMITED] * 2
    )
    assert len(pulses(backend, "power_key_gsm0")) == RECOVERY_MAX_PER_HOUR
    refused = recorder.events[-1]
    assert refused.outcome is RecoveryOutcome.RATE_LIMITED
    assert refused.actions_last_hour == RECOVERY_MAX_PER_HOUR
    assert refused.duration_ms == 0 and "next possible in" in refused.detail


def test_a_failing_board_is_reported_failed_and_counted() -> None:
    control, backend, recorder = make()
    backend.vanish()
    assert control.power_key("gsm0", on=True) is RecoveryOutcome.FAILED
    assert recorder.outcomes() == [("gsm0", "power_key_on", "failed")]
    assert "vanished" in recorder.events[0].detail


def test_stop_cuts_a_power_cycle_short() -> None:
    stop = threading.Event()
    control, backend, _ = make(stop=stop)
    stop.set()
    assert control.power_cycle("gsm0") is RecoveryOutcome.FAILED
    assert backend.levels["power_key_gsm0"] is False  # released


def test_usb_port_power_cycle_through_sysfs(tmp_path: Path) -> None:
    attribute = tmp_path / "bus/usb/devices/1-1:1.0/1-1-port3/disable"
    attribute.parent.mkdir(parents=True)
    attribute.write_text("0\n")
    writes: list[str] = []
    modems = {"gsm0": ModemWiring("gsm0", "fast-test-modem", usb_port="1-1.3")}
    control, _, recorder = make(modems, sysfs_root=tmp_path)
    original = Path.write_text

    def spy(self: Path, text: str, *args: object, **kwargs: object) -> int:
        if self == attribute:
            writes.append(text)
        return original(self, text, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "write_text", spy)
        patch.setattr("firmware_py.usb_power.USB_OFF_S", 0.05)
        assert control.usb_power_cycle("gsm0") is RecoveryOutcome.DONE
    assert writes == ["1\n", "0\n"] and attribute.read_text() == "0\n"
    assert recorder.outcomes() == [("gsm0", "usb_power_cycle", "done")]
