"""``edge112 doctor`` and ``edge112 status`` against real things: a private mosquitto, a status
file the daemon's own writer produced, a simulated board; exit codes and one line per check."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest

from drivers.e1.lapd import Direction
from drivers.simulated.e1_outputs import open_output, run_span
from drivers.simulated.e1_script import FaultKind, ScheduledFault, SpanFault, SpanScenario
from drivers.simulated.e1_span import SimulatedSpan
from drivers.simulated.gsm_modem import SimulatedGsmModem
from gateway.broker import PrivateBroker
from gateway.cli import main
from gateway.status import write_status
from tests.conftest import PROCESS_TIMEOUT_S, wait_until
from tests.gateway.test_control_socket import RunningGateway, line_up, write_site

N2U, U2N = Direction.NETWORK_TO_USER, Direction.USER_TO_NETWORK


def site(tmp_path: Path, broker_url: str, modem: str = "loop://", extra: str = "") -> Path:
    config = tmp_path / "site.toml"
    config.write_text(
        f"""
[gateway]
id = "bontang-01"
region = "64.74"
[mqtt]
url = "{broker_url}"
[outbox]
path = "{tmp_path / "var" / "outbox.db"}"
[audio]
recordings_dir = "{tmp_path / "rec"}"
[[modems]]
name = "gsm0"
port = "{modem}"
{extra}
[board]
backend = "simulated"
[board.pins]
led_ready = 17
led_gsm0 = 18
"""
    )
    return config


def results(out: str) -> dict[str, str]:
    """``{check name: PASS/WARN/FAIL}`` from doctor's text output."""
    return {
        line.split()[1]: line.split()[0]
        for line in out.splitlines()
        if line[:4] in ("PASS", "WARN", "FAIL")
    }


