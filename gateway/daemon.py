"""The gateway process: drivers -> outbox -> forwarder, wired from one Config.

``Gateway`` composes the layers and owns their lifecycle; ``run()`` is the
``edge112 run`` main loop: signals, systemd notify and watchdog, the status
file (``gateway.status``), clean stop.

The board (``[board]``, ``firmware_py.board``) is opened here: its LEDs are
driven by one ``LedController`` thread from the gateway's state, and
``Gateway.recovery`` (``firmware_py.recovery.ModemPowerControl``) is what a
line's recovery ladder calls to pulse a modem's power key, reset it or cut
its power: each line's driver gets a ``BoardModemPower`` of it (the ladder
reports each step; the board control does not report it twice). A board
that cannot be opened degrades to ``none`` with a ``board_unavailable``
alarm: no LED ever stops the gateway.

Liveness (what the watchdog ping vouches for): the outbox writer is alive
and has not left a submitted event unresolved for ``WRITER_STUCK_S``; the
forwarder thread is alive and went round its loop within
``FORWARDER_STUCK_S``; every line's worker is alive and not stuck
(``LineHealth``). A stuck thread is caught, not only a dead one.

The gateway knows no hardware family: for each configured line it asks the
line's family (``gateway.families``) to build the driver, and it needs of a
driver only ``gateway.lines.LineDriver``. A line whose worker died or is
stuck makes the gateway unhealthy, so systemd restarts it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from firmware_py import watchdog
from firmware_py.board import open_board
from firmware_py.clock import clock_synchronised
from firmware_py.leds import BoardView, GatewayLed, LedController
from firmware_py.recovery import BoardModemPower, ModemPowerControl
from gateway import __version__
from gateway.audio.contract import AudioSinkFactory
from gateway.clock_watch import ClockWatch
from gateway.config import Config
from gateway.control import control_socket_path, start_control_server
from gateway.desk import Desk
from gateway.events import AlarmSeverity, Event, GatewayAlarm, encode, format_ts, topic_for
from gateway.families import get_family
from gateway.forwarder import Forwarder
from gateway.lines import Emit, LineDriver, LineSettings
from gateway.outbox import Outbox, Submission
from gateway.status import LOCATE_REQUEST, StatusTracker, runtime_status_path, write_status

log = logging.getLogger("edge112.gateway")

STOP_TIMEOUT_S = 5.0
WRITER_STUCK_S = 60.0  # an event submitted this long ago and not resolved: the writer is stuck
FORWARDER_STUCK_S = 90.0  # forwarder loop silent this long (connect timeout 5 s, CONNACK 10 s)
STATUS_INTERVAL_S = 5.0  # the main loop writes the status file at least this often
BACKLOG_REFRESH_S = 5.0
LOCATE_MAX_S = 600.0


DriverFactory = Callable[[LineSettings, Emit, AudioSinkFactory | None], LineDriver]


def family_driver_factory(
    settings: LineSettings,
    emit: Emit,
    sinks: AudioSinkFactory | None,
    power: BoardModemPower | None = None,
) -> LineDriver:
    """The line's driver, built by its family; audio sinks only for a line that has audio."""
    family = get_family(settings.FAMILY)
    return family.build_driver(settings, emit, sinks if settings.wants_audio else None, power)


