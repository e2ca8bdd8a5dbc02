"""The dashboard's rollups (``center.rollup``) against a direct count of ``calls``, on both engines.

Seeded random call sets go through the real ingest (shuffled events, resent
duplicates, split into batches), the desk's classifications and
reclassifications, and hand-made moves of a call's time and region and
deletions; every overview figure read through the rollups must equal the
same figure counted from the ``calls`` rows in Python, for periods of whole
days, of whole hours, with partial hours at their ends, and inside one hour.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, select

from center import desk, rollup, stats
from center.ingest.store import EventStore
from center.ingest.validate import check_message
from center.storage import tables
from center.storage.database import CURRENT_VERSION, migrate, open_engine
from gateway.events import CallCategory
from tests.center.conftest import EventFactory

AGENCIES = ("polisi", "ambulans", "damkar")
REGIONS = ("64.74", "64.02", "31.71")
NOW = datetime.now(UTC)
BASE = NOW.replace(hour=17, minute=0, second=0, microsecond=0) - timedelta(days=5)  # 00:00 WIB


def ingest_random_calls(engine: Engine, rng: random.Random, calls: int) -> list[str]:
    """``calls`` calls over three days through EventStore: shuffled, duplicated, in batches."""
    factories = [EventFactory(f"gw-{n}", REGIONS[n % len(REGIONS)]) for n in range(5)]
    messages: list[tuple[str, bytes]] = []
    call_ids = []
    for _ in range(calls):
        factory = rng.choice(factories)
        ring = rng.choice(
            [rng.randrange(0, 9000), rng.randrange(0, 60_000), rng.randrange(119_000, 131_000)]
        )
        events = factory.call(
            answered=rng.random() < 0.8,
            ghost=rng.random() < 0.15,
            ring_time_ms=ring,
            at=BASE + timedelta(seconds=rng.randrange(-6 * 3600, 3 * 86400 + 6 * 3600)),
        )
        call_ids.append(events[0].call_id)  # type: ignore[attr-defined]
        messages += [factory.payload(event) for event in events]
    messages += rng.sample(messages, len(messages) // 6)  # resent: duplicates
    rng.shuffle(messages)  # any order: an answer before its offer moves counted_at later
    store = EventStore(engine, "test")
    while messages:
        size = rng.randrange(1, 40)
        batch, messages = messages[:size], messages[size:]
        store.store([check_message(topic, payload, NOW) for topic, payload in batch])
    return call_ids


def annotate_and_move(engine: Engine, rng: random.Random, call_ids: list[str]) -> None:
    categories = tuple(category.value for category in CallCategory)
    for call_id in rng.sample(call_ids, len(call_ids) // 2):
        for minutes in sorted(rng.sample(range(1, 600), rng.randrange(1, 4)), reverse=True):
            kind = "classification" if rng.random() < 0.8 else "escalation"
            desk.annotate(  # reclassified: the newest classification wins
                engine,
                call_id=call_id,
                kind=kind,
                center_id="test",
                categories=categories,
                agencies=AGENCIES,
                category=rng.choice(categories) if kind == "classification" else None,
                agency=rng.choice(AGENCIES) if kind == "escalation" else None,
                at=NOW - timedelta(minutes=minutes),
            )
    calls = tables.calls
    with engine.begin() as connection:
        for call_id in rng.sample(call_ids, len(call_ids) // 8):  # another hour, region
            counted_at = connection.execute(
                select(calls.c.counted_at).where(calls.c.call_id == call_id)
            ).scalar_one()
            connection.execute(
                calls.update()
                .where(calls.c.call_id == call_id)
                .values(
                    counted_at=counted_at + timedelta(minutes=rng.randrange(-600, 600)),
                    region=rng.choice(REGIONS),
                )
            )
        doomed = rng.sample(call_ids, 2)
        connection.execute(calls.delete().where(calls.c.call_id.in_(doomed)))


def direct(connection: Connection, start: datetime, end: datetime) -> dict[str, Any]:
    """The overview's figures counted in Python from every ``calls`` row."""
    calls, annotations = tables.calls, tables.call_annotations
    rows = [r for r in connection.execute(select(calls)) if start <= r.counted_at < end]
    per_region: dict[str, Counter[str]] = {}
    for row in rows:
        entry = per_region.setdefault(row.region, Counter())
        category = row.desk_category or row.gateway_category or "unclassified"
        entry[category if category in stats.CATEGORIES else "unclassified"] += 1
        entry["calls"] += 1
        entry["abandoned"] += bool(row.abandoned)
        entry["ghost_detected"] += bool(row.ghost)
        entry["answered"] += row.answered_at is not None
    region_of = {r.call_id: r.region for r in connection.execute(select(calls))}
    for note in connection.execute(select(annotations)):
        if note.kind == "escalation" and start <= note.at < end and note.call_id in region_of:
            per_region.setdefault(region_of[note.call_id], Counter())["escalations"] += 1
    answer = {
        region: percentiles(
            [
                r.ring_time_ms
                for r in rows
                if r.answered_at is not None
                and r.ring_time_ms is not None
                and region in (None, r.region)
            ]
        )
        for region in (None, *REGIONS)
    }
    return {
        "regions": {
            region: {key: counts[key] for key in (*stats.CATEGORIES, *FIGURES)}
            for region, counts in per_region.items()
        },
        "answer": answer,
    }


