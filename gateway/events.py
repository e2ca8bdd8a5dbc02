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
      "clock_unsynced": true,               # only while the clock is not synchronised
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
    LINE_RESET = "line.reset"
    SMS_RECEIVED = "sms.received"
    SMS_INVALID = "sms.invalid"
    LOCATION_AML = "location.aml"
    GATEWAY_ALARM = "gateway.alarm"
    LINE_READINESS = "line.readiness"
    LINE_METRICS = "line.metrics"
    CALL_CLASSIFIED = "call.classified"
    CALL_ESCALATED = "call.escalated"


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
    MODEM_RESET = "modem_reset"  # the modem reset itself (boot banner) during the call
    UNKNOWN = "unknown"


class CallCategory(StrEnum):
    """How 112 centers classify calls. The gateway sets only what it can know."""

    DARURAT = "darurat"  # real emergency (operator)
    INFORMASI = "informasi"  # information request (operator)
    PRANK = "prank"  # (operator)
    GHOST = "ghost"  # answered, nobody spoke: set by the gateway from the audio
    TERPUTUS = "terputus"  # ended before an answer: set by the gateway


# Escalation targets of Indonesian 112 centers (OPD and vertical agencies): the codes the
# gateway's desk endpoint and the center's desk API accept by default (``[desk] agencies``).
DEFAULT_AGENCIES = (
    "damkar",  # Pemadam Kebakaran
    "bpbd",  # Badan Penanggulangan Bencana Daerah
    "dinkes",  # Dinas Kesehatan (ambulance)
    "rsud",  # Rumah Sakit Umum Daerah
    "polri",  # Polres / Polsek
    "tni",
    "satpol_pp",
    "dishub",
    "dinsos",
    "pln",
    "pdam",
    "dlhk",
    "basarnas",
)


class AnnotationSource(StrEnum):
    """Where a call-taker's classification or escalation entered the gateway."""

    LOCAL = "local"  # the gateway's desk endpoint (HTTP or ``edge112 annotate``)
    CENTER = "center"  # a command from the regional center (its ``command_id`` is carried)


class InterfaceSide(StrEnum):
    """A side of an ISDN interface (an E1 PRI span): who sent a message, allocated a call
    reference, or cleared a call. On a 112 trunk the network is the PSTN (the callers) and
    the user side is the centre's PBX."""

    NETWORK = "network"
    USER = "user"


class CallOutcome(StrEnum):
    """How a call on a span ended, where the signalling shows it (``outcome`` in call events)."""

    ANSWERED = "answered"  # CONNECT seen
    ABANDONED = "abandoned"  # the caller cleared before an answer (terputus)
    REJECTED = "rejected"  # the called side (the centre) refused it: busy, rejected, no circuit


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
    """Base of every event. Subclasses add the fields that form ``data``.

    ``OMITTED_WHEN_NONE`` names optional fields added after 1.0 that only some line
    families know (the span additions of the call events): left out of ``data`` when
    None, so the events of other families stay exactly as they were.
    """

    TYPE: ClassVar[EventType]
    PRIORITY: ClassVar[Priority] = Priority.EMERGENCY
    # Also published retained on this topic under the gateway's root (``retained_topic``),
    # formatted with ``data``: the latest state per key stays on the broker.
    RETAINED_AS: ClassVar[str | None] = None
    OMITTED_WHEN_NONE: ClassVar[frozenset[str]] = frozenset()

    event_id: str = field(default_factory=uuid7_str)
    observed_at: datetime = field(default_factory=utc_now)

    def data(self) -> dict[str, Any]:
        """The type's fields as a JSON-ready dict (enum members are ``str``, so they encode as
        their values)."""
        omitted = self.OMITTED_WHEN_NONE
        if not omitted:
            return {name: getattr(self, name) for name in _data_fields(type(self))}
        return {
            name: value
            for name in _data_fields(type(self))
            if (value := getattr(self, name)) is not None or name not in omitted
        }


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
    OMITTED_WHEN_NONE = frozenset({"b_channel", "called"})
    call_id: str
    line: str
    number: str | None
    presentation: Presentation
    ring_count: int
    # Span additions (omitted from data when None): see "Calls on E1 spans" in docs/contract.md.
    b_channel: int | None = None  # the SETUP's channel when it is exclusive
    called: str | None = None  # the called number's digits received so far


