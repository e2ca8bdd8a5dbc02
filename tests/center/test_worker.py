"""Center workers against a real mosquitto, on SQLite and PostgreSQL.

Two worker processes (``edge112 center --config``) share one feed through a
shared subscription; one is SIGKILLed in the middle of the stream and
restarted with its id, as a supervisor would: every event is stored exactly
once. In-process workers take a real gateway's outbox and forwarder, and bad
input that must not stop the feed.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func
from sqlalchemy import select as sql_select

from center.service import CenterService
from center.storage import tables
from center.storage.database import open_engine
from gateway.broker import PrivateBroker
from gateway.config import MqttSettings
from gateway.events import CallOffered, Presentation, status_topic
from gateway.forwarder import Forwarder
from gateway.outbox import Outbox
from tests.center.conftest import EventFactory
from tests.center.helpers import Publisher, center_config, count_rows, stored_events, write_config
from tests.conftest import PROCESS_TIMEOUT_S, wait_until

pytestmark = pytest.mark.requires_tool("mosquitto")
REPO = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """``python -m gateway.cli center --config FILE`` as a child process."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "center", "--config", str(self.config)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=open(self.config.with_suffix(".log"), "ab"),  # noqa: SIM115 - the child owns it
        )
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        assert self.process.stdout is not None
        line = b""
        while time.monotonic() < deadline and b"ready" not in line:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.5)
            if ready:
                line = self.process.stdout.readline()
            if self.process.poll() is not None:
                break
        if b"ready" not in line:
            self.kill()
            log = self.config.with_suffix(".log").read_text(errors="replace")[-2000:]
            pytest.fail(f"center worker did not get ready: {log}")
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.kill()


def feed(gateways: int, per_gateway: int) -> list[tuple[str, bytes]]:
    """Events of several gateways, interleaved as they would reach a broker."""
    factories = [
        EventFactory(gateway_id=f"gw-{n}", region=r)
        for n, r in enumerate(["64.74", "64.71", "32.73"][:gateways])
    ]
    streams: list[list[tuple[str, bytes]]] = []
    for factory in factories:
        stream: list[tuple[str, bytes]] = []
        while len(stream) < per_gateway:
            for event in factory.call(answered=len(stream) % 3 != 0):
                if len(stream) < per_gateway:
                    stream.append(factory.payload(event))
        streams.append(stream)
    return [message for group in zip(*streams, strict=True) for message in group]


