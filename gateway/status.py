"""The running gateway's state, for the LEDs and for ``edge112 status``.

:class:`StatusTracker` watches every event the gateway emits (``observe``,
called from ``Gateway.emit``: quick and thread-safe) and keeps what a
technician asks first: each line's state (ready, ringing, in a call, fault),
the calls in progress, the last event, the recent alarms.

The daemon writes a *status file* (JSON, replaced atomically) every main
loop tick (at most every 5 s, and on start and stop)::

    $RUNTIME_DIRECTORY/status.json      under systemd (RuntimeDirectory=edge112:
                                        /run/edge112, tmpfs: no SD card wear),
                                        mode 0640, readable by the edge112 group
    <outbox directory>/status.json      otherwise (a development run)

``edge112 status --config FILE`` asks the running gateway over its control
socket (``gateway.control``: the same document, live) and, when that fails,
reads the freshest of those candidates and says when the file is stale (the
daemon gone or hung) and when it was written; exit 1 when the gateway is
not running or its status is stale. Layout (``--json`` adds ``source``
``control_socket`` or ``status_file``, ``where`` and ``stale``)::

    {"format": 1, "gateway_id": "bontang-01", "region": "64.74", "pid": 812,
     "version": "0.1.0", "started": "2026-...Z", "updated": "2026-...Z",
     "updated_epoch": 1767225600.0, "interval_s": 5.0,
     "healthy": true, "problems": [],
     "lines": [{"line": "gsm0", "state": "up", "led": "ready", "detail": "...",
                "worker_alive": true, "progress_age_s": 0.4, "sessions": 1, "call": null}],
     "calls_in_progress": 0,
     "broker": {"url": "mqtts://...", "connected": true, "connected_since": "...",
                "published": 10, "acknowledged": 10, "last_error": ""},
     "outbox": {"pending": 0, "pending_bytes": 0, "oldest_age_s": null,
                "storage_fault": null},
     "last_event": {"type": "call.ended", "ts": "...", "line": "gsm0"},
     "alarms": [{"code": "...", "severity": "warning", "message": "...", "ts": "..."}],
     "board": {"backend": "gpiod", "describe": "...", "leds": {"led_gsm0": "on"}},
     "clock_synchronised": true}
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from firmware_py.leds import LineLed
from gateway.config import Config, ConfigError, load_config
from gateway.events import (
    CallAbandoned,
    CallAnswered,
    CallEnded,
    CallOffered,
    Event,
    GatewayAlarm,
    LineStatus,
    format_ts,
)

STATUS_FORMAT = 1
STATUS_FILE_NAME = "status.json"
DEFAULT_RUNTIME_DIR = Path("/run/edge112")
ALARMS_KEPT = 10
ALARM_LED_S = 600.0  # an alarm keeps the alarm LED on for this long
STALE_AFTER_INTERVALS = 3  # a status file older than this many intervals is stale
LOCATE_REQUEST = "locate.request"  # beside the status file: edge112 board blink writes it


class StatusTracker:
    """Line states and recent history, from the events the gateway emits."""

    def __init__(self, lines: list[str]) -> None:
        self._lock = threading.Lock()
        self._up: dict[str, bool | None] = dict.fromkeys(lines)
        self._detail: dict[str, str] = dict.fromkeys(lines, "not reported yet")
        self._call: dict[str, tuple[str, str] | None] = dict.fromkeys(lines)  # (id, state)
        self._last_event: dict[str, Any] | None = None
        self._alarms: collections.deque[tuple[float, GatewayAlarm]] = collections.deque(
            maxlen=ALARMS_KEPT
        )

    def observe(self, event: Event) -> None:
        with self._lock:
            line = getattr(event, "line", None)
            self._last_event = {"type": event.TYPE.value, "ts": format_ts(event.observed_at)}
            if isinstance(line, str):
                self._last_event["line"] = line
            if isinstance(event, LineStatus):
                self._up[event.line] = event.state == "up"
                self._detail[event.line] = event.detail
            elif isinstance(event, CallOffered):
                self._call[event.line] = (event.call_id, "ringing")
            elif isinstance(event, CallAnswered):
                self._call[event.line] = (event.call_id, "in_call")
            elif isinstance(event, CallEnded | CallAbandoned):
                current = self._call.get(event.line)
                if current is not None and current[0] == event.call_id:
                    self._call[event.line] = None
            elif isinstance(event, GatewayAlarm):
                self._alarms.append((time.monotonic(), event))

    def line_leds(self) -> dict[str, LineLed]:
        with self._lock:
            result = {}
            for line, up in self._up.items():
                call = self._call.get(line)
                if call is not None:
                    result[line] = LineLed.RINGING if call[1] == "ringing" else LineLed.IN_CALL
                elif up is None:
                    result[line] = LineLed.OFF
                else:
                    result[line] = LineLed.READY if up else LineLed.FAULT
            return result

    def alarm_level(self, within_s: float = ALARM_LED_S) -> str | None:
        """``critical``, ``warning`` or None: the worst alarm in the last ``within_s``."""
        now = time.monotonic()
        with self._lock:
            recent = [a.severity.value for when, a in self._alarms if now - when <= within_s]
        if "critical" in recent:
            return "critical"
        return "warning" if recent else None

    def snapshot(self) -> dict[str, Any]:
        leds = self.line_leds()
        with self._lock:
            lines = [
                {
                    "line": line,
                    "state": "unknown" if up is None else ("up" if up else "down"),
                    "led": leds[line].value,
                    "detail": self._detail[line],
                    "call": (
                        None
                        if self._call.get(line) is None
                        else {"call_id": self._call[line][0], "state": self._call[line][1]}  # type: ignore[index]
                    ),
                }
                for line, up in self._up.items()
            ]
            alarms = [
                {
                    "code": alarm.code,
                    "severity": alarm.severity.value,
                    "message": alarm.message,
                    "ts": format_ts(alarm.observed_at),
                }
                for _, alarm in self._alarms
            ]
            return {
                "lines": lines,
                "calls_in_progress": sum(1 for c in self._call.values() if c is not None),
                "last_event": self._last_event,
                "alarms": alarms,
            }


def runtime_status_path(outbox_path: str, environ: dict[str, str] | None = None) -> Path:
    """Where the daemon writes its status file (see the module docstring)."""
    env = os.environ if environ is None else environ
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return Path(runtime) / STATUS_FILE_NAME
    return Path(outbox_path).parent / STATUS_FILE_NAME


def status_candidates(outbox_path: str) -> list[Path]:
    """Where ``edge112 status`` looks, in order."""
    candidates = [runtime_status_path(outbox_path), DEFAULT_RUNTIME_DIR / STATUS_FILE_NAME]
    candidates.append(Path(outbox_path).parent / STATUS_FILE_NAME)
    return list(dict.fromkeys(candidates))


def write_status(path: Path, document: dict[str, Any]) -> None:
    """Replace ``path`` atomically; a failure is the caller's to log (never fatal)."""
    document = {"format": STATUS_FORMAT, **document}
    now = time.time()
    document["updated"] = format_ts(datetime.fromtimestamp(now, UTC))
    document["updated_epoch"] = now
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w") as stream:
            json.dump(document, stream, indent=1, sort_keys=True, default=str)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def read_status(outbox_path: str) -> tuple[Path, dict[str, Any]] | None:
    """The freshest readable status file, or None."""
    found: list[tuple[float, Path, dict[str, Any]]] = []
    for path in status_candidates(outbox_path):
        with contextlib.suppress(OSError, ValueError):
            document = json.loads(path.read_text())
            if isinstance(document, dict):
                found.append((float(document.get("updated_epoch", 0)), path, document))
    if not found:
        return None
    _, path, document = max(found, key=lambda item: item[0])
    return path, document


