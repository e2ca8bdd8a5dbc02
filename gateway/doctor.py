"""``edge112 doctor`` and ``edge112 status``: what a technician on site needs to know.

``doctor`` runs a checklist and prints one line per check, then the fix in
one line for anything not PASS::

    PASS  config        /etc/edge112/edge112.toml: valid, 2 line(s)
    WARN  clock         the system clock is not synchronised (NTP)
          fix: check network and `timedatectl timesync-status`; events carry the wrong time
    FAIL  broker        mqtts://center:8883: connection refused
          fix: ...

Checks, in order: configuration (``gateway.config_check``), serial ports
(present, and which processes hold them), ModemManager, clock, broker
(TCP, TLS, credentials: one real MQTT CONNECT, nothing published), TLS
certificate expiry, disk space for the outbox, board backend and pins,
outbox backlog, service and status file. Exit 0 when nothing FAILs
(warnings allowed), 1 otherwise; ``--json`` prints the list. Read-only:
nothing is created, no serial port is opened, no message is published.

``status`` prints the running gateway's state from its status file
(``gateway.status``) and the outbox's own numbers; exit 1 when the gateway
is not running or its status is stale.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.config import Config, ConfigError, MqttSettings, load_config

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
BROKER_TIMEOUT_S = 5.0
CERT_EXPIRY_WARN_DAYS = 30
DISK_FAIL_MB = 64.0
BACKLOG_AGE_WARN_S = 300.0
MODEM_MANAGER = "ModemManager"
DEFAULT_MIN_SIGNAL_DBM = -105  # weaker than this, calls drop (GSM sensitivity is about -108)


@dataclass
class Check:
    name: str
    result: str  # PASS, WARN, FAIL
    message: str
    fix: str = ""


Report = Callable[[Check], None]


def _processes_holding(paths: set[str]) -> dict[str, list[str]]:
    """``{path: ["ModemManager (pid 512)", ...]}`` for the device paths given (from /proc)."""
    held: dict[str, list[str]] = {path: [] for path in paths}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target in held:
                try:
                    name = (entry / "comm").read_text().strip()
                except OSError:
                    name = "?"
                held[target].append(f"{name} (pid {entry.name})")
    return held


def _running(name: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    return True
            except OSError:
                continue
    return False


def check_config(path: str, report: Report) -> Config | None:
    from gateway.config_check import Severity, check_environment

    try:
        config = load_config(path)
    except ConfigError as error:
        report(
            Check(
                "config",
                FAIL,
                str(error),
                "edit the file; `edge112 config example` shows every key",
            )
        )
        return None
    problems = check_environment(config, path)
    bad = [p for p in problems if p.severity is Severity.ERROR]
    if bad:
        report(Check("config", FAIL, "; ".join(map(str, bad)), "fix each key named above"))
    elif problems:
        report(Check("config", WARN, "; ".join(map(str, problems)), "see each key named above"))
    else:
        report(Check("config", PASS, f"{path}: valid, {len(config.lines)} line(s)"))
    return config


def check_serial_ports(config: Config, report: Report) -> None:
    ports: dict[str, str] = {}
    for line in config.lines:
        for attribute in ("port", "audio_port"):
            url = getattr(line, attribute, None)
            if isinstance(url, str) and url.startswith("/dev/"):
                ports[f"{line.name}.{attribute}"] = url
    if not ports:
        report(Check("serial", PASS, "no serial device configured (URLs only)"))
        return
    resolved = {key: os.path.realpath(url) for key, url in ports.items()}
    holders = _processes_holding(set(resolved.values()))
    own = {os.getpid()}
    for key, url in ports.items():
        real = resolved[key]
        if not os.path.exists(url):
            report(
                Check(
                    "serial",
                    FAIL,
                    f"{key}: {url} is missing",
                    "plug the modem in; `ls -l /dev/serial/by-id /dev/edge112`; "
                    "`udevadm trigger` after installing the rules",
                )
            )
            continue
        others = [h for h in holders.get(real, []) if not any(f"pid {p})" in h for p in own)]
        strangers = [h for h in others if not h.startswith(("edge112", "python"))]
        where = f"{key}: {url}" + (f" -> {real}" if real != url else "")
        if strangers:
            report(
                Check(
                    "serial",
                    WARN,
                    f"{where} held by {', '.join(strangers)}",
                    "stop that program; for ModemManager the udev rule sets "
                    "ID_MM_DEVICE_IGNORE (replug or `udevadm trigger`)",
                )
            )
        else:
            held = f" (held by {', '.join(others)})" if others else ""
            report(Check("serial", PASS, f"{where} present{held}"))


def check_clock(report: Report) -> None:
    from firmware_py.clock import clock_synchronised

    synced = clock_synchronised()
    if synced:
        report(Check("clock", PASS, "the system clock is synchronised"))
    elif synced is None:
        report(
            Check(
                "clock",
                WARN,
                "cannot tell whether the clock is synchronised",
                "`timedatectl show -p NTPSynchronized`",
            )
        )
    else:
        year = datetime.now(UTC).year
        report(
            Check(
                "clock",
                WARN,
                f"the system clock is not synchronised (it says {year})",
                "give the box NTP (network, `timedatectl timesync-status`); until then "
                "event timestamps are not to be trusted",
            )
        )


def _mqtt_probe(settings: MqttSettings, client_id: str) -> tuple[str, str]:
    """``(result, message)`` of one MQTT CONNECT with the configured TLS and credentials."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    v5 = settings.protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
    )
    client.connect_timeout = BROKER_TIMEOUT_S
    if settings.username:
        client.username_pw_set(settings.username, settings.resolved_password())
    if settings.tls:
        client.tls_set(
            ca_certs=settings.ca_file, certfile=settings.cert_file, keyfile=settings.key_file
        )
    answer: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        answer["reason"] = reason
        done.set()

    client.on_connect = on_connect
    client.connect(settings.host, settings.port, keepalive=30)
    deadline = time.monotonic() + BROKER_TIMEOUT_S
    while not done.is_set() and time.monotonic() < deadline:
        client.loop(timeout=0.2)
    client.disconnect()
    reason = answer.get("reason")
    if reason is None:
        return FAIL, f"no CONNACK within {BROKER_TIMEOUT_S:g} s"
    if reason.is_failure:
        return FAIL, f"the broker refused the connection: {reason}"
    return PASS, "connected and accepted"


