"""Modem conformance: one suite, on the simulated modem by default or on real hardware.

By default every test runs against ``drivers.simulated`` (each model in
turn). Point it at a real modem to run the same checks in the loop::

    EDGE112_MODEM_URL=/dev/serial/by-id/usb-Quectel_EC25-if02-port0 \\
        .venv/bin/python -m pytest -s tests/drivers/gsm/test_conformance.py

With real hardware the incoming-call test asks you (on the terminal, hence
``-s``) to call the modem's number from a phone, then to hang up before the
gateway answers; it waits up to ``EDGE112_CALL_WAIT_S`` seconds (default 90).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drivers.gsm.modem import GsmModemDriver
from drivers.simulated.gsm_modem import SimulatedCall, SimulatedGsmModem
from gateway.events import CallAbandoned, CallOffered, Event, LineStatus, encode
from tests.conftest import validate_event

REAL_MODEM = os.environ.get("EDGE112_MODEM_URL")
CALL_WAIT_S = float(os.environ.get("EDGE112_CALL_WAIT_S", "90"))
MODELS = ["quectel_ec25", "simcom_sim7600", "simcom_sim800", "huawei_e173"]


@dataclass
class ModemUnderTest:
    url: str
    place_incoming_call: Callable[[], None]
    real: bool


@pytest.fixture(params=[REAL_MODEM] if REAL_MODEM else MODELS)
def modem(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ModemUnderTest]:
    if REAL_MODEM:

        def ask_a_human() -> None:
            print(
                f"\n>>> call the modem at {REAL_MODEM} now, and hang up after 1-2 rings",
                file=sys.stderr,
            )

        yield ModemUnderTest(REAL_MODEM, ask_a_human, real=True)
        return
    with SimulatedGsmModem(tmp_path / "gsm0", model=request.param, seed=7) as sim:

        def simulated_caller() -> None:
            sim.place_call(
                SimulatedCall(number="+6281234500001", hangup_after_rings=2, ring_interval_s=0.3)
            )

        yield ModemUnderTest(str(sim.link), simulated_caller, real=False)


def run_driver(url: str, until: Callable[[list[Event]], bool], timeout: float) -> list[Event]:
    events: list[Event] = []
    driver = GsmModemDriver("gsm0", url, events.append, answer_after_rings=0)
    driver.start()
    try:
        deadline = time.monotonic() + timeout
        while not until(events) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        driver.stop()
    for event in events:
        validate_event_bytes(event)
    return events


def validate_event_bytes(event: Event) -> None:
    import json

    validate_event(json.loads(encode(event, seq=1, gateway_id="hil", region="64.74")))


def line_up(events: list[Event]) -> bool:
    return any(isinstance(e, LineStatus) and e.state == "up" for e in events)


def test_the_line_comes_up_registered_with_a_signal_and_goes_down_on_stop(
    modem: ModemUnderTest,
) -> None:
    events = run_driver(modem.url, line_up, timeout=20)
    statuses = [e for e in events if isinstance(e, LineStatus)]
    assert statuses and statuses[0].state == "up", f"line never came up: {statuses}"
    assert statuses[0].signal_dbm is None or -115 <= statuses[0].signal_dbm <= -51
    assert statuses[-1].state == "down" and "stopped" in statuses[-1].detail


def test_an_incoming_call_is_offered_then_abandoned(modem: ModemUnderTest) -> None:
    placed = False

    def call_over(events: list[Event]) -> bool:
        nonlocal placed
        if line_up(events) and not placed:
            placed = True
            modem.place_incoming_call()
        return any(isinstance(e, CallAbandoned) for e in events)

    events = run_driver(modem.url, call_over, timeout=CALL_WAIT_S if modem.real else 20)
    offered = [e for e in events if isinstance(e, CallOffered)]
    abandoned = [e for e in events if isinstance(e, CallAbandoned)]
    assert len(offered) == 1 and len(abandoned) == 1
    assert offered[0].call_id == abandoned[0].call_id
    assert abandoned[0].ring_count >= 1
    if not modem.real:
        assert offered[0].number == "+6281234500001"
