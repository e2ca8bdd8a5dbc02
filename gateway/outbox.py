"""The durable outbox: every event is committed to SQLite before it is sent.

Data flow::

    drivers ──submit(event)──▶ queue ──▶ writer thread ──▶ outbox.db (WAL)
                                         (group commit,        │
                                          seq, budget)         ▼
    broker ◀── forwarder ◀──fetch── reader connection ◀── pending rows
       │                                                       ▲
       └── PUBACK ──acknowledge(seqs)──▶ writer thread ──DELETE┘

* One writer thread owns the write connection. Submissions and
  acknowledgements queue to it; it writes each burst in one transaction (group
  commit), so a burst costs one fsync, not one per event.
* The writer gives each event its ``seq`` (1, 2, 3 ... per gateway, kept in
  the ``meta`` table, never reused) and stores the exact bytes to publish.
* ``synchronous=FULL`` (default) in WAL mode: a committed event survives power
  loss. An event leaves the outbox only after its PUBACK.
* Size budget: above ``max_bytes`` the oldest telemetry is shed first, and a
  ``gateway.alarm`` lists the seqs shed. Call events and alarms are never
  evicted; when only they remain, new telemetry is refused (with an alarm) and
  call events are still taken.
* Storage faults (``gateway.outbox_faults``): when the disk refuses a write
  (ENOSPC, EDQUOT, EIO, EROFS, at any write site: insert, delete, the seq
  reservation, opening or migrating the file), the writer keeps running. It
  gives up its space reserve on a full disk and tries again; call events and
  alarms it still cannot store are *held* in memory (and in a journal file
  allocated in advance) and sent by the forwarder from memory with seq 0;
  telemetry is announced as ``event_not_kept`` through ``on_unkept``. The
  writer retries every ``HELD_RETRY_S``; the first write that succeeds
  stores the held events with their seq and a ``storage_recovered`` alarm.
  If the file cannot even be opened at start, the outbox starts anyway in
  that state, and the forwarder sends what the file already holds.
* On start: ``PRAGMA integrity_check``. A damaged file is moved aside, every
  row that can still be read is copied into a fresh file with its original
  seq and bytes, and an alarm reports what was recovered.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.events import (
    AlarmSeverity,
    Event,
    GatewayAlarm,
    Priority,
    encode,
    topic_for,
)
from gateway.outbox_faults import (
    HELD_RETRY_S,
    RESERVE_BYTES,
    StorageFault,
    StorageFaults,
    classify,
    is_damage,
)
from gateway.outbox_reader import OutboxReader, PendingRow
from gateway.outbox_recovery import (
    COLUMNS,
    SeqReservation,
    collapse_seqs,
    connect,
    recover,
)
from gateway.outbox_schema import migrate

log = logging.getLogger("edge112.outbox")

ROW_OVERHEAD_BYTES = 64  # index entry, rowid, columns: what a row costs beyond its payload


class OutboxError(RuntimeError):
    """Base of the outbox's errors."""


class OutboxClosed(OutboxError):
    """The outbox no longer takes events (it is shutting down)."""


class TelemetryRefused(OutboxError):
    """The outbox is over budget with call events only; telemetry is not taken."""


class OutboxWriteFailed(OutboxError):
    """SQLite could not commit the event (disk full, I/O error); it is not kept."""


class EventHeld(OutboxWriteFailed):
    """The disk refused the event; it is held in memory (and the journal) until it is stored
    or the broker has it. Not lost, but not committed either."""


_RESOLVED = threading.Condition()  # one for all submissions: no Event per event


class Submission:
    """A pending submission; ``wait()`` returns the committed seq."""

    __slots__ = ("done", "error", "event", "seq")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.seq: int | None = None
        self.error: OutboxError | None = None
        self.done = False

    def _resolve(self, seq: int | None, error: OutboxError | None = None) -> None:
        """Set the outcome; the writer notifies ``_RESOLVED`` once per batch."""
        self.seq, self.error = seq, error
        self.done = True

    def wait(self, timeout: float | None = 10.0) -> int:
        with _RESOLVED:
            if not _RESOLVED.wait_for(lambda: self.done, timeout):
                raise TimeoutError("outbox did not commit the event in time")
        if self.error is not None:
            raise self.error
        assert self.seq is not None
        return self.seq