def check_broker(config: Config, report: Report) -> None:
    settings = config.mqtt
    try:
        result, message = _mqtt_probe(settings, f"edge112-{config.gateway.id}-doctor")
    except ssl.SSLError as error:
        result, message = FAIL, f"TLS failed: {error}"
    except OSError as error:
        result, message = FAIL, f"{error.strerror or error}"
    fix = (
        ""
        if result == PASS
        else (
            "check the URL, the network and the broker's TLS and ACL; "
            "`mosquitto_sub -h HOST -p PORT ...` with the same credentials"
        )
    )
    report(Check("broker", result, f"{settings.url}: {message}", fix))
    if settings.tls and result == PASS:
        check_certificate(settings, report)


def check_certificate(settings: MqttSettings, report: Report) -> None:
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.cert_file and settings.key_file:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    try:
        with (
            socket.create_connection((settings.host, settings.port), BROKER_TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname=settings.host) as tls,
        ):
            certificate = tls.getpeercert()
    except (OSError, ssl.SSLError) as error:
        report(Check("certificate", WARN, f"cannot read the broker's certificate: {error}"))
        return
    not_after = certificate.get("notAfter") if certificate else None
    if not isinstance(not_after, str):
        report(Check("certificate", WARN, "the broker's certificate has no expiry date"))
        return
    expires = ssl.cert_time_to_seconds(not_after)
    days = (expires - time.time()) / 86400
    if days < CERT_EXPIRY_WARN_DAYS:
        report(
            Check(
                "certificate",
                WARN,
                f"the broker's certificate expires in {days:.0f} days",
                "ask the center to renew it",
            )
        )
    else:
        report(
            Check("certificate", PASS, f"the broker's certificate is valid {days:.0f} more days")
        )


def check_disk(config: Config, report: Report) -> None:
    directory = Path(config.outbox.path).parent
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    free_mb = usage.free / 1024 / 1024
    budget = config.outbox.max_mb
    if free_mb < DISK_FAIL_MB:
        report(
            Check(
                "disk",
                FAIL,
                f"{probe}: {free_mb:.0f} MiB free",
                "free space now: the outbox stores every call event here",
            )
        )
    elif free_mb < budget:
        report(
            Check(
                "disk",
                WARN,
                f"{probe}: {free_mb:.0f} MiB free, less than the outbox "
                f"budget (outbox.max_mb = {budget:g})",
                "free space or lower outbox.max_mb",
            )
        )
    else:
        report(Check("disk", PASS, f"{probe}: {free_mb:.0f} MiB free"))


def check_board(config: Config, report: Report, live: dict[str, Any] | None) -> None:
    from firmware_py.board import BoardError, open_board

    if live is not None and isinstance(live.get("board"), dict):
        board = live["board"]
        result = WARN if board.get("backend") == "none" and config.board.pins else PASS
        report(
            Check(
                "board",
                result,
                f"the running gateway uses {board.get('describe')}",
                "" if result == PASS else "see the board_unavailable alarm and the log",
            )
        )
        return
    try:
        board = open_board(config.board, degrade=False)
    except BoardError as error:
        report(
            Check(
                "board",
                FAIL,
                str(error),
                "fix [board] (backend, chip, pins) or install the backend's library",
            )
        )
        return
    try:
        names = ", ".join(f"{p.name}={p.pin}" for p in config.board.pins) or "no pins"
        report(Check("board", PASS, f"{board.describe()}; {names}"))
    finally:
        board.close()