FIGURES = ("calls", "abandoned", "ghost_detected", "answered", "escalations")


def percentiles(values: list[int]) -> dict[str, Any]:
    """Nearest rank, to the whole second below 120 s (as docs/center.md says)."""
    values = sorted(values)
    result: dict[str, Any] = {"answered": len(values)}
    for percentile in stats.PERCENTILES:
        value = None
        if values:
            exact = values[max(1, math.ceil(percentile / 100 * len(values))) - 1]
            value = exact if exact >= 120_000 else exact // 1000 * 1000
        result[f"p{percentile}_ms"] = value
    return result


def through_rollup(connection: Connection, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "regions": {
            row["region"]: {key: row[key] for key in (*stats.CATEGORIES, *FIGURES)}
            for row in stats.calls_by_region(connection, start, end)
        },
        "answer": {
            region: stats.answer_time(connection, start, end, region) for region in (None, *REGIONS)
        },
    }


PERIODS = [
    (BASE, BASE + timedelta(days=3)),  # three local days: day rows and hour rows
    (BASE - timedelta(days=1), BASE + timedelta(days=5)),  # every call
    (BASE + timedelta(days=1), BASE + timedelta(days=2)),
    (BASE + timedelta(hours=5), BASE + timedelta(hours=11)),  # whole hours, no whole day
    (BASE + timedelta(minutes=97, seconds=13), BASE + timedelta(days=2, minutes=5)),  # edges
    (BASE + timedelta(minutes=10), BASE + timedelta(minutes=50)),  # inside one hour
    (BASE - timedelta(hours=7, minutes=3), BASE + timedelta(hours=31, microseconds=1)),
]


def assert_rollup_matches_calls(engine: Engine) -> None:
    with engine.connect() as connection:
        for start, end in PERIODS:
            assert through_rollup(connection, start, end) == direct(connection, start, end), (
                start,
                end,
            )


def rollup_rows(connection: Connection) -> tuple[set[Any], set[Any]]:
    counts, ring = tables.call_rollup, tables.ring_rollup
    return (
        {tuple(r) for r in connection.execute(select(counts).where(counts.c.calls != 0))},
        {tuple(r) for r in connection.execute(select(ring).where(ring.c.answered != 0))},
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_rollup_overview_equals_a_count_of_calls(database: Engine, seed: int) -> None:
    rng = random.Random(seed)
    call_ids = ingest_random_calls(database, rng, 70)
    assert_rollup_matches_calls(database)
    annotate_and_move(database, rng, call_ids)
    assert_rollup_matches_calls(database)
    with database.begin() as connection:  # the triggers' rows are the backfill's rows
        kept = rollup_rows(connection)
        rollup.backfill(connection)
        assert rollup_rows(connection) == kept
        assert kept[0] and kept[1]


def test_the_migration_fills_the_rollup_from_existing_calls(database_url: str) -> None:
    engine = open_engine(database_url)
    rollups = {tables.call_rollup.name, tables.ring_rollup.name}
    with engine.begin() as connection:  # a version 1 database: no rollups, no triggers
        tables.metadata.create_all(
            connection, [t for t in tables.metadata.sorted_tables if t.name not in rollups]
        )
        connection.execute(tables.schema_version.insert().values(version=1, applied_at=NOW))
    rng = random.Random(7)
    annotate_and_move(engine, rng, ingest_random_calls(engine, rng, 50))
    assert migrate(engine) == list(range(2, CURRENT_VERSION + 1))
    assert_rollup_matches_calls(engine)
    ingest_random_calls(engine, rng, 20)  # and the triggers keep it from then on
    assert_rollup_matches_calls(engine)
    engine.dispose()


def test_periods_split_into_day_rows_hour_rows_and_partial_hours() -> None:
    day = datetime(2026, 11, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert rollup.split_period(day - 7 * hour, day + 2 * 24 * hour + 17 * hour) == (
        [
            (24, day, day + 48 * hour),
            (1, day - 7 * hour, day),
            (1, day + 48 * hour, day + 65 * hour),
        ],
        [],
    )
    odd = timedelta(minutes=30)
    assert rollup.split_period(day + odd, day + 3 * hour + odd) == (
        [(1, day + hour, day + 3 * hour)],
        [(day + odd, day + hour), (day + 3 * hour, day + 3 * hour + odd)],
    )
    assert rollup.split_period(day + odd, day + hour) == ([], [(day + odd, day + hour)])
    assert rollup.split_period(day, day) == ([], [])
