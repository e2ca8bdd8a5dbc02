"""A hung modem brought back by the board: the gateway's recovery ladder, end to end.

The gateway runs in this process (``Gateway``, as ``edge112 run`` builds it)
with a simulated board (``[board] backend = "simulated"``) and a simulated
modem on a real pseudo-terminal whose power key pin is wired to that board
(``BoardPinFollower``). The modem hangs (answers nothing) until its power key
is pulsed; the ladder climbs reopen -> ``AT+CFUN=1,1`` -> power key through
the board, the modem boots, the line comes up and takes the next call. A
subscriber on a real mosquitto checks what a regional center receives.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.simulated.gsm_modem import Cure, SimulatedCall, SimulatedGsmModem
from drivers.simulated.gsm_power import BoardPinFollower
from firmware_py.backends.simulated import SimulatedBackend
from gateway.broker import PrivateBroker
from gateway.config import parse_config
from gateway.consumer import FeedMonitor
from gateway.daemon import Gateway
from tests.conftest import PROCESS_TIMEOUT_S, validate_event

GATEWAY, REGION = "bontang-01", "64.74"
CALLER = "+6281234500112"


def config_text(tmp_path: Path, broker: PrivateBroker, link: Path) -> str:
    return f"""
[gateway]
id = "{GATEWAY}"
region = "{REGION}"
[mqtt]
url = "{broker.url}"
reconnect_min_s = 0.1
reconnect_max_s = 0.5
[outbox]
path = "{tmp_path / "outbox.db"}"
[[modems]]
name = "gsm0"
port = "{link}"
liveness_s = 1.0
modem_reset_boot_s = 0.5
power_key_boot_s = 0.5
power_cut_boot_s = 0.5
[board]
backend = "simulated"
state_file = "{tmp_path / "board.json"}"
[board.pins]
led_gsm0 = 19
power_key_gsm0 = 5
[board.modems.gsm0]
model = "simulated"
"""


@pytest.fixture
def modem(tmp_path: Path) -> Iterator[SimulatedGsmModem]:
    with SimulatedGsmModem(tmp_path / "gsm0", model="quectel_ec25") as simulated:
        yield simulated


def statuses(monitor: FeedMonitor) -> list[str]:
    return [e["data"]["state"] for e in monitor.events_of(GATEWAY, "line.status")]


def seen_after(events: list[dict[str, Any]], wanted: list[Any]) -> list[Any]:
    """``wanted`` items (predicates on an event) found in order in ``events``: which matched."""
    found, position = [], 0
    for predicate in wanted:
        while position < len(events) and not predicate(events[position]):
            position += 1
        if position == len(events):
            break
        found.append(events[position])
        position += 1
    return found


def is_status(state: str) -> Any:
    return lambda e: e["type"] == "line.status" and e["data"]["state"] == state


def is_step(step: int, action: str) -> Any:
    return lambda e: (
        e["type"] == "line.recovery"
        and e["data"].get("step") == step
        and e["data"]["action"] == action
        and e["data"]["outcome"] == "done"
    )


@pytest.mark.slow
def test_a_hung_modem_comes_back_when_the_board_pulses_its_power_key(
    tmp_path: Path, broker: PrivateBroker, monitor: FeedMonitor, modem: SimulatedGsmModem
) -> None:
    config = parse_config(config_text(tmp_path, broker, modem.link), "site.toml")
    gateway = Gateway(config)
    try:
        backend = gateway.board.backend
        assert isinstance(backend, SimulatedBackend), gateway.board.describe()
        follower = BoardPinFollower(modem, "gsm0")
        follower.attach(backend)
        gateway.start()
        assert monitor.wait_for(lambda m: statuses(m).count("up") == 1, PROCESS_TIMEOUT_S)

        modem.hang(Cure.POWER_KEY)  # answers nothing, AT+CFUN=1,1 included
        assert monitor.wait_for(lambda m: statuses(m).count("up") == 2, PROCESS_TIMEOUT_S), (
            "the line came back up"
        )
        modem.place_call(SimulatedCall(number=CALLER, hangup_after_rings=2))
        assert monitor.wait_for(
            lambda m: bool(m.events_of(GATEWAY, "call.offered")), PROCESS_TIMEOUT_S
        ), "the call after the recovery"
        pulses = backend.changes_of("power_key_gsm0")
    finally:
        gateway.stop()

    events = monitor.events_of(GATEWAY)
    for event in events:
        validate_event(event)
    story = [
        is_status("up"),
        is_status("down"),
        is_step(1, "reopen_port"),
        is_step(2, "modem_reset"),
        is_step(3, "power_key_cycle"),
        is_status("up"),
        lambda e: e["type"] == "call.offered" and e["data"]["number"] == CALLER,
    ]
    found = seen_after(events, story)
    assert len(found) == len(story), [(e["type"], e["data"]) for e in events]
    power_step = found[4]["data"]
    assert "power_key_gsm0" in power_step["detail"] and "simulated" in power_step["detail"]
    assert power_step["reason"] and power_step["attempt"] == 3

    recoveries = [e["data"] for e in events if e["type"] == "line.recovery"]
    assert [r["step"] for r in recoveries] == [1, 2, 3], "one event per step, none from the board"
    assert follower.seen == [
        ("power_key_gsm0 pulse", "switched off"),
        ("power_key_gsm0 pulse", "switched on: boots"),
    ]
    assert [active for _, active in pulses] == [True, False, True, False]  # off and on pulse
    assert modem.settings.clip, "set up again after the boot"