def check_backlog(config: Config, report: Report) -> None:
    from gateway.outbox import OutboxReader

    path = Path(config.outbox.path)
    if not path.exists():
        report(Check("backlog", WARN, f"no outbox at {path} yet", "start the gateway"))
        return
    try:
        reader = OutboxReader(path)
        try:
            stats = reader.stats(max_bytes=config.outbox.max_bytes)
        finally:
            reader.close()
    except Exception as error:
        report(
            Check(
                "backlog",
                FAIL,
                f"cannot read {path}: {error}",
                "check permissions (run as root or the edge112 user)",
            )
        )
        return
    age = stats.oldest_age_s
    text = f"{stats.pending} event(s) waiting" + (f", oldest {age:.0f} s" if age else "")
    if stats.pending >= config.board.backlog_warn or (age or 0) > BACKLOG_AGE_WARN_S:
        report(Check("backlog", WARN, text, "events are not leaving: see the broker check"))
    else:
        report(Check("backlog", PASS, text))


def check_service(config: Config, report: Report) -> dict[str, Any] | None:
    from gateway.status import live_status, read_status, staleness

    live, where = live_status(config)
    if live is not None:
        healthy = live.get("healthy")
        result = PASS if healthy else FAIL
        problems = "; ".join(live.get("problems", []))
        message = f"running (pid {live.get('pid')}, {where})" + ("" if healthy else f": {problems}")
    elif (found := read_status(config.outbox.path)) is None:
        message, result = f"not running: {where}; no status file either", WARN
    else:
        stale = staleness(found[1])
        message = f"{stale or 'the status file is fresh'}, but {where}"
        result = WARN
    systemctl = shutil.which("systemctl")
    if systemctl and Path("/run/systemd/system").is_dir():
        state = subprocess.run(
            [systemctl, "is-active", "edge112"], capture_output=True, text=True, check=False
        ).stdout.strip()
        enabled = subprocess.run(
            [systemctl, "is-enabled", "edge112"], capture_output=True, text=True, check=False
        ).stdout.strip()
        message += f"; systemd: {state}, {enabled}"
    fix = "" if result == PASS else "`journalctl -u edge112 -e`; `systemctl restart edge112`"
    report(Check("service", result, message, fix))
    return live


Progress = Callable[[str], None]


def run_doctor(
    path: str,
    report: Report,
    progress: Progress = lambda _: None,
    min_signal_dbm: int = DEFAULT_MIN_SIGNAL_DBM,
) -> list[Check]:
    """Every check in order; ``progress(what)`` as each starts (``cmd_doctor``: stderr)."""
    from gateway.doctor_lines import check_modem_manager_ports, check_modems, check_spans

    checks: list[Check] = []

    def keep(check: Check) -> None:
        checks.append(check)
        report(check)

    progress(f"config {path}")
    config = check_config(path, keep)
    if config is None:
        return checks
    progress("service (control socket, status file)")
    live = check_service(config, keep)
    progress("serial ports")
    check_serial_ports(config, keep)
    progress("ModemManager")
    check_modem_manager_ports(config, keep)
    check_modems(config, keep, live, progress, min_signal_dbm)
    check_spans(config, keep, live, progress)
    progress("clock")
    check_clock(keep)
    progress(f"broker {config.mqtt.url}")
    check_broker(config, keep)
    progress("disk")
    check_disk(config, keep)
    progress("board")
    check_board(config, keep, live)
    progress("backlog")
    check_backlog(config, keep)
    return checks


def cmd_doctor(args: argparse.Namespace) -> int:
    def show(check: Check) -> None:
        if args.json:
            return
        print(f"{check.result}  {check.name:13} {check.message}", flush=True)
        if check.fix and check.result != PASS:
            print(f"      {'':13} fix: {check.fix}", flush=True)

    def progress(what: str) -> None:
        print(f"edge112 doctor: checking {what} ...", file=sys.stderr, flush=True)

    checks = run_doctor(args.config, show, progress, args.min_signal_dbm)
    failed = [c for c in checks if c.result == FAIL]
    warned = [c for c in checks if c.result == WARN]
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        print(
            f"{len(checks) - len(failed) - len(warned)} passed, {len(warned)} warning(s), "
            f"{len(failed)} failed"
        )
    return 1 if failed or warned else 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from gateway.status import cmd_status

    doctor = commands.add_parser("doctor", help="check this installation, PASS/WARN/FAIL")
    doctor.add_argument("--config", default="/etc/edge112/edge112.toml")
    doctor.add_argument("--json", action="store_true")
    doctor.add_argument(
        "--min-signal-dbm",
        type=int,
        default=DEFAULT_MIN_SIGNAL_DBM,
        help=f"a modem's signal below this WARNs (default {DEFAULT_MIN_SIGNAL_DBM})",
    )
    doctor.set_defaults(func=cmd_doctor)
    status = commands.add_parser("status", help="the running gateway's state")
    status.add_argument("--config", default="/etc/edge112/edge112.toml")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)  # gateway.status