def test_two_workers_split_one_feed_and_store_each_event_once_while_one_is_killed(
    broker: PrivateBroker, database_url: str, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    engine = open_engine(database_url)
    configs = [
        write_config(tmp_path / f"w{n}.toml", broker.url, database_url, center_id=f"w{n}")
        for n in (1, 2)
    ]
    first = WorkerProcess(configs[0]).start()  # migrates the empty database
    second = WorkerProcess(configs[1]).start()
    workers += [first, second]
    messages = feed(gateways=3, per_gateway=600)
    chunks = [messages[i : i + 200] for i in range(0, len(messages), 200)]
    publisher = Publisher(broker.url)
    try:
        for index, chunk in enumerate(chunks):
            publisher.publish(chunk)
            if index == 2:  # mid-stream: the broker has handed w2 messages it has not acked
                second.kill()
            if index == 5:  # its supervisor brings it back with the same id
                second = WorkerProcess(configs[1]).start()
                workers.append(second)
        publisher.publish(messages[:300])  # a gateway resending after a reconnect
    finally:
        publisher.close()
    wait_until(
        lambda: (
            stored_events(engine) == len(messages)
            and count_rows(engine, tables.gateways, tables.gateways.c.duplicates >= 100) == 3
        ),
        PROCESS_TIMEOUT_S,
        what=f"{len(messages)} events stored and the resent ones counted as duplicates",
    )
    # two workers committing neighbouring seqs at once may each leave the watermark
    # short; the alarm check walks it forward (center.completeness.heal_watermarks)
    wait_until(
        lambda: count_rows(engine, tables.gateways, tables.gateways.c.contiguous_seq == 600) == 3,
        what="every gateway's watermark at its last seq",
    )
    with engine.connect() as connection:
        by_worker = dict(
            connection.execute(
                sql_select(tables.events.c.worker, func.count()).group_by(tables.events.c.worker)
            ).all()
        )
        distinct = connection.execute(
            sql_select(func.count(func.distinct(tables.events.c.event_id)))
        ).scalar()
        gateway_rows = connection.execute(sql_select(tables.gateways)).all()
    assert distinct == len(messages)
    assert set(by_worker) == {"w1", "w2"}, f"the feed was not split: {by_worker}"
    assert min(by_worker.values()) > len(messages) // 10
    for row in gateway_rows:
        assert (row.contiguous_seq, row.highest_seq, row.events) == (600, 600, 600)
        assert row.duplicates >= 100
    assert count_rows(engine, tables.quarantine) == 0
    assert first.terminate() == 0
    assert second.terminate() == 0
    engine.dispose()


@pytest.fixture
def service_factory(broker: PrivateBroker) -> Iterator[Callable[..., CenterService]]:
    running: list[CenterService] = []

    def start(database_url: str, **options: object) -> CenterService:
        service = CenterService(center_config(broker.url, database_url, **options)).start()
        running.append(service)
        assert service.wait_ready(10), "the center did not subscribe"
        return service

    yield start
    for service in running:
        service.stop()


def test_a_real_gateway_outbox_and_forwarder_feed_the_center(
    broker: PrivateBroker,
    database_url: str,
    tmp_path: Path,
    service_factory: Callable[..., CenterService],
) -> None:
    service = service_factory(database_url)
    engine: Engine = service.engine
    with Outbox(tmp_path / "outbox.db", gateway_id="bontang-01", region="64.74") as outbox:
        forwarder = Forwarder(
            outbox,
            MqttSettings(url=broker.url, reconnect_min_s=0.1, reconnect_max_s=0.5),
            gateway_id="bontang-01",
            region="64.74",
        )
        forwarder.start()
        try:
            for n in range(150):
                outbox.submit(
                    CallOffered(
                        call_id=f"call-{n}",
                        line="gsm0",
                        number=None,
                        presentation=Presentation.UNAVAILABLE,
                        ring_count=1,
                    )
                )
            wait_until(lambda: stored_events(engine) == 150, what="150 gateway events stored")

            def status() -> str | None:
                with engine.connect() as connection:
                    return connection.execute(sql_select(tables.gateways.c.status)).scalar()

            wait_until(lambda: status() == "online", what="the retained online status stored")
        finally:
            forwarder.stop()
    wait_until(lambda: status() == "offline", what="the clean stop's offline status stored")
    with engine.connect() as connection:
        row = connection.execute(sql_select(tables.gateways)).one()
    assert (row.contiguous_seq, row.highest_seq, row.duplicates) == (150, 150, 0)
    assert count_rows(engine, tables.calls) == 150


def test_bad_input_is_quarantined_and_the_feed_goes_on(
    broker: PrivateBroker, database_url: str, service_factory: Callable[..., CenterService]
) -> None:
    service = service_factory(database_url)
    factory = EventFactory()
    good = [factory.payload(event) for event in factory.call()]
    topic = good[0][0]
    event = json.loads(good[0][1])
    bad = [
        (topic, b"\x00\x01 not json"),
        (topic, json.dumps({**event, "gateway_id": "kutai-01"}).encode()),
        (
            topic.replace("call.offered", "call.unknown"),
            json.dumps({**event, "type": "call.unknown"}).encode(),
        ),
        (topic, json.dumps({**event, "seq": -5}).encode()),
        (topic, b"[" * 100_000),  # nested too deeply for the JSON parser
        (topic, b"x" * 300_000),
        (status_topic("64.74", "bontang-01"), b"maybe"),
    ]
    publisher = Publisher(broker.url)
    try:
        publisher.publish(bad[:4] + good[:2] + bad[4:] + good[2:])
    finally:
        publisher.close()
    engine = service.engine
    wait_until(
        lambda: stored_events(engine) == 4 and count_rows(engine, tables.quarantine) == len(bad),
        what="the good events stored and every bad message quarantined",
    )
    with engine.connect() as connection:
        reasons = sorted(connection.execute(sql_select(tables.quarantine.c.reason)).scalars())
    assert reasons == sorted(
        [
            "malformed_json",
            "topic_mismatch",
            "unknown_type",
            "schema_invalid",
            "malformed_json",
            "too_large",
            "bad_status",
        ]
    )
    assert service.writer.alive and service.session.alive
    # acks follow the commit on the MQTT thread: wait for them, do not race them
    wait_until(
        lambda: service.session.stats.acked >= 4 + len(bad), what="every message acknowledged"
    )


class WriteLock:
    """Another client holding the database's write lock: the worker's writer must wait."""

    def __init__(self, database_url: str) -> None:
        self.engine = open_engine(database_url)
        self.connection = self.engine.connect()
        if self.engine.dialect.name == "postgresql":
            self.connection.exec_driver_sql("LOCK TABLE events IN EXCLUSIVE MODE")
        else:
            self.connection.exec_driver_sql("SELECT 1")  # the engine's BEGIN IMMEDIATE took it

    def release(self) -> None:
        self.connection.rollback()
        self.connection.close()
        self.engine.dispose()


def test_messages_not_stored_are_not_acknowledged_and_come_back_to_the_same_worker(
    broker: PrivateBroker, database_url: str, service_factory: Callable[..., CenterService]
) -> None:
    service = service_factory(database_url)
    factory = EventFactory()
    messages = [factory.payload(event) for event in factory.call()]
    lock = WriteLock(database_url)
    try:
        publisher = Publisher(broker.url)
        try:
            publisher.publish(messages)
        finally:
            publisher.close()
        wait_until(lambda: service.session.stats.received == 4, what="the worker got the call")
        time.sleep(0.3)  # the writer is blocked on the lock: it must not ack meanwhile
        assert service.session.stats.acked == 0
        service.session.stop()  # the worker's connection dies before anything was stored
    finally:
        lock.release()
    again = service_factory(database_url)  # the same id: the broker resends what was not acked
    wait_until(
        lambda: again.session.stats.received >= 4 and stored_events(again.engine) == 4,
        what="the unacknowledged call delivered again and stored once",
    )
    wait_until(lambda: again.session.stats.acked >= 4, what="the resent call acknowledged")
