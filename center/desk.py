"""The call-taker's desk: classification and escalations of a call, back to its gateway.

The desk posts to the center's API (``POST /api/v1/calls/{call_id}/classification``
and ``/escalations``, bearer token). Each decision is an **annotation** with a
UUIDv7 ``annotation_id`` (the desk may send its own, so a retried POST is not
counted twice). In one transaction the center:

1. refuses an unknown call id (404), a category or agency it does not know (422);
2. stores the annotation; a classification sets the call's category (the
   newest decision wins), an escalation counts for its agency;
3. queues a **command** for the call's gateway, published (QoS 1, durable
   row in ``commands``, retried until the broker's PUBACK) on::

       edge112/v1/{region}/{gateway_id}/command/classify
       edge112/v1/{region}/{gateway_id}/command/escalate

   payload::

       {"schema": "1.0", "command_id": "<annotation_id>", "type": "call.classify",
        "call_id": "...", "category": "darurat", "at": "...Z", "reference": null,
        "center_id": "center-1"}
       {"schema": "1.0", "command_id": "<annotation_id>", "type": "call.escalate",
        "call_id": "...", "agency": "damkar", "at": "...Z", "reference": "LP-0042",
        "center_id": "center-1"}

The gateway side (``gateway.annotations``) subscribes to its command topics
with a persistent session and turns each command into a ``call.classified`` /
``call.escalated`` event in its outbox, ``annotation_id`` = the ``command_id``.
Those events, and the ones a call-taker made at the gateway's own desk
endpoint, come back through ingest: ``store_gateway_annotations`` stores each
as an annotation (``source`` ``gateway``) unless its ``annotation_id`` is
known, so the echo of a center command is not stored twice.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, or_, select

from center.ingest.validate import Incoming
from center.storage import tables
from center.storage.database import insert_for
from gateway.events import SCHEMA_VERSION, TOPIC_ROOT, format_ts
from gateway.ids import uuid7_str

log = logging.getLogger("edge112.center.desk")

COMMAND_LEASE_S = 30.0  # a claimed, unacknowledged command may be sent again after this
COMMAND_POLL_S = 1.0


class DeskError(ValueError):
    """A desk request the center refuses, with the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Annotation:
    annotation_id: str
    call_id: str
    kind: str  # classification / escalation
    category: str | None
    agency: str | None
    reference: str | None
    at: datetime
    command_topic: str
    created: bool  # False: this annotation_id was stored before (a retried request)

    def as_dict(self) -> dict[str, Any]:
        return {
            "annotation_id": self.annotation_id,
            "call_id": self.call_id,
            "kind": self.kind,
            "category": self.category,
            "agency": self.agency,
            "reference": self.reference,
            "at": format_ts(self.at),
            "command_topic": self.command_topic,
        }


ANNOTATION_EVENT_TYPES = ("call.classified", "call.escalated")


