"""The gateway process: drivers -> outbox -> forwarder, wired from one Config.

``Gateway`` composes the layers and owns their lifecycle; ``run()`` is the
``edge112 run`` main loop: signals, systemd notify and watchdog, clean stop.

The gateway knows no hardware family: for each configured line it asks the
line's family (``gateway.families``) to build the driver, and it needs of a
driver only ``gateway.lines.LineDriver``. A line whose worker died or is
stuck makes the gateway unhealthy, so systemd restarts it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from firmware_py import watchdog
from gateway.audio.contract import AudioSinkFactory
from gateway.config import Config
from gateway.events import Event, GatewayAlarm, encode, topic_for
from gateway.families import get_family
from gateway.forwarder import Forwarder
from gateway.lines import LineDriver, LineSettings
from gateway.outbox import Outbox

log = logging.getLogger("edge112.gateway")

STOP_TIMEOUT_S = 5.0


DriverFactory = Callable[
    [LineSettings, Callable[[Event], None], AudioSinkFactory | None], LineDriver
]


def family_driver_factory(
    settings: LineSettings, emit: Callable[[Event], None], sinks: AudioSinkFactory | None
) -> LineDriver:
    """The line's driver, built by its family; audio sinks only for a line that has audio."""
    family = get_family(settings.FAMILY)
    return family.build_driver(settings, emit, sinks if settings.wants_audio else None)


class Gateway:
    """One gateway: an outbox, a forwarder and a driver per configured line."""

    def __init__(
        self, config: Config, driver_factory: DriverFactory = family_driver_factory
    ) -> None:
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
        sinks = self._audio_sinks() if any(line.wants_audio for line in config.lines) else None
        self.drivers = [driver_factory(line, self.emit, sinks) for line in config.lines]

    def _audio_sinks(self) -> AudioSinkFactory:
        """One audio pipeline factory (one recording store, one prompt) for every line."""
        from gateway.audio.pipeline import pipeline_factory

        protected = (Path(self.config.outbox.path),)
        return pipeline_factory(self.config.audio, self.emit, protected=protected)

    def emit(self, event: Event) -> None:
        """Hand an event to the outbox (returns at once; the writer commits it)."""
        self.outbox.submit(event)

    def _publish_unkept(self, alarm: GatewayAlarm) -> None:
        gateway_id, region = self.config.gateway.id, self.config.gateway.region
        payload = encode(alarm, seq=0, gateway_id=gateway_id, region=region)
        self.forwarder.publish_direct(topic_for(region, gateway_id, alarm.TYPE.value), payload)

    def start(self) -> None:
        self.forwarder.start()
        for driver in self.drivers:
            driver.start()
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

    def healthy(self) -> bool:
        return self.outbox.writer_alive and self.forwarder.alive and not self.unhealthy_lines()

    def stop_drivers(self) -> None:
        """Stop taking calls; what the drivers already emitted stays queued."""
        for driver in self.drivers:
            try:
                driver.stop()
            except Exception:
                log.exception("driver %s did not stop cleanly", driver.name)

    def stop(self) -> None:
        self.stop_drivers()
        self.outbox.flush(timeout=STOP_TIMEOUT_S / 2)
        self.forwarder.stop(timeout=STOP_TIMEOUT_S / 2)
        self.outbox.close()
        log.info("gateway stopped")


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
    driver_factory: DriverFactory = family_driver_factory,
    stopping: threading.Event | None = None,
) -> int:
    """``edge112 run``: start, serve until SIGTERM/SIGINT, stop cleanly."""
    if stopping is None:
        stopping = stop_on_signals()
    gateway = Gateway(config, driver_factory)
    gateway.start()
    watchdog.notify("READY=1\nSTATUS=forwarding events")
    interval = watchdog.watchdog_interval_s() or 5.0
    while not stopping.wait(interval):
        if gateway.healthy():
            watchdog.notify("WATCHDOG=1")
        else:
            lines = gateway.unhealthy_lines()
            what = f"line(s) not working: {', '.join(lines)}" if lines else "a gateway thread died"
            log.error("%s; withholding the watchdog ping so systemd restarts us", what)
    watchdog.notify("STOPPING=1")
    gateway.stop()
    return 0
