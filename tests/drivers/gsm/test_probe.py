"""Line readiness queries (issue 7 item 8): the parsers on literal lines, and ``probe_port``
against every simulated model on a PTY, with the SIM, network and IMS faults that make a
line not ready."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drivers.gsm.probe import ModemReport, probe_port, readiness_reasons
from drivers.gsm.responses import (
    parse_cireg,
    parse_cops,
    parse_cpin,
    parse_cpsi,
    parse_qeng_servingcell,
    parse_qnwinfo,
    parse_quectel_ims,
    parse_registration_read,
    parse_sysinfoex,
    sim_state_from_error,
)
from drivers.simulated.gsm_modem import SimulatedGsmModem
from drivers.simulated.links import open_linked_pty, remove_link

# Parsers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "state"),
    [
        ("+CPIN: READY", "ready"),
        ("+CPIN: SIM PIN", "pin_required"),
        ("+CPIN: SIM PUK", "puk_required"),
        ("+CPIN: NOT INSERTED", "not_inserted"),
    ],
)
def test_cpin_states(line: str, state: str) -> None:
    assert parse_cpin(line) == state


@pytest.mark.parametrize(
    ("final", "state"),
    [
        ("+CME ERROR: 10", "not_inserted"),
        ("+CME ERROR: SIM not inserted", "not_inserted"),
        ("+CME ERROR: 11", "pin_required"),
        ("+CME ERROR: 12", "puk_required"),
        ("+CME ERROR: 3", None),
        ("ERROR", None),
    ],
)
def test_sim_state_from_an_error(final: str, state: str | None) -> None:
    assert sim_state_from_error(final) == state


def test_registration_read_with_and_without_access_technology() -> None:
    assert parse_registration_read("+CREG: 2,1") == ("CREG", 1, None)
    assert parse_registration_read('+CEREG: 2,5,"1A2B","01C3D4E5",7') == ("CEREG", 5, 7)
    with pytest.raises(ValueError):
        parse_registration_read("+CREG: 2,banana")


def test_cops_in_both_formats_with_the_access_technology() -> None:
    named = parse_cops('+COPS: 0,0,"Telkomsel",7')
    assert (named.format, named.name, named.rat) == (0, "Telkomsel", "lte")
    numeric = parse_cops('+COPS: 0,2,"51010",0')
    assert (numeric.format, numeric.name, numeric.rat) == (2, "51010", "gsm")
    assert parse_cops("+COPS: 0").name is None  # searching: no operator


def test_quectel_lines() -> None:
    assert parse_qnwinfo('+QNWINFO: "FDD LTE","51010","LTE BAND 3",1300') == ("lte", "51010")
    assert parse_qnwinfo('+QNWINFO: "No Service"') == (None, None)
    cell = parse_qeng_servingcell(
        '+QENG: "servingcell","NOCONN","LTE","FDD",510,10,1C3D4E5,123,1300,3,5,5,1A2B,'
        "-95,-10,-65,160,10,22,-"
    )
    assert (cell.rat, cell.operator_code, cell.rsrp_dbm, cell.rsrq_db) == ("lte", "51010", -95, -10)
    assert cell.sinr_db == 12.0  # EC25: 160 / 5 - 20
    assert parse_qeng_servingcell('+QENG: "servingcell","SEARCH"').rat is None
    assert parse_quectel_ims('+QCFG: "ims",1,1') == (1, True)
    assert parse_quectel_ims('+QCFG: "ims",2') == (2, None)


def test_simcom_cpsi_is_in_tenths_of_a_db() -> None:
    cell = parse_cpsi(
        "+CPSI: LTE,Online,510-10,0x1A2B,27551021,448,EUTRAN-BAND3,1300,5,5,-104,-1051,-765,13"
    )
    assert (cell.rat, cell.operator_code) == ("lte", "51010")
    assert (cell.rsrq_db, cell.rsrp_dbm, cell.sinr_db) == (-10.4, -105.1, 13)
    assert parse_cpsi("+CPSI: NO SERVICE,Online").rat is None


def test_huawei_sysinfoex_and_ims() -> None:
    assert parse_sysinfoex('^SYSINFOEX: 2,3,0,1,,6,"LTE",101,"LTE"') == ("lte", False)
    assert parse_sysinfoex('^SYSINFOEX: 2,3,1,1,,1,"GSM",3,"EDGE"') == ("gsm", True)
    assert parse_sysinfoex('^SYSINFOEX: 0,0,0,1,,0,"NO SERVICE",0,"NO SERVICE"')[0] is None
    assert parse_cireg("+CIREG: 0,1") is True
    assert parse_cireg("+CIREG: 2,0,0") is False
    with pytest.raises(ValueError):
        parse_sysinfoex("^SYSINFOEX: 2")


def test_readiness_reasons_are_composed() -> None:
    report = ModemReport(present=True, identified=True, sim_state="ready", registration="home")
    assert readiness_reasons(report) == ["no_signal"]
    report.signal_dbm = -80
    assert readiness_reasons(report) == []
    report.registrations = {"CREG": "not_searching", "CEREG": "home"}  # LTE only: VoLTE needed
    assert readiness_reasons(report) == ["ims_not_registered"]
    report.ims = "registered"
    assert report.ready
    assert readiness_reasons(ModemReport()) == ["port_unavailable"]
    assert readiness_reasons(ModemReport(present=True)) == ["modem_not_answering"]


# probe_port on simulated modems ---------------------------------------------------------

MODELS = {
    # model: (dialect, rat, RSRP known, IMS known)
    "quectel_ec25": ("quectel", "lte", True, True),
    "simcom_sim7600": ("simcom", "lte", True, True),
    "simcom_sim800": ("simcom", "gsm", False, False),
    "huawei_e173": ("huawei", "gsm", False, False),
}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_probe_reads_everything_each_model_gives(model: str, link: Path) -> None:
    dialect, rat, has_rsrp, has_ims = MODELS[model]
    with SimulatedGsmModem(link, model=model, seed=3) as modem:
        report = probe_port(str(link), 115200, 1.0)
    assert report.present and report.identified and report.error is None
    assert (report.manufacturer, report.model) == (modem.model.manufacturer, modem.model.model)
    assert report.revision == modem.model.revision.removeprefix("Revision:")
    assert report.imei == modem.imei
    assert report.dialect == dialect
    assert report.sim_state == "ready"
    assert report.iccid == modem.iccid
    assert report.imsi == modem.network.imsi
    assert report.registration == "home"
    assert report.operator and report.operator.lower() == "telkomsel"
    assert report.operator_code == "51010"
    assert report.rat == rat
    assert report.signal_dbm == -73
    assert (report.rsrp_dbm == -95) is has_rsrp
    assert (report.sinr_db == 12) is has_rsrp
    assert (report.ims == "registered") is has_ims
    assert report.ready and report.reasons == []


@pytest.mark.parametrize(
    ("sim_state", "reason"),
    [
        ("not_inserted", "sim_not_inserted"),
        ("pin_required", "sim_pin_required"),
        ("puk_required", "sim_puk_required"),
    ],
)
def test_a_sim_problem_is_the_first_reason(sim_state: str, reason: str, link: Path) -> None:
    with SimulatedGsmModem(link, model="quectel_ec25") as modem:
        modem.network.sim_state = sim_state
        report = probe_port(str(link))
    assert report.sim_state == sim_state
    assert report.iccid is None if sim_state == "not_inserted" else report.iccid == modem.iccid
    assert report.imsi is None if sim_state == "not_inserted" else True
    assert not report.ready
    assert report.reasons[0] == reason
    assert report.reasons[1].startswith("not_registered:")


@pytest.mark.parametrize(
    ("status", "registration", "reasons"),
    [
        (3, "denied", ["not_registered:denied"]),
        (2, "searching", ["not_registered:searching"]),
        (0, "not_searching", ["not_registered:not_searching"]),
        (5, "roaming", []),
    ],
)
def test_registration_states(
    status: int, registration: str, reasons: list[str], link: Path
) -> None:
    with SimulatedGsmModem(link, model="simcom_sim7600", chunking="byte") as modem:
        modem.set_registration(status)
        report = probe_port(str(link))
    assert report.registration == registration
    assert report.reasons == reasons
    assert (report.operator is not None) is (status == 5)


def test_no_signal_on_a_registered_gsm_line(link: Path) -> None:
    with SimulatedGsmModem(link, model="simcom_sim800", rssi=99):
        report = probe_port(str(link))
    assert report.signal_dbm is None
    assert report.reasons == ["no_signal"]


def test_an_lte_only_line_needs_ims(link: Path) -> None:
    with SimulatedGsmModem(link, model="quectel_ec25") as modem:
        modem.network.lte_only = True
        modem.network.ims_registered = False
        without = probe_port(str(link))
        modem.network.ims_registered = True
        with_ims = probe_port(str(link))
    assert without.registrations["CREG"] == "not_searching"
    assert without.registrations["CEREG"] == "home"
    assert (without.ims, without.reasons) == ("not_registered", ["ims_not_registered"])
    assert (with_ims.ims, with_ims.reasons) == ("registered", [])


def test_a_port_that_is_not_an_at_port(tmp_path: Path) -> None:
    master, slave, device, path = open_linked_pty(tmp_path / "nmea")
    try:
        os.write(master, b"$GPGGA,,,,,,0,,,,,,,,*66\r\n")  # an NMEA port talks, but not AT
        report = probe_port(str(path), 115200, 0.3)
    finally:
        remove_link(path, device)
        os.close(master)
        os.close(slave)
    assert report.present and not report.identified
    assert report.error is not None and "not an AT port" in report.error
    assert report.reasons == ["modem_not_answering"]


def test_a_port_that_does_not_exist(tmp_path: Path) -> None:
    report = probe_port(str(tmp_path / "ttyUSB9"), 115200, 0.3)
    assert not report.present
    assert report.error is not None and "cannot open" in report.error
    assert probe_port("nonsense://x", 115200, 0.3).error is not None
