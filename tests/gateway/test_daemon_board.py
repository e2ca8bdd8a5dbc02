"""The daemon with its board: LEDs follow calls, liveness catches stuck threads, the watchdog
ping stops (over a real NOTIFY_SOCKET) while a line is stuck, the status file says why."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gateway.daemon as daemon
from firmware_py.backends.simulated import SimulatedBackend
from gateway.config import Config, parse_config
from gateway.daemon import Gateway, family_driver_factory, run
from gateway.events import CallAnswered, CallEnded, CallOffered, EndCause, LineStatus, Presentation
from gateway.families import register_family, unregister_family
from gateway.outbox import OutboxReader
from gateway.status import read_status, staleness
from tests.conftest import wait_until
from tests.gateway.test_families import MINIMAL, LoopDriver

BOARD = """
[board]
backend = "simulated"
[board.pins]
led_ready = 17
led_alarm = 18
led_loop0 = 19
power_key_loop0 = 20
"""


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Config]:
    register_family("loop", "loops", "tests.gateway.test_families", "LoopFamily")
    text = MINIMAL + f"[outbox]\npath = '{tmp_path / 'outbox.db'}'\n"
    text += "[mqtt]\nurl = 'mqtt://127.0.0.1:9'\nreconnect_min_s = 0.05\nreconnect_max_s = 0.2\n"
    text += "[[loops]]\nname = 'loop0'\n" + BOARD
    try:
        yield parse_config(text, "site.toml")
    finally:
        unregister_family("loop")


@pytest.fixture
def gateway(config: Config) -> Iterator[Gateway]:
    built = Gateway(config)
    try:
        yield built
    finally:
        built.stop()


def backend_of(gateway: Gateway) -> SimulatedBackend:
    assert isinstance(gateway.board.backend, SimulatedBackend)
    return gateway.board.backend


def test_the_line_led_follows_the_calls(gateway: Gateway) -> None:
    backend = backend_of(gateway)
    gateway.start()
    gateway.emit(LineStatus(line="loop0", state="up", detail="registered"))
    wait_until(lambda: gateway.leds.shown.get("led_loop0") == "on", what="ready: steady")
    gateway.emit(
        CallOffered(
            call_id="c1",
            line="loop0",
            number=None,
            presentation=Presentation.UNAVAILABLE,
            ring_count=1,
        )
    )
    wait_until(lambda: gateway.leds.shown.get("led_loop0") == "fast", what="ringing: fast")
    wait_until(lambda: len(backend.changes_of("led_loop0")) >= 4, what="the LED blinks")
    gateway.emit(CallAnswered(call_id="c1", line="loop0", ring_count=2, ring_time_ms=900))
    wait_until(lambda: gateway.leds.shown.get("led_loop0") == "slow", what="in call: slow")
    gateway.emit(
        CallEnded(call_id="c1", line="loop0", duration_ms=10, cause=EndCause.REMOTE_HANGUP)
    )
    wait_until(lambda: gateway.leds.shown.get("led_loop0") == "on", what="ready again")
    gateway.emit(LineStatus(line="loop0", state="down", detail="port lost"))
    wait_until(lambda: gateway.leds.shown.get("led_loop0") == "flash", what="fault: flash")


def test_a_board_that_cannot_open_degrades_with_an_alarm(config: Config, tmp_path: Path) -> None:
    bad = parse_config(
        MINIMAL
        + f"[outbox]\npath = '{tmp_path / 'outbox.db'}'\n[mqtt]\nurl = 'mqtt://127.0.0.1:9'\n"
        + "[[loops]]\nname = 'loop0'\n"
        + BOARD.replace("led_loop0 = 19", "led_loop0 = 99"),
        "site.toml",
    )
    built = Gateway(bad)
    try:
        assert built.board.backend_name == "none"
        built.start()
        built.emit(LineStatus(line="loop0", state="up", detail="registered"))
        built.outbox.flush()
    finally:
        built.stop()
    reader = OutboxReader(tmp_path / "outbox.db")
    alarms = [json.loads(row.payload) for row in reader.peek(10) if row.type == "gateway.alarm"]
    reader.close()
    alarms = [a for a in alarms if not a["data"]["code"].startswith("clock_")]  # this machine's
    assert [a["data"]["code"] for a in alarms] == ["board_unavailable"]
    assert "led_loop0 = 99" in alarms[0]["data"]["detail"]["error"]


def test_recovery_drives_the_board_and_reports(gateway: Gateway) -> None:
    backend = backend_of(gateway)
    outcome = gateway.recovery.reset("loop0")
    assert outcome.value == "not_wired"
    gateway.recovery.profiles = {
        "generic": gateway.recovery.profiles["generic"].__class__(
            "generic", 0.05, 0.05, 0.05, 0.05, 0.05, "test"
        )
    }
    assert gateway.recovery.power_cycle("loop0").value == "done"
    assert [level for _, level in backend.changes_of("power_key_loop0")] == [True, False] * 2


def test_a_stuck_outbox_writer_is_caught(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon, "WRITER_STUCK_S", 0.3)
    gateway.start()
    release, blocked = threading.Event(), threading.Event()

    def block_the_writer(_rows: object) -> None:  # runs in the writer thread after a commit
        blocked.set()
        release.wait(10)

    gateway.outbox.add_commit_listener(block_the_writer)
    gateway.emit(LineStatus(line="loop0", state="up", detail="one"))
    assert blocked.wait(5)
    gateway.emit(LineStatus(line="loop0", state="up", detail="two"))  # waits behind it
    try:
        wait_until(
            lambda: any("outbox writer stuck" in p for p in gateway.problems()),
            what="the stuck writer reported",
        )
        assert gateway.outbox.writer_alive and not gateway.healthy()
    finally:
        release.set()
    wait_until(gateway.healthy, what="healthy again once the writer moves")


def test_a_stuck_forwarder_is_caught(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon, "FORWARDER_STUCK_S", 0.3)
    built = Gateway(config)
    release = threading.Event()
    monkeypatch.setattr(built.forwarder, "_session", lambda reader: release.wait(10))
    try:
        built.start()
        wait_until(
            lambda: any("forwarder stuck" in p for p in built.problems()),
            what="the stuck forwarder reported",
        )
        assert built.forwarder.alive
    finally:
        release.set()
        built.stop()


class NotifyListener:
    """A service manager's end of NOTIFY_SOCKET: a unix datagram socket, as systemd binds."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def pings_since(self, moment: float) -> int:
        return sum(
            1 for when, text in list(self.messages) if when > moment and text == "WATCHDOG=1"
        )

    def said(self, word: str) -> bool:
        return any(word in text for _, text in list(self.messages))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self.sock.close()


