"""The gateway process: drivers -> outbox -> forwarder, wired from one Config.

``Gateway`` composes the layers and owns their lifecycle; ``run()`` is the
``edge112 run`` main loop: signals, systemd notify and watchdog, clean stop.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Protocol

from drivers.audio_port import AudioSinkFactory
from firmware_py import watchdog
from gateway.config import Config, ModemSettings
from gateway.events import Event, GatewayAlarm, encode, topic_for
from gateway.forwarder import Forwarder
from gateway.outbox import Outbox

log = logging.getLogger("edge112.gateway")

STOP_TIMEOUT_S = 5.0


class LineDriver(Protocol):
    """What the gateway needs of a driver: start, stop, and a name."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


DriverFactory = Callable[
    [ModemSettings, Callable[[Event], None], AudioSinkFactory | None], LineDriver
]


def gsm_driver_factory(
    settings: ModemSettings, emit: Callable[[Event], None], sinks: AudioSinkFactory | None
) -> LineDriver:
    from drivers.gsm.modem import GsmModemDriver

    return GsmModemDriver(
        settings.name,
        settings.port,
        emit,
        answer_after_rings=settings.answer_after_rings,
        caller_id_grace_s=settings.caller_id_grace_ms / 1000,
        audio_url=settings.audio_port,
        audio_sink_factory=sinks if settings.audio_port else None,
    )


class Gateway:
    """One gateway: an outbox, a forwarder and a driver per configured line."""

    def __init__(self, config: Config, driver_factory: DriverFactory = gsm_driver_factory) -> None:
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
        sinks = self._audio_sinks() if any(m.audio_port for m in config.modems) else None
        self.drivers = [driver_factory(modem, self.emit, sinks) for modem in config.modems]

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

    def healthy(self) -> bool:
        return self.outbox.writer_alive and self.forwarder.alive

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


def run(config: Config, driver_factory: DriverFactory = gsm_driver_factory) -> int:
    """``edge112 run``: start, serve until SIGTERM/SIGINT, stop cleanly."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    gateway = Gateway(config, driver_factory)
    gateway.start()
    watchdog.notify("READY=1\nSTATUS=forwarding events")
    interval = watchdog.watchdog_interval_s() or 5.0
    while not stopping.wait(interval):
        if gateway.healthy():
            watchdog.notify("WATCHDOG=1")
        else:
            log.error("a gateway thread died; withholding the watchdog ping so systemd restarts us")
    watchdog.notify("STOPPING=1")
    gateway.stop()
    return 0
