"""Gateways' ``call.classified`` / ``call.escalated`` events at ingest (both engines): an echo of
a center command is stored once, a gateway's own decision becomes an annotation and sets the
call's category (the newest wins), and neither makes a call row of its own."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select

from center.desk import annotate
from center.ingest.store import EventStore
from center.ingest.validate import check_message
from center.storage import tables
from gateway.events import AnnotationSource, CallClassified, CallEscalated
from gateway.ids import uuid7_str
from tests.center.conftest import EventFactory

AGENCIES = ("damkar", "bpbd")


def store(engine: Engine, factory: EventFactory, *events: object) -> None:
    messages = [check_message(*factory.payload(e), datetime.now(UTC)) for e in events]  # type: ignore[arg-type]
    EventStore(engine, "test").store(messages)


def test_echoes_are_stored_once_and_local_decisions_count(database: Engine) -> None:
    factory = EventFactory()
    call = factory.call()
    call_id = call[0].call_id  # type: ignore[attr-defined]
    store(database, factory, *call)
    from_center = annotate(
        database,
        call_id=call_id,
        kind="escalation",
        center_id="center-1",
        categories=(),
        agencies=AGENCIES,
        agency="damkar",
    )
    common = {"call_id": call_id, "line": "gsm0", "center_id": None}
    echo = CallEscalated(
        **{**common, "center_id": "center-1"},
        agency="damkar",
        at="2026-11-28T04:40:00.000Z",
        reference=None,
        annotation_id=from_center.annotation_id,
        source=AnnotationSource.CENTER,
        command_id=from_center.annotation_id,
    )
    local = CallClassified(
        **common,
        category="prank",  # type: ignore[arg-type]
        at="2026-11-28T04:41:00.000Z",
        reference="kedua kali",
        annotation_id=uuid7_str(),
        source=AnnotationSource.LOCAL,
        command_id=None,
    )
    older = CallClassified(
        **{**common},
        category="darurat",  # type: ignore[arg-type]
        at="2026-11-28T04:30:00.000Z",
        reference=None,
        annotation_id=uuid7_str(),
        source=AnnotationSource.LOCAL,
        command_id=None,
    )
    store(database, factory, echo, local)
    store(database, factory, local, older)  # a resend of one (same event_id), an older decision
    with database.connect() as connection:
        rows = connection.execute(
            select(tables.call_annotations.c.kind, tables.call_annotations.c.source)
        ).all()
        category = connection.execute(select(tables.calls.c.desk_category)).scalar()
        calls = connection.execute(select(tables.calls.c.call_id)).all()
    assert sorted(tuple(r) for r in rows) == [
        ("classification", "gateway"),
        ("classification", "gateway"),
        ("escalation", "desk_api"),
    ]
    assert category == "prank"  # the newest at wins, not the last stored
    assert len(calls) == 1


def test_an_annotation_event_alone_makes_no_call_row(database: Engine) -> None:
    factory = EventFactory()
    lone = CallEscalated(
        call_id=uuid7_str(),
        line="gsm0",
        agency="bpbd",
        at="2026-11-28T04:40:00.000Z",
        reference=None,
        annotation_id=uuid7_str(),
        source=AnnotationSource.LOCAL,
        command_id=None,
        center_id=None,
    )
    store(database, factory, lone)
    with database.connect() as connection:
        assert connection.execute(select(tables.calls.c.call_id)).all() == []
        assert len(connection.execute(select(tables.call_annotations)).all()) == 1
