"""Storing events exactly once, on SQLite and PostgreSQL (every test runs on both)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from center.ingest.store import EventStore
from center.ingest.validate import ClockRule, check_message
from center.storage import tables
from center.storage.database import CURRENT_VERSION, SchemaTooNew, migrate, schema_version
from gateway.events import AlarmSeverity, GatewayAlarm
from tests.center.conftest import GATEWAY, EventFactory


def checked(topic: str, payload: bytes, at: datetime | None = None):  # type: ignore[no-untyped-def]
    return check_message(topic, payload, at or datetime.now(UTC), ClockRule())


def count(engine: Engine, table, *where) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(table).where(*where)).scalar()
        )


def gateway_row(engine: Engine, gateway_id: str = GATEWAY):  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return connection.execute(
            select(tables.gateways).where(tables.gateways.c.gateway_id == gateway_id)
        ).one()


def test_migration_is_idempotent_and_refuses_a_newer_schema(database: Engine) -> None:
    assert migrate(database) == []
    with database.begin() as connection:
        assert schema_version(connection) == CURRENT_VERSION
        connection.execute(tables.schema_version.update().values(version=CURRENT_VERSION + 1))
    with pytest.raises(SchemaTooNew, match="newer than this edge112 knows"):
        migrate(database)


def test_an_event_is_stored_once_however_often_it_arrives(
    database: Engine, make_events: Callable[..., EventFactory]
) -> None:
    factory = make_events()
    store = EventStore(database, "w1")
    messages = [checked(*factory.payload(event)) for event in factory.call()]
    first = store.store(messages + messages[:2])  # two redelivered in the same batch
    again = store.store(messages)  # and the whole call again later
    assert (first.stored, first.duplicates) == (4, 2)
    assert (again.stored, again.duplicates) == (0, 4)
    assert count(database, tables.events) == 4
    assert count(database, tables.calls) == 1
    row = gateway_row(database)
    assert (row.events, row.duplicates, row.contiguous_seq, row.highest_seq) == (4, 6, 4, 4)


def test_a_known_seq_with_another_event_id_is_an_alarm_not_an_overwrite(
    database: Engine, make_events: Callable[..., EventFactory]
) -> None:
    factory = make_events()
    store = EventStore(database, "w1")
    original = factory.call(answered=False)[0]
    impostor = factory.call(answered=False)[0]
    store.store([checked(*factory.payload(original, seq=7))])
    result = store.store([checked(*factory.payload(impostor, seq=7))])
    assert result.stored == 0
    assert result.quarantined == {"seq_conflict": 1}
    assert [notice.code for notice in result.alarms] == ["seq_conflict"]
    with database.connect() as connection:
        stored = connection.execute(select(tables.events.c.event_id)).scalars().all()
        quarantined = connection.execute(select(tables.quarantine)).one()
        alarm = connection.execute(select(tables.alarms)).one()
    assert stored == [original.event_id]
    assert quarantined.reason == "seq_conflict"
    assert impostor.event_id in quarantined.detail
    assert alarm.detail["stored_event_id"] == original.event_id
    assert alarm.cleared_at is None


def test_a_held_event_is_merged_with_its_sequenced_copy(
    database: Engine, make_events: Callable[..., EventFactory]
) -> None:
    factory = make_events()
    store = EventStore(database, "w1")
    offered, abandoned = factory.call(answered=False)
    store.store([checked(*factory.payload(offered, seq=0))])  # sent from memory, disk full
    store.store([checked(*factory.payload(offered, seq=0))])  # again on the next connection
    assert count(database, tables.events, tables.events.c.unsequenced.is_(True)) == 1
    result = store.store(
        [checked(*factory.payload(offered, seq=1)), checked(*factory.payload(abandoned, seq=2))]
    )
    assert (result.stored, result.merged) == (1, 1)
    late_copy = store.store([checked(*factory.payload(offered, seq=0))])  # a stale resend
    assert late_copy.duplicates == 1
    with database.connect() as connection:
        rows = connection.execute(
            select(tables.events.c.seq, tables.events.c.held, tables.events.c.unsequenced).order_by(
                tables.events.c.seq
            )
        ).all()
    assert [tuple(row) for row in rows] == [(1, True, False), (2, False, False)]
    assert count(database, tables.calls) == 1
    row = gateway_row(database)
    assert (row.events, row.contiguous_seq, row.duplicates) == (2, 2, 2)


def test_bad_input_is_quarantined_with_its_reason_and_counted(
    database: Engine, make_events: Callable[..., EventFactory]
) -> None:
    factory = make_events()
    topic, payload = factory.payload(factory.call()[0])
    event = json.loads(payload)
    wrong_type = dict(event, type="call.answered")
    unknown = dict(event, type="call.teleported")
    invalid = dict(event, data={**event["data"], "ring_count": "many"})
    messages = [
        checked(topic, b"{not json"),
        checked(topic, b"\xff\xfe"),
        checked(topic, b"[1, 2]"),
        checked(topic, json.dumps(wrong_type).encode()),
        checked(topic.replace("call.offered", "call.teleported"), json.dumps(unknown).encode()),
        checked(topic, json.dumps(invalid).encode()),
        checked(topic.replace(GATEWAY, "kutai-01"), payload),
        checked("edge112/v1/64.74", b"x"),
        checked(f"edge112/v1/64.74/{GATEWAY}/status", b"sleeping"),
        checked(topic, b"{not json"),  # the same bytes again: counted, one row
    ]
    result = EventStore(database, "w1").store(messages)
    assert result.stored == 0
    assert result.quarantined == {
        "malformed_json": 3,
        "not_an_object": 1,
        "topic_mismatch": 2,
        "unknown_type": 1,
        "schema_invalid": 1,
        "bad_topic": 1,
        "bad_status": 1,
    }
    with database.connect() as connection:
        rows = connection.execute(
            select(
                tables.quarantine.c.reason, tables.quarantine.c.detail, tables.quarantine.c.times
            )
        ).all()
    assert len(rows) == 9
    by_reason = {row.reason: row for row in rows}
    assert "ring_count" in by_reason["schema_invalid"].detail
    assert max(row.times for row in rows) == 2
    assert count(database, tables.events) == 0


def test_watermark_stops_at_a_gap_and_passes_seqs_an_alarm_explains(
    database: Engine, make_events: Callable[..., EventFactory]
) -> None:
    factory = make_events()
    store = EventStore(database, "w1")
    status = [factory.line_status() for _ in range(6)]
    store.store([checked(*factory.payload(status[i], seq=seq)) for i, seq in enumerate((1, 2, 5))])
    assert gateway_row(database).contiguous_seq == 2
    shed = GatewayAlarm(
        code="telemetry_shed",
        severity=AlarmSeverity.WARNING,
        message="shed",
        detail={"shed_count": 2, "shed_seqs": [[3, 4]]},
    )
    store.store([checked(*factory.payload(shed, seq=6))])
    row = gateway_row(database)
    assert (row.contiguous_seq, row.highest_seq) == (6, 6)


def test_a_call_is_one_row_whatever_order_its_events_arrive_in(
    database: Engine, make_events: Callable[..., EventFactory]
) -> None:
    factory = make_events()
    store = EventStore(database, "w1")
    ghost_call = [checked(*factory.payload(event)) for event in factory.call(ghost=True)]
    abandoned = [checked(*factory.payload(event)) for event in factory.call(answered=False)]
    for message in reversed(ghost_call + abandoned):
        store.store([message])
    with database.connect() as connection:
        rows = connection.execute(select(tables.calls).order_by(tables.calls.c.abandoned)).all()
    assert [(row.gateway_category, row.ghost, row.abandoned) for row in rows] == [
        ("ghost", True, False),
        ("terputus", False, True),
    ]
    assert rows[0].offered_at is not None and rows[0].answered_at is not None
    assert rows[0].counted_at == rows[0].offered_at  # the offered event sets when it counts


def test_status_since_changes_only_with_the_status(database: Engine) -> None:
    store = EventStore(database, "w1")
    topic = f"edge112/v1/64.74/{GATEWAY}/status"
    start = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
    store.store([checked(topic, b"offline", start)])
    store.store([checked(topic, b"offline", start + timedelta(minutes=5))])  # retained, again
    row = gateway_row(database)
    assert (row.status, row.status_since) == ("offline", start)
    store.store([checked(topic, b"online", start + timedelta(minutes=9))])
    row = gateway_row(database)
    assert (row.status, row.status_since) == ("online", start + timedelta(minutes=9))


def test_an_unset_gateway_clock_is_flagged_and_counted_at_arrival(
    database: Engine, make_events: Callable[..., EventFactory]
) -> None:
    factory = make_events()
    now = datetime.now(UTC)
    call = factory.call(at=datetime(1980, 1, 6, tzinfo=UTC), answered=False)
    EventStore(database, "w1").store([checked(*factory.payload(e), now) for e in call])
    with database.connect() as connection:
        row = connection.execute(select(tables.calls)).one()
        flags = connection.execute(select(tables.events.c.clock_suspect)).scalars().all()
    assert flags == [True, True]
    assert row.counted_at == now
    assert gateway_row(database).clock_suspect == 2
