"""Completeness: gaps, their age and explanation, and the alarms they raise (both engines)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from center.completeness import evaluate_alarms, gaps_of, gateway_summaries, heal_watermarks
from center.config import CompletenessSettings
from center.ingest.store import EventStore
from center.ingest.validate import check_message
from center.service import CenterService
from center.storage import tables
from gateway.broker import PrivateBroker
from gateway.events import AlarmSeverity, GatewayAlarm, status_topic
from tests.center.conftest import GATEWAY, REGION, EventFactory
from tests.center.helpers import Publisher, TopicRecorder, center_config
from tests.conftest import wait_until

T0 = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
SETTINGS = CompletenessSettings(gap_alarm_after_s=300, offline_alarm_after_s=600)


def store_seqs(engine: Engine, factory: EventFactory, seqs: list[int], at: datetime) -> None:
    messages = [check_message(*factory.payload(factory.line_status(), seq=seq), at) for seq in seqs]
    EventStore(engine, "w1").store(messages)


def open_alarms(engine: Engine) -> list[tuple[str, str]]:
    alarms = tables.alarms
    with engine.connect() as connection:
        rows = connection.execute(
            select(alarms.c.code, alarms.c.alarm_key).where(alarms.c.cleared_at.is_(None))
        ).all()
    return sorted((row.code, row.alarm_key) for row in rows)


def test_gaps_have_ranges_an_age_from_when_they_were_seen_and_an_explanation(
    database: Engine,
) -> None:
    factory = EventFactory()
    store_seqs(database, factory, [1, 2, 6], T0)
    store_seqs(database, factory, [10], T0 + timedelta(seconds=30))
    shed = GatewayAlarm(
        code="telemetry_shed",
        severity=AlarmSeverity.WARNING,
        message="shed",
        detail={"shed_count": 2, "shed_seqs": [[8, 9]]},
    )
    EventStore(database, "w1").store(
        [check_message(*factory.payload(shed, seq=11), T0 + timedelta(seconds=30))]
    )
    with database.connect() as connection:
        gaps = gaps_of(connection, GATEWAY)
        summary = gateway_summaries(connection, T0 + timedelta(seconds=60))[0]
    assert [(g.first_seq, g.last_seq, g.explained_by) for g in gaps] == [
        (3, 5, None),
        (7, 7, None),
        (8, 9, "telemetry_shed"),
    ]
    assert gaps[0].opened_at == T0  # seq 6 showed it
    assert gaps[1].opened_at == T0 + timedelta(seconds=30)
    assert (summary["contiguous_seq"], summary["highest_seq"]) == (2, 11)
    assert (summary["missing"], summary["explained_missing"]) == (4, 2)


def test_a_watermark_left_short_by_concurrent_workers_is_walked_forward(
    database: Engine,
) -> None:
    factory = EventFactory()
    store_seqs(database, factory, [1, 2, 3, 4], T0)
    with database.begin() as connection:  # what two racing workers can leave behind
        connection.execute(tables.gateways.update().values(contiguous_seq=1))
    with database.begin() as connection:
        assert heal_watermarks(connection) == 1
        assert connection.execute(select(tables.gateways.c.contiguous_seq)).scalar() == 4
        assert heal_watermarks(connection) == 0


def test_a_gap_open_too_long_raises_an_alarm_cleared_when_it_is_filled(database: Engine) -> None:
    factory = EventFactory()
    store_seqs(database, factory, [1, 2, 5], T0)
    assert evaluate_alarms(database, SETTINGS, T0 + timedelta(seconds=299)) == []
    raised = evaluate_alarms(database, SETTINGS, T0 + timedelta(seconds=301))
    assert [(n.code, n.state, n.detail["first_seq"], n.detail["last_seq"]) for n in raised] == [
        ("gap_open", "raised", 3, 4)
    ]
    assert evaluate_alarms(database, SETTINGS, T0 + timedelta(seconds=400)) == []  # once
    assert open_alarms(database) == [("gap_open", f"gap_open:{GATEWAY}:3-4")]
    store_seqs(database, factory, [3, 4], T0 + timedelta(seconds=500))
    cleared = evaluate_alarms(database, SETTINGS, T0 + timedelta(seconds=501))
    assert [(n.code, n.state) for n in cleared] == [("gap_open", "cleared")]
    assert open_alarms(database) == []


def test_a_gateway_offline_too_long_raises_an_alarm_cleared_when_it_is_back(
    database: Engine,
) -> None:
    topic = status_topic(REGION, GATEWAY)
    store = EventStore(database, "w1")
    store.store([check_message(topic, b"offline", T0)])
    assert evaluate_alarms(database, SETTINGS, T0 + timedelta(seconds=599)) == []
    raised = evaluate_alarms(database, SETTINGS, T0 + timedelta(seconds=601))
    assert [(n.code, n.gateway_id, n.state) for n in raised] == [
        ("gateway_offline", GATEWAY, "raised")
    ]
    store.store([check_message(topic, b"online", T0 + timedelta(seconds=700))])
    cleared = evaluate_alarms(database, SETTINGS, T0 + timedelta(seconds=701))
    assert [(n.code, n.state) for n in cleared] == [("gateway_offline", "cleared")]


@pytest.fixture
def fast_alarm_center(
    broker: PrivateBroker, database_url: str
) -> Iterator[Callable[[], CenterService]]:
    services: list[CenterService] = []

    def start() -> CenterService:
        config = dataclasses.replace(
            center_config(broker.url, database_url),
            completeness=CompletenessSettings(
                gap_alarm_after_s=0.3, offline_alarm_after_s=0.3, check_interval_s=0.1
            ),
        )
        service = CenterService(config).start()
        services.append(service)
        assert service.wait_ready(10)
        return service

    yield start
    for service in services:
        service.stop()


def test_center_alarms_are_published_on_their_topic(
    broker: PrivateBroker, fast_alarm_center: Callable[[], CenterService]
) -> None:
    fast_alarm_center()
    recorder = TopicRecorder(broker.url, "edge112/v1/center/+/alarm/#")
    factory = EventFactory()
    publisher = Publisher(broker.url)
    try:
        publisher.publish(
            [
                factory.payload(factory.line_status(), seq=1),
                factory.payload(factory.line_status(), seq=3),
            ]
        )
        wait_until(
            lambda: any(p["state"] == "raised" for _, p in recorder.received()),
            what="a gap_open alarm published",
        )
        publisher.publish([factory.payload(factory.line_status(), seq=2)])
        wait_until(
            lambda: any(p["state"] == "cleared" for _, p in recorder.received()),
            what="the gap_open alarm cleared when seq 2 arrived",
        )
    finally:
        publisher.close()
        recorder.close()
    topic, raised = recorder.received()[0]
    assert topic == "edge112/v1/center/center-1/alarm/gap_open"
    assert (raised["gateway_id"], raised["detail"]["first_seq"], raised["detail"]["last_seq"]) == (
        GATEWAY,
        2,
        2,
    )
