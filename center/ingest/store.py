"""Storing checked messages exactly once: one transaction per batch.

For a batch of ``Checked`` messages (``center.ingest.validate``)::

    INSERT events SELECT ... FROM stage_events ON CONFLICT DO NOTHING RETURNING event_id
    (the batch's rows loaded in bulk first: ``center.ingest.staging``)
        inserted ─▶ new event: update gateway, call, line, explained seqs
        not inserted, event_id known:
            stored with seq 0, this copy has a seq ─▶ merge: set the seq (held event)
            otherwise                              ─▶ duplicate (counted per gateway)
        not inserted, event_id unknown ─▶ its (gateway_id, seq) belongs to another
            event: quarantined as seq_conflict and a center alarm, never an overwrite
    status ─▶ gateways.status (status_since changes only with the status)
    rejected ─▶ quarantine (the same bytes on the same topic again: times + 1)

Every statement is idempotent, so a batch redelivered after a crash (MQTT
at-least-once: the worker acks only after the commit) changes nothing twice.
Rows other workers write at the same time are handled by the unique indexes;
gateway rows are updated in sorted order so two workers do not deadlock, and
a deadlock or lock timeout anyway makes the whole batch run again.

A batch that fails for another reason is split and stored message by
message; a message that still fails goes to quarantine as ``store_failed``,
so one poisonous message can neither crash the worker nor block the feed.
Database outages (connection refused, disk full) are retried until they end:
nothing is acknowledged meanwhile, so the broker keeps the messages.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, case, or_, select, tuple_
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from center.alarms import AlarmCode, AlarmNotice, raise_alarm
from center.desk import store_gateway_annotations
from center.ingest.call_rows import apply_calls
from center.ingest.staging import (
    forget,
    insert_from,
    load,
    stage_events,
    stage_gateways,
    stage_lines,
)
from center.ingest.validate import Checked, Incoming, Reason, Rejected, StatusUpdate
from center.ingest.watermarks import walk_watermarks
from center.storage import tables
from center.storage.database import insert_for

log = logging.getLogger("edge112.center.store")

RETRY_MIN_S = 0.05
RETRY_MAX_S = 5.0
EXPLAINING_ALARMS = {  # gateway.alarm code -> detail keys whose seq ranges are gone
    "telemetry_shed": ("shed_seqs",),
    "outbox_damaged": ("unreadable_seqs", "skipped_seqs"),
}


@dataclass
class BatchResult:
    stored: int = 0
    merged: int = 0  # held (seq 0) events whose sequenced copy arrived
    duplicates: int = 0
    statuses: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    alarms: list[AlarmNotice] = field(default_factory=list)
    stored_events: list[Incoming] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        self.stored += other.stored
        self.merged += other.merged
        self.duplicates += other.duplicates
        self.statuses += other.statuses
        self.quarantined.update(other.quarantined)
        self.alarms.extend(other.alarms)
        self.stored_events.extend(other.stored_events)


def is_transient(error: BaseException) -> bool:
    """A failure that goes away by itself: lost connection, deadlock, lock timeout, disk full."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    original = getattr(error, "orig", None)
    sqlstate = getattr(original, "sqlstate", None)
    if sqlstate:
        # 40001 serialization, 40P01 deadlock, 08 connection, 53 resources, 57P0x shutdown
        return sqlstate in ("40001", "40P01", "55P03") or sqlstate[:2] in ("08", "53", "57")
    if isinstance(error, OperationalError):
        text = str(original).lower()
        return any(
            word in text
            for word in ("locked", "busy", "disk is full", "disk i/o", "unable to open", "connect")
        )
    return False


