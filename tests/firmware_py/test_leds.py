"""LEDs: the documented patterns, the gateway states they show, one owner thread."""

from __future__ import annotations

import itertools
import time

import pytest

from firmware_py.backends.simulated import SimulatedBackend
from firmware_py.board import Board, open_board
from firmware_py.board_settings import BoardSettings, PinSpec
from firmware_py.leds import (
    FAST,
    FLASH,
    HEARTBEAT,
    OFF,
    ON,
    SLOW,
    BoardView,
    GatewayLed,
    LedController,
    LineLed,
    patterns_for,
)
from tests.conftest import wait_until

PINS = (
    PinSpec("led_ready", 17),
    PinSpec("led_broker", 18),
    PinSpec("led_backlog", 19),
    PinSpec("led_alarm", 20, active_low=True),
    PinSpec("led_gsm0", 21),
    PinSpec("button", 26, active_low=True),
)


def board() -> tuple[Board, SimulatedBackend]:
    opened = open_board(BoardSettings(backend="simulated", pins=PINS), degrade=False)
    assert isinstance(opened.backend, SimulatedBackend)
    return opened, opened.backend


@pytest.mark.parametrize(
    ("pattern", "lit", "dark"),
    [
        (SLOW, [0.0, 0.49], [0.5, 0.99]),
        (FAST, [0.0, 0.12], [0.13, 0.24]),
        (FLASH, [0.0, 0.09], [0.1, 1.99]),
        (HEARTBEAT, [0.05, 0.25], [0.15, 0.35, 1.9]),
    ],
)
def test_patterns_light_as_documented(pattern, lit, dark) -> None:  # type: ignore[no-untyped-def]
    assert all(pattern.lit_at(t) for t in lit)
    assert not any(pattern.lit_at(t) for t in dark)
    assert ON.lit_at(123.4) and not OFF.lit_at(123.4)


def test_each_state_has_its_pattern() -> None:
    view = BoardView(
        gateway=GatewayLed.HEALTHY,
        broker_connected=False,
        backlog=150,
        alarm="warning",
        lines={
            "gsm0": LineLed.RINGING,
            "gsm1": LineLed.IN_CALL,
            "gsm2": LineLed.FAULT,
            "gsm3": LineLed.READY,
        },
    )
    chosen = patterns_for(view, backlog_warn=100)
    assert chosen == {
        "led_ready": ON,
        "led_broker": SLOW,
        "led_backlog": SLOW,
        "led_alarm": SLOW,
        "led_gsm0": FAST,
        "led_gsm1": SLOW,
        "led_gsm2": FLASH,
        "led_gsm3": ON,
    }
    quiet = patterns_for(
        BoardView(
            gateway=GatewayLed.UNHEALTHY,
            broker_connected=True,
            storage_fault=True,
            alarm="critical",
        ),
        backlog_warn=100,
    )
    assert (quiet["led_ready"], quiet["led_broker"], quiet["led_backlog"], quiet["led_alarm"]) == (
        FLASH,
        ON,
        FAST,
        ON,
    )
    assert patterns_for(BoardView(), 100)["led_ready"] is HEARTBEAT


def test_controller_thread_shows_the_view_on_the_pins() -> None:
    opened, backend = board()
    view = BoardView(
        gateway=GatewayLed.HEALTHY, broker_connected=True, lines={"gsm0": LineLed.READY}
    )
    controller = LedController(opened, lambda: view)
    controller.start()
    try:
        wait_until(
            lambda: backend.active("led_gsm0") and backend.active("led_ready"),
            what="ready LEDs lit",
        )
        assert not backend.active("led_alarm") and backend.levels["led_alarm"] is True
        view = BoardView(
            gateway=GatewayLed.HEALTHY, broker_connected=True, lines={"gsm0": LineLed.RINGING}
        )
        wait_until(lambda: len(backend.changes_of("led_gsm0")) >= 6, what="ringing blinks")
        times = [t for t, _ in backend.changes_of("led_gsm0")[-4:]]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(0.05 <= gap <= 0.3 for gap in gaps), gaps  # 4 Hz, within a tick
        assert controller.shown["led_gsm0"] == "fast"
    finally:
        controller.stop()
    assert not any(backend.active(led) for led in controller.leds)


def test_locate_blinks_every_led_together_then_returns() -> None:
    opened, backend = board()
    controller = LedController(opened, lambda: BoardView(gateway=GatewayLed.HEALTHY))
    controller.locate(0.6)
    controller.start()
    try:
        wait_until(
            lambda: all(len(backend.changes_of(led)) >= 3 for led in controller.leds),
            what="every LED blinks",
        )
        wait_until(lambda: controller.shown.get("led_ready") == "on", what="locate over")
    finally:
        controller.stop()


def test_button_press_runs_a_lamp_test_and_tells_the_gateway() -> None:
    opened, backend = board()
    pressed: list[float] = []
    controller = LedController(
        opened,
        lambda: BoardView(gateway=GatewayLed.HEALTHY),
        on_button=lambda: pressed.append(time.monotonic()),
    )
    controller.step()
    assert not backend.active("led_gsm0")
    backend.set_input("button", True)
    controller.step()
    assert len(pressed) == 1 and all(backend.active(led) for led in controller.leds)
    controller.step()
    assert len(pressed) == 1  # held, not pressed again


def test_a_failing_view_or_board_never_stops_the_leds() -> None:
    opened, backend = board()

    def broken() -> BoardView:
        raise RuntimeError("gateway state unreadable")

    controller = LedController(opened, broken)
    controller.step()
    assert backend.active("led_alarm") and controller.shown["led_ready"] == "flash"
    backend.vanish()
    controller.step()  # every write fails: logged at debug, no exception
