"""Stable binding (issue 7 step 7): a line names its modem by IMEI or ICCID; the driver probes
the serial ports (a silent diagnostics port, another modem, a port held by someone else) for
it, and binds again when the modem re-enumerates under a new name."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from drivers.at_channel import open_port
from drivers.gsm.binding import (
    Binding,
    NoModemFoundError,
    candidate_ports,
    find_at_port,
    parse_binding,
)
from drivers.gsm.family import GsmFamily
from drivers.simulated.gsm_modem import SimulatedCall, SimulatedGsmModem
from gateway.config import ConfigError
from gateway.events import CallAbandoned, CallOffered
from tests.drivers.gsm.support import running_driver, wait_line_up

NUMBER = "+6281234567890"


@pytest.mark.parametrize(
    ("port", "binding"),
    [
        ("imei:861234567890123", Binding("imei", "861234567890123")),
        ("ICCID:8962100012345678901", Binding("iccid", "8962100012345678901")),
        ("/dev/ttyUSB2", Binding("url", "/dev/ttyUSB2")),
        ("socket://10.0.0.5:7000", Binding("url", "socket://10.0.0.5:7000")),
        (
            "record:///dev/ttyUSB2?file=/x.jsonl",
            Binding("url", "record:///dev/ttyUSB2?file=/x.jsonl"),
        ),
    ],
)
def test_ports_and_identities(port, binding):
    assert parse_binding(port) == binding


def test_a_bad_identity_is_refused_by_the_configuration():
    with pytest.raises(ConfigError, match="imei must be digits"):
        GsmFamily().validate("t", "modems[0]", {"name": "g", "port": "imei:86x"})


@pytest.fixture
def by_id(tmp_path: Path) -> Path:
    folder = tmp_path / "by-id"
    folder.mkdir()
    return folder


def test_the_bound_modem_is_found_among_silent_ports_and_other_modems(by_id, pty_pair):
    (by_id / "usb-Quectel_EC25-if00-port0").symlink_to(pty_pair.path)  # diagnostics: silent
    with (
        SimulatedGsmModem(by_id / "usb-Quectel_EC25-if02-port0", seed=1) as first,
        SimulatedGsmModem(
            by_id / "usb-SimTech_SIM7600-if02", model="simcom_sim7600", seed=2
        ) as second,
    ):
        globs = (str(by_id / "*"),)
        assert len(candidate_ports(globs)) == 3
        started = time.monotonic()
        assert find_at_port(Binding("imei", second.imei), globs=globs) == str(second.link)
        assert find_at_port(Binding("iccid", first.iccid), globs=globs) == str(first.link)
        assert time.monotonic() - started < 5.0
        with pytest.raises(NoModemFoundError, match="none of 3"):
            find_at_port(Binding("imei", "000000000000000"), globs=globs)

        held = open_port(str(second.link))  # another line holds it: skipped, no hang
        try:
            with pytest.raises(NoModemFoundError):
                find_at_port(Binding("imei", second.imei), globs=globs)
        finally:
            held.close()


def test_a_line_bound_by_imei_rebinds_after_re_enumeration_under_a_new_name(by_id, log, wait_until):
    globs = (str(by_id / "*"),)
    modem = SimulatedGsmModem(by_id / "ttyUSB2", model="quectel_ec25", seed=7)
    imei = modem.imei
    other = SimulatedGsmModem(by_id / "ttyUSB6", model="simcom_sim800", seed=8)
    try:
        with running_driver(f"imei:{imei}", log, probe_globs=globs) as driver:  # type: ignore[arg-type]
            wait_line_up(log, wait_until)
            assert driver.identity is not None and driver.identity.imei == imei

            modem.vanish()  # USB reset: the node goes ...
            modem = SimulatedGsmModem(by_id / "ttyUSB3", model="quectel_ec25", seed=7)
            assert modem.imei == imei  # ... and the same modem comes back under a new name
            wait_line_up(log, wait_until, count=2)
            placed = modem.place_call(
                SimulatedCall(NUMBER, hangup_after_rings=1, ring_interval_s=0.2)
            )
            assert placed.wait(5.0)
            wait_until(lambda: log.of(CallAbandoned))
    finally:
        modem.close()
        other.close()

    assert log.of(CallOffered)[0].number == NUMBER
    assert other.sms.deletions == []  # the other modem was only probed
    assert os.path.basename(str(modem.link)) == "ttyUSB3"
