"""Technician commands (issue 7 item 9): ``edge112 modem probe|at|record`` against simulated
modems on PTYs, and ``edge112 sms decode``; run through the real ``edge112`` entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.gsm.probe import probe_port
from drivers.simulated.gsm_modem import SimulatedGsmModem
from drivers.simulated.links import open_linked_pty, remove_link
from drivers.simulated.replay import ReplayedModem
from drivers.simulated.sms_deliver import encode_deliver
from drivers.transcript import Direction, read_transcript
from gateway.cli import main

AML = 'A"ML=1;lt=-6.17539;lg=+106.82715;rd=14;top=20261205021748;lc=68;pm=G;si=510101234567890;ei=861234567890123;mcc=510;mnc=10;ml=126'  # noqa: E501


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_probe_json_names_each_modem_and_the_line_it_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nmea_master, nmea_slave, nmea_device, nmea = open_linked_pty(tmp_path / "nmea")
    with (
        SimulatedGsmModem(tmp_path / "ec25", model="quectel_ec25") as ec25,
        SimulatedGsmModem(tmp_path / "sim800", model="simcom_sim800") as sim800,
    ):
        config = tmp_path / "edge112.toml"
        config.write_text(
            '[gateway]\nid = "bontang-01"\nregion = "64.74"\n'
            f'[[modems]]\nname = "gsm0"\nport = "{tmp_path / "ec25"}"\n'
            f'[[modems]]\nname = "gsm1"\nport = "imei:{sim800.imei}"\n'
        )
        sim800.set_registration(3)
        try:
            code, out, err = run(
                capsys,
                "modem",
                "probe",
                "--json",
                "--timeout",
                "0.3",
                "--config",
                str(config),
                "--port",
                str(tmp_path / "ec25"),
                "--port",
                str(tmp_path / "sim800"),
                "--port",
                str(nmea),
            )
        finally:
            remove_link(nmea, nmea_device)
            os.close(nmea_master)
            os.close(nmea_slave)
    reports = json.loads(out)
    assert [report["port"] for report in reports] == [
        str(tmp_path / "ec25"),
        str(tmp_path / "sim800"),
        str(nmea),
    ]
    first, second, third = reports
    assert (first["line"], first["imei"], first["model"], first["ready"]) == (
        "gsm0",
        ec25.imei,
        "EC25",
        True,
    )
    assert (first["ims"], first["rat"], first["operator"]) == ("registered", "lte", "Telkomsel")
    assert (second["line"], second["ready"]) == ("gsm1", False)
    assert second["reasons"] == ["not_registered:denied"]
    assert not third["identified"] and "not an AT port" in third["error"]
    assert third["line"] is None
    assert code == 1  # one modem is not ready
    assert "[1/3] probing" in err and "[3/3]" in err  # progress on stderr


def test_probe_text_output_and_exit_0_when_every_modem_is_ready(
    link: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SimulatedGsmModem(link, model="huawei_e173") as modem:
        code, out, _err = run(capsys, "modem", "probe", "--port", str(link))
    assert code == 0
    assert f"imei       {modem.imei}" in out
    assert "ready      yes" in out


def test_at_prints_answers_and_urcs_and_fails_on_error(
    link: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SimulatedGsmModem(link, model="quectel_ec25"):
        code, out, _ = run(capsys, "modem", "at", str(link), "AT+CSQ", "AT+CGMM")
        assert code == 0
        assert out.splitlines() == ["> AT+CSQ", "+CSQ: 20,99", "OK", "> AT+CGMM", "EC25", "OK"]

        code, out, _ = run(capsys, "modem", "at", str(link), "--json", "AT+NOSUCH", "AT+CSQ")
        assert code == 1
        document = json.loads(out)
        assert [result["command"] for result in document["results"]] == ["AT+NOSUCH"]
        assert document["results"][0]["final"] == "ERROR"

        # A reset: its boot banner arrives as URCs after the OK.
        code, out, _ = run(
            capsys, "modem", "at", str(link), "--json", "--listen", "2", "AT+CFUN=1,1"
        )
        assert code == 0
        assert "RDY" in json.loads(out)["urcs"]


def test_at_on_a_silent_port_times_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    master, slave, device, path = open_linked_pty(tmp_path / "silent")
    try:
        code, out, _ = run(capsys, "modem", "at", str(path), "--timeout", "0.3", "AT")
    finally:
        remove_link(path, device)
        os.close(master)
        os.close(slave)
    assert code == 1
    assert "no final result code within 0.3 s" in out
    code, _, err = run(capsys, "modem", "at", str(tmp_path / "absent"), "AT")
    assert code == 1 and "cannot open" in err


def test_record_makes_a_transcript_the_replay_answers_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "recordings" / "gsm0.jsonl"
    with SimulatedGsmModem(tmp_path / "gsm0", model="quectel_ec25", seed=5) as modem:
        code, out, _err = run(
            capsys,
            "modem",
            "record",
            str(tmp_path / "gsm0"),
            "--out",
            str(out_file),
            "--seconds",
            "1.5",
        )
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert "line.readiness" in [event["type"] for event in events]
    transcript = read_transcript(out_file)
    sent = b"".join(chunk.data for chunk in transcript.of(Direction.TO_MODEM))
    assert b"AT+CPIN?\r" in sent and b"AT+QCCID\r" in sent
    assert transcript.port == str(tmp_path / "gsm0")
    # Hardware in the loop, replayed: the recording alone answers a probe.
    with ReplayedModem(transcript, tmp_path / "replayed", speed=1.0):
        report = probe_port(str(tmp_path / "replayed"), 115200, 1.0)
    assert (report.imei, report.iccid, report.ready) == (modem.imei, modem.iccid, True)


def test_sms_decode_text_and_aml(capsys: pytest.CaptureFixture[str]) -> None:
    when = datetime(2026, 12, 5, 2, 17, 48, tzinfo=UTC)
    pdu = encode_deliver("+6281234567890", text=AML, sent_at=when)
    code, out, _ = run(capsys, "sms", "decode", "--json", pdu)
    assert code == 0
    document = json.loads(out)
    assert (document["kind"], document["sender"], document["text"]) == (
        "deliver",
        "+6281234567890",
        AML,
    )
    assert document["aml"]["latitude"] == pytest.approx(-6.17539)
    assert document["aml"]["method"] == "gnss"

    plain = encode_deliver("+6281234567890", text="Tolong, kebakaran", sent_at=when)
    code, out, _ = run(capsys, "sms", "decode", plain)
    assert code == 0 and "Tolong, kebakaran" in out and "aml               None" in out


@pytest.mark.parametrize(
    ("pdu", "reason"),
    [("0791zz", "not hex"), ("", "empty PDU"), ("07911326040000F0", "first octet")],
)
def test_sms_decode_of_a_bad_pdu_exits_2_with_the_reason(
    pdu: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run(capsys, "sms", "decode", pdu)
    assert code == 2
    assert "bad PDU" in err and reason in err


def test_the_installed_command_has_the_subcommands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "modem", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    for action in ("probe", "at", "record"):
        assert action in result.stdout
