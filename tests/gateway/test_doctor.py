"""``edge112 doctor`` and ``edge112 status`` against real things: a private mosquitto, a status
file the daemon's own writer produced, a simulated board; exit codes and one line per check."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gateway.broker import PrivateBroker
from gateway.cli import main
from gateway.status import write_status


def site(tmp_path: Path, broker_url: str) -> Path:
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
port = "loop://"
[board]
backend = "simulated"
[board.pins]
led_ready = 17
led_gsm0 = 18
"""
    )
    return config


@pytest.mark.requires_tool("mosquitto")
def test_doctor_passes_what_is_there_and_names_the_fix_for_the_rest(
    tmp_path: Path, broker: PrivateBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["doctor", "--config", str(site(tmp_path, broker.url))])
    out = capsys.readouterr().out
    lines = {
        line.split()[1]: line.split()[0]
        for line in out.splitlines()
        if line[:4] in ("PASS", "WARN", "FAIL")
    }
    assert lines["config"] == "PASS" and lines["broker"] == "PASS"
    assert lines["board"] == "PASS" and lines["disk"] == "PASS"
    assert lines["service"] == "WARN"  # never ran here
    assert "fix:" in out
    assert code == 0  # warnings only
    assert main(["doctor", "--json", "--config", str(site(tmp_path, broker.url))]) == 0
    checks = json.loads(capsys.readouterr().out)
    assert {c["name"] for c in checks} >= {"config", "broker", "board", "clock", "backlog"}


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