def test_watchdog_pings_stop_while_a_line_is_stuck(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = NotifyListener(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    drivers: list[LoopDriver] = []

    def factory(settings: Any, emit: Any, sinks: Any) -> Any:
        driver = family_driver_factory(settings, emit, sinks)
        assert isinstance(driver, LoopDriver)
        drivers.append(driver)
        return driver

    outcome: dict[str, Any] = {}

    def script() -> None:
        try:
            wait_until(lambda: listener.pings_since(0) >= 3, what="pings while healthy")
            drivers[0].stuck = True
            time.sleep(0.3)  # let a ping already in flight arrive
            stuck_at = time.monotonic()
            wait_until(
                lambda: listener.said("STATUS=unhealthy: line loop0 (stuck"),
                what="the reason told to systemd",
            )
            time.sleep(0.5)  # five ping intervals
            outcome["pings_while_stuck"] = listener.pings_since(stuck_at)
            found = read_status(config.outbox.path)
            outcome["status"] = None if found is None else found[1]
            drivers[0].stuck = False
            recovered_at = time.monotonic()
            wait_until(lambda: listener.pings_since(recovered_at) >= 2, what="pings again")
        except BaseException as error:  # reported by the test thread below
            outcome["error"] = error
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    helper = threading.Thread(target=script, daemon=True)
    helper.start()
    try:
        assert run(config, factory) == 0
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
        helper.join(5)
        listener.close()
    if "error" in outcome:
        raise outcome["error"]
    assert listener.messages[0][1].startswith("READY=1")
    assert outcome["pings_while_stuck"] == 0
    status = outcome["status"]
    assert status["healthy"] is False and "line loop0 (stuck" in status["problems"][0]
    assert status["board"]["backend"] == "simulated"
    assert listener.said("STOPPING=1")
    found = read_status(config.outbox.path)
    assert found is not None and found[1]["stopped"] is True
    assert staleness(found[1]) is not None and "stopped" in (staleness(found[1]) or "")
