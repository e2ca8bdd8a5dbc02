"""The call-taker's classification and escalations of a reported call, as outbox events.

Two ways in, one path out::

    desk HTTP endpoint (gateway.desk_http) ─┐
    edge112 annotate (through that endpoint)├─▶ Annotations.annotate() ─▶ call.classified
    center command over MQTT (forwarder) ───┘     validate, registry,       call.escalated
                                                  Gateway.submit, wait        (outbox, seq)

A request names a call this gateway reported (``gateway.call_registry``), a
category (``gateway.events.CallCategory``) or an agency (``[desk] agencies``,
``gateway.events.DEFAULT_AGENCIES`` by default: the one list the center
shares), an optional time (default now, never more than
``FUTURE_TOLERANCE_S`` ahead), an optional free-text reference. Anything
else is an ``AnnotationError`` whose ``status`` is the HTTP status that says
why (404 unknown call, 422 bad value, 409 annotation id reused, 503 not
committed).

Exactly one event per decision: an annotation is reserved in the registry
with its ``event_id`` before the event is submitted, and marked with its seq
once committed. A retried request or a redelivered command with the same
``annotation_id`` (the center's ``command_id``) returns the committed event
instead of making another; one reserved but never marked (the process died
in between) is looked up in the outbox by its event_id and submitted again
only when absent, with the same event_id.

Center commands (``edge112/v1/{region}/{gateway_id}/command/classify`` and
``/escalate``, see ``center.desk``) are queued by the forwarder thread and
handled here on one worker thread. The forwarder's ``ack`` (the MQTT PUBACK)
is called only after the event is committed, or when the command is refused
(a ``gateway.alarm`` ``desk_command_refused`` names the problem: a command
that can never succeed is not redelivered forever). A command whose event
the outbox could not commit is not acknowledged: the broker sends it again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.call_registry import AnnotationRecord, CallRegistry
from gateway.events import (
    AlarmSeverity,
    AnnotationSource,
    CallCategory,
    CallClassified,
    CallEscalated,
    Event,
    GatewayAlarm,
    format_ts,
)
from gateway.ids import uuid7_str
from gateway.outbox import OutboxError, Submission

log = logging.getLogger("edge112.annotations")

CLASSIFICATION, ESCALATION = "classification", "escalation"
COMMAND_ACTIONS = {
    "classify": ("call.classify", CLASSIFICATION),
    "escalate": ("call.escalate", ESCALATION),
}
REFERENCE_MAX = 200  # characters, as the center's desk API
FUTURE_TOLERANCE_S = 300.0  # an annotation time further ahead than this is refused
COMMIT_TIMEOUT_S = 10.0
COMMAND_MAX_BYTES = 16 * 1024
CATEGORIES = tuple(category.value for category in CallCategory)

Ack = Callable[[], None]


class AnnotationError(ValueError):
    """A request refused, with the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class AnnotationResult:
    annotation_id: str
    call_id: str
    kind: str
    event_id: str
    seq: int
    type: str
    created: bool  # False: this annotation_id was committed before (a retry, a redelivery)

    def as_dict(self) -> dict[str, Any]:
        return {
            "annotation_id": self.annotation_id,
            "call_id": self.call_id,
            "kind": self.kind,
            "type": self.type,
            "event_id": self.event_id,
            "seq": self.seq,
        }


def normalise_code(text: str) -> str:
    """``"Satpol PP"`` -> ``"satpol_pp"``, ``"Damkar"`` -> ``"damkar"``."""
    return "_".join(text.strip().lower().replace("-", " ").split())


def parse_time(value: Any) -> datetime:
    """An RFC 3339 / ISO 8601 time with a zone (``...Z`` or ``+07:00``)."""
    if not isinstance(value, str):
        raise AnnotationError(
            422, f"at: expected a time such as 2026-11-28T11:40:00+07:00, got {value!r}"
        )
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise AnnotationError(
            422, f"at: {value!r} is not a time such as 2026-11-28T11:40:00+07:00"
        ) from None
    if moment.tzinfo is None:
        raise AnnotationError(422, "at: give a time zone (e.g. 2026-11-28T11:40:00+07:00 or ...Z)")
    return moment


