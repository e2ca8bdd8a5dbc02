"""Typed events: what the gateway saw, before and after the outbox commits it.

An event is created by a driver or the gateway as one of the dataclasses
below. The outbox gives it its place in the per-gateway sequence when it
commits it, and wraps it in the contract's envelope::

    {
      "schema": "1.0",                      # contract version (major is in the topic)
      "event_id": "0192f1c4-...",           # UUIDv7, stable across resends
      "seq": 42,                            # per gateway, 1 for the first, never reused
      "type": "call.offered",
      "ts": "2026-11-28T04:40:12.345Z",     # when the gateway saw it, UTC
      "gateway_id": "bontang-01",
      "region": "64.74",
      "data": {...}                         # per type, see gateway/schemas/
    }

Every event class names its ``TYPE`` and ``PRIORITY`` as class constants, so
a misspelt type fails at import time instead of producing a silent topic.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any, ClassVar

from gateway.ids import uuid7_str

SCHEMA_VERSION = "1.0"
TOPIC_ROOT = "edge112/v1"


class EventType(StrEnum):
    CALL_OFFERED = "call.offered"
    CALL_ANSWERED = "call.answered"
    CALL_ENDED = "call.ended"
    CALL_ABANDONED = "call.abandoned"
    CALL_DTMF = "call.dtmf"
    CALL_AUDIO_SUMMARY = "call.audio_summary"
    LINE_STATUS = "line.status"
    LINE_RECOVERY = "line.recovery"
    GATEWAY_ALARM = "gateway.alarm"


class Priority(IntEnum):
    """Lower value leaves the outbox first. Only TELEMETRY may ever be shed."""

    EMERGENCY = 0  # calls, alarms: never evicted
    TELEMETRY = 1  # line health: shed oldest-first when the outbox is over budget


class Presentation(StrEnum):
    """Calling line identity presentation, from the +CLIP ``<CLI validity>``."""

    ALLOWED = "allowed"  # number given
    RESTRICTED = "restricted"  # caller withheld it (CLIR)
    UNAVAILABLE = "unavailable"  # network did not give one (e.g. SIM-less 112 call)


class EndCause(StrEnum):
    REMOTE_HANGUP = "remote_hangup"  # NO CARRIER after the caller or network cleared
    LOCAL_HANGUP = "local_hangup"  # the gateway hung up
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    LINE_LOST = "line_lost"  # the modem or its port vanished during the call
    UNKNOWN = "unknown"


class CallCategory(StrEnum):
    """How 112 centers classify calls. The gateway sets only what it can know."""

    DARURAT = "darurat"  # real emergency (operator)
    INFORMASI = "informasi"  # information request (operator)
    PRANK = "prank"  # (operator)
    GHOST = "ghost"  # answered, nobody spoke: set by the gateway from the audio
    TERPUTUS = "terputus"  # ended before an answer: set by the gateway


class AlarmSeverity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


def utc_now() -> datetime:
    return datetime.now(UTC)


_second_cache: tuple[int, str] = (-1, "")


def format_ts(moment: datetime) -> str:
    """RFC 3339, UTC, millisecond precision, ``Z`` suffix."""
    global _second_cache
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    second = int(moment.timestamp())
    cached_second, prefix = _second_cache
    if second != cached_second:  # strftime once per second, not once per event
        prefix = moment.strftime("%Y-%m-%dT%H:%M:%S.")
        _second_cache = (second, prefix)
    return f"{prefix}{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every event. Subclasses add the fields that form ``data``."""

    TYPE: ClassVar[EventType]
    PRIORITY: ClassVar[Priority] = Priority.EMERGENCY

    event_id: str = field(default_factory=uuid7_str)
    observed_at: datetime = field(default_factory=utc_now)

    def data(self) -> dict[str, Any]:
        """The type's fields as a JSON-ready dict (enum members are ``str``, so they encode as
        their values)."""
        return {name: getattr(self, name) for name in _data_fields(type(self))}


_DATA_FIELDS: dict[type, tuple[str, ...]] = {}


def _data_fields(cls: type[Event]) -> tuple[str, ...]:
    """Names of the fields that form ``data`` (cached: dataclasses.fields is slow)."""
    names = _DATA_FIELDS.get(cls)
    if names is None:
        names = tuple(
            f.name for f in dataclasses.fields(cls) if f.name not in ("event_id", "observed_at")
        )
        _DATA_FIELDS[cls] = names
    return names


@dataclass(frozen=True, kw_only=True)
class CallOffered(Event):
    """An incoming call rings on a line (first RING with its caller id, if any)."""

    TYPE = EventType.CALL_OFFERED
    call_id: str
    line: str
    number: str | None
    presentation: Presentation
    ring_count: int


@dataclass(frozen=True, kw_only=True)
class CallAnswered(Event):
    TYPE = EventType.CALL_ANSWERED
    call_id: str
    line: str
    ring_count: int
    ring_time_ms: int


@dataclass(frozen=True, kw_only=True)
class CallEnded(Event):
    """An answered call ended; ``duration_ms`` runs from answer to end."""

    TYPE = EventType.CALL_ENDED
    call_id: str
    line: str
    duration_ms: int
    cause: EndCause


@dataclass(frozen=True, kw_only=True)
class CallAbandoned(Event):
    """A call ended before anyone answered it (terputus)."""

    TYPE = EventType.CALL_ABANDONED
    call_id: str
    line: str
    ring_count: int
    ring_time_ms: int
    cause: EndCause
    category: CallCategory = CallCategory.TERPUTUS