def store_gateway_annotations(
    connection: Connection, fresh: Sequence[Incoming], now: datetime
) -> None:
    """Annotations made or echoed by gateways (in the ingest transaction; idempotent)."""
    annotations, calls = tables.call_annotations, tables.calls
    for message in fresh:
        if message.type not in ANNOTATION_EVENT_TYPES:
            continue
        data = message.data
        classified = message.type == "call.classified"
        at = datetime.strptime(data["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        stored = connection.execute(
            insert_for(connection, annotations)
            .values(
                annotation_id=data["annotation_id"],
                call_id=data["call_id"],
                kind="classification" if classified else "escalation",
                category=data.get("category") if classified else None,
                agency=None if classified else data.get("agency"),
                reference=data.get("reference"),
                at=at,
                received_at=now,
                source="gateway",
            )
            .on_conflict_do_nothing()
        ).rowcount
        if stored and classified:
            connection.execute(
                calls.update()
                .where(
                    calls.c.call_id == data["call_id"],
                    or_(calls.c.desk_category_at.is_(None), calls.c.desk_category_at <= at),
                )
                .values(desk_category=data["category"], desk_category_at=at, updated_at=now)
            )


def command_topic(region: str, gateway_id: str, action: str) -> str:
    return f"{TOPIC_ROOT}/{region}/{gateway_id}/command/{action}"


def annotate(
    engine: Engine,
    *,
    call_id: str,
    kind: str,
    center_id: str,
    categories: tuple[str, ...],
    agencies: tuple[str, ...],
    category: str | None = None,
    agency: str | None = None,
    reference: str | None = None,
    at: datetime | None = None,
    annotation_id: str | None = None,
) -> Annotation:
    """Store a classification or escalation and queue its command (see the module docstring)."""
    now = datetime.now(UTC)
    at = at or now
    if at.tzinfo is None:
        raise DeskError(422, "at: give a time zone (e.g. 2026-11-28T11:40:00+07:00 or ...Z)")
    if kind == "classification":
        if category not in categories:
            raise DeskError(
                422, f"unknown category {category!r}: expected one of {', '.join(categories)}"
            )
        agency = None
        action, command_type, choice = "classify", "call.classify", {"category": category}
    elif kind == "escalation":
        if agency not in agencies:
            raise DeskError(
                422, f"unknown agency {agency!r}: expected one of {', '.join(agencies)}"
            )
        category = None
        action, command_type, choice = "escalate", "call.escalate", {"agency": agency}
    else:
        raise DeskError(422, f"unknown annotation kind {kind!r}")
    if at > now + timedelta(minutes=5):
        raise DeskError(422, f"at {format_ts(at)} is in the future")
    calls, annotations, commands = tables.calls, tables.call_annotations, tables.commands
    with engine.begin() as connection:
        call = connection.execute(
            select(calls.c.gateway_id, calls.c.region).where(calls.c.call_id == call_id)
        ).first()
        if call is None:
            raise DeskError(404, f"unknown call_id {call_id!r}: no gateway reported this call")
        topic = command_topic(call.region, call.gateway_id, action)
        if annotation_id is not None:
            earlier = connection.execute(
                select(annotations).where(annotations.c.annotation_id == annotation_id)
            ).first()
            if earlier is not None:
                if earlier.call_id != call_id or earlier.kind != kind:
                    raise DeskError(409, f"annotation_id {annotation_id} is used for another call")
                return Annotation(
                    earlier.annotation_id,
                    earlier.call_id,
                    earlier.kind,
                    earlier.category,
                    earlier.agency,
                    earlier.reference,
                    earlier.at,
                    topic,
                    created=False,
                )
        annotation_id = annotation_id or uuid7_str()
        connection.execute(
            annotations.insert().values(
                annotation_id=annotation_id,
                call_id=call_id,
                kind=kind,
                category=category,
                agency=agency,
                reference=reference,
                at=at,
                received_at=now,
                source="desk_api",
            )
        )
        if kind == "classification":
            connection.execute(
                calls.update()
                .where(
                    calls.c.call_id == call_id,
                    or_(calls.c.desk_category_at.is_(None), calls.c.desk_category_at <= at),
                )
                .values(desk_category=category, desk_category_at=at, updated_at=now)
            )
        else:
            connection.execute(
                calls.update().where(calls.c.call_id == call_id).values(updated_at=now)
            )
        payload = {
            "schema": SCHEMA_VERSION,
            "command_id": annotation_id,
            "type": command_type,
            "call_id": call_id,
            **choice,
            "at": format_ts(at),
            "reference": reference,
            "center_id": center_id,
        }
        connection.execute(
            insert_for(connection, commands)
            .values(
                annotation_id=annotation_id,
                topic=topic,
                payload=json.dumps(payload, separators=(",", ":")).encode(),
                created_at=now,
                attempts=0,
            )
            .on_conflict_do_nothing()
        )
    return Annotation(annotation_id, call_id, kind, category, agency, reference, at, topic, True)


class CommandSender:
    """Publishes queued commands through the worker's MQTT session; marks them sent on PUBACK.

    Several workers may run one; a command is claimed with a lease (a conditional
    UPDATE), so normally one worker sends it, and again only when unacknowledged
    for ``COMMAND_LEASE_S``.
    """

    def __init__(self, engine: Engine, publish: Any) -> None:
        self.engine = engine
        self.publish = publish  # MqttSession.publish
        self.sent = 0
        self._acked: list[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="center-commands", daemon=True)

    def start(self) -> CommandSender:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.send_due()
            except Exception as error:
                log.warning("commands: %s", error)
            self._wake.wait(COMMAND_POLL_S)
            self._wake.clear()

    def _on_acked(self, annotation_id: str) -> None:
        with self._lock:
            self._acked.append(annotation_id)
        self._wake.set()

    def send_due(self) -> int:
        now = datetime.now(UTC)
        commands = tables.commands
        with self._lock:
            acked, self._acked = self._acked, []
        with self.engine.begin() as connection:
            for annotation_id in acked:
                connection.execute(
                    commands.update()
                    .where(commands.c.annotation_id == annotation_id)
                    .values(sent_at=now)
                )
            due = connection.execute(
                select(commands.c.annotation_id, commands.c.topic, commands.c.payload)
                .where(
                    commands.c.sent_at.is_(None),
                    or_(
                        commands.c.attempt_at.is_(None),
                        commands.c.attempt_at < now - timedelta(seconds=COMMAND_LEASE_S),
                    ),
                )
                .order_by(commands.c.created_at)
                .limit(100)
            ).all()
            claimed = []
            for row in due:
                taken = connection.execute(
                    commands.update()
                    .where(
                        commands.c.annotation_id == row.annotation_id,
                        commands.c.sent_at.is_(None),
                        or_(
                            commands.c.attempt_at.is_(None),
                            commands.c.attempt_at < now - timedelta(seconds=COMMAND_LEASE_S),
                        ),
                    )
                    .values(attempt_at=now, attempts=commands.c.attempts + 1)
                ).rowcount
                if taken:
                    claimed.append(row)
        for row in claimed:
            self.publish(
                row.topic,
                bytes(row.payload),
                lambda annotation_id=row.annotation_id: self._on_acked(annotation_id),
            )
            self.sent += 1
        return len(claimed)