@dataclass(frozen=True, kw_only=True)
class CallAnswered(Event):
    TYPE = EventType.CALL_ANSWERED
    OMITTED_WHEN_NONE = frozenset({"b_channel", "called"})
    call_id: str
    line: str
    ring_count: int
    ring_time_ms: int
    b_channel: int | None = None  # span: the channel the answering side confirmed
    called: str | None = None  # span: every digit of the called number


@dataclass(frozen=True, kw_only=True)
class CallEnded(Event):
    """An answered call ended; ``duration_ms`` runs from answer to end."""

    TYPE = EventType.CALL_ENDED
    OMITTED_WHEN_NONE = frozenset(
        {"b_channel", "called", "q850_cause", "q850_location", "cleared_by", "outcome"}
    )
    call_id: str
    line: str
    duration_ms: int
    cause: EndCause
    b_channel: int | None = None  # span additions, omitted when None
    called: str | None = None
    q850_cause: int | None = None  # from the first clearing message carrying a Cause
    q850_location: int | None = None
    cleared_by: InterfaceSide | None = None  # who sent the first clearing message
    outcome: CallOutcome | None = None  # always ANSWERED here


@dataclass(frozen=True, kw_only=True)
class CallAbandoned(Event):
    """A call ended before anyone answered it (terputus)."""

    TYPE = EventType.CALL_ABANDONED
    OMITTED_WHEN_NONE = frozenset(
        {"b_channel", "called", "q850_cause", "q850_location", "cleared_by", "outcome"}
    )
    call_id: str
    line: str
    ring_count: int
    ring_time_ms: int
    cause: EndCause
    category: CallCategory = CallCategory.TERPUTUS
    b_channel: int | None = None  # span additions, omitted when None
    called: str | None = None
    q850_cause: int | None = None
    q850_location: int | None = None
    cleared_by: InterfaceSide | None = None
    outcome: CallOutcome | None = None  # ABANDONED (the caller cleared) or REJECTED


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


@dataclass(frozen=True, kw_only=True)
class LineReadiness(Event):
    """Whether a line can take calls, and why not (``drivers.gsm.probe``); sent on change,
    and kept retained per line on ``.../line/{line}/readiness``."""

    TYPE = EventType.LINE_READINESS
    RETAINED_AS = "line/{line}/readiness"
    line: str
    ready: bool
    reasons: list[str]  # empty when ready: sim_pin_required, not_registered:denied, no_signal...
    modem: str | None  # manufacturer and model
    imei: str | None
    iccid: str | None
    sim_state: str | None
    registration: str | None
    operator: str | None
    operator_code: str | None  # MCC+MNC
    rat: str | None  # gsm, umts, lte, nr
    ims: str | None  # registered, not_registered, disabled; null when not known


@dataclass(frozen=True, kw_only=True)
class LineMetrics(Event):
    """Radio measurements of one line, every ``metrics_interval_s`` (telemetry)."""

    TYPE = EventType.LINE_METRICS
    PRIORITY = Priority.TELEMETRY
    line: str
    ready: bool
    registration: str | None
    rat: str | None
    operator_code: str | None
    signal_dbm: int | None  # from +CSQ
    rsrp_dbm: float | None
    rsrq_db: float | None
    sinr_db: float | None


class RecoveryAction(StrEnum):
    """What the board did to bring a hung modem back (``firmware_py.recovery``)."""

    POWER_KEY_OFF = "power_key_off"  # held the power key: the modem shuts down cleanly
    POWER_KEY_ON = "power_key_on"  # held the power key: the modem boots
    RESET = "reset"  # pulsed the reset line
    POWER_CUT = "power_cut"  # switched the modem's supply off and on (power enable)
    USB_POWER_CYCLE = "usb_power_cycle"  # switched its USB hub port off and on (sysfs)
    # Steps of the GSM driver's recovery ladder (drivers.gsm.recovery), since 1.0, additive:
    REOPEN_PORT = "reopen_port"  # closed and reopened the modem's port
    MODEM_RESET = "modem_reset"  # sent the dialect's reset command (AT+CFUN=1,1)
    POWER_KEY_CYCLE = "power_key_cycle"  # restarted it with the power key (off, wait, on)


