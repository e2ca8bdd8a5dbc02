"""The control socket (``gateway.control``): a running gateway answers ``edge112 status`` live.

The gateway runs in this process (``daemon.run`` in a thread, stopped by its
event as SIGTERM would), on a simulated modem on a real PTY and the private
mosquitto; the socket is a real Unix socket in the test's directory.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.simulated.gsm_modem import SimulatedGsmModem
from gateway.broker import PrivateBroker
from gateway.cli import main
from gateway.config import load_config
from gateway.control import (
    MAX_REQUEST_BYTES,
    SOCKET_MODE,
    ControlServer,
    ControlSocketError,
    control_socket_path,
    request,
)
from gateway.daemon import run
from tests.conftest import PROCESS_TIMEOUT_S, wait_until


def write_site(tmp_path: Path, broker_url: str, modem: Path) -> Path:
    config = tmp_path / "edge112.toml"
    config.write_text(
        f"""
[gateway]
id = "bontang-01"
region = "64.74"
[mqtt]
url = "{broker_url}"
reconnect_min_s = 0.1
reconnect_max_s = 0.5
[outbox]
path = "{tmp_path / "var" / "outbox.db"}"
[[modems]]
name = "gsm0"
port = "{modem}"
"""
    )
    return config


class RunningGateway:
    """``edge112 run`` in this process: ``stop()`` is what SIGTERM does."""

    def __init__(self, config: Path) -> None:
        self.config = load_config(config)
        self.stopping = threading.Event()
        self.result: list[int] = []
        self.thread = threading.Thread(
            target=lambda: self.result.append(run(self.config, stopping=self.stopping)),
            name="gateway-under-test",
        )
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(PROCESS_TIMEOUT_S)
        assert not self.thread.is_alive(), "the gateway did not stop"


@pytest.fixture
def site(
    tmp_path: Path, broker: PrivateBroker, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, SimulatedGsmModem]]:
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    with SimulatedGsmModem(tmp_path / "gsm0", model="quectel_ec25", seed=1) as modem:
        yield write_site(tmp_path, broker.url, modem.link), modem


def line_up(path: Path) -> dict[str, Any] | None:
    try:
        document = request(path)
    except ControlSocketError:
        return None
    lines = {line["line"]: line for line in document["lines"]}
    return document if lines["gsm0"]["state"] == "up" else None


def test_a_running_gateway_answers_status_live_and_removes_its_socket_at_stop(
    site: tuple[Path, SimulatedGsmModem], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _modem = site
    path = tmp_path / "var" / "control.sock"  # default: beside the outbox
    gateway = RunningGateway(config)
    try:
        document = wait_until(lambda: line_up(path), PROCESS_TIMEOUT_S, what="gsm0 up, live")
        assert document["gateway_id"] == "bontang-01" and document["pid"] == os.getpid()
        assert document["calls_in_progress"] == 0
        assert document["broker"]["url"].startswith("mqtt://")
        assert {"outbox", "alarms", "last_event", "healthy"} <= document.keys()
        info = os.stat(path)
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == SOCKET_MODE == 0o660
        assert info.st_uid == os.getuid()

        capsys.readouterr()
        assert main(["status", "--json", "--config", str(config)]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["source"] == "control_socket" and shown["stale"] is None
        assert main(["status", "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert "gsm0" in out and f"live from {path}" in out
    finally:
        gateway.stop()
    assert gateway.result == [0]
    assert not path.exists()
    # the daemon is gone: status falls back to the file it left, and says so
    assert main(["status", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("NOT RUNNING: the gateway stopped")
    assert "no control socket at" in out and "status.json" in out


def test_status_says_clearly_when_there_is_neither_socket_nor_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    config = write_site(tmp_path, "mqtt://127.0.0.1:9", tmp_path / "gsm0")
    assert main(["status", "--config", str(config)]) == 1
    error = capsys.readouterr().err
    assert "the gateway is not running here: no control socket at" in error
    assert "no status file" in error


def exchange(path: Path, payload: bytes) -> list[dict[str, Any]]:
    """Send raw bytes, read every answer line until the server closes or stays quiet."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(PROCESS_TIMEOUT_S)
        client.connect(str(path))
        client.sendall(payload)
        client.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlServer]:
    calls = {"n": 0}

    def provider() -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("a status part broke")
        return {"gateway_id": "g", "answered": calls["n"]}

    running = ControlServer(tmp_path / "control.sock", provider)
    try:
        yield running
    finally:
        running.close()


def test_malformed_requests_get_a_json_error_and_the_server_carries_on(
    server: ControlServer,
) -> None:
    answers = exchange(
        server.path,
        b'not json\n[1, 2]\n{"get": 7}\n{"get": "reboot"}\n\n'
        b'{"get": "status"}\n{"get": "status"}\n{"get": "status"}\n{"get": "ping"}\n',
    )
    assert [a.get("error") for a in answers] == [
        "malformed_request",
        "malformed_request",
        "malformed_request",
        "unknown_request",
        None,
        "internal",  # the provider raised: said, not fatal
        None,
        None,
    ]
    assert "not JSON" in answers[0]["message"] and "'reboot'" in answers[3]["message"]
    assert answers[4] == {"format": 1, "gateway_id": "g", "answered": 1}
    assert "a status part broke" in answers[5]["message"]
    assert answers[6]["answered"] == 3
    assert answers[7] == {"pong": True, "pid": os.getpid()}


def test_an_oversized_request_is_refused_and_the_next_client_is_served(
    server: ControlServer,
) -> None:
    long = b'{"get": "' + b"x" * (MAX_REQUEST_BYTES * 4) + b'"}\n'
    answers = exchange(server.path, long + b'{"get": "ping"}\n')
    assert [a.get("error") for a in answers] == ["request_too_long", None]
    assert answers[1]["pong"] is True  # the rest of the long line was skipped, not parsed
    assert request(server.path)["gateway_id"] == "g"
    with pytest.raises(ControlSocketError, match="unknown_request"):
        request(server.path, "nonsense")


def test_a_stale_socket_is_replaced_a_live_one_or_a_file_is_not(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # a gateway that died without removing it
    with pytest.raises(ControlSocketError, match="nobody listens"):
        request(path)
    first = ControlServer(path, lambda: {"who": "first"})
    try:
        assert request(path)["who"] == "first"
        with pytest.raises(ControlSocketError, match="another gateway answers"):
            ControlServer(path, lambda: {"who": "second"})
        assert request(path)["who"] == "first"
    finally:
        first.close()
    assert not path.exists()
    path.write_text("not a socket")
    with pytest.raises(ControlSocketError, match="is not a socket"):
        ControlServer(path, dict)
    assert path.read_text() == "not a socket"


def test_a_path_longer_than_sun_path_still_works(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "control.sock"
    assert len(str(path)) > 108
    running = ControlServer(path, lambda: {"deep": True})
    try:
        assert request(path)["deep"] is True
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    finally:
        running.close()
    assert not path.exists()


def test_where_the_socket_goes() -> None:
    assert control_socket_path("/srv/c.sock", "/var/lib/edge112/outbox.db") == Path("/srv/c.sock")
    runtime = {"RUNTIME_DIRECTORY": "/run/edge112"}
    assert control_socket_path(None, "/x/outbox.db", runtime) == Path("/run/edge112/control.sock")
    assert control_socket_path(None, "/x/outbox.db", {}) == Path("/x/control.sock")
