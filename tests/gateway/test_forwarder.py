"""The forwarder against a real mosquitto: delivery, outages, half-dead links, shutdown."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.broker import PrivateBroker
from gateway.config import MqttSettings
from gateway.consumer import FeedMonitor
from gateway.events import CallOffered, LineStatus, Presentation
from gateway.forwarder import Forwarder, backoff_delays
from gateway.outbox import Outbox
from tests.conftest import validate_event

GATEWAY = "bontang-01"
REGION = "64.74"


def offered(n: int) -> CallOffered:
    return CallOffered(
        call_id=f"call-{n}",
        line="gsm0",
        number=f"+6281{n:08d}",
        presentation=Presentation.ALLOWED,
        ring_count=1,
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.db", gateway_id=GATEWAY, region=REGION) as box:
        yield box


def start_forwarder(outbox: Outbox, broker: PrivateBroker, **settings: object) -> Forwarder:
    defaults: dict[str, object] = {
        "url": broker.url,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
    }
    forwarder = Forwarder(
        outbox,
        MqttSettings(**{**defaults, **settings}),  # type: ignore[arg-type]
        gateway_id=GATEWAY,
        region=REGION,
    )
    forwarder.start()
    return forwarder


def pending(outbox: Outbox) -> int:
    reader = outbox.reader()
    try:
        return reader.stats().pending
    finally:
        reader.close()


def wait_until(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_events_arrive_schema_valid_in_order_and_leave_the_outbox(
    outbox: Outbox, broker: PrivateBroker, monitor: FeedMonitor
) -> None:
    forwarder = start_forwarder(outbox, broker)
    try:
        for n in range(200):
            outbox.submit(offered(n))
        assert monitor.wait_for(lambda m: len(m.feed(GATEWAY).events) >= 200, 10)
        assert wait_until(lambda: pending(outbox) == 0)
    finally:
        forwarder.stop()
    feed = monitor.feed(GATEWAY)
    assert feed.order == list(range(1, 201))
    assert feed.duplicates == 0
    for event in monitor.events_of(GATEWAY):
        validate_event(event)
    assert [e["data"]["call_id"] for e in monitor.events_of(GATEWAY)] == [
        f"call-{n}" for n in range(200)
    ]


def test_status_is_retained_online_then_offline_on_clean_stop(
    outbox: Outbox, broker: PrivateBroker
) -> None:
    forwarder = start_forwarder(outbox, broker)
    with FeedMonitor(broker.url) as late:
        assert late.wait_for(lambda m: m.feed(GATEWAY).status == "online", 5)
    forwarder.stop()
    with FeedMonitor(broker.url) as later:
        assert later.wait_for(lambda m: m.feed(GATEWAY).status == "offline", 5)


def test_last_will_says_offline_when_the_connection_dies(
    outbox: Outbox, broker: PrivateBroker, monitor: FeedMonitor
) -> None:
    forwarder = start_forwarder(outbox, broker, keepalive_s=5)
    assert monitor.wait_for(lambda m: m.feed(GATEWAY).status == "online", 5)
    forwarder._stop.set()  # the thread ends without its goodbye: like a crash
    forwarder.wake()
    forwarder._thread.join(5)
    # paho closed the socket without DISCONNECT, so the broker sends the will
    assert monitor.wait_for(lambda m: m.feed(GATEWAY).status == "offline", 10)


def test_broker_outage_loses_nothing_and_order_holds(outbox: Outbox, tmp_path: Path) -> None:
    """The broker stops and starts again while events keep coming. The subscriber has a
    persistent session on a broker with persistence (as a center should), so it gets what
    the gateway sends the moment the broker is back, even before it has reconnected."""
    broker = PrivateBroker(workdir=tmp_path / "persistent", persistence=True).start()
    forwarder = start_forwarder(outbox, broker)
    monitor = FeedMonitor(broker.url, client_id="center", session_expiry_s=3600).start()
    try:
        for n in range(100):
            outbox.submit(offered(n))
        assert monitor.wait_for(lambda m: len(m.feed(GATEWAY).events) >= 100, 10)
        broker.stop()
        for n in range(100, 300):  # queued while the broker is away
            outbox.submit(offered(n))
        outbox.flush()
        assert wait_until(lambda: not forwarder.stats.connected, 5)
        assert pending(outbox) >= 200
        broker.start()
        for n in range(300, 350):
            outbox.submit(offered(n))
        assert monitor.wait_for(lambda m: len(m.feed(GATEWAY).events) >= 350, 30)
        assert wait_until(lambda: pending(outbox) == 0)
    finally:
        monitor.stop()
        forwarder.stop()
        broker.stop()
    seqs = sorted(monitor.feed(GATEWAY).events)
    assert seqs == list(range(1, 351)), "every event queued during the outage arrived"
    fresh = [s for s in monitor.feed(GATEWAY).order if s > 100]
    assert fresh == sorted(fresh), "order holds across the outage"
    assert forwarder.stats.connects >= 2


def test_a_frozen_broker_triggers_the_ack_timeout_and_a_reconnect(
    outbox: Outbox, broker: PrivateBroker, monitor: FeedMonitor
) -> None:
    forwarder = start_forwarder(outbox, broker, ack_timeout_s=1.0)
    try:
        assert wait_until(lambda: forwarder.stats.connected)
        broker.pause()  # TCP stays up, no PUBACK comes
        for n in range(10):
            outbox.submit(offered(n))
        assert wait_until(lambda: forwarder.stats.ack_timeouts >= 1, 10)
        broker.resume()
        assert monitor.wait_for(lambda m: len(m.feed(GATEWAY).events) >= 10, 15)
        assert wait_until(lambda: pending(outbox) == 0)
    finally:
        forwarder.stop()
    assert sorted(monitor.feed(GATEWAY).events) == list(range(1, 11))
    assert "no PUBACK" in " ".join(forwarder.stats.history)


def test_window_bounds_what_is_unacknowledged(
    outbox: Outbox, broker: PrivateBroker, monitor: FeedMonitor
) -> None:
    broker.pause()
    forwarder = start_forwarder(outbox, broker, inflight_window=5, ack_timeout_s=60)
    broker.resume()
    try:
        assert wait_until(lambda: forwarder.stats.connected)
        broker.pause()
        for n in range(50):
            outbox.submit(offered(n))
        time.sleep(0.5)
        assert forwarder.stats.inflight == 5
        assert forwarder.stats.published - 1 == 5  # the retained "online" plus the window
        broker.resume()
        assert monitor.wait_for(lambda m: len(m.feed(GATEWAY).events) >= 50, 10)
    finally:
        forwarder.stop()


def test_mqtt_3_1_1_works_too(outbox: Outbox, broker: PrivateBroker, monitor: FeedMonitor) -> None:
    forwarder = start_forwarder(outbox, broker, protocol="3.1.1")
    try:
        outbox.put(LineStatus(line="gsm0", state="up", detail="ok"))
        assert monitor.wait_for(lambda m: len(m.feed(GATEWAY).events) == 1, 10)
    finally:
        forwarder.stop()
    (event,) = monitor.events_of(GATEWAY)
    assert event["type"] == "line.status"


def test_unreachable_broker_retries_with_growing_backoff(outbox: Outbox, tmp_path: Path) -> None:
    from gateway.broker import free_port

    port = free_port()
    forwarder = Forwarder(
        outbox,
        MqttSettings(url=f"mqtt://127.0.0.1:{port}", reconnect_min_s=0.05, reconnect_max_s=0.2),
        gateway_id=GATEWAY,
        region=REGION,
    )
    forwarder.start()
    try:
        outbox.put(offered(1))
        assert wait_until(lambda: len(forwarder.stats.history) >= 3, 10)
        assert not forwarder.stats.connected
        with (
            PrivateBroker(port=port, workdir=tmp_path / "late") as late,
            FeedMonitor(late.url) as m,
        ):
            assert m.wait_for(lambda mon: len(mon.feed(GATEWAY).events) == 1, 10)
    finally:
        forwarder.stop()


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    import random

    delays = backoff_delays(0.5, 4.0, random.Random(1))
    values = [next(delays) for _ in range(8)]
    caps = [0.5, 1, 2, 4, 4, 4, 4, 4]
    assert all(cap / 2 <= value <= cap for value, cap in zip(values, caps, strict=True))
    assert len(set(values)) == len(values), "jitter spreads reconnects"


def test_payload_published_is_the_stored_payload(
    outbox: Outbox, broker: PrivateBroker, monitor: FeedMonitor
) -> None:
    seq = outbox.put(offered(7))
    stored = json.loads(outbox.reader().peek()[0].payload)
    forwarder = start_forwarder(outbox, broker)
    try:
        assert monitor.wait_for(lambda m: seq in m.feed(GATEWAY).events, 10)
    finally:
        forwarder.stop()
    assert monitor.feed(GATEWAY).events[seq] == stored


def test_a_stop_while_waiting_for_connack_is_not_reported_as_a_broker_fault(
    outbox: Outbox,
) -> None:
    """A peer that accepts TCP and never answers: stopping then must not leave
    "no CONNACK from the broker" as the last error (it misled operators, and a test)."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        forwarder = Forwarder(
            outbox,
            MqttSettings(url=f"mqtt://127.0.0.1:{port}", reconnect_min_s=0.1),
            gateway_id=GATEWAY,
            region=REGION,
        )
        forwarder.start()
        peer, _ = silent.accept()  # the forwarder is connected and waits for its CONNACK
        with peer:
            forwarder.stop()
    assert not forwarder.alive
    assert forwarder.stats.last_error == "", forwarder.stats.last_error
