"""One batch through the staging tables (``center.ingest.staging``), on SQLite and PostgreSQL.

A single batch mixing every case the store tells apart must store exactly the
right rows and raise exactly the right alarms; a batch the database refuses
must not leave the per-connection staging tables half-known.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from center.ingest import watermarks
from center.ingest.store import EventStore
from center.ingest.validate import ClockRule, Incoming, check_message
from center.storage import tables
from center.storage.database import open_engine
from tests.center.conftest import EventFactory


def checked(topic: str, payload: bytes):  # type: ignore[no-untyped-def]
    return check_message(topic, payload, datetime.now(UTC), ClockRule())


def test_a_mixed_batch_stores_exactly_the_right_rows_and_alarms(
    database: Engine, make_events: Callable[..., EventFactory]
) -> None:
    one, two = make_events("gw-one"), make_events("gw-two")
    store = EventStore(database, "w1")
    known = one.call(answered=False)[0]
    held, _ = one.call(answered=False)
    store.store([checked(*one.payload(known, seq=1)), checked(*one.payload(held, seq=0))])

    new_a, new_b = one.call(answered=False)  # a whole call, seqs 2 and 3
    impostor = one.call(answered=False)[0]  # claims seq 1, which `known` holds
    first_4, second_4 = one.call(answered=False)[0], one.call(answered=False)[0]  # both seq 4
    other = two.call(answered=False)[0]
    topic, payload = one.payload(new_a, seq=2)
    broken = dict(json.loads(payload), seq="two")
    batch = [
        checked(*one.payload(new_a, seq=2)),
        checked(*one.payload(known, seq=1)),  # duplicate of a stored event
        checked(*one.payload(impostor, seq=1)),  # conflict with a stored seq
        checked(*one.payload(new_b, seq=3)),
        checked(*one.payload(first_4, seq=4)),
        checked(*one.payload(second_4, seq=4)),  # conflict with a seq stored by this batch
        checked(*one.payload(held, seq=5)),  # the sequenced copy of the held event: merged
        checked(*one.payload(held, seq=5)),  # and again in the same batch: a duplicate
        checked(*one.payload(new_a, seq=2)),  # a duplicate within the batch
        checked(*two.payload(other, seq=1)),
        checked(topic, b"{not json"),
        checked(topic, json.dumps(broken).encode()),
        checked("edge112/v1/64.74/gw-two/status", b"online"),
    ]
    result = store.store(batch)

    assert (result.stored, result.merged, result.duplicates, result.statuses) == (4, 1, 3, 1)
    assert result.quarantined == Counter(
        {"seq_conflict": 2, "malformed_json": 1, "schema_invalid": 1}
    )
    assert sorted(
        (notice.detail["stored_event_id"], notice.detail["conflicting_event_id"])
        for notice in result.alarms
    ) == sorted([(known.event_id, impostor.event_id), (first_4.event_id, second_4.event_id)])
    with database.connect() as connection:
        stored = {
            (row.gateway_id, row.seq, row.event_id)
            for row in connection.execute(
                select(tables.events.c.gateway_id, tables.events.c.seq, tables.events.c.event_id)
            )
        }
        gateways = {
            row.gateway_id: (row.events, row.duplicates, row.contiguous_seq, row.status)
            for row in connection.execute(select(tables.gateways))
        }
        calls = {
            row.call_id: (row.abandoned, row.offered_at is not None)
            for row in connection.execute(select(tables.calls))
        }
        quarantined = sorted(connection.execute(select(tables.quarantine.c.reason)).scalars().all())
        alarms = connection.execute(select(tables.alarms.c.code)).scalars().all()
        found = connection.execute(  # times bound by SQLAlchemy match the staged text
            select(tables.events.c.event_id).where(
                tables.events.c.received_at == batch[0].received_at,
                tables.events.c.ts == batch[0].ts,
            )
        ).scalars()
        assert list(found) == [new_a.event_id]
    assert stored == {
        ("gw-one", 1, known.event_id),
        ("gw-one", 2, new_a.event_id),
        ("gw-one", 3, new_b.event_id),
        ("gw-one", 4, first_4.event_id),
        ("gw-one", 5, held.event_id),
        ("gw-two", 1, other.event_id),
    }
    assert gateways == {"gw-one": (5, 3, 5, None), "gw-two": (1, 0, 1, "online")}
    assert calls[new_a.call_id] == (True, True)  # offered and abandoned, one row
    assert len(calls) == 5  # the impostors made no call rows
    assert quarantined == ["malformed_json", "schema_invalid", "seq_conflict", "seq_conflict"]
    assert alarms == ["seq_conflict", "seq_conflict"]


def test_a_batch_the_database_refuses_leaves_the_staging_tables_usable(
    database_url: str, make_events: Callable[..., EventFactory]
) -> None:
    """The first batch on a fresh engine creates the staging tables and fails: its rollback
    takes them along, and the message-by-message retry must create them again."""
    from center.storage.database import migrate

    engine = open_engine(database_url)
    migrate(engine)
    engine.dispose()  # fresh connections: no staging table exists yet
    try:
        factory = make_events()
        store = EventStore(engine, "w1")
        good = [checked(*factory.payload(event)) for event in factory.call()]
        bad = good.pop()
        assert isinstance(bad, Incoming)
        refused = dataclasses.replace(bad, seq=2**63)  # no database integer holds it
        result = store.store([*good, refused])
        assert result.stored == len(good)
        assert result.quarantined == Counter({"store_failed": 1})
        with engine.connect() as connection:
            seqs = connection.execute(select(tables.events.c.seq)).scalars().all()
        assert sorted(seqs) == [1, 2, 3]
        later = store.store([checked(*factory.payload(factory.line_status()))])
        assert later.stored == 1
    finally:
        engine.dispose()


def test_a_call_row_is_the_same_from_one_batch_as_from_one_event_per_batch(
    database: Engine, make_events: Callable[..., EventFactory]
) -> None:
    """The calls upsert merges a call's events of one batch into one row: that row must be
    the one storing the same events one per batch gives."""
    started = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
    shapes: list[dict[str, bool]] = [{"ghost": True}, {"answered": False}, {}]
    batched, single = make_events("gw-batch"), make_events("gw-single")
    batch_calls = [batched.call(at=started, **shape) for shape in shapes]
    single_calls = [single.call(at=started, **shape) for shape in shapes]
    store = EventStore(database, "w1")
    store.store([checked(*batched.payload(e)) for call in batch_calls for e in reversed(call)])
    for call in single_calls:
        for event in reversed(call):  # newest first, one transaction each
            store.store([checked(*single.payload(event))])
    compared = [c for c in tables.calls.columns if c.name not in ("call_id", "gateway_id")]
    compared = [c for c in compared if c.name != "updated_at"]
    with database.connect() as connection:
        rows = {
            row.call_id: tuple(row)[1:]
            for row in connection.execute(select(tables.calls.c.call_id, *compared))
        }
    names = [c.name for c in compared]
    for one_batch, one_by_one in zip(batch_calls, single_calls, strict=True):
        assert rows[one_batch[0].call_id] == rows[one_by_one[0].call_id]
    ghost, abandoned, answered = (
        dict(zip(names, rows[call[0].call_id], strict=True)) for call in batch_calls
    )
    assert (ghost["gateway_category"], ghost["ghost"], ghost["abandoned"]) == ("ghost", True, False)
    assert (abandoned["gateway_category"], abandoned["abandoned"]) == ("terputus", True)
    assert answered["answered_at"] is not None and answered["duration_ms"] == 20_000
    assert all(row["counted_at"] == row["offered_at"] for row in (ghost, abandoned, answered))


def test_watermarks_walked_together_equal_each_walked_alone(
    database: Engine, make_events: Callable[..., EventFactory], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers sharing a subscription each store every other seq: the batch walk of all
    gateways (two queries) must give what the one-gateway walk gives, across its window."""
    monkeypatch.setattr(watermarks, "WATERMARK_CHUNK", 3)  # make the window fallback happen
    factories = [make_events(f"gw-{n}") for n in range(4)]
    first, second = EventStore(database, "w1"), EventStore(database, "w2")
    events = {
        f.gateway_id: [e for _ in range(3) for e in f.call(answered=False)] for f in factories
    }
    for round_ in range(3):  # w1 takes odd seqs, w2 even ones, round by round
        for store, parity in ((first, 1), (second, 0)):
            batch = []
            for factory in factories:
                for seq in range(1 + round_ * 2, 3 + round_ * 2):
                    if seq % 2 != parity or (factory.gateway_id, seq) == ("gw-3", 4):
                        continue
                    event = events[factory.gateway_id][seq - 1]
                    batch.append(checked(*factory.payload(event, seq=seq)))
            store.store(batch)
    with database.connect() as connection:
        marks = dict(
            connection.execute(
                select(tables.gateways.c.gateway_id, tables.gateways.c.contiguous_seq)
            ).all()
        )
        assert watermarks.walk_watermarks(connection, {g: 0 for g in marks}) == {
            g: watermarks.walk_watermark(connection, g, 0) for g in marks
        }
    assert marks == {"gw-0": 6, "gw-1": 6, "gw-2": 6, "gw-3": 3}  # gw-3 never sent seq 4
