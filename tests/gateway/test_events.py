"""Events and the contract: ids, timestamps, topics, and every type against its schema."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime

import jsonschema
import pytest

from gateway.contract import schema
from gateway.events import (
    EVENT_CLASSES,
    AlarmSeverity,
    CallAbandoned,
    CallAnswered,
    CallAudioSummary,
    CallCategory,
    CallDtmf,
    CallEnded,
    CallOffered,
    EndCause,
    Event,
    EventType,
    GatewayAlarm,
    LineStatus,
    Presentation,
    encode,
    envelope,
    format_ts,
    topic_for,
)
from gateway.ids import uuid7, uuid7_str
from tests.conftest import validate_event

SAMPLES: list[Event] = [
    CallOffered(
        call_id="c",
        line="gsm0",
        number="+6281234567890",
        presentation=Presentation.ALLOWED,
        ring_count=1,
    ),
    CallOffered(
        call_id="c", line="gsm0", number=None, presentation=Presentation.UNAVAILABLE, ring_count=1
    ),
    CallAnswered(call_id="c", line="gsm0", ring_count=2, ring_time_ms=5100),
    CallEnded(call_id="c", line="gsm0", duration_ms=42_000, cause=EndCause.REMOTE_HANGUP),
    CallAbandoned(
        call_id="c", line="gsm0", ring_count=3, ring_time_ms=11_000, cause=EndCause.REMOTE_HANGUP
    ),
    CallDtmf(call_id="c", line="gsm0", digit="5", offset_ms=1200, duration_ms=80),
    CallAudioSummary(
        call_id="c",
        line="gsm0",
        duration_ms=30_000,
        speech_ratio=0.0,
        first_speech_ms=None,
        level_dbov=-70.0,
        noise_floor_dbov=-72.5,
        clipped_samples=0,
        digits="55",
        silent=True,
        category=CallCategory.GHOST,
        recording={
            "path": "/r/a.wav",
            "sha256": "0" * 64,
            "bytes": 240_058,
            "duration_ms": 30_000,
            "encoding": "alaw",
        },
        silent_call={"prompted": True, "pressed_55": True},
    ),
    CallAudioSummary(
        call_id="c",
        line="gsm0",
        duration_ms=30_000,
        speech_ratio=0.4,
        first_speech_ms=900,
        level_dbov=-21.0,
        noise_floor_dbov=-60.0,
        clipped_samples=3,
        digits="",
        silent=False,
        category=None,
        recording=None,
        silent_call=None,
    ),
    LineStatus(line="gsm0", state="up", detail="registered", signal_dbm=-71),
    GatewayAlarm(code="outbox_full", severity=AlarmSeverity.CRITICAL, message="full"),
]


def test_uuid7_is_version_7_and_sorts_in_creation_order() -> None:
    texts = [uuid7_str() for _ in range(5000)]
    assert texts == sorted(texts)
    assert all(str(uuid.UUID(text)) == text and uuid.UUID(text).version == 7 for text in texts)
    ids = [uuid7() for _ in range(5000)]
    assert all(value.version == 7 and value.variant == uuid.RFC_4122 for value in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_timestamps_are_utc_rfc3339_with_milliseconds() -> None:
    moment = datetime(2026, 11, 28, 4, 40, 12, 345_678, tzinfo=UTC)
    assert format_ts(moment) == "2026-11-28T04:40:12.345Z"


def test_topic_layout() -> None:
    assert topic_for("64.74", "bontang-01", "call.offered") == (
        "edge112/v1/64.74/bontang-01/event/call.offered"
    )


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.TYPE.value)
def test_every_event_type_matches_its_published_schema(event: Event) -> None:
    body = json.loads(encode(event, seq=7, gateway_id="bontang-01", region="64.74"))
    validate_event(body)
    assert body["seq"] == 7 and body["type"] == event.TYPE.value and body["schema"] == "1.0"


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.TYPE.value)
def test_encoded_bytes_are_the_envelope_as_json(event: Event) -> None:
    payload = encode(event, seq=12, gateway_id='site "1"', region="64.74")
    assert json.loads(payload) == json.loads(
        json.dumps(envelope(event, seq=12, gateway_id='site "1"', region="64.74"))
    )
    unicode = CallOffered(
        call_id="c",
        line="gsm0",
        number=None,
        presentation=Presentation.UNAVAILABLE,
        ring_count=1,
    )
    assert json.loads(encode(unicode, seq=1, gateway_id="g", region="64.74"))["seq"] == 1


def test_schema_rejects_a_wrong_event() -> None:
    body = json.loads(encode(SAMPLES[0], seq=1, gateway_id="g", region="64.74"))
    body["data"]["presentation"] = "hidden"
    with pytest.raises(jsonschema.ValidationError):
        validate_event(body)
    body = json.loads(encode(SAMPLES[0], seq=-1, gateway_id="g", region="64.74"))
    with pytest.raises(jsonschema.ValidationError):
        validate_event(body)


def test_seq_0_is_valid_it_marks_an_event_sent_from_memory() -> None:
    """Held events (the disk refused them) go out with seq 0 before they have a seq."""
    validate_event(json.loads(encode(SAMPLES[0], seq=0, gateway_id="g", region="64.74")))


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_schema_fields_and_event_class_fields_agree(event_type: EventType) -> None:
    cls = EVENT_CLASSES[event_type]
    fields = {f.name for f in dataclasses.fields(cls)} - {"event_id", "observed_at"}
    data_schema = schema(event_type.value)["properties"]["data"]
    assert set(data_schema["properties"]) == fields
    assert schema(event_type.value)["properties"]["type"]["const"] == event_type.value