class Annotations:
    """Turns classifications and escalations into committed events; see the module docstring."""

    def __init__(
        self,
        registry: CallRegistry,
        submit: Callable[[Event], Submission],
        *,
        agencies: Sequence[str],
        outbox_path: str | Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.registry = registry
        self.submit = submit
        self.agencies = tuple(agencies)
        self.outbox_path = Path(outbox_path)
        self.clock = clock
        self.commands_handled = 0
        self.commands_refused = 0
        self._lock = threading.Lock()  # one decision at a time: reserve -> commit -> mark
        self._commands: queue.Queue[tuple[str, bytes, Ack] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="desk-commands", daemon=True)

    # ------------------------------------------------------------ requests

    def check(
        self, kind: str, choice: Any, reference: Any = None, at: Any = None
    ) -> tuple[str, str | None, datetime]:
        """The request's values, normalised, or an AnnotationError (422) naming the problem."""
        if kind == CLASSIFICATION:
            category = normalise_code(choice) if isinstance(choice, str) else choice
            if category not in CATEGORIES:
                raise AnnotationError(
                    422, f"unknown category {choice!r}: expected one of {', '.join(CATEGORIES)}"
                )
            value = str(category)
        elif kind == ESCALATION:
            agency = normalise_code(choice) if isinstance(choice, str) else choice
            if agency not in self.agencies:
                raise AnnotationError(
                    422, f"unknown agency {choice!r}: expected one of {', '.join(self.agencies)}"
                )
            value = str(agency)
        else:
            raise AnnotationError(422, f"unknown annotation kind {kind!r}")
        if reference is not None:
            if not isinstance(reference, str):
                raise AnnotationError(422, f"reference: expected text, got {reference!r}")
            reference = reference.strip() or None
            if reference is not None and len(reference) > REFERENCE_MAX:
                raise AnnotationError(
                    422, f"reference: at most {REFERENCE_MAX} characters, got {len(reference)}"
                )
        now = self.clock()
        moment = now if at is None else parse_time(at)
        if moment > now + timedelta(seconds=FUTURE_TOLERANCE_S):
            raise AnnotationError(422, f"at {format_ts(moment)} is in the future")
        return value, reference, moment

    def annotate(
        self,
        kind: str,
        call_id: str,
        choice: Any,
        *,
        reference: Any = None,
        at: Any = None,
        annotation_id: Any = None,
        source: AnnotationSource = AnnotationSource.LOCAL,
        command_id: str | None = None,
        center_id: str | None = None,
    ) -> AnnotationResult:
        """Validate, commit the event, return where it is; raises AnnotationError."""
        value, reference, moment = self.check(kind, choice, reference, at)
        if annotation_id is not None and (
            not isinstance(annotation_id, str) or not 1 <= len(annotation_id) <= 64
        ):
            raise AnnotationError(
                422, f"annotation_id: expected an id (1-64 characters), got {annotation_id!r}"
            )
        call = self.registry.call(call_id)
        if call is None:
            raise AnnotationError(
                404,
                f"unknown call_id {call_id!r}: this gateway reported no such call (or it is "
                f"older than the registry keeps)",
            )
        with self._lock:
            earlier = self.registry.annotation(annotation_id) if annotation_id else None
            if earlier is not None:
                if earlier.call_id != call_id or earlier.kind != kind:
                    raise AnnotationError(
                        409, f"annotation_id {annotation_id} is used for another call or kind"
                    )
                if earlier.seq is not None:
                    return self._result(earlier, created=False)
                seq = self._committed_seq(earlier.event_id)
                if seq is not None:  # committed, then the process died before marking it
                    self.registry.committed(earlier.annotation_id, seq)
                    return self._result(earlier, created=False, seq=seq)
                record = earlier  # reserved, never committed: submit it now, same event_id
            else:
                record = AnnotationRecord(
                    annotation_id=annotation_id or uuid7_str(),
                    call_id=call_id,
                    kind=kind,
                    choice=value,
                    reference=reference,
                    at=format_ts(moment),
                    source=source.value,
                    command_id=command_id,
                    center_id=center_id,
                    event_id=uuid7_str(),
                    seq=None,
                )
                self.registry.reserve(record)
            event = self._event(record, call.line)
            try:
                seq = self.submit(event).wait(COMMIT_TIMEOUT_S)
            except (OutboxError, TimeoutError) as error:
                raise AnnotationError(
                    503, f"the outbox did not commit the event: {error}"
                ) from None
            self.registry.committed(record.annotation_id, seq)
        return self._result(record, created=True, seq=seq)

    @staticmethod
    def _event(record: AnnotationRecord, line: str) -> Event:
        common: dict[str, Any] = {
            "event_id": record.event_id,
            "call_id": record.call_id,
            "line": line,
            "at": record.at,
            "reference": record.reference,
            "annotation_id": record.annotation_id,
            "source": AnnotationSource(record.source),
            "command_id": record.command_id,
            "center_id": record.center_id,
        }
        if record.kind == CLASSIFICATION:
            return CallClassified(category=CallCategory(record.choice), **common)
        return CallEscalated(agency=record.choice, **common)

    @staticmethod
    def _result(
        record: AnnotationRecord, *, created: bool, seq: int | None = None
    ) -> AnnotationResult:
        kind = record.kind
        event_type = CallClassified.TYPE if kind == CLASSIFICATION else CallEscalated.TYPE
        final_seq = seq if seq is not None else record.seq
        assert final_seq is not None
        return AnnotationResult(
            record.annotation_id,
            record.call_id,
            kind,
            record.event_id,
            final_seq,
            event_type.value,
            created,
        )

    def _committed_seq(self, event_id: str) -> int | None:
        """The outbox seq of an event still in the outbox (read-only), else None."""
        if not self.outbox_path.exists():
            return None
        try:
            with contextlib.closing(
                sqlite3.connect(f"file:{self.outbox_path}?mode=ro", uri=True, timeout=5)
            ) as connection:
                row = connection.execute(
                    "SELECT seq FROM events WHERE event_id=?", (event_id,)
                ).fetchone()
        except sqlite3.Error:
            return None
        return None if row is None else int(row[0])

    def describe(self, call_id: str) -> dict[str, Any]:
        """A reported call and its annotations (GET /v1/calls/{call_id}); 404 if unknown."""
        call = self.registry.call(call_id)
        if call is None:
            raise AnnotationError(
                404, f"unknown call_id {call_id!r}: this gateway reported no such call"
            )
        return {
            "call_id": call.call_id,
            "line": call.line,
            "started": call.started,
            "ended": call.ended,
            "annotations": [a.as_dict() for a in self.registry.annotations_of(call_id)],
        }

    # ------------------------------------------------------------ center commands

    def start(self) -> Annotations:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            self._commands.put(None)
            self._thread.join(timeout)

    def on_command(self, topic: str, payload: bytes, ack: Ack) -> None:
        """The forwarder's command handler (its thread): queue, return at once."""
        self._commands.put((topic, payload, ack))

    def _run(self) -> None:
        while (item := self._commands.get()) is not None:
            topic, payload, ack = item
            try:
                self.handle_command(topic, payload, ack)
            except Exception:  # never let one command stop the others
                log.exception("desk command on %s failed", topic)

    def handle_command(self, topic: str, payload: bytes, ack: Ack) -> None:
        """One command: its event committed then ack, or refused (alarm) then ack, or no ack
        (the outbox could not commit: the broker redelivers it)."""
        command_id: Any = None
        try:
            command = self._parse_command(topic, payload)
            command_id = command["command_id"]
            kind = COMMAND_ACTIONS[topic.rsplit("/", 1)[1]][1]
            choice = command.get("category" if kind == CLASSIFICATION else "agency")
            center_id = command.get("center_id")
            result = self.annotate(
                kind,
                command["call_id"],
                choice,
                reference=command.get("reference"),
                at=command.get("at"),
                annotation_id=command_id,
                source=AnnotationSource.CENTER,
                command_id=command_id,
                center_id=center_id if isinstance(center_id, str) else None,
            )
        except AnnotationError as error:
            if error.status == 503:
                log.warning(
                    "desk command %s not committed, left for redelivery: %s", command_id, error
                )
                return
            self.commands_refused += 1
            self._refuse(topic, command_id, error.message)
            ack()
            return
        self.commands_handled += 1
        log.info(
            "desk command %s: %s seq %d%s",
            command_id,
            result.type,
            result.seq,
            "" if result.created else " (already committed)",
        )
        ack()

    def _parse_command(self, topic: str, payload: bytes) -> dict[str, Any]:
        action = topic.rsplit("/", 1)[-1]
        if action not in COMMAND_ACTIONS:
            raise AnnotationError(422, f"unknown command {action!r}: expected classify or escalate")
        if len(payload) > COMMAND_MAX_BYTES:
            raise AnnotationError(
                422, f"command of {len(payload)} bytes (at most {COMMAND_MAX_BYTES})"
            )
        try:
            command = json.loads(payload)
        except (UnicodeDecodeError, ValueError) as error:
            raise AnnotationError(422, f"command is not JSON: {error}") from None
        if not isinstance(command, dict):
            raise AnnotationError(422, "command is not a JSON object")
        command_id, call_id = command.get("command_id"), command.get("call_id")
        if not isinstance(command_id, str) or not 1 <= len(command_id) <= 64:
            raise AnnotationError(422, f"command_id: expected an id, got {command_id!r}")
        if not isinstance(call_id, str) or not call_id:
            raise AnnotationError(422, f"call_id: expected a call id, got {call_id!r}")
        expected_type = COMMAND_ACTIONS[action][0]
        if command.get("type") != expected_type:
            raise AnnotationError(
                422, f"type {command.get('type')!r} does not match the topic's {expected_type!r}"
            )
        return command

    def _refuse(self, topic: str, command_id: Any, problem: str) -> None:
        log.warning("desk command refused (%s): %s", topic, problem)
        alarm = self.submit(
            GatewayAlarm(
                code="desk_command_refused",
                severity=AlarmSeverity.WARNING,
                message=f"command from the center refused: {problem}",
                detail={
                    "topic": topic,
                    "command_id": command_id if isinstance(command_id, str) else None,
                    "problem": problem,
                },
            )
        )
        with contextlib.suppress(OutboxError, TimeoutError):  # the ack waits for the alarm
            alarm.wait(COMMIT_TIMEOUT_S)
