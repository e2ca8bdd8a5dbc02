"""Registration by URC (issue 7 step 6): AT+CREG=2 (and +CEREG on LTE modems) is set up, so
a lost network shows within a second, not at the next 30 s poll."""

from __future__ import annotations

import time

import pytest

from drivers.simulated.gsm_modem import SimulatedGsmModem
from gateway.events import LineStatus
from tests.drivers.gsm.support import running_driver, wait_line_up

URC_WITHIN_S = 1.0


@pytest.mark.parametrize(
    ("model", "chunking"),
    [("quectel_ec25", "line"), ("simcom_sim7600", "byte"), ("huawei_e173", "random")],
)
def test_a_lost_network_shows_at_once_and_its_return_too(model, chunking, link, log, wait_until):
    with (
        SimulatedGsmModem(link, model=model, chunking=chunking, seed=1) as modem,
        running_driver(link, log, signal_interval_s=60.0),
    ):
        wait_line_up(log, wait_until)
        assert modem.settings.creg == 2

        lost_at = time.monotonic()
        modem.set_registration(2)  # searching
        wait_until(lambda: log.of(LineStatus)[-1].state == "down")
        shown_after_s = time.monotonic() - lost_at

        modem.set_registration(3)  # denied
        wait_until(lambda: "denied" in log.of(LineStatus)[-1].detail)

        modem.set_registration(5)  # roaming: registered again
        wait_line_up(log, wait_until, count=2)

    details = [(s.state, s.detail.split(": ", 1)[-1]) for s in log.of(LineStatus)]
    assert details[:4] == [
        ("up", "registered"),
        ("down", "not registered on the network (searching)"),
        ("down", "not registered on the network (registration denied)"),
        ("up", "registered"),
    ]
    assert shown_after_s < URC_WITHIN_S
