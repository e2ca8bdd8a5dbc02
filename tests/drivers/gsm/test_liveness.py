"""Liveness (issue 7 step 3): an idle modem is pinged, so a hung one is found within 15 s;
and ``modems[].baudrate`` / ``liveness_s`` reach the port and the driver (step 6)."""

from __future__ import annotations

import time

import pytest

from drivers.gsm.family import GsmFamily
from drivers.simulated.gsm_modem import Cure, SimulatedGsmModem
from gateway.events import LineStatus
from tests.drivers.gsm.support import running_driver, wait_line_up

HUNG_FOUND_WITHIN_S = 15.0


def test_a_hung_idle_modem_is_found_within_15_s_with_the_default_liveness(link, log, wait_until):
    with (
        SimulatedGsmModem(link, model="quectel_ec25") as modem,
        running_driver(link, log, signal_interval_s=30.0, poll_interval_s=1.0),
    ):
        wait_line_up(log, wait_until)
        modem.hang(Cure.NEVER)
        hung_at = time.monotonic()
        wait_until(
            lambda: any(s.state == "down" for s in log.of(LineStatus)),
            timeout=HUNG_FOUND_WITHIN_S + 5,
        )
        found_after_s = time.monotonic() - hung_at

    down = next(s for s in log.of(LineStatus) if s.state == "down")
    assert "not answering" in down.detail
    assert found_after_s <= HUNG_FOUND_WITHIN_S
    assert found_after_s >= 3.0  # an idle modem is not pinged every tick


def test_a_shorter_liveness_finds_it_sooner(link, log, wait_until):
    with (
        SimulatedGsmModem(link, model="simcom_sim800") as modem,
        running_driver(link, log, liveness_s=1.0, signal_interval_s=30.0),
    ):
        wait_line_up(log, wait_until)
        modem.hang(Cure.NEVER)
        hung_at = time.monotonic()
        wait_until(lambda: any(s.state == "down" for s in log.of(LineStatus)))
        found_after_s = time.monotonic() - hung_at

    assert found_after_s <= 1.0 + 3 * 1.0 + 1.0


def test_a_modem_that_answers_is_not_taken_for_hung(link, log, wait_until):
    with (
        SimulatedGsmModem(link, model="huawei_e173"),
        running_driver(link, log, liveness_s=1.0, signal_interval_s=30.0) as driver,
    ):
        wait_line_up(log, wait_until)
        time.sleep(3.5)  # three liveness periods: three pings, all answered
        sessions = driver.health().sessions

    assert [s.state for s in log.of(LineStatus)] == ["up", "down"]  # down: the stop
    assert sessions == 1


@pytest.mark.parametrize("baudrate", [9600, 115200, 460800])
def test_the_configured_baudrate_is_used_on_the_port(baudrate, link, log, wait_until):
    settings = GsmFamily().validate(
        "test", "modems[0]", {"name": "gsm0", "port": str(link), "baudrate": baudrate}
    )
    with SimulatedGsmModem(link, model="simcom_sim800") as modem:
        driver = GsmFamily().build_driver(settings, log, None)
        driver.start()
        try:
            wait_line_up(log, wait_until)
            speed = modem.port_speed
        finally:
            driver.stop()

    assert speed == baudrate


def test_liveness_is_validated(link):
    family = GsmFamily()
    assert family.validate("t", "m", {"name": "g", "port": "p", "liveness_s": 2}).liveness_s == 2
    with pytest.raises(ValueError, match="liveness_s"):
        family.validate("t", "m", {"name": "g", "port": "p", "liveness_s": 30})
