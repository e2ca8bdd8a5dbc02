"""One center worker: the one place that wires the parts together.

::

    broker ──▶ MqttSession (thread "center-mqtt", owns paho)
                 │ inbox                      ▲ acks, publishes
                 ▼                            │
               IngestWriter (thread "center-writer", owns the write transactions)
                 │ EventStore ─▶ database ◀── alarm checker (thread, every check_interval_s)
                 ▼                        ◀── CommandSender (thread: desk commands to gateways)
               ChangeFeed (thread: polls the database for the live view)
                 ▼
               uvicorn + FastAPI (thread: API, dashboard, server-sent events)

Several workers (``center.id`` differs, ``mqtt.share_group`` the same) may
run against one broker and one database; see ``center.ingest.session``.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from center.config import CenterConfig
from center.ingest.session import MqttSession, Received
from center.ingest.store import EventStore
from center.ingest.validate import ClockRule
from center.ingest.writer import IngestWriter
from center.storage.database import migrate, open_engine

log = logging.getLogger("edge112.center")

HTTP_GRACE_S = 2.0


class CenterService:
    def __init__(self, config: CenterConfig) -> None:
        self.config = config
        self.engine = open_engine(config.database.url, pool_size=config.database.pool_size)
        self.applied = migrate(self.engine)
        sqlite = self.engine.dialect.name == "sqlite"
        self.read_engine = (
            open_engine(config.database.url, for_reads=True) if sqlite else self.engine
        )
        self.inbox: queue.Queue[Received] = queue.Queue()
        self.session = MqttSession(config.mqtt, config.center.id, self.inbox)
        self.store = EventStore(self.engine, config.center.id)
        completeness = config.completeness
        self.writer = IngestWriter(
            self.store,
            self.session,
            self.inbox,
            center_id=config.center.id,
            batch_max=config.database.batch_max,
            clock_rule=ClockRule.from_settings(
                completeness.clock_earliest, completeness.clock_max_ahead_s
            ),
        )
        from center.api.live import ChangeFeed
        from center.desk import CommandSender

        self.live = ChangeFeed(self.read_engine)
        self.writer.add_listener(self.live.notify)
        self.commands = CommandSender(self.engine, self.session.publish)
        self._stop = threading.Event()
        self._checker = threading.Thread(target=self._check_loop, name="center-alarms", daemon=True)
        self._http: Any = None
        self._http_thread: threading.Thread | None = None
        self.alarm_checks = 0

    @property
    def url(self) -> str | None:
        if not self.config.http.enabled:
            return None
        return f"http://{self.config.http.listen}/"

    def start(self) -> CenterService:
        self.session.start()
        self.writer.start()
        self.commands.start()
        self._checker.start()
        if self.config.http.enabled:  # the live view polls the database: only for dashboards
            self.live.start()
            self._start_http()
        return self

    def _start_http(self) -> None:
        import uvicorn

        from center.api.app import create_app

        app = create_app(
            self.read_engine,
            self.config,
            write_engine=self.engine,
            live=self.live,
            on_command=self.commands.wake,
        )
        settings = uvicorn.Config(
            app,
            host=self.config.http.host,
            port=self.config.http.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(HTTP_GRACE_S),
        )
        self._http = uvicorn.Server(settings)
        self._http_thread = threading.Thread(target=self._http.run, name="center-http", daemon=True)
        self._http_thread.start()

    def _check_loop(self) -> None:
        interval = self.config.completeness.check_interval_s
        while not self._stop.wait(interval):
            try:
                notices = self.check_alarms()
            except Exception as error:  # a database outage must not end the checks
                log.warning("alarm check failed: %s", error)
                continue
            for notice in notices:
                log.warning("center alarm %s: %s", notice.state, notice.message)

    def check_alarms(self) -> list[Any]:
        from center.completeness import evaluate_alarms

        notices = evaluate_alarms(self.engine, self.config.completeness, datetime.now(UTC))
        center_id = self.config.center.id
        for notice in notices:
            self.session.publish(notice.topic(center_id), notice.payload(center_id))
        self.alarm_checks += 1
        if notices:
            self.live.notify()
        return notices

    def wait_ready(self, timeout: float) -> bool:
        return self.session.wait_subscribed(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._http is not None:
            self._http.should_exit = True
        if self._http_thread is not None:
            self._http_thread.join(HTTP_GRACE_S + 3)
        if self._checker.is_alive():
            self._checker.join(5)
        self.commands.stop()
        self.writer.stop()  # finishes the batch in hand; its acks go out below
        self.session.stop()
        self.live.stop()
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def run(config: CenterConfig) -> int:
    """Run one worker until SIGTERM or SIGINT."""
    service = CenterService(config)
    if service.applied:
        log.info("database schema at version %d", service.applied[-1])
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.start()
    try:
        if service.wait_ready(30):
            where = f"; dashboard {service.url}" if service.url else ""
            print(f"edge112 center {config.center.id}: ready{where}", flush=True)
        else:
            log.warning("not subscribed yet at %s: still trying", config.mqtt.url)
        while not stop.wait(1.0):
            if not service.writer.alive:
                log.error("the writer stopped: exiting so the supervisor restarts the worker")
                return 1
    finally:
        service.stop()
    return 0