@dataclass
class _Acknowledge:
    seqs: list[int]
    on_done: Callable[[list[int]], None] | None


@dataclass
class _Barrier:
    done: threading.Event = field(default_factory=threading.Event)


_STOP = object()


class Outbox:
    """Durable, prioritised, size-bounded queue of events awaiting PUBACK."""

    def __init__(
        self,
        path: str | Path,
        *,
        gateway_id: str,
        region: str,
        synchronous: str = "full",
        max_bytes: int = 512 * 1024 * 1024,
        group_commit_max: int = 500,
        held_max: int = 1000,
        reserve_bytes: int = RESERVE_BYTES,
        on_unkept: Callable[[GatewayAlarm], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.gateway_id = gateway_id
        self.region = region
        self.synchronous = synchronous
        self.max_bytes = max_bytes
        self.group_commit_max = group_commit_max
        self.on_unkept = on_unkept
        self.counters = {
            "committed": 0,
            "acknowledged": 0,
            "shed": 0,
            "refused": 0,
            "write_failures": 0,
            "transactions": 0,
            "held": 0,
            "not_kept": 0,
        }
        self.startup_alarms: list[GatewayAlarm] = []
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._listeners: list[Callable[[list[PendingRow]], None]] = []
        self._closed = False
        self._refusing_telemetry = False
        self._refused_since_alarm = 0
        self._over_budget_alarmed = False
        # The write connection is used by the writer thread, and by the forwarder for a
        # quick DELETE when the writer is idle (acknowledge_now): one at a time, by this lock.
        self._write_lock = threading.Lock()
        self._rows: list[tuple[Any, ...]] = []  # inserts of the open transaction, not yet written
        self._type_infos: dict[type, tuple[int, str, str]] = {}
        self._written: list[tuple[Any, ...]] = []  # inserts of the open transaction, written
        self._durable = synchronous == "full"
        self._reservation = SeqReservation(self._beside(".seq"))
        self.faults = StorageFaults(
            self.path,
            gateway_id=gateway_id,
            region=region,
            held_max=held_max,
            reserve_bytes=reserve_bytes,
            on_unkept=on_unkept,
            count=self._count,
        )
        self.held = self.faults.held
        self.epoch = 0  # bumped each time the write connection is (re)opened
        self.clock_unsynced = False  # set by gateway.clock_watch: marks the envelopes
        self._conn: sqlite3.Connection | None = None
        self._next_seq = 0
        self._pending_bytes = 0
        recovered = self.faults.recover_journal()
        if recovered is not None:
            self.startup_alarms.append(recovered)
        try:
            self._open_writable()
        except (sqlite3.Error, OSError) as error:
            if not self._retry_after_releasing_reserve(error):
                self.faults.enter(classify(error, self.path.parent), "opening the outbox")
        self.faults.reserve.take()
        self._writer = threading.Thread(target=self._write_loop, name="outbox-writer", daemon=True)
        self._writer.start()

    def _beside(self, suffix: str) -> Path:
        return self.path.with_name(self.path.name + suffix)

    def _count(self, name: str) -> None:
        self.counters[name] += 1

    @property
    def fault(self) -> StorageFault | None:
        """The storage fault in progress, or None while the disk takes writes."""
        return self.faults.fault

    # ------------------------------------------------------------ opening

    def _open_writable(self) -> None:
        """Open (or create, migrate, recover) the file for writing; raises on a storage fault."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._open_checked()
        try:
            next_seq = int(
                conn.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
            )
            self._reservation.cover(next_seq)
            pending = int(conn.execute("SELECT coalesce(sum(size), 0) FROM events").fetchone()[0])
        except BaseException:
            conn.close()
            raise
        self._conn, self._next_seq, self._pending_bytes = conn, next_seq, pending
        self._durable = self.synchronous == "full"
        self.epoch += 1

    def _open_checked(self) -> sqlite3.Connection:
        conn = None
        try:
            conn = connect(self.path, synchronous=self.synchronous)
            verdict = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            if verdict != ["ok"]:
                conn.close()
                return self._recover("; ".join(verdict[:5]))
            migrate(conn)
            return conn
        except sqlite3.DatabaseError as error:
            if conn is not None:
                conn.close()
            if not is_damage(error):
                raise  # the disk refuses (full, read-only, I/O): not the file's fault
            return self._recover(str(error))

    def _recover(self, damage: str) -> sqlite3.Connection:
        conn, alarm = recover(
            self.path, damage, synchronous=self.synchronous, reservation=self._reservation
        )
        self.startup_alarms.append(alarm)
        return conn

    # ------------------------------------------------------------ producers

    def submit(self, event: Event) -> Submission:
        """Queue an event for commit; returns at once. ``wait()`` on the result for its seq."""
        submission = Submission(event)
        if self._closed:
            with _RESOLVED:
                submission._resolve(None, OutboxClosed("outbox is closed"))
                _RESOLVED.notify_all()
        else:
            self._queue.put(submission)
        return submission

    def put(self, event: Event, timeout: float | None = 10.0) -> int:
        """Submit and wait for the commit; returns the event's seq."""
        return self.submit(event).wait(timeout)

    @property
    def writer_alive(self) -> bool:
        return self._writer.is_alive()

    def add_commit_listener(self, listener: Callable[[list[PendingRow]], None]) -> None:
        """``listener(rows)`` runs in the writer thread after each commit with the rows
        it inserted, in seq order (keep it tiny: it holds up the writer)."""
        self._listeners.append(listener)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued before this call is written."""
        barrier = _Barrier()
        self._queue.put(barrier)
        barrier.done.wait(timeout)

    # ------------------------------------------------------------ forwarder side

    def acknowledge(
        self, seqs: list[int], on_done: Callable[[list[int]], None] | None = None
    ) -> None:
        """Delete these events (their PUBACK came); ``on_done(seqs)`` once committed."""
        self._queue.put(_Acknowledge(seqs, on_done))

    def acknowledge_now(self, seqs: list[int]) -> bool:
        """Delete these events in the calling thread if the writer is idle at this moment.

        The forwarder calls this after PUBACKs: an idle writer would only be
        woken to do the same, and the hand-over between threads costs more than
        the DELETE (an unsynced commit, tens of microseconds). Returns False
        when the writer is busy; then use ``acknowledge``.
        """
        if self._closed or not self._write_lock.acquire(blocking=False):
            return False
        try:
            if self._conn is None or self.fault is not None:
                return False  # let the writer deal with the disk
            bytes_before, acknowledged_before = self._pending_bytes, self.counters["acknowledged"]
            try:
                self._set_durable(self.synchronous != "full")
                self._conn.execute("BEGIN IMMEDIATE")
                self._delete_acknowledged([_Acknowledge(seqs, None)])
                self._conn.execute("COMMIT")
            except (sqlite3.Error, OSError):
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                self._pending_bytes = bytes_before
                self.counters["acknowledged"] = acknowledged_before
                return False
            self.counters["transactions"] += 1
            return True
        finally:
            self._write_lock.release()

    def reader(self) -> OutboxReader:
        """A read connection for the calling thread (WAL: reads never block the writer).

        While the outbox could not open its file at all (start-up on a full or
        read-only disk) and no ``-wal`` holds commits, the reader reads the file
        as immutable, so what is queued can still be sent.
        """
        if self._conn is None and self.fault is not None and not self._wal_has_commits():
            return OutboxReader(self.path, immutable=True)
        return OutboxReader(self.path)

    def _wal_has_commits(self) -> bool:
        try:
            return self._beside("-wal").stat().st_size > 0
        except FileNotFoundError:
            return False

    # ------------------------------------------------------------ writer thread

    def _write_loop(self) -> None:
        while True:
            waiting = len(self.held) > 0 or self._conn is None
            try:  # while the disk refuses writes, wake up to try again
                first = self._queue.get(timeout=HELD_RETRY_S) if waiting else self._queue.get()
            except queue.Empty:
                first = None
            if first is _STOP:
                return
            batch = [] if first is None else [first]
            stop_after = False
            while len(batch) < self.group_commit_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop_after = True
                    break
                batch.append(item)
            with self._write_lock:
                try:
                    self._write_batch(batch)
                except Exception as error:  # a bug here must not stop every later event
                    log.exception("outbox writer: unexpected failure, batch handled as unwritten")
                    self._write_failed(classify(error, self.path.parent), batch)
                finally:
                    for item in batch:
                        if isinstance(item, _Barrier):
                            item.done.set()
            if stop_after:
                return

    def _write_batch(self, batch: list[Any]) -> None:
        if self._conn is None:
            try:
                self._open_writable()
            except (sqlite3.Error, OSError) as error:
                if not self._retry_after_releasing_reserve(error):
                    self._write_failed(
                        classify(error, self.path.parent), self._with_startup_alarms(batch)
                    )
                    return
        batch = self._with_startup_alarms(batch)
        try:
            self._commit_batch(batch)
        except (sqlite3.Error, OSError) as error:
            if self._retry_after_releasing_reserve(error):
                batch = self._with_startup_alarms(batch)
                try:
                    self._commit_batch(batch)
                    return
                except (sqlite3.Error, OSError) as again:
                    error = again
            fault = classify(error, self.path.parent)
            if fault.kind in ("io_error", "read_only") and self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None  # reopened on the next try: the old handle may be unusable
            self._write_failed(fault, batch)

    def _with_startup_alarms(self, batch: list[Any]) -> list[Any]:
        """Alarms raised while opening (recovery, reserve released) go first in the batch."""
        if not self.startup_alarms:
            return batch
        alarms, self.startup_alarms = self.startup_alarms, []
        return [*(Submission(alarm) for alarm in alarms), *batch]

    def _retry_after_releasing_reserve(self, error: BaseException) -> bool:
        """On a full disk, give up the reserve file; True if that made room to try once more."""
        if (
            classify(error, self.path.parent).kind != "disk_full"
            or not self.faults.release_reserve()
        ):
            return False
        try:
            if self._conn is None:
                self._open_writable()
        except (sqlite3.Error, OSError):
            return False
        self.startup_alarms.append(
            GatewayAlarm(
                code="disk_full",
                severity=AlarmSeverity.CRITICAL,
                message=f"the disk holding {self.path} is full: released the outbox's "
                f"{self.faults.reserve.size} byte reserve to keep storing events; free space now",
                detail={"path": str(self.path), "reserve_bytes": self.faults.reserve.size},
            )
        )
        return True

    def _commit_batch(self, batch: list[Any]) -> None:
        """One transaction: deletes, held events, new events, alarms. Raises on a storage fault
        (everything rolled back)."""
        assert self._conn is not None
        submissions = [item for item in batch if isinstance(item, Submission)]
        acks = [item for item in batch if isinstance(item, _Acknowledge)]
        held = self.held.snapshot()
        recovered = self.faults.recovery_alarm(len(held)) if self.fault is not None else None
        committed: list[tuple[Submission, int]] = []
        refused: list[Submission] = []
        next_seq_before, bytes_before = self._next_seq, self._pending_bytes
        counters_before = dict(self.counters)
        # Deletes alone need no fsync: if power loss undoes them, those events are
        # sent again (duplicates, never loss). Any insert makes the commit durable,
        # and its WAL fsync covers the earlier unsynced deletes too.
        try:
            self._set_durable(bool(submissions or held) or self.synchronous != "full")
            self._conn.execute("BEGIN IMMEDIATE")
            self._delete_acknowledged(acks)
            for item in [*(Submission(h.event) for h in held), *submissions]:
                if self._make_room(item.event):
                    committed.append((item, self._insert(item.event)))
                else:
                    refused.append(item)
            if recovered is not None:
                committed.append((Submission(recovered), self._insert(recovered)))
            for alarm in self._budget_alarms(refused):
                committed.append((Submission(alarm), self._insert(alarm)))
            inserted = self._flush_rows()
            if committed:
                self._conn.execute(
                    "UPDATE meta SET value=? WHERE key='next_seq'", (self._next_seq,)
                )
            self._conn.execute("COMMIT")
        except BaseException:
            self._rows.clear()
            self._written.clear()
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            self._next_seq, self._pending_bytes = next_seq_before, bytes_before
            self.counters = counters_before
            raise
        self.counters["transactions"] += 1
        self.counters["committed"] += len(committed)
        if held:
            self.held.discard([h.event.event_id for h in held])
        if recovered is not None:
            log.warning("%s", recovered.message)
            self.faults.end()
        with _RESOLVED:
            for submission, seq in committed:
                submission._resolve(seq)
            for submission in refused:
                submission._resolve(
                    None, TelemetryRefused("outbox is full of call events; telemetry refused")
                )
            _RESOLVED.notify_all()
        for ack in acks:
            if ack.on_done:
                self._call_safely(ack.on_done, ack.seqs)
        if committed:
            fresh = [PendingRow(row[0], row[1], row[2], row[4], row[5]) for row in inserted]
            for listener in self._listeners:
                self._call_safely(listener, fresh)

    @staticmethod
    def _call_safely(callback: Callable[..., None], *args: Any) -> None:
        """Callbacks run in the writer thread; one that fails must not stop the writer."""
        try:
            callback(*args)
        except Exception:
            log.exception("outbox callback %r failed", callback)

    @property
    def _db(self) -> sqlite3.Connection:
        """The write connection, inside a transaction of the writer (never None there)."""
        assert self._conn is not None
        return self._conn

    def _set_durable(self, durable: bool) -> None:
        if durable != self._durable:
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._durable = durable

    def _flush_rows(self) -> list[tuple[Any, ...]]:
        """Write the rows queued by ``_insert`` in one statement; returns all rows written
        in this transaction so far."""
        if self._rows:
            self._db.executemany(
                f"INSERT INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self._rows
            )
            self._written.extend(self._rows)
            self._rows.clear()
        written, self._written = self._written, []
        return written

    def _insert(self, event: Event) -> int:
        seq = self._next_seq
        self._reservation.cover(seq)
        payload = encode(
            event,
            seq=seq,
            gateway_id=self.gateway_id,
            region=self.region,
            clock_unsynced=self.clock_unsynced,
        )
        size = len(payload) + ROW_OVERHEAD_BYTES
        priority, type_name, topic = self._type_info(type(event))
        self._rows.append(
            (seq, priority, type_name, event.event_id, topic, payload, size, time.time())
        )
        self._next_seq += 1
        self._pending_bytes += size
        return seq

    def _type_info(self, cls: type[Event]) -> tuple[int, str, str]:
        """Priority, type name and topic of an event class (once per class, not per event)."""
        info = self._type_infos.get(cls)
        if info is None:
            name = cls.TYPE.value
            info = (int(cls.PRIORITY), name, topic_for(self.region, self.gateway_id, name))
            self._type_infos[cls] = info
        return info

    def _delete_acknowledged(self, acks: list[_Acknowledge]) -> None:
        seqs = [seq for ack in acks for seq in ack.seqs]
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"DELETE FROM events WHERE seq IN ({marks}) RETURNING size", chunk
            ).fetchall()
            self._pending_bytes -= sum(row[0] for row in rows)
            self.counters["acknowledged"] += len(rows)

    def _make_room(self, event: Event) -> bool:
        """Shed old telemetry until ``event`` fits; False when telemetry must be refused."""
        estimate = 400 + ROW_OVERHEAD_BYTES
        if self._pending_bytes + estimate <= self.max_bytes:
            return True
        shed_seqs: list[int] = []
        self._written = self._flush_rows()  # keep them for the commit listener
        while self._pending_bytes + estimate > self.max_bytes:
            rows = self._db.execute(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE priority >= ?"
                " ORDER BY priority DESC, seq LIMIT 64) RETURNING seq, size",
                (int(Priority.TELEMETRY),),
            ).fetchall()
            if not rows:
                break
            shed_seqs.extend(row[0] for row in rows)
            self._pending_bytes -= sum(row[1] for row in rows)
        if shed_seqs:
            gone = set(shed_seqs)
            self._written = [row for row in self._written if row[0] not in gone]
            self.counters["shed"] += len(shed_seqs)
            self._insert(
                GatewayAlarm(
                    code="telemetry_shed",
                    severity=AlarmSeverity.WARNING,
                    message=f"outbox over its {self.max_bytes} byte budget: shed {len(shed_seqs)} "
                    "oldest telemetry events",
                    detail={"shed_count": len(shed_seqs), "shed_seqs": collapse_seqs(shed_seqs)},
                )
            )
        if self._pending_bytes + estimate <= self.max_bytes:
            return True
        if event.PRIORITY == Priority.EMERGENCY:
            return True  # never refuse a call event: go over budget, say so below
        self.counters["refused"] += 1
        self._refused_since_alarm += 1
        return False

    def _budget_alarms(self, refused: list[Submission]) -> list[GatewayAlarm]:
        alarms: list[GatewayAlarm] = []
        over = self._pending_bytes > self.max_bytes
        if refused and not self._refusing_telemetry:
            self._refusing_telemetry = True
            alarms.append(
                GatewayAlarm(
                    code="outbox_full",
                    severity=AlarmSeverity.CRITICAL,
                    message="outbox holds only call events and is at its budget: refusing new "
                    "telemetry until the broker takes events again",
                    detail={"pending_bytes": self._pending_bytes, "max_bytes": self.max_bytes},
                )
            )
        elif self._refusing_telemetry and not over:
            self._refusing_telemetry = False
            alarms.append(
                GatewayAlarm(
                    code="outbox_accepting",
                    severity=AlarmSeverity.WARNING,
                    message=f"outbox below budget again; {self._refused_since_alarm} telemetry "
                    "events were refused while full",
                    detail={"refused": self._refused_since_alarm},
                )
            )
            self._refused_since_alarm = 0
        if over and not self._over_budget_alarmed:
            self._over_budget_alarmed = True
            alarms.append(
                GatewayAlarm(
                    code="outbox_over_budget",
                    severity=AlarmSeverity.CRITICAL,
                    message="outbox is over its budget with call events, which are never evicted",
                    detail={"pending_bytes": self._pending_bytes, "max_bytes": self.max_bytes},
                )
            )
        elif not over:
            self._over_budget_alarmed = False
        return alarms

    def _write_failed(self, fault: StorageFault, batch: list[Any]) -> None:
        """Nothing of ``batch`` was written: hold call events and alarms, announce the rest,
        wake every waiter, and report acknowledgements as not deleted (sent again later)."""
        self.counters["write_failures"] += 1
        self.faults.enter(fault, "writing")
        submissions = [item for item in batch if isinstance(item, Submission)]
        for item in batch:
            if isinstance(item, _Acknowledge) and item.on_done:
                self._call_safely(item.on_done, [])
        outcome = self.faults.hold_or_announce([s.event for s in submissions], fault)
        with _RESOLVED:
            for submission in submissions:
                if outcome[submission.event.event_id]:
                    submission._resolve(
                        None,
                        EventHeld(f"outbox could not store the event ({fault.describe()}); held"),
                    )
                else:
                    submission._resolve(
                        None, OutboxWriteFailed(f"outbox write failed: {fault.describe()}")
                    )
            _RESOLVED.notify_all()

    # ------------------------------------------------------------ lifecycle

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, checkpoint the WAL into the main file, close."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._writer.join(timeout)
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error, OSError):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
        self.faults.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