def staleness(document: dict[str, Any], now: float | None = None) -> str | None:
    """Why this status is not the live state (the daemon gone or hung), or None when fresh."""
    now = time.time() if now is None else now
    age = now - float(document.get("updated_epoch", 0))
    interval = float(document.get("interval_s", 5.0))
    if document.get("stopped"):
        return f"the gateway stopped {age:.0f} s ago"
    pid = int(document.get("pid", 0))
    if pid > 0:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"the gateway (pid {pid}) is not running; last status {age:.0f} s ago"
        except PermissionError:
            pass  # alive, another user's
    if age > STALE_AFTER_INTERVALS * interval + 1:
        return f"the status is {age:.0f} s old (written every {interval:g} s): the gateway hangs"
    return None


# ---------------------------------------------------------------- edge112 status


def live_status(config: Config) -> tuple[dict[str, Any] | None, str]:
    """``(document, where)`` from the control socket, or ``(None, why not)``."""
    from gateway.control import ControlSocketError, control_socket_path, request

    path = control_socket_path(config.gateway.control_socket, config.outbox.path)
    try:
        return request(path), f"live from {path}"
    except ControlSocketError as error:
        return None, str(error)


def cmd_status(args: argparse.Namespace) -> int:
    """``edge112 status [--json]``: the control socket first, the status file when it fails."""
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"edge112: {error}", file=sys.stderr)
        return 2
    document, where = live_status(config)
    stale: str | None = None
    if document is not None:
        source = {"source": "control_socket", "where": where, "stale": None}
    else:
        found = read_status(config.outbox.path)
        if found is None:
            print(
                f"edge112: the gateway is not running here: {where}, and no status file "
                f"({', '.join(map(str, status_candidates(config.outbox.path)))})",
                file=sys.stderr,
            )
            return 1
        path, document = found
        stale = staleness(document)
        source = {"source": "status_file", "where": str(path), "stale": stale}
        if not args.json:
            note = f"NOT RUNNING: {stale}" if stale else "from the status file"
            print(f"{note} ({path}, written {document.get('updated')}; {where})")
    if args.json:
        print(json.dumps({**source, **document}, indent=2))
    else:
        print_status(document, str(source["where"]))
    return 1 if stale else 0


