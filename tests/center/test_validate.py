"""The fast schema check (fastjsonschema) agrees with the reference (jsonschema) on valid and
broken events of every type; clock rules."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import fastjsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from center.ingest.validate import (
    ClockRule,
    Incoming,
    _fast_validators,
    _validators,
    check_message,
    known_types,
)
from gateway.events import (
    AlarmSeverity,
    AnnotationSource,
    CallCategory,
    CallClassified,
    CallEscalated,
    EventType,
    GatewayAlarm,
    LineRecovery,
    RecoveryAction,
    RecoveryOutcome,
)
from tests.center.conftest import EventFactory


def sample_events() -> list[dict[str, Any]]:
    factory = EventFactory()
    events = [*factory.call(), *factory.call(answered=False), factory.line_status()]
    events.append(
        GatewayAlarm(code="disk_full", severity=AlarmSeverity.CRITICAL, message="m", detail={})
    )
    events.append(
        LineRecovery(
            line="gsm0",
            action=RecoveryAction.RESET,
            outcome=RecoveryOutcome.DONE,
            detail="",
            duration_ms=10,
            actions_last_hour=0,
        )
    )
    annotated = {
        "call_id": "c",
        "line": "gsm0",
        "at": "2026-11-28T04:40:00.000Z",
        "reference": None,
        "annotation_id": "a",
        "source": AnnotationSource.CENTER,
        "command_id": "a",
        "center_id": "center-1",
    }
    events.append(CallClassified(**annotated, category=CallCategory.DARURAT))
    events.append(CallEscalated(**annotated, agency="damkar"))
    samples = [json.loads(factory.payload(event)[1]) for event in events]
    dtmf = dict(samples[1], type="call.dtmf")  # a type the factory does not emit
    dtmf["data"] = {**samples[1]["data"], "digit": "5", "offset_ms": 10, "duration_ms": 80}
    del dtmf["data"]["ring_time_ms"], dtmf["data"]["ring_count"]
    samples.append(dtmf)
    return samples


SAMPLES = sample_events()
ODD_VALUES = [None, -1, 0, 2**40, "", "x", 1.5, True, [], {}, [1], "2026-13-45T99:00:00.000Z"]


def agree(event: dict[str, Any]) -> bool:
    reference = _validators()[event["type"]].is_valid(event)
    try:
        _fast_validators()[event["type"]](event)
        fast = True
    except fastjsonschema.JsonSchemaException:
        fast = False
    assert fast == reference, f"fast={fast} reference={reference}: {event}"
    return reference


def test_every_event_type_has_both_validators_and_the_samples_are_valid() -> None:
    assert known_types() == {t.value for t in EventType}
    assert set(_fast_validators()) == set(_validators())
    covered = {sample["type"] for sample in SAMPLES}
    center_uses = {t.value for t in EventType if t.value.startswith(("call.", "line.status"))}
    assert center_uses <= covered, f"no sample of {center_uses - covered}"
    assert all(agree(sample) for sample in SAMPLES)


@settings(max_examples=400, deadline=None)
@given(
    sample=st.sampled_from(SAMPLES),
    where=st.sampled_from(["envelope", "data"]),
    action=st.sampled_from(["drop", "replace", "add"]),
    pick=st.integers(min_value=0, max_value=50),
    value=st.sampled_from(ODD_VALUES),
)
def test_fast_and_reference_validators_agree_on_broken_events(
    sample: dict[str, Any], where: str, action: str, pick: int, value: Any
) -> None:
    event = copy.deepcopy(sample)
    target = event if where == "envelope" else event["data"]
    keys = sorted(target)
    key = keys[pick % len(keys)]
    if action == "drop":
        del target[key]
    elif action == "replace":
        target[key] = value
    else:
        target[f"extra_{pick}"] = value  # minor versions add keys: still valid
    if isinstance(event.get("type"), str) and event["type"] in _validators():
        agree(event)


def test_clock_rule_flags_an_unset_or_future_clock_not_an_old_backlog() -> None:
    rule = ClockRule()
    now = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
    assert rule.suspect(datetime(1980, 1, 6, tzinfo=UTC), now)
    assert rule.suspect(now + timedelta(minutes=6), now)
    assert not rule.suspect(now + timedelta(minutes=4), now)
    assert not rule.suspect(now - timedelta(days=3), now)  # a backlog after an outage


def test_an_event_that_is_valid_is_accepted_with_its_fields() -> None:
    factory = EventFactory()
    topic, payload = factory.payload(factory.call()[0])
    checked = check_message(topic, payload, datetime.now(UTC))
    assert isinstance(checked, Incoming)
    assert (checked.gateway_id, checked.region, checked.seq, checked.type) == (
        "bontang-01",
        "64.74",
        1,
        "call.offered",
    )