class Gateway:
    """One gateway: an outbox, a forwarder and a driver per configured line."""

    def __init__(self, config: Config, driver_factory: DriverFactory | None = None) -> None:
        self.config = config
        gateway_id, region = config.gateway.id, config.gateway.region
        self.outbox = Outbox(
            config.outbox.path,
            gateway_id=gateway_id,
            region=region,
            synchronous=config.outbox.synchronous,
            max_bytes=config.outbox.max_bytes,
            group_commit_max=config.outbox.group_commit_max,
            held_max=config.outbox.held_max,
            on_unkept=self._publish_unkept,
        )
        self.forwarder = Forwarder(self.outbox, config.mqtt, gateway_id=gateway_id, region=region)
        self.desk = Desk(config, self.outbox, self.forwarder, self.submit)  # [desk]: annotations
        self.clock = ClockWatch(mark=self._mark_clock, emit=self.emit)
        self.status = StatusTracker([line.name for line in config.lines])
        self._unresolved: collections.deque[tuple[float, Submission]] = collections.deque()
        self._started_at = format_ts(datetime_now())
        self._running = False
        self._last_healthy = True
        self._backlog = 0
        self._backlog_at = 0.0
        self.board = open_board(config.board, on_alarm=self._board_alarm)
        modems = {wiring.line: wiring for wiring in config.board.modems}
        self._power_stop = threading.Event()  # set on stop: a power action's waits end
        self.recovery = ModemPowerControl(self.board, modems, self.emit, stop=self._power_stop)
        self.leds = LedController(
            self.board, self.board_view, backlog_warn=config.board.backlog_warn
        )
        sinks = self._audio_sinks() if any(line.wants_audio for line in config.lines) else None
        self.drivers = [
            driver_factory(line, self.submit, sinks)
            if driver_factory is not None
            else family_driver_factory(
                line, self.submit, sinks, BoardModemPower(self.recovery, line.name)
            )
            for line in config.lines
        ]

    def _audio_sinks(self) -> AudioSinkFactory:
        """One audio pipeline factory (one recording store, one prompt) for every line."""
        from gateway.audio.pipeline import pipeline_factory

        protected = (Path(self.config.outbox.path),)
        return pipeline_factory(self.config.audio, self.emit, protected=protected)

    def emit(self, event: Event) -> None:
        """Hand an event to the outbox (returns at once; the writer commits it)."""
        self.submit(event)

    def submit(self, event: Event) -> Submission:
        """``emit`` that returns the pending commit: line drivers get this one, so a driver
        that must act only once its event is stored (delete an SMS from the modem) can
        (``gateway.lines.EmitReceipt``)."""
        self.status.observe(event)
        submission = self.outbox.submit(event)
        unresolved = self._unresolved
        unresolved.append((time.monotonic(), submission))
        while unresolved and unresolved[0][1].done:  # amortised O(1): only the resolved head
            unresolved.popleft()
        return submission

    def _board_alarm(self, message: str, detail: dict[str, str]) -> None:
        self.emit(
            GatewayAlarm(
                code="board_unavailable",
                severity=AlarmSeverity.WARNING,
                message=message,
                detail=dict(detail),
            )
        )

    def _publish_unkept(self, alarm: GatewayAlarm) -> None:
        gateway_id, region = self.config.gateway.id, self.config.gateway.region
        payload = encode(alarm, seq=0, gateway_id=gateway_id, region=region)
        self.forwarder.publish_direct(topic_for(region, gateway_id, alarm.TYPE.value), payload)

    def _mark_clock(self, unsynced: bool) -> None:
        self.outbox.clock_unsynced = unsynced

    def start(self) -> None:
        self.leds.start()
        self.clock.check()  # before any event: a 1970 clock is marked from the first one
        self.desk.start()
        self.forwarder.start()
        for driver in self.drivers:
            driver.start()
        self._running = True
        log.info(
            "gateway %s (region %s) running: %d line(s), outbox %s, broker %s",
            self.config.gateway.id,
            self.config.gateway.region,
            len(self.drivers),
            self.config.outbox.path,
            self.config.mqtt.url,
        )

    def unhealthy_lines(self) -> list[str]:
        """Lines whose worker died or is stuck, each with what its health says."""
        problems = []
        for driver in self.drivers:
            health = driver.health()
            if not health.ok:
                why = "stuck" if health.worker_alive else "worker died"
                problems.append(f"{health.line} ({why}, {health.progress_age_s:.0f} s silent)")
        return problems

    def writer_stuck_for_s(self) -> float:
        """How long the oldest unresolved submitted event has waited (0 when none waits)."""
        unresolved = self._unresolved
        while unresolved and unresolved[0][1].done:
            unresolved.popleft()
        if not unresolved:
            return 0.0
        with contextlib.suppress(IndexError):  # emit() may pop it meanwhile
            return max(0.0, time.monotonic() - unresolved[0][0])
        return 0.0

    def problems(self) -> list[str]:
        """Why the gateway is not healthy: each dead or stuck thread, said exactly."""
        found = []
        if not self.outbox.writer_alive:
            found.append("outbox writer died")
        elif (waited := self.writer_stuck_for_s()) > WRITER_STUCK_S:
            found.append(f"outbox writer stuck ({waited:.0f} s with an event unresolved)")
        if not self.forwarder.alive:
            found.append("forwarder died")
        elif (silent := self.forwarder.silent_for_s) > FORWARDER_STUCK_S:
            found.append(f"forwarder stuck ({silent:.0f} s silent)")
        found += [f"line {problem}" for problem in self.unhealthy_lines()]
        return found

    def healthy(self) -> bool:
        return not self.problems()

    def check_health(self) -> list[str]:
        """``problems()``, remembered for the LEDs (the main loop calls this every tick)."""
        problems = self.problems()
        self._last_healthy = not problems
        return problems

    def backlog(self) -> int:
        """Events committed and not yet acknowledged (read at most every few seconds)."""
        now = time.monotonic()
        if now - self._backlog_at >= BACKLOG_REFRESH_S:
            self._backlog_at = now
            try:
                reader = self.outbox.reader()
                try:
                    self._backlog = reader.stats(max_bytes=self.outbox.max_bytes).pending
                finally:
                    reader.close()
            except Exception:
                log.debug("reading the backlog failed", exc_info=True)
        return self._backlog

    def board_view(self) -> BoardView:
        """The LEDs' view of the gateway (called by the LED thread every tick: no I/O)."""
        if not self._running:
            gateway = GatewayLed.STARTING
        else:
            gateway = GatewayLed.HEALTHY if self._last_healthy else GatewayLed.UNHEALTHY
        return BoardView(
            gateway=gateway,
            broker_connected=self.forwarder.stats.connected,
            backlog=self._backlog,
            storage_fault=self.outbox.fault is not None,
            alarm="critical" if not self._last_healthy else self.status.alarm_level(),
            lines=self.status.line_leds(),
        )

    def status_document(self, problems: list[str], interval_s: float) -> dict[str, Any]:
        """What ``edge112 status`` shows (see ``gateway.status``)."""
        snapshot = self.status.snapshot()
        health = {h.line: h for h in (driver.health() for driver in self.drivers)}
        for line in snapshot["lines"]:
            h = health.get(line["line"])
            if h is not None:
                line.update(
                    worker_alive=h.worker_alive,
                    progress_age_s=round(h.progress_age_s, 1),
                    sessions=h.sessions,
                    stuck=h.stuck,
                )
        stats = self.forwarder.stats
        fault = self.outbox.fault
        since = stats.connected_since
        return {
            "gateway_id": self.config.gateway.id,
            "region": self.config.gateway.region,
            "pid": os.getpid(),
            "version": __version__,
            "started": self._started_at,
            "interval_s": interval_s,
            "healthy": not problems,
            "problems": problems,
            **snapshot,
            "broker": {
                "url": self.config.mqtt.url,
                "connected": stats.connected,
                "connected_since": None if since is None else format_ts(datetime_at(since)),
                "published": stats.published,
                "acknowledged": stats.acknowledged,
                "last_error": stats.last_error,
            },
            "outbox": {
                "path": self.config.outbox.path,
                "pending": self.backlog(),
                "storage_fault": None if fault is None else str(fault),
            },
            "board": {
                "backend": self.board.backend_name,
                "describe": self.board.describe(),
                "leds": dict(self.leds.shown),
                "recovery": {
                    line: [action.value for action in self.recovery.capabilities(line)]
                    for line in (w.line for w in self.config.board.modems)
                },
            },
            "clock_synchronised": clock_synchronised(),
        }

    def stop_drivers(self) -> None:
        """Stop taking calls; what the drivers already emitted stays queued."""
        for driver in self.drivers:
            try:
                driver.stop()
            except Exception:
                log.exception("driver %s did not stop cleanly", driver.name)

    def stop(self) -> None:
        self._running = False
        self._power_stop.set()
        self.stop_drivers()
        self.desk.stop()
        self.leds.stop()
        self.board.close()
        self.outbox.flush(timeout=STOP_TIMEOUT_S / 2)
        self.forwarder.stop(timeout=STOP_TIMEOUT_S / 2)
        self.outbox.close()
        log.info("gateway stopped")