class RecoveryOutcome(StrEnum):
    DONE = "done"  # the action ran (whether the line comes back shows in line.status)
    FAILED = "failed"  # the board could not do it (detail says why)
    RATE_LIMITED = "rate_limited"  # refused: too many actions on this line lately
    NOT_WIRED = "not_wired"  # the board has no pin or port for it on this line


@dataclass(frozen=True, kw_only=True)
class LineRecovery(Event):
    """The board acted on a line's hardware to recover it (power key, reset, power, USB port),
    or the GSM driver took a step of its recovery ladder (then ``step``, ``reason`` and
    ``attempt`` are set; they are left out of ``data`` otherwise)."""

    TYPE = EventType.LINE_RECOVERY
    OMITTED_WHEN_NONE = frozenset({"step", "reason", "attempt"})
    line: str
    action: RecoveryAction
    outcome: RecoveryOutcome
    detail: str
    duration_ms: int
    actions_last_hour: int  # actions done on this line in the hour before this one
    step: int | None = None  # ladder step: 1 reopen, 2 modem reset, 3 power key, 4 power cut
    reason: str | None = None  # why the ladder is climbing (the modem's last failure)
    attempt: int | None = None  # how many ladder steps this episode has taken, this one included


class ResetTrigger(StrEnum):
    BANNER = "banner"  # the modem printed a boot banner (RDY, +CFUN: 1, +CPIN: READY, ...)
    PORT_RETURNED = "port_returned"  # its port vanished and came back (USB re-enumeration)


@dataclass(frozen=True, kw_only=True)
class LineReset(Event):
    """A line's modem reset itself; the driver set it up again (its settings do not survive)."""

    TYPE = EventType.LINE_RESET
    line: str
    trigger: ResetTrigger
    banner: str | None  # the first boot banner line seen (trigger banner)
    resets: int  # resets of this line since the gateway started, this one included
    call_id: str | None  # the call the reset cut, if one was up


class SmsEncoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"
    DATA_8BIT = "8bit"


@dataclass(frozen=True, kw_only=True)
class SmsReceived(Event):
    """A short message a line's modem received (all its parts, or those that came in time).

    ``event_id`` is derived from the message itself, so a message read again
    after a crash (it is deleted from the modem only once this event is
    committed) carries the same id: consumers drop the duplicate by it.
    """

    TYPE = EventType.SMS_RECEIVED
    line: str
    number: str | None  # the sender: +<digits> international, digits, or an alphanumeric name
    text: str | None  # None for 8-bit data
    encoding: SmsEncoding
    data_hex: str | None  # 8-bit data: the payload; None otherwise
    parts: int  # parts the message has (1 for a single message)
    parts_missing: list[int]  # part numbers that never came (then the text has gaps)
    smsc: str | None
    smsc_timestamp: str  # the network's time stamp, RFC 3339 with its zone offset
    received_at: str  # when the gateway read it from the modem, UTC, RFC 3339
    port: int | None  # destination application port (data SMS), else None
    aml_problem: str | None  # an AML location text that could not be decoded: why


@dataclass(frozen=True, kw_only=True)
class SmsInvalid(Event):
    """A message stored in the modem whose PDU could not be decoded (it is deleted after this)."""

    TYPE = EventType.SMS_INVALID
    line: str
    storage: str  # the modem's message memory ("SM", "ME", "SR")
    index: int
    pdu: str  # the hex as read, at most 600 characters
    problem: str  # what is wrong with it, and where


class PositioningMethod(StrEnum):
    GNSS = "gnss"  # pm=G
    WIFI = "wifi"  # pm=W
    CELL = "cell"  # pm=C
    NONE = "none"  # pm=N: the handset had no location
    UNKNOWN = "unknown"  # any other code


@dataclass(frozen=True, kw_only=True)
class LocationAml(Event):
    """An Advanced Mobile Location SMS (ETSI TS 103 625) decoded: where the caller's handset is.

    IMSI and IMEI are carried as sent (like the caller's number, they are
    personal data processed for the emergency and never written to logs).
    """

    TYPE = EventType.LOCATION_AML
    line: str
    sms_event_id: str  # the sms.received event with the text
    call_id: str | None  # the call from the same number that is up or ended a few minutes ago
    number: str | None
    latitude: float | None  # WGS84 degrees
    longitude: float | None
    radius_m: float | None  # confidence radius
    confidence_pct: int | None
    positioned_at: str | None  # time of positioning, UTC, RFC 3339
    method: PositioningMethod
    imsi: str | None
    imei: str | None
    mcc: str | None
    mnc: str | None