@dataclass(frozen=True, kw_only=True)
class CallDtmf(Event):
    """A digit the caller pressed; ``offset_ms`` counts from the start of the call's audio."""

    TYPE = EventType.CALL_DTMF
    call_id: str
    line: str
    digit: str
    offset_ms: int
    duration_ms: int


@dataclass(frozen=True, kw_only=True)
class CallAudioSummary(Event):
    """What the call's audio showed, sent once when an answered call ends.

    ``category`` is ``ghost`` when nobody spoke within the configured time after
    the answer, otherwise null (left for the operator). ``recording`` is null or
    ``{path, sha256, bytes, duration_ms, encoding}``; ``silent_call`` is null or
    ``{prompted, pressed_55}`` when the silent-call policy ran.
    """

    TYPE = EventType.CALL_AUDIO_SUMMARY
    call_id: str
    line: str
    duration_ms: int
    speech_ratio: float
    first_speech_ms: int | None
    level_dbov: float
    noise_floor_dbov: float
    clipped_samples: int
    digits: str
    silent: bool
    category: CallCategory | None
    recording: dict[str, Any] | None
    silent_call: dict[str, Any] | None


@dataclass(frozen=True, kw_only=True)
class LineStatus(Event):
    """Health of one line (modem): reachable, registered, signal."""

    TYPE = EventType.LINE_STATUS
    PRIORITY = Priority.TELEMETRY
    line: str
    state: str  # "up" | "down"
    detail: str
    signal_dbm: int | None = None


class RecoveryAction(StrEnum):
    """What the board did to bring a hung modem back (``firmware_py.recovery``)."""

    POWER_KEY_OFF = "power_key_off"  # held the power key: the modem shuts down cleanly
    POWER_KEY_ON = "power_key_on"  # held the power key: the modem boots
    RESET = "reset"  # pulsed the reset line
    POWER_CUT = "power_cut"  # switched the modem's supply off and on (power enable)
    USB_POWER_CYCLE = "usb_power_cycle"  # switched its USB hub port off and on (sysfs)


class RecoveryOutcome(StrEnum):
    DONE = "done"  # the action ran (whether the line comes back shows in line.status)
    FAILED = "failed"  # the board could not do it (detail says why)
    RATE_LIMITED = "rate_limited"  # refused: too many actions on this line lately
    NOT_WIRED = "not_wired"  # the board has no pin or port for it on this line


@dataclass(frozen=True, kw_only=True)
class LineRecovery(Event):
    """The board acted on a line's hardware to recover it (power key, reset, power, USB port)."""

    TYPE = EventType.LINE_RECOVERY
    line: str
    action: RecoveryAction
    outcome: RecoveryOutcome
    detail: str
    duration_ms: int
    actions_last_hour: int  # actions done on this line in the hour before this one


@dataclass(frozen=True, kw_only=True)
class GatewayAlarm(Event):
    """Something the gateway could not do or keep, said exactly."""

    TYPE = EventType.GATEWAY_ALARM
    code: str
    severity: AlarmSeverity
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


EVENT_CLASSES: dict[EventType, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        CallOffered,
        CallAnswered,
        CallEnded,
        CallAbandoned,
        CallDtmf,
        CallAudioSummary,
        LineStatus,
        LineRecovery,
        GatewayAlarm,
    )
}


def topic_for(region: str, gateway_id: str, event_type: str) -> str:
    return f"{TOPIC_ROOT}/{region}/{gateway_id}/event/{event_type}"


def status_topic(region: str, gateway_id: str) -> str:
    return f"{TOPIC_ROOT}/{region}/{gateway_id}/status"


def envelope(event: Event, *, seq: int, gateway_id: str, region: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "event_id": event.event_id,
        "seq": seq,
        "type": event.TYPE.value,
        "ts": format_ts(event.observed_at),
        "gateway_id": gateway_id,
        "region": region,
        "data": event.data(),
    }


def encode(event: Event, *, seq: int, gateway_id: str, region: str) -> bytes:
    """The exact bytes published for this event: compact JSON, equal to ``envelope()``.

    Built from a template (a hot path: once per event). Only ``data`` and the
    two configured identifiers go through ``json.dumps``; ``event_id`` (hex and
    dashes), ``type`` (a class constant) and ``ts`` (digits) need no escaping.
    """
    return (
        f'{{"schema":"{SCHEMA_VERSION}","event_id":"{event.event_id}","seq":{int(seq)},'
        f'"type":"{event.TYPE}","ts":"{format_ts(event.observed_at)}",'
        f'"gateway_id":{_json_string(gateway_id)},"region":{_json_string(region)},'
        f'"data":{_COMPACT_JSON.encode(event.data())}}}'
    ).encode()


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@functools.lru_cache(maxsize=64)
def _json_string(text: str) -> str:
    return json.dumps(text)


def decode(payload: bytes | str) -> Event:
    """The event an envelope describes (the inverse of ``encode``, without its seq).

    Used to read back events the gateway wrote itself (the held-event
    journal). Raises ``ValueError``, ``KeyError`` or ``TypeError`` on anything
    else.
    """
    document = json.loads(payload)
    cls = EVENT_CLASSES[EventType(document["type"])]
    observed = datetime.strptime(document["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return cls(event_id=document["event_id"], observed_at=observed, **document["data"])
