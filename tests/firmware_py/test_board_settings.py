"""``[board]`` in the configuration: every mistake names the file and the dotted key."""

from __future__ import annotations

import pytest

from firmware_py.board_settings import ModemWiring, PinSpec
from gateway.config import ConfigError, parse_config

BASE = """
[gateway]
id = "bontang-01"
region = "64.74"
[[modems]]
name = "gsm0"
port = "loop://"
"""


def config_with(board: str):  # type: ignore[no-untyped-def]
    return parse_config(BASE + board, "/etc/edge112/edge112.toml")


def error_of(board: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        config_with(board)
    assert caught.value.source == "/etc/edge112/edge112.toml"
    return caught.value


def test_no_board_section_means_auto_without_pins() -> None:
    board = config_with("").board
    assert (board.backend, board.pins, board.modems) == ("auto", (), ())


def test_pins_by_number_or_table_with_active_low_defaults() -> None:
    board = config_with(
        """
[board]
backend = "simulated"
backlog_warn = 50
[board.pins]
led_ready = 17
led_gsm0 = 18
power_key_gsm0 = { pin = 5, active_low = true }
button = 26
[board.modems.gsm0]
model = "simcom-sim7600"
usb_port = "1-1.3"
"""
    ).board
    assert board.backend == "simulated" and board.backlog_warn == 50
    assert board.pins == (
        PinSpec("led_ready", 17),
        PinSpec("led_gsm0", 18),
        PinSpec("power_key_gsm0", 5, active_low=True),
        PinSpec("button", 26, active_low=True),  # a button to ground: active low by default
    )
    assert board.pin("button") is not None and board.pin("button").is_input  # type: ignore[union-attr]
    assert board.pin("power_key_gsm0").line() == "gsm0"  # type: ignore[union-attr]
    assert board.modems == (ModemWiring("gsm0", "simcom-sim7600", "1-1.3"),)


@pytest.mark.parametrize(
    ("board", "key", "words"),
    [
        ('[board]\nbackend = "wiringpi"\n', "board.backend", "expected one of 'auto'"),
        ('[board]\ncolour = "red"\n', "board.colour", "unknown key"),
        (
            "[board.pins]\nled_ready = 17\nled_alarm = 17\n",
            "board.pins.led_alarm",
            "pin 17 is already board.pins.led_ready",
        ),
        ("[board.pins]\nled_sparkle = 3\n", "board.pins.led_sparkle", "no line named 'sparkle'"),
        ("[board.pins]\nfan = 3\n", "board.pins.fan", "unknown pin name"),
        (
            "[board.pins]\npower_key_gsm9 = 3\n",
            "board.pins.power_key_gsm9",
            "no line named 'gsm9' (configured lines: gsm0)",
        ),
        ("[board.pins]\nled_ready = -1\n", "board.pins.led_ready", "expected a GPIO number"),
        ('[board.pins]\nled_ready = "17"\n', "board.pins.led_ready", "expected a GPIO number"),
        ("[board.pins]\nled_ready = true\n", "board.pins.led_ready", "expected a GPIO number"),
        (
            "[board.pins]\nled_ready = { active_low = true }\n",
            "board.pins.led_ready.pin",
            "missing required key",
        ),
        (
            "[board.pins]\nled_ready = { pin = 4, inverted = true }\n",
            "board.pins.led_ready.inverted",
            "unknown key",
        ),
        (
            '[board.pins]\nled_ready = { pin = 4, active_low = "yes" }\n',
            "board.pins.led_ready.active_low",
            "expected true or false",
        ),
        (
            '[board.modems.gsm1]\nmodel = "quectel-ec25"\n',
            "board.modems.gsm1",
            "no line named 'gsm1'",
        ),
        (
            '[board.modems.gsm0]\nmodel = "nokia-3310"\n',
            "board.modems.gsm0.model",
            "'quectel-ec25'",
        ),
        (
            '[board.modems.gsm0]\nusb_port = "/dev/ttyUSB2"\n',
            "board.modems.gsm0.usb_port",
            "'1-1.3'",
        ),
        ('[board.modems.gsm0]\nhub = "1-1"\n', "board.modems.gsm0.hub", "unknown key"),
        ("[board]\nbacklog_warn = 0\n", "board.backlog_warn", "at least 1"),
        ('[board]\nchip = ""\n', "board.chip", "non-empty"),
    ],
)
def test_bad_board_config_names_file_and_key(board: str, key: str, words: str) -> None:
    error = error_of(board)
    assert error.key == key
    assert words in error.problem
    assert str(error).startswith(f"/etc/edge112/edge112.toml: {key}: ")
