"""Annotations on a real outbox and call registry (SQLite files): validation, exactly one event
per decision (retries, redelivered commands, a crash between reservation and commit), restarts."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.annotations import CLASSIFICATION, ESCALATION, AnnotationError, Annotations
from gateway.call_registry import AnnotationRecord, CallRegistry
from gateway.events import CallOffered, Presentation, encode
from gateway.ids import uuid7_str
from gateway.outbox import Outbox
from tests.conftest import validate_event, wait_until

GATEWAY, REGION = "bontang-01", "64.74"
WEEK_S = 7 * 86_400.0


@dataclass
class Desk:
    outbox: Outbox
    registry: CallRegistry
    annotations: Annotations
    path: Path

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(self.path)) as connection:
            rows = connection.execute("SELECT payload FROM events ORDER BY seq").fetchall()
        events = [json.loads(payload) for (payload,) in rows]
        return [e for e in events if event_type is None or e["type"] == event_type]

    def report_call(self) -> str:
        call_id = uuid7_str()
        offered = CallOffered(
            call_id=call_id,
            line="gsm0",
            number="+6281234567890",
            presentation=Presentation.ALLOWED,
            ring_count=1,
        )
        self.outbox.put(offered)
        return call_id


def open_desk(tmp_path: Path, clock: Any = None) -> Desk:
    outbox = Outbox(tmp_path / "outbox.db", gateway_id=GATEWAY, region=REGION)
    options = {"clock": clock} if clock else {}
    registry = CallRegistry(tmp_path / "calls.db", retention_s=WEEK_S, **options).start()
    outbox.add_commit_listener(registry.on_commit)
    annotations = Annotations(
        registry,
        outbox.submit,
        agencies=("damkar", "bpbd", "satpol_pp"),
        outbox_path=tmp_path / "outbox.db",
    )
    return Desk(outbox, registry, annotations, tmp_path / "outbox.db")


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    opened = open_desk(tmp_path)
    yield opened
    opened.annotations.stop()
    opened.registry.stop()
    opened.outbox.close()


def test_a_reported_call_is_classified_and_escalated_into_schema_valid_events(desk: Desk) -> None:
    call_id = desk.report_call()
    classified = desk.annotations.annotate(
        CLASSIFICATION, call_id, "Darurat", reference="kebakaran rumah"
    )
    escalated = desk.annotations.annotate(
        ESCALATION, call_id, "Satpol PP", at="2026-11-28T11:40:00+07:00", reference="LP-0042"
    )
    assert (classified.type, classified.created) == ("call.classified", True)
    assert escalated.seq == classified.seq + 1
    [event] = desk.events("call.classified")
    validate_event(event)
    assert event["event_id"] == classified.event_id and event["seq"] == classified.seq
    assert event["data"] == {
        "call_id": call_id,
        "line": "gsm0",
        "category": "darurat",
        "at": event["data"]["at"],
        "reference": "kebakaran rumah",
        "annotation_id": classified.annotation_id,
        "source": "local",
        "command_id": None,
        "center_id": None,
    }
    [escalation] = desk.events("call.escalated")
    validate_event(escalation)
    assert escalation["data"]["agency"] == "satpol_pp"
    assert escalation["data"]["at"] == "2026-11-28T04:40:00.000Z"
    described = desk.annotations.describe(call_id)
    assert [a["kind"] for a in described["annotations"]] == ["classification", "escalation"]


@pytest.mark.parametrize(
    ("kind", "choice", "options", "status", "says"),
    [
        (CLASSIFICATION, "urgent", {}, 422, "unknown category 'urgent'"),
        (ESCALATION, "ghostbusters", {}, 422, "unknown agency 'ghostbusters'"),
        (ESCALATION, "dinsos", {}, 422, "expected one of damkar, bpbd, satpol_pp"),
        (CLASSIFICATION, "prank", {"at": "2999-01-01T00:00:00Z"}, 422, "in the future"),
        (CLASSIFICATION, "prank", {"at": "2026-11-28 11:40"}, 422, "give a time zone"),
        (CLASSIFICATION, "prank", {"at": "yesterday"}, 422, "is not a time"),
        (CLASSIFICATION, "prank", {"reference": "x" * 201}, 422, "at most 200"),
        (CLASSIFICATION, 42, {}, 422, "unknown category 42"),
    ],
)
def test_bad_values_are_refused_with_the_problem_named(
    desk: Desk, kind: str, choice: Any, options: dict[str, Any], status: int, says: str
) -> None:
    call_id = desk.report_call()
    with pytest.raises(AnnotationError) as refused:
        desk.annotations.annotate(kind, call_id, choice, **options)
    assert refused.value.status == status and says in refused.value.message
    assert desk.events("call.classified") == desk.events("call.escalated") == []


def test_an_unknown_call_is_refused_404(desk: Desk) -> None:
    with pytest.raises(AnnotationError) as refused:
        desk.annotations.annotate(CLASSIFICATION, "no-such-call", "prank")
    assert refused.value.status == 404 and "unknown call_id 'no-such-call'" in refused.value.message


def test_a_retry_with_the_same_annotation_id_makes_no_second_event(desk: Desk) -> None:
    call_id, other = desk.report_call(), desk.report_call()
    annotation_id = uuid7_str()
    first = desk.annotations.annotate(ESCALATION, call_id, "damkar", annotation_id=annotation_id)
    again = desk.annotations.annotate(ESCALATION, call_id, "damkar", annotation_id=annotation_id)
    assert (again.created, again.seq, again.event_id) == (False, first.seq, first.event_id)
    assert len(desk.events("call.escalated")) == 1
    with pytest.raises(AnnotationError) as reused:
        desk.annotations.annotate(ESCALATION, other, "damkar", annotation_id=annotation_id)
    assert reused.value.status == 409


def test_a_reservation_left_by_a_crash_is_committed_once_with_its_event_id(
    desk: Desk,
) -> None:
    """The process died after reserving, before (or after) the commit: no second event."""
    call_id = desk.report_call()
    reserved = AnnotationRecord(
        annotation_id=uuid7_str(),
        call_id=call_id,
        kind=CLASSIFICATION,
        choice="prank",
        reference=None,
        at="2026-11-28T04:40:00.000Z",
        source="center",
        command_id=None,
        center_id="center-1",
        event_id=uuid7_str(),
        seq=None,
    )
    desk.registry.reserve(reserved)  # died before the commit
    made = desk.annotations.annotate(
        CLASSIFICATION, call_id, "prank", annotation_id=reserved.annotation_id
    )
    assert made.event_id == reserved.event_id and made.created
    # died after the commit, before marking it: found in the outbox, not submitted again
    committed_but_unmarked = AnnotationRecord(
        **{**reserved.__dict__, "annotation_id": uuid7_str(), "event_id": uuid7_str()}
    )
    desk.registry.reserve(committed_but_unmarked)
    seq = desk.outbox.put(Annotations._event(committed_but_unmarked, "gsm0"))
    found = desk.annotations.annotate(
        CLASSIFICATION, call_id, "prank", annotation_id=committed_but_unmarked.annotation_id
    )
    assert (found.created, found.seq) == (False, seq)
    ids = [e["event_id"] for e in desk.events("call.classified")]
    assert ids == [reserved.event_id, committed_but_unmarked.event_id]


def test_the_registry_survives_a_restart_and_forgets_calls_after_the_retention(
    tmp_path: Path,
) -> None:
    now = [1_800_000_000.0]
    first = open_desk(tmp_path, clock=lambda: now[0])
    call_id = first.report_call()
    wait_until(lambda: first.registry.call(call_id), what="the call recorded")
    first.registry.stop()
    first.outbox.close()
    second = open_desk(tmp_path, clock=lambda: now[0])
    try:
        assert second.registry.call(call_id) is not None
        second.annotations.annotate(CLASSIFICATION, call_id, "informasi")
        now[0] += WEEK_S + 1
        assert second.registry.call(call_id) is None  # older than the retention: refused
        assert second.registry.prune() == 2  # the call and its annotation
    finally:
        second.registry.stop()
        second.outbox.close()


def test_commands_commit_then_ack_and_bad_ones_raise_an_alarm_and_are_acked(desk: Desk) -> None:
    call_id = desk.report_call()
    topic = f"edge112/v1/{REGION}/{GATEWAY}/command/"
    acks: list[str] = []
    command = {
        "schema": "1.0",
        "command_id": uuid7_str(),
        "type": "call.escalate",
        "call_id": call_id,
        "agency": "bpbd",
        "at": "2026-11-28T04:41:00.000Z",
        "reference": "banjir",
        "center_id": "center-1",
    }
    payload = json.dumps(command).encode()
    for _ in range(2):  # the second is a redelivery: acked, no event
        desk.annotations.handle_command(topic + "escalate", payload, lambda: acks.append("ok"))
    [escalated] = desk.events("call.escalated")
    assert escalated["data"]["command_id"] == command["command_id"]
    assert escalated["data"]["annotation_id"] == command["command_id"]
    assert (escalated["data"]["source"], escalated["data"]["center_id"]) == ("center", "center-1")
    bad = [
        (topic + "escalate", b"{not json"),
        (topic + "classify", payload),  # type does not match the topic
        (topic + "reboot", payload),
        (topic + "classify", json.dumps({**command, "type": "call.classify"}).encode()),
        (
            topic + "escalate",
            json.dumps({**command, "command_id": uuid7_str(), "call_id": "x"}).encode(),
        ),
    ]
    for bad_topic, bad_payload in bad:
        desk.annotations.handle_command(bad_topic, bad_payload, lambda: acks.append("refused"))
    assert acks == ["ok", "ok"] + ["refused"] * len(bad)
    alarms = [
        e for e in desk.events("gateway.alarm") if e["data"]["code"] == "desk_command_refused"
    ]
    problems = [a["data"]["detail"]["problem"] for a in alarms]
    assert len(problems) == len(bad)
    assert "not JSON" in problems[0] and "does not match" in problems[1]
    assert "unknown command 'reboot'" in problems[2]
    assert "unknown category None" in problems[3] and "unknown call_id 'x'" in problems[4]
    for alarm in alarms:
        validate_event(alarm)
    assert len(desk.events("call.escalated")) == 1


def test_a_committed_event_encodes_as_the_contract_says(desk: Desk) -> None:
    call_id = desk.report_call()
    result = desk.annotations.annotate(CLASSIFICATION, call_id, "ghost")
    record = desk.registry.annotation(result.annotation_id)
    assert record is not None and record.seq == result.seq
    event = Annotations._event(record, "gsm0")
    validate_event(json.loads(encode(event, seq=result.seq, gateway_id=GATEWAY, region=REGION)))
