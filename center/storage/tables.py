"""The center's tables, as SQLAlchemy Core metadata: one definition for PostgreSQL and SQLite.

::

    events        one row per event_id (exactly once); seq 0 rows are provisional
                  (unsequenced) until their sequenced copy arrives and sets seq
    quarantine    what could not be stored as an event, with the reason
    gateways      per gateway: status (retained online/offline), last seen,
                  contiguous seq watermark, highest seq, duplicates
    lines         per gateway line: the latest line.status (by seq)
    calls         one row per call_id, merged from its events in any order,
                  plus the call-taker's category (annotations)
    annotations   classifications and escalations from the call-taker's desk
    commands      what the center must publish to a gateway (durable, retried)
    explained     seq ranges a gateway.alarm says are gone (shed, unreadable)
    alarms        the center's own alarms (gap open, gateway offline, seq conflict)
    call_rollup   calls per (UTC hour or day, region, category): counts, abandoned,
                  ghost, answered; kept by triggers on ``calls`` (center.rollup)
    ring_rollup   answered calls per (UTC hour or day, region or '' for all, whole
                  second of ring time 0..119, 120 = 120 s or more)

Timestamps are UTC (``UtcDateTime``: timestamptz on PostgreSQL, ISO text on
SQLite, always timezone-aware in Python).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData()

# SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
RowId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime in Python, whatever the engine stores."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the center stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite rows written by hand
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        result: datetime = value.astimezone(UTC)
        return result


events = Table(
    "events",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("gateway_id", String(64), nullable=False),
    Column("region", String(16), nullable=False),
    Column("seq", BigInteger, nullable=False),  # 0 while unsequenced
    Column("type", String(64), nullable=False),
    Column("ts", UtcDateTime, nullable=False),  # when the gateway saw it (its clock)
    Column("received_at", UtcDateTime, nullable=False),  # first stored by the center
    Column("counted_at", UtcDateTime, nullable=False),  # ts, or received_at if the clock is off
    Column("clock_suspect", Boolean, nullable=False),
    Column("unsequenced", Boolean, nullable=False),  # only a seq-0 copy has arrived so far
    Column("held", Boolean, nullable=False),  # the first copy to arrive had seq 0
    Column("data", JSON, nullable=False),
    Column("worker", String(64), nullable=False),  # the center worker that stored it
    Index(
        "events_gateway_seq",
        "gateway_id",
        "seq",
        unique=True,
        sqlite_where=text("seq > 0"),
        postgresql_where=text("seq > 0"),
    ),
    Index("events_gateway_received", "gateway_id", "received_at"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("payload_sha256", String(64), nullable=False),  # of topic + NUL + payload
    Column("topic", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("reason", String(32), nullable=False),  # center.ingest.validate.Reason
    Column("detail", Text, nullable=False),
    Column("gateway_id", String(64)),  # when the topic names one
    Column("received_at", UtcDateTime, nullable=False),  # first time
    Column("last_received_at", UtcDateTime, nullable=False),
    Column("times", Integer, nullable=False),  # the same bytes on the same topic, again
    Column("worker", String(64), nullable=False),
    UniqueConstraint("payload_sha256", name="quarantine_payload"),
)

gateways = Table(
    "gateways",
    metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("region", String(16), nullable=False),
    Column("status", String(16)),  # the retained status: online / offline / None (never seen)
    Column("status_since", UtcDateTime),  # when the center first saw the current status
    Column("first_seen", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),  # last message of any kind
    Column("contiguous_seq", BigInteger, nullable=False, default=0),  # 1..this all stored
    Column("highest_seq", BigInteger, nullable=False, default=0),
    Column("events", BigInteger, nullable=False, default=0),  # stored (distinct event_id)
    Column("duplicates", BigInteger, nullable=False, default=0),
    Column("clock_suspect", BigInteger, nullable=False, default=0),
    Column("updated_at", UtcDateTime, nullable=False),
)

lines = Table(
    "lines",
    metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("line", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("detail", Text, nullable=False),
    Column("signal_dbm", Integer),
    Column("seq", BigInteger, nullable=False),  # of the line.status shown: newest wins
    Column("changed_at", UtcDateTime, nullable=False),  # its ts
)

calls = Table(
    "calls",
    metadata,
    Column("call_id", String(64), primary_key=True),
    Column("gateway_id", String(64), nullable=False),
    Column("region", String(16), nullable=False),
    Column("line", String(64), nullable=False),
    Column("presentation", String(16)),
    Column("counted_at", UtcDateTime, nullable=False),  # offered, else the first event seen
    Column("offered_at", UtcDateTime),
    Column("answered_at", UtcDateTime),
    Column("ended_at", UtcDateTime),
    Column("ring_time_ms", Integer),
    Column("duration_ms", Integer),
    Column("cause", String(32)),
    Column("abandoned", Boolean, nullable=False, default=False),
    Column("ghost", Boolean, nullable=False, default=False),
    Column("gateway_category", String(16)),  # terputus / ghost, from the gateway's events
    Column("desk_category", String(16)),  # from the call-taker (annotations)
    Column("desk_category_at", UtcDateTime),  # the newest classification wins
    Column("updated_at", UtcDateTime, nullable=False),
    Index("calls_counted", "counted_at"),
    Index("calls_region_counted", "region", "counted_at"),
    Index("calls_updated", "updated_at"),
)

call_annotations = Table(
    "annotations",
    metadata,
    Column("annotation_id", String(36), primary_key=True),  # UUIDv7, stable across resends
    Column("call_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # classification / escalation
    Column("category", String(16)),
    Column("agency", String(32)),
    Column("reference", Text),
    Column("at", UtcDateTime, nullable=False),  # when the call-taker decided it
    Column("received_at", UtcDateTime, nullable=False),
    Column("source", String(16), nullable=False),  # desk_api
    Index("annotations_call", "call_id"),
    Index("annotations_kind_at", "kind", "at"),
)

commands = Table(
    "commands",
    metadata,
    Column("annotation_id", String(36), primary_key=True),
    Column("topic", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("attempt_at", UtcDateTime),  # a worker claimed it then (a lease)
    Column("attempts", Integer, nullable=False, default=0),
    Column("sent_at", UtcDateTime),  # the broker's PUBACK
)

explained = Table(
    "explained",
    metadata,
    Column("gateway_id", String(64), nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("reason", String(32), nullable=False),  # the gateway.alarm code
    Column("event_id", String(36), nullable=False),  # that alarm
    UniqueConstraint("gateway_id", "first_seq", "last_seq", "reason", name="explained_range"),
)

alarms = Table(
    "alarms",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("alarm_key", String(200), nullable=False),  # unique among open alarms
    Column("code", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("gateway_id", String(64)),
    Column("region", String(16)),
    Column("message", Text, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("raised_at", UtcDateTime, nullable=False),
    Column("cleared_at", UtcDateTime),
    Index(
        "alarms_open_key",
        "alarm_key",
        unique=True,
        sqlite_where=text("cleared_at IS NULL"),
        postgresql_where=text("cleared_at IS NULL"),
    ),
)

call_rollup = Table(  # maintained by center.rollup's triggers on calls: never write it
    "call_rollup",
    metadata,
    Column("hours", SmallInteger, nullable=False),  # 1: an hour row, 24: a day row
    Column("starts", UtcDateTime, nullable=False),  # the UTC hour or day
    Column("region", String(16), nullable=False),
    Column("category", String(16), nullable=False),  # desk, else gateway, else unclassified
    Column("calls", BigInteger, nullable=False),
    Column("abandoned", BigInteger, nullable=False),
    Column("ghost", BigInteger, nullable=False),
    Column("answered", BigInteger, nullable=False),
    PrimaryKeyConstraint("hours", "starts", "region", "category", name="call_rollup_key"),
)

ring_rollup = Table(  # the ring-time histogram of answered calls, by center.rollup's triggers
    "ring_rollup",
    metadata,
    Column("hours", SmallInteger, nullable=False),
    Column("region", String(16), nullable=False),  # '' : all regions
    Column("starts", UtcDateTime, nullable=False),
    Column("ring_s", SmallInteger, nullable=False),  # whole seconds; 120: 120 s or more
    Column("answered", BigInteger, nullable=False),
    PrimaryKeyConstraint("hours", "region", "starts", "ring_s", name="ring_rollup_key"),
)

schema_version = Table(
    "center_schema",
    metadata,
    Column("version", Integer, nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
)