@dataclass(frozen=True, kw_only=True)
class GatewayAlarm(Event):
    """Something the gateway could not do or keep, said exactly."""

    TYPE = EventType.GATEWAY_ALARM
    code: str
    severity: AlarmSeverity
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class CallClassified(Event):
    """The call-taker classified a call this gateway reported (``gateway.annotations``).

    ``annotation_id`` identifies the decision (the center's ``command_id`` when it came
    as a command, so the center drops the echo); the newest ``at`` of a call wins.
    """

    TYPE = EventType.CALL_CLASSIFIED
    call_id: str
    line: str
    category: CallCategory
    at: str  # when the call-taker decided it, UTC, RFC 3339
    reference: str | None
    annotation_id: str
    source: AnnotationSource
    command_id: str | None  # source center: the command's id (equal to annotation_id)
    center_id: str | None


@dataclass(frozen=True, kw_only=True)
class CallEscalated(Event):
    """The call-taker handed a call this gateway reported to an agency (Damkar, BPBD, ...)."""

    TYPE = EventType.CALL_ESCALATED
    call_id: str
    line: str
    agency: str  # a code from [desk] agencies (gateway.events.DEFAULT_AGENCIES by default)
    at: str
    reference: str | None  # the agency's ticket or any free text
    annotation_id: str
    source: AnnotationSource
    command_id: str | None
    center_id: str | None


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
        LineReadiness,
        LineMetrics,
        LineReset,
        SmsReceived,
        SmsInvalid,
        LocationAml,
        CallClassified,
        CallEscalated,
    )
}


def topic_for(region: str, gateway_id: str, event_type: str) -> str:
    return f"{TOPIC_ROOT}/{region}/{gateway_id}/event/{event_type}"


def retained_topic(
    region: str, gateway_id: str, event_type: str, data: dict[str, Any]
) -> str | None:
    """Where an event of ``event_type`` is also published retained; None for most types."""
    cls = EVENT_CLASSES.get(event_type)  # type: ignore[call-overload]
    if cls is None or cls.RETAINED_AS is None:
        return None
    try:
        suffix = cls.RETAINED_AS.format(**data)
    except (KeyError, IndexError, ValueError):
        return None
    return f"{TOPIC_ROOT}/{region}/{gateway_id}/{suffix}"


RETAINED_TYPES = frozenset(
    event_type.value for event_type, cls in EVENT_CLASSES.items() if cls.RETAINED_AS is not None
)


def status_topic(region: str, gateway_id: str) -> str:
    return f"{TOPIC_ROOT}/{region}/{gateway_id}/status"


def envelope(
    event: Event, *, seq: int, gateway_id: str, region: str, clock_unsynced: bool = False
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "event_id": event.event_id,
        "seq": seq,
        "type": event.TYPE.value,
        "ts": format_ts(event.observed_at),
        "gateway_id": gateway_id,
        "region": region,
    }
    if clock_unsynced:
        document["clock_unsynced"] = True
    document["data"] = event.data()
    return document


def encode(
    event: Event, *, seq: int, gateway_id: str, region: str, clock_unsynced: bool = False
) -> bytes:
    """The exact bytes published for this event: compact JSON, equal to ``envelope()``.

    Built from a template (a hot path: once per event). Only ``data`` and the
    two configured identifiers go through ``json.dumps``; ``event_id`` (hex and
    dashes), ``type`` (a class constant) and ``ts`` (digits) need no escaping.
    """
    return (
        f'{{"schema":"{SCHEMA_VERSION}","event_id":"{event.event_id}","seq":{int(seq)},'
        f'"type":"{event.TYPE}","ts":"{format_ts(event.observed_at)}",'
        f'"gateway_id":{_json_string(gateway_id)},"region":{_json_string(region)},'
        f"{_CLOCK_UNSYNCED if clock_unsynced else ''}"
        f'"data":{_COMPACT_JSON.encode(event.data())}}}'
    ).encode()


_CLOCK_UNSYNCED = '"clock_unsynced":true,'  # see gateway.clock_watch


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