def print_status(document: dict[str, Any], where: str) -> None:
    health = (
        "healthy"
        if document.get("healthy")
        else "UNHEALTHY: " + "; ".join(document.get("problems", []))
    )
    print(
        f"gateway   {document.get('gateway_id')} (region {document.get('region')}), "
        f"pid {document.get('pid')}, since {document.get('started')}: {health}"
    )
    broker = document.get("broker", {})
    link = "connected" if broker.get("connected") else f"NOT connected ({broker.get('last_error')})"
    print(f"broker    {broker.get('url')}: {link}; {broker.get('acknowledged')} acknowledged")
    outbox = document.get("outbox", {})
    fault = outbox.get("storage_fault")
    print(
        f"backlog   {outbox.get('pending')} event(s) waiting"
        + (f"; STORAGE FAULT: {fault}" if fault else "")
    )
    print(f"calls     {document.get('calls_in_progress')} in progress")
    for line in document.get("lines", []):
        call = line.get("call")
        extra = f", call {call['state']}" if call else ""
        print(f"  {line['line']:10} {line['state']:8} led {line['led']:8} {line['detail']}{extra}")
    last = document.get("last_event")
    if last:
        print(f"last      {last.get('type')} at {last.get('ts')}")
    for alarm in document.get("alarms", [])[-5:]:
        print(f"alarm     {alarm['ts']} {alarm['severity']} {alarm['code']}: {alarm['message']}")
    board = document.get("board", {})
    print(f"board     {board.get('describe')}")
    clock = document.get("clock_synchronised")
    print(f"clock     {'synchronised' if clock else 'NOT synchronised' if clock is False else '?'}")
    updated = f", updated {document['updated']}" if "updated" in document else ""
    print(f"source    {where}{updated}")
