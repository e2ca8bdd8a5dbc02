"""Scenario ``[[faults]]`` (resets, hangs, replugs, registration, SMS) parsed and played
against the gateway's GSM driver, as ``edge112 sim gsm --scenario`` plays them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from drivers.gsm.modem import GsmModemDriver
from drivers.simulated.gsm_modem import SimulatedGsmModem
from drivers.simulated.scenario import ScenarioError, parse_scenario, play
from gateway.events import LineReset, LineStatus, SmsReceived
from tests.drivers.gsm.support import EventLog, wait_line_up


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ({"kind": "explode"}, "kind must be one of"),
        ({"kind": "reset", "status": 1}, "unknown key"),
        ({"kind": "hang", "cured_by": "prayer"}, "cured_by must be one of"),
        ({"kind": "registration", "status": 9}, "27.007 <stat>"),
        ({"kind": "sms", "text": "a", "pdu": "00"}, "exactly one of"),
        ({"kind": "sms", "text": "a", "encoding": "latin1"}, "gsm7 or ucs2"),
        ({"kind": "reset", "at_s": -1}, "seconds >= 0"),
    ],
)
def test_bad_faults_are_refused_with_the_reason(fault, problem):
    with pytest.raises(ScenarioError, match=problem):
        parse_scenario({"faults": [fault]})


def test_a_scenario_of_faults_plays_against_the_driver(tmp_path: Path, wait_until):
    scenario = parse_scenario(
        {
            "modem": {"model": "simcom_sim800"},
            "faults": [
                {"at_s": 0.5, "kind": "registration", "status": 2},
                {"at_s": 1.0, "kind": "registration", "status": 1},
                {"at_s": 1.5, "kind": "reset"},
                {
                    "at_s": 3.0,
                    "kind": "sms",
                    "text": "Pesan panjang " * 20,
                    "reverse_parts": True,
                },
            ],
        }
    )
    kinds = [fault.kind for fault in scenario.faults]
    assert kinds == ["registration", "registration", "reset", "sms"]
    log = EventLog()
    link = tmp_path / "gsm0"
    with SimulatedGsmModem(link, model=scenario.model or "simcom_sim800") as modem:
        driver = GsmModemDriver("gsm0", str(link), log, signal_interval_s=30.0)
        driver.start()
        try:
            wait_line_up(log, wait_until)
            play(modem, scenario, stop=threading.Event())
            wait_until(lambda: log.of(SmsReceived) and modem.sms.deletions)
        finally:
            driver.stop()

    assert "searching" in next(s for s in log.of(LineStatus) if s.state == "down").detail
    assert len(log.of(LineReset)) == 1
    assert log.of(SmsReceived)[0].text == "Pesan panjang " * 20


def test_the_shipped_faults_example_loads():
    from drivers.simulated.scenario import load_scenario

    example = Path(__file__).resolve().parents[3] / "examples" / "faults.toml"
    scenario = load_scenario(example)
    assert [fault.kind for fault in scenario.faults] == [
        "sms",
        "sms",
        "registration",
        "registration",
        "reset",
        "hang",
    ]
    assert scenario.calls[0].call.network_clip is False
