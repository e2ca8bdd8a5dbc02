"""A private mosquitto broker on a free loopback port.

Used by ``edge112 demo``, the benchmarks and the test fixtures: the real
broker binary, a throwaway config and data directory, nothing shared with a
system broker. ``stop()`` / ``start()`` again on the same port lets a test
take the broker away in the middle of a stream.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


class BrokerUnavailable(RuntimeError):
    """mosquitto is not installed or would not start."""


def find_mosquitto() -> str:
    for candidate in MOSQUITTO_CANDIDATES:
        path = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if path:
            return path
    raise BrokerUnavailable("mosquitto is not installed; run: sudo apt-get install -y mosquitto")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return True
        time.sleep(0.02)
    return False


class PrivateBroker:
    """mosquitto on 127.0.0.1:<free port>, anonymous, no persistence."""

    def __init__(self, port: int | None = None, workdir: str | Path | None = None) -> None:
        self.binary = find_mosquitto()
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="edge112-broker-"))
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> PrivateBroker:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_inflight_messages 0\n"
            "max_queued_messages 1000000\n"
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\n"
        )
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if not wait_for_port(self.port, timeout):
            self.stop()
            raise BrokerUnavailable(
                f"mosquitto did not listen on port {self.port}: {self.log_path.read_text()[-500:]}"
            )
        return self

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): TCP stays up, nothing is acknowledged."""
        if self.process:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PrivateBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