def datetime_now() -> datetime:
    return datetime.now(UTC)


def datetime_at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def stop_on_signals() -> threading.Event:
    """Turn SIGTERM and SIGINT into a set event (install it first thing: a SIGTERM that
    arrives while the process is still starting must stop it cleanly, not kill it)."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stopping


def run(
    config: Config,
    driver_factory: DriverFactory | None = None,
    stopping: threading.Event | None = None,
) -> int:
    """``edge112 run``: start, serve until SIGTERM/SIGINT, stop cleanly."""
    if stopping is None:
        stopping = stop_on_signals()
    gateway = Gateway(config, driver_factory)
    gateway.start()
    watchdog.notify("READY=1\nSTATUS=forwarding events")
    interval = min(watchdog.watchdog_interval_s() or STATUS_INTERVAL_S, STATUS_INTERVAL_S)
    status_path = runtime_status_path(config.outbox.path)
    _write_status(gateway, status_path, [], interval)
    control = start_control_server(
        control_socket_path(config.gateway.control_socket, config.outbox.path),
        lambda: {**gateway.status_document(gateway.problems(), interval), "stopped": False},
    )
    while not stopping.wait(interval):
        gateway.clock.check()
        problems = gateway.check_health()
        if not problems:
            watchdog.notify("WATCHDOG=1")
        else:
            log.error(
                "%s; withholding the watchdog ping so systemd restarts us", "; ".join(problems)
            )
            watchdog.notify(f"STATUS=unhealthy: {'; '.join(problems)}")
        _write_status(gateway, status_path, problems, interval)
        _take_locate_request(gateway, status_path.with_name(LOCATE_REQUEST))
    watchdog.notify("STOPPING=1")
    if control is not None:
        control.close()
    gateway.stop()
    _write_status(gateway, status_path, ["stopped"], interval, stopped=True)
    return 0


def _take_locate_request(gateway: Gateway, request: Path) -> None:
    """``edge112 board blink`` while we run: it leaves the seconds in ``request``."""
    try:
        text = request.read_text()
        request.unlink()
    except OSError:
        return
    try:
        seconds = min(max(float(text), 1.0), LOCATE_MAX_S)
    except ValueError:
        return
    log.info("locate: every LED blinks for %.0f s", seconds)
    gateway.leds.locate(seconds)


def _write_status(
    gateway: Gateway, path: Path, problems: list[str], interval: float, *, stopped: bool = False
) -> None:
    try:
        document = gateway.status_document(problems, interval)
        document["stopped"] = stopped
        write_status(path, document)
    except Exception:  # the status file is for people: never a reason to stop
        log.warning("cannot write the status file %s", path, exc_info=True)
