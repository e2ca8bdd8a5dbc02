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
from dataclasses import dataclass
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


def _sibling_tool(binary: str, name: str) -> str:
    """mosquitto_passwd lives in /usr/bin while mosquitto is in /usr/sbin on Debian."""
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if not found:
        raise BrokerUnavailable(f"{name} is not installed (it comes with mosquitto)")
    return found


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


@dataclass(frozen=True)
class BrokerTls:
    """Files for a TLS listener: the CA that signed the server, the server's cert and key."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_client_certificate: bool = False


class PrivateBroker:
    """mosquitto on 127.0.0.1:<free port>, no persistence unless asked.

    Anonymous by default; with ``users`` only those username/password pairs
    may connect; with ``tls`` the listener speaks TLS (mqtts); with
    ``persistence`` it keeps sessions and their queued messages in its work
    directory across a stop and start (as a center's broker should).
    """

    def __init__(
        self,
        port: int | None = None,
        workdir: str | Path | None = None,
        *,
        users: dict[str, str] | None = None,
        tls: BrokerTls | None = None,
        persistence: bool = False,
    ) -> None:
        self.binary = find_mosquitto()
        self.users = users
        self.tls = tls
        self.persistence = persistence
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="edge112-broker-"))
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def _security_lines(self) -> str:
        lines = ""
        if self.users is None:
            lines += "allow_anonymous true\n"
        else:
            password_file = self.workdir / "passwords"
            password_file.write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
            password_file.chmod(0o600)
            subprocess.run(
                [_sibling_tool(self.binary, "mosquitto_passwd"), "-U", str(password_file)],
                check=True,
                capture_output=True,
            )
            lines += f"allow_anonymous false\npassword_file {password_file}\n"
        if self.tls:
            require = "true" if self.tls.require_client_certificate else "false"
            lines += (
                f"cafile {self.tls.ca_file}\ncertfile {self.tls.cert_file}\n"
                f"keyfile {self.tls.key_file}\n"
                f"require_certificate {require}\n"
            )
        return lines

    def start(self, timeout: float = 10.0) -> PrivateBroker:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            f"listener {self.port} 127.0.0.1\n"
            + self._security_lines()
            + ("user root\n" if os.geteuid() == 0 else "")  # else it drops to "mosquitto"
            + (
                f"persistence true\npersistence_location {self.workdir}/\n"
                if self.persistence
                else "persistence false\n"
            )
            + "max_inflight_messages 0\n"
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