@pytest.mark.requires_tool("mosquitto")
def test_doctor_passes_what_is_there_and_names_the_fix_for_the_rest(
    tmp_path: Path, broker: PrivateBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    with SimulatedGsmModem(tmp_path / "gsm0", model="quectel_ec25", seed=1) as modem:
        config = site(tmp_path, broker.url, str(modem.link))
        code = main(["doctor", "--config", str(config)])
        captured = capsys.readouterr()
        lines = results(captured.out)
        assert lines["config"] == "PASS" and lines["broker"] == "PASS"
        assert lines["board"] == "PASS" and lines["disk"] == "PASS"
        assert lines["modem.gsm0"] == "PASS" and lines["sim.gsm0"] == "PASS"
        assert lines["network.gsm0"] == "PASS" and lines["signal.gsm0"] == "PASS"
        assert f"IMEI {modem.imei}" in captured.out and "Quectel" in captured.out
        assert lines["service"] == "WARN"  # never ran here
        assert "fix:" in captured.out
        assert code == 1  # a warning is not a pass
        # progress on stderr, one line per check as it starts, in order
        progress = [line for line in captured.err.splitlines() if "checking" in line]
        assert progress[0] == f"edge112 doctor: checking config {config} ..."
        assert "edge112 doctor: checking modem gsm0 (" in captured.err
        assert progress.index("edge112 doctor: checking clock ...") < progress.index(
            f"edge112 doctor: checking broker {broker.url} ..."
        )

        assert main(["doctor", "--json", "--config", str(config)]) == 1
        captured = capsys.readouterr()
        checks = json.loads(captured.out)  # stdout is JSON only; progress still on stderr
        assert "edge112 doctor: checking broker" in captured.err
    names = {c["name"] for c in checks}
    assert names >= {"config", "broker", "board", "clock", "backlog", "modem.gsm0", "sim.gsm0"}
    assert all(c["result"] in ("PASS", "WARN", "FAIL") for c in checks)


def test_doctor_names_an_unregistered_modem_and_a_weak_signal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SimulatedGsmModem(tmp_path / "gsm0", model="simcom_sim800", seed=2, rssi=2) as modem:
        modem.set_registration(2)  # searching
        config = site(tmp_path, "mqtt://127.0.0.1:9", str(modem.link))
        assert main(["doctor", "--config", str(config)]) == 1
        out = capsys.readouterr().out
    lines = results(out)
    assert lines["modem.gsm0"] == "PASS" and lines["sim.gsm0"] == "PASS"
    assert "FAIL  network.gsm0  not registered, searching" in out
    assert "WARN  signal.gsm0   -109 dBm, below -105 dBm" in out
    # the threshold is the technician's call
    with SimulatedGsmModem(tmp_path / "gsm1", model="simcom_sim800", seed=2, rssi=2) as modem:
        config = site(tmp_path, "mqtt://127.0.0.1:9", str(modem.link))
        main(["doctor", "--min-signal-dbm", "-110", "--config", str(config)])
        assert "PASS  signal.gsm0   -109 dBm" in capsys.readouterr().out


def test_doctor_fails_a_missing_modem_with_a_one_line_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site(tmp_path, "mqtt://127.0.0.1:9", str(tmp_path / "no-such-modem"))
    assert main(["doctor", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert results(out)["modem.gsm0"] == "FAIL"
    assert "sim.gsm0" not in results(out)  # nothing more to ask a modem that is not there
    failing = out.splitlines()
    at = next(i for i, line in enumerate(failing) if line.startswith("FAIL  modem.gsm0"))
    assert failing[at + 1].strip().startswith("fix: check the cable")


def test_doctor_fails_on_an_unreachable_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["doctor", "--config", str(site(tmp_path, "mqtt://127.0.0.1:9"))])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  broker        mqtt://127.0.0.1:9: Connection refused" in out


def test_status_reads_the_daemons_status_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    config = site(tmp_path, "mqtt://127.0.0.1:9")
    assert main(["status", "--config", str(config)]) == 1
    (tmp_path / "var").mkdir()
    document = {
        "gateway_id": "bontang-01",
        "region": "64.74",
        "pid": os.getpid(),
        "interval_s": 5.0,
        "healthy": True,
        "problems": [],
        "started": "2026-12-01T00:00:00.000Z",
        "lines": [
            {
                "line": "gsm0",
                "state": "up",
                "led": "ringing",
                "detail": "registered",
                "call": {"call_id": "c1", "state": "ringing"},
            }
        ],
        "calls_in_progress": 1,
        "last_event": {"type": "call.offered", "ts": "x"},
        "alarms": [],
        "broker": {"url": "mqtt://x", "connected": True, "acknowledged": 3},
        "outbox": {"pending": 0, "storage_fault": None},
        "board": {"describe": "simulated"},
        "clock_synchronised": True,
    }
    write_status(tmp_path / "var" / "status.json", document)
    assert (tmp_path / "var" / "status.json").stat().st_mode & 0o777 == 0o640
    capsys.readouterr()
    assert main(["status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "bontang-01" in out and "healthy" in out and "call ringing" in out
    document["pid"] = 999_999_999  # a gateway that is gone
    write_status(tmp_path / "var" / "status.json", document)
    assert main(["status", "--config", str(config)]) == 1
    assert "NOT RUNNING" in capsys.readouterr().out


def write_span(tmp_path: Path, faults: tuple[ScheduledFault, ...] = ()) -> tuple[Path, Path]:
    """Two seconds of a simulated span's two directions, as files a span source replays."""
    paths = (tmp_path / "n2u.e1", tmp_path / "u2n.e1")
    outputs = {N2U: open_output(str(paths[0])), U2N: open_output(str(paths[1]))}
    try:
        run_span(SimulatedSpan(SpanScenario(faults=faults)), outputs, speed=0, duration_s=2.0)
    finally:
        for output in outputs.values():
            output.close()
    return paths


def span_site(tmp_path: Path, n2u: str, u2n: str) -> Path:
    config = tmp_path / "span.toml"
    config.write_text(
        f"""
[gateway]
id = "bontang-01"
region = "64.74"
[mqtt]
url = "mqtt://127.0.0.1:9"
[outbox]
path = "{tmp_path / "var" / "outbox.db"}"
[[spans]]
name = "e1a"
network_to_user = "{n2u}"
user_to_network = "{u2n}"
crc4 = true
"""
    )
    return config


def test_doctor_passes_an_aligned_span_and_fails_one_without_alignment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "good").mkdir()
    n2u, u2n = write_span(tmp_path / "good")
    main(["doctor", "--config", str(span_site(tmp_path, str(n2u), str(u2n)))])
    out = capsys.readouterr().out
    assert results(out)["span.e1a"] == "PASS"
    assert "network_to_user: frame and CRC-4 multiframe aligned (1.0 s read)" in out

    (tmp_path / "bad").mkdir()
    lost = SpanFault(FaultKind.LOST_ALIGNMENT, direction=U2N, duration_s=5.0)
    n2u, u2n = write_span(tmp_path / "bad", (ScheduledFault(0.0, lost),))
    assert main(["doctor", "--config", str(span_site(tmp_path, str(n2u), str(u2n)))]) == 1
    out = capsys.readouterr().out
    assert results(out)["span.e1a"] == "FAIL"
    line = next(line for line in out.splitlines() if line.startswith("FAIL  span.e1a"))
    assert "network_to_user: frame and CRC-4 multiframe aligned" in line
    assert "user_to_network: loss of frame alignment (LOF) (1.0 s read)" in line


def test_doctor_samples_a_live_span_tap_and_names_a_missing_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    urls = [f"tcp://127.0.0.1:{port}" for port in ports]
    outputs = {N2U: open_output(urls[0]), U2N: open_output(urls[1])}
    stop = threading.Event()
    tap = threading.Thread(
        target=lambda: run_span(
            SimulatedSpan(SpanScenario()), outputs, speed=1.0, stop=stop, until_done=False
        )
    )
    tap.start()
    try:
        main(["doctor", "--config", str(span_site(tmp_path, urls[0], urls[1]))])
    finally:
        stop.set()
        tap.join()
        for output in outputs.values():
            output.close()
    out = capsys.readouterr().out
    assert results(out)["span.e1a"] == "PASS", out
    # the tap gone: the check says which stream and how to fix it
    main(["doctor", "--config", str(span_site(tmp_path, urls[0], urls[1]))])
    out = capsys.readouterr().out
    assert results(out)["span.e1a"] == "FAIL"
    assert f"FAIL  span.e1a      network-to-user stream {urls[0]}: connection refused" in out
    assert "fix: check the tap's URLs" in out


@pytest.mark.requires_tool("mosquitto")
def test_doctor_checks_a_running_gateways_lines_from_its_live_state(
    tmp_path: Path,
    broker: PrivateBroker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    with SimulatedGsmModem(tmp_path / "gsm0", model="quectel_ec25", seed=1) as modem:
        config = write_site(tmp_path, broker.url, modem.link)
        gateway = RunningGateway(config)
        try:
            wait_until(
                lambda: line_up(tmp_path / "var" / "control.sock"),
                PROCESS_TIMEOUT_S,
                what="gsm0 up",
            )
            main(["doctor", "--json", "--config", str(config)])
            checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
        finally:
            gateway.stop()
    assert checks["service"]["result"] == "PASS"
    assert "live from" in checks["service"]["message"]
    assert checks["modem.gsm0"]["result"] == "PASS"
    assert checks["modem.gsm0"]["message"].startswith("running gateway: up,")
    assert "sim.gsm0" not in checks  # the port is the gateway's: not probed


@pytest.mark.parametrize(
    ("sim_state", "message", "fix"),
    [
        ("pin_required", "the SIM asks for its PIN", "disable the PIN lock"),
        ("not_inserted", "no SIM", "insert a SIM"),
    ],
)
def test_doctor_fails_a_sim_that_is_locked_or_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sim_state: str, message: str, fix: str
) -> None:
    with SimulatedGsmModem(tmp_path / "gsm0", model="quectel_ec25", seed=3) as modem:
        modem.network.sim_state = sim_state
        config = site(tmp_path, "mqtt://127.0.0.1:9", str(modem.link))
        assert main(["doctor", "--config", str(config)]) == 1
        out = capsys.readouterr().out
    assert results(out)["modem.gsm0"] == "PASS"
    lines = out.splitlines()
    at = lines.index(f"FAIL  sim.gsm0      {message}")
    assert lines[at + 1].strip().startswith(f"fix: {fix}")