class EventStore:
    """Writes checked messages; one instance per writer thread."""

    def __init__(self, engine: Engine, worker: str, *, clock: Callable[[], datetime] | None = None):
        self.engine = engine
        self.worker = worker
        self.clock = clock or (lambda: datetime.now(UTC))
        self.totals = BatchResult()
        self.retries = 0

    # ------------------------------------------------------------ entry point

    def store(
        self, batch: Sequence[Checked], stop: Callable[[], bool] = lambda: False
    ) -> BatchResult:
        """Store ``batch`` (all of it, committed) and return what happened.

        Transient failures are retried with backoff until they pass or ``stop()``;
        then the exception is raised and nothing may be acknowledged.
        """
        result = self._with_retry(lambda: self._store_batch(batch), stop)
        if isinstance(result, BatchResult):
            self.totals.add(result)
            return result
        # not transient: find the message that the database refuses
        log.error("batch of %d failed (%s): storing one by one", len(batch), result)
        combined = BatchResult()
        for message in batch:
            single = self._with_retry(lambda m=message: self._store_batch([m]), stop)  # type: ignore[misc]
            if isinstance(single, BatchResult):
                combined.add(single)
                continue
            failed = _as_rejected(message, f"{type(single).__name__}: {single}"[:500])
            fallback = self._with_retry(lambda f=failed: self._store_batch([f]), stop)  # type: ignore[misc]
            if isinstance(fallback, BaseException):
                raise fallback
            combined.add(fallback)
        self.totals.add(combined)
        return combined

    def _with_retry(
        self, attempt: Callable[[], BatchResult], stop: Callable[[], bool]
    ) -> BatchResult | Exception:
        delay = RETRY_MIN_S
        while True:
            try:
                return attempt()
            except Exception as error:
                if not is_transient(error):
                    return error
                if stop():
                    raise
                self.retries += 1
                log.warning("database busy or unreachable (%s): retrying in %.2f s", error, delay)
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    # ------------------------------------------------------------ one transaction

    def _store_batch(self, batch: Sequence[Checked]) -> BatchResult:
        result = BatchResult()
        incoming = [m for m in batch if isinstance(m, Incoming)]
        statuses = [m for m in batch if isinstance(m, StatusUpdate)]
        rejected = [m for m in batch if isinstance(m, Rejected)]
        now = self.clock()
        connection_info: dict[Any, Any] | None = None
        try:
            with self.engine.begin() as connection:
                connection_info = connection.connection.info
                return self._store_in(connection, result, incoming, statuses, rejected, now)
        except BaseException:
            if connection_info is not None:
                forget(connection_info)  # a stage table created in this transaction is gone
            raise

    def _store_in(
        self,
        connection: Connection,
        result: BatchResult,
        incoming: list[Incoming],
        statuses: list[StatusUpdate],
        rejected: list[Rejected],
        now: datetime,
    ) -> BatchResult:
        fresh, merged, duplicates, conflicts = self._insert_events(connection, incoming, now)
        result.stored = len(fresh)
        result.merged = len(merged)
        result.duplicates = sum(duplicates.values())
        result.stored_events = fresh
        for message, existing_event_id in conflicts:
            rejected.append(
                Rejected(
                    message.topic,
                    message.payload,
                    Reason.SEQ_CONFLICT,
                    f"seq {message.seq} of {message.gateway_id} is already event "
                    f"{existing_event_id}; this event {message.event_id} was not stored",
                    message.received_at,
                    message.gateway_id,
                )
            )
            notice = raise_alarm(
                connection,
                key=f"seq_conflict:{message.gateway_id}:{message.seq}:{message.event_id}",
                code=AlarmCode.SEQ_CONFLICT,
                severity="critical",
                message=(
                    f"{message.gateway_id} sent seq {message.seq} twice with different "
                    f"event_ids ({existing_event_id} stored, {message.event_id} quarantined)"
                ),
                detail={
                    "seq": message.seq,
                    "stored_event_id": existing_event_id,
                    "conflicting_event_id": message.event_id,
                },
                now=now,
                gateway_id=message.gateway_id,
                region=message.region,
            )
            if notice:
                result.alarms.append(notice)
        apply_calls(connection, fresh, now)
        store_gateway_annotations(connection, fresh, now)  # call.classified / .escalated
        self._apply_lines(connection, fresh)
        self._apply_explained(connection, fresh)
        self._update_gateways(connection, fresh, merged, duplicates, statuses, now)
        self._quarantine(connection, rejected, now)
        result.statuses = len(statuses)
        result.quarantined.update(r.reason.value for r in rejected)
        return result

    def _insert_events(
        self, connection: Connection, incoming: list[Incoming], now: datetime
    ) -> tuple[list[Incoming], list[Incoming], Counter[str], list[tuple[Incoming, str]]]:
        if not incoming:
            return [], [], Counter(), []
        events = tables.events
        load(
            connection,
            stage_events,
            [
                {
                    "event_id": m.event_id,
                    "gateway_id": m.gateway_id,
                    "region": m.region,
                    "seq": m.seq,
                    "type": m.type,
                    "ts": m.ts,
                    "received_at": m.received_at,
                    "counted_at": m.counted_at,
                    "clock_suspect": m.clock_suspect,
                    "unsequenced": m.seq == 0,
                    "held": m.seq == 0,
                    "data": m.data,
                    "worker": self.worker,
                }
                for m in incoming
            ],
        )
        names = [c.name for c in events.columns if c.name != "id"]
        statement = (
            insert_from(connection, events, stage_events, names)  # in arrival order
            .on_conflict_do_nothing()
            .returning(events.c.event_id)
        )
        inserted_ids = set(connection.execute(statement).scalars())
        fresh: list[Incoming] = []
        rest: list[Incoming] = []
        for message in incoming:
            if message.event_id in inserted_ids:
                inserted_ids.discard(message.event_id)  # a second copy in this batch is a dup
                fresh.append(message)
            else:
                rest.append(message)
        merged: list[Incoming] = []
        duplicates: Counter[str] = Counter()
        conflicts: list[tuple[Incoming, str]] = []
        if not rest:
            return fresh, merged, duplicates, conflicts
        # what holds each refused event_id and (gateway_id, seq): two queries for all of them
        known: dict[str, int] = {
            str(row.event_id): int(row.seq)
            for row in connection.execute(
                select(events.c.event_id, events.c.seq).where(
                    events.c.event_id.in_(sorted({m.event_id for m in rest}))
                )
            )
        }
        pairs = sorted({(m.gateway_id, m.seq) for m in rest if m.seq > 0})
        holders: dict[tuple[str, int], str] = {}
        if pairs:
            holders = {
                (str(row.gateway_id), int(row.seq)): str(row.event_id)
                for row in connection.execute(
                    select(events.c.gateway_id, events.c.seq, events.c.event_id).where(
                        tuple_(events.c.gateway_id, events.c.seq).in_(pairs)
                    )
                )
            }
        for message in rest:
            existing_seq = known.get(message.event_id)
            if existing_seq is None:
                conflicts.append((message, str(holders.get((message.gateway_id, message.seq)))))
            elif existing_seq == 0 and message.seq > 0:
                holder = self._merge_sequenced(connection, message)
                if holder is None:
                    merged.append(message)
                    known[message.event_id] = message.seq  # a later copy is a duplicate
                    holders[(message.gateway_id, message.seq)] = message.event_id
                else:
                    conflicts.append((message, holder))
            else:
                duplicates[message.gateway_id] += 1
        return fresh, merged, duplicates, conflicts

    def _merge_sequenced(self, connection: Connection, message: Incoming) -> str | None:
        """Give a held event (stored with seq 0) its seq; the event_id holding that seq if taken."""
        events = tables.events
        holder = connection.execute(
            select(events.c.event_id).where(
                events.c.gateway_id == message.gateway_id, events.c.seq == message.seq
            )
        ).scalar()
        if holder is not None:
            return str(holder)
        try:
            with connection.begin_nested():
                connection.execute(
                    events.update()
                    .where(events.c.event_id == message.event_id, events.c.seq == 0)
                    .values(seq=message.seq, unsequenced=False)
                )
        except IntegrityError:  # another worker stored that seq meanwhile
            taken = connection.execute(
                select(events.c.event_id).where(
                    events.c.gateway_id == message.gateway_id, events.c.seq == message.seq
                )
            ).scalar()
            return str(taken)
        return None

    # ------------------------------------------------------------ what events change

    def _apply_lines(self, connection: Connection, fresh: list[Incoming]) -> None:
        newest: dict[tuple[str, str], Incoming] = {}
        for message in fresh:
            if message.type == "line.status" and message.seq > 0:
                key = (message.gateway_id, message.data["line"])
                if key not in newest or message.seq > newest[key].seq:
                    newest[key] = message
        if not newest:
            return
        lines = tables.lines
        rows = [
            {
                "gateway_id": message.gateway_id,
                "line": message.data["line"],
                "state": message.data["state"],
                "detail": message.data["detail"],
                "signal_dbm": message.data.get("signal_dbm"),
                "seq": message.seq,
                "changed_at": message.ts,
            }
            for message in (newest[key] for key in sorted(newest))
        ]
        load(connection, stage_lines, rows)
        statement = insert_from(connection, lines, stage_lines, list(rows[0]))
        excluded = statement.excluded
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=["gateway_id", "line"],
                set_={
                    "state": excluded.state,
                    "detail": excluded.detail,
                    "signal_dbm": excluded.signal_dbm,
                    "seq": excluded.seq,
                    "changed_at": excluded.changed_at,
                },
                where=excluded.seq > lines.c.seq,
            )
        )

    def _apply_explained(self, connection: Connection, fresh: list[Incoming]) -> None:
        rows = []
        for message in fresh:
            if message.type != "gateway.alarm":
                continue
            code = message.data.get("code")
            for key in EXPLAINING_ALARMS.get(str(code), ()):
                for first, last in _seq_ranges(message.data.get("detail", {}).get(key)):
                    rows.append(
                        {
                            "gateway_id": message.gateway_id,
                            "first_seq": first,
                            "last_seq": last,
                            "reason": str(code),
                            "event_id": message.event_id,
                        }
                    )
        if rows:
            connection.execute(
                insert_for(connection, tables.explained).on_conflict_do_nothing(), rows
            )

    def _update_gateways(
        self,
        connection: Connection,
        fresh: list[Incoming],
        merged: list[Incoming],
        duplicates: Counter[str],
        statuses: list[StatusUpdate],
        now: datetime,
    ) -> None:
        per_gateway: dict[str, dict[str, Any]] = {}

        def entry(gateway_id: str, region: str, seen: datetime) -> dict[str, Any]:
            return per_gateway.setdefault(
                gateway_id,
                {
                    "gateway_id": gateway_id,
                    "region": region,
                    "first_seen": seen,
                    "last_seen": seen,
                    "highest_seq": 0,
                    "events": 0,
                    "duplicates": 0,
                    "clock_suspect": 0,
                    "updated_at": now,
                    "status": None,
                    "status_since": None,
                },
            )

        for message in [*fresh, *merged]:
            row = entry(message.gateway_id, message.region, message.received_at)
            row["last_seen"] = max(row["last_seen"], message.received_at)
            row["highest_seq"] = max(row["highest_seq"], message.seq)
        for message in fresh:
            row = per_gateway[message.gateway_id]
            row["events"] += 1
            row["clock_suspect"] += int(message.clock_suspect)
        for gateway_id, count in duplicates.items():
            if gateway_id not in per_gateway:
                region = connection.execute(
                    select(tables.gateways.c.region).where(
                        tables.gateways.c.gateway_id == gateway_id
                    )
                ).scalar()
                entry(gateway_id, region or "", now)["last_seen"] = now
            per_gateway[gateway_id]["duplicates"] += count
        gateways = tables.gateways
        self._set_watermarks(connection, per_gateway, [*fresh, *merged])
        if per_gateway:
            rows = [per_gateway[gateway_id] for gateway_id in sorted(per_gateway)]
            load(connection, stage_gateways, rows)
            statement = insert_from(
                connection, gateways, stage_gateways, list(rows[0]), order_by=("gateway_id",)
            )  # lock order
            excluded = statement.excluded
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["gateway_id"],
                    set_={
                        "region": excluded.region,
                        "last_seen": case(
                            (excluded.last_seen > gateways.c.last_seen, excluded.last_seen),
                            else_=gateways.c.last_seen,
                        ),
                        "highest_seq": case(
                            (excluded.highest_seq > gateways.c.highest_seq, excluded.highest_seq),
                            else_=gateways.c.highest_seq,
                        ),
                        "contiguous_seq": case(
                            (
                                excluded.contiguous_seq > gateways.c.contiguous_seq,
                                excluded.contiguous_seq,
                            ),
                            else_=gateways.c.contiguous_seq,
                        ),
                        "events": gateways.c.events + excluded.events,
                        "duplicates": gateways.c.duplicates + excluded.duplicates,
                        "clock_suspect": gateways.c.clock_suspect + excluded.clock_suspect,
                        "updated_at": excluded.updated_at,
                    },
                )
            )
        latest: dict[str, StatusUpdate] = {}
        for update in statuses:
            latest[update.gateway_id] = update  # arrival order: the last one is current
        if latest:
            statement = insert_for(connection, gateways)
            excluded = statement.excluded
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["gateway_id"],
                    set_={
                        "status_since": case(
                            (
                                or_(
                                    gateways.c.status.is_(None),
                                    gateways.c.status != excluded.status,
                                ),
                                excluded.status_since,
                            ),
                            else_=gateways.c.status_since,
                        ),
                        "status": excluded.status,
                        "updated_at": excluded.updated_at,
                    },
                ),
                [
                    {
                        "gateway_id": gateway_id,
                        "region": latest[gateway_id].region,
                        "status": latest[gateway_id].status,
                        "status_since": latest[gateway_id].received_at,
                        "first_seen": latest[gateway_id].received_at,
                        "last_seen": latest[gateway_id].received_at,
                        "contiguous_seq": 0,
                        "highest_seq": 0,
                        "events": 0,
                        "duplicates": 0,
                        "clock_suspect": 0,
                        "updated_at": now,
                    }
                    for gateway_id in sorted(latest)
                ],
            )

    def _set_watermarks(
        self,
        connection: Connection,
        per_gateway: dict[str, dict[str, Any]],
        sequenced: list[Incoming],
    ) -> None:
        """Each gateway's new contiguous_seq, into its row (the upsert keeps the larger).

        In-order arrival needs no query beyond one read of the current watermarks: the
        batch's own seqs extend it. A gap or an out-of-order seq walks the stored seqs.
        """
        for row in per_gateway.values():
            row["contiguous_seq"] = 0
        seqs: dict[str, list[int]] = defaultdict(list)
        for message in sequenced:
            if message.seq > 0:
                seqs[message.gateway_id].append(message.seq)
        if not seqs:
            return
        gateways = tables.gateways
        current = {
            row.gateway_id: (int(row.contiguous_seq), int(row.highest_seq))
            for row in connection.execute(
                select(
                    gateways.c.gateway_id, gateways.c.contiguous_seq, gateways.c.highest_seq
                ).where(gateways.c.gateway_id.in_(sorted(seqs)))
            )
        }
        to_walk: dict[str, int] = {}  # a gap or an out-of-order seq: walk the stored seqs
        for gateway_id, arrived in seqs.items():
            mark, highest = current.get(gateway_id, (0, 0))
            for seq in sorted(arrived):
                if seq == mark + 1:
                    mark = seq
                elif seq > mark + 1:
                    break
            per_gateway[gateway_id]["contiguous_seq"] = mark
            if max(highest, max(arrived)) > mark:
                to_walk[gateway_id] = mark
        for gateway_id, mark in walk_watermarks(connection, to_walk).items():
            per_gateway[gateway_id]["contiguous_seq"] = mark

    def _quarantine(self, connection: Connection, rejected: list[Rejected], now: datetime) -> None:
        quarantine = tables.quarantine
        for message in rejected:
            digest = hashlib.sha256(message.topic.encode() + b"\0" + message.payload).hexdigest()
            statement = insert_for(connection, quarantine).values(
                payload_sha256=digest,
                topic=message.topic,
                payload=message.payload,
                reason=message.reason.value,
                detail=message.detail,
                gateway_id=message.gateway_id,
                received_at=message.received_at,
                last_received_at=message.received_at,
                times=1,
                worker=self.worker,
            )
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["payload_sha256"],
                    set_={
                        "times": quarantine.c.times + 1,
                        "last_received_at": statement.excluded.last_received_at,
                    },
                )
            )


def _seq_ranges(value: Any) -> list[tuple[int, int]]:
    """[[first, last], ...] or [seq, ...] from an alarm's detail; anything else: none."""
    ranges: list[tuple[int, int]] = []
    if not isinstance(value, list):
        return ranges
    for item in value:
        if isinstance(item, list) and len(item) == 2 and all(isinstance(n, int) for n in item):
            if 0 < item[0] <= item[1]:
                ranges.append((item[0], item[1]))
        elif isinstance(item, int) and not isinstance(item, bool) and item > 0:
            ranges.append((item, item))
    return ranges


def _as_rejected(message: Checked, detail: str) -> Rejected:
    if isinstance(message, Rejected):
        return Rejected(message.topic, message.payload, message.reason, detail, message.received_at)
    if isinstance(message, Incoming):
        return Rejected(
            message.topic,
            message.payload,
            Reason.STORE_FAILED,
            detail,
            message.received_at,
            message.gateway_id,
        )
    return Rejected(
        f"status:{message.gateway_id}",
        message.status.encode(),
        Reason.STORE_FAILED,
        detail,
        message.received_at,
        message.gateway_id,
    )
