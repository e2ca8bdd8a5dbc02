"""The calls this gateway reported, and the call-taker's annotations on them (SQLite).

Only a call the gateway *reported* can be classified or escalated: the
registry learns calls from the outbox's commits (a commit listener), so a
call is known once its ``call.offered`` is stored, and survives restarts::

    outbox writer ──commit listener──▶ queue ──▶ registry thread ──▶ calls.db
                  (call.offered / .ended / .abandoned rows only)       ▲
    gateway.annotations (HTTP threads, MQTT commands) ──lookups, reserve┘

Tables (``calls.db`` beside the outbox unless ``[desk] registry_path``)::

    calls        call_id, line, started (event ts), ended, seen_at (unix time)
    annotations  annotation_id, call_id, kind, choice, reference, at, source,
                 command_id, center_id, event_id, seq (NULL: reserved, not committed)

An annotation is *reserved* with its event_id before its event is submitted
and marked with the outbox seq once committed: a command redelivered after a
crash finds its reservation, reuses the same event_id, and never makes a
second event once the seq is known (``gateway.annotations``).

Rows older than ``retention_s`` are deleted at start and every hour. One
connection, guarded by a lock; the registry thread is the only writer of
``calls``. WAL, ``synchronous=FULL``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.events import EventType
from gateway.outbox_reader import PendingRow

log = logging.getLogger("edge112.call_registry")

PRUNE_INTERVAL_S = 3600.0
SCHEMA_VERSION = 1
_CALL_TYPES = frozenset(
    {EventType.CALL_OFFERED.value, EventType.CALL_ENDED.value, EventType.CALL_ABANDONED.value}
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    line TEXT NOT NULL,
    started TEXT,
    ended TEXT,
    seen_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_seen ON calls (seen_at);
CREATE TABLE IF NOT EXISTS annotations (
    annotation_id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    choice TEXT NOT NULL,
    reference TEXT,
    at TEXT NOT NULL,
    source TEXT NOT NULL,
    command_id TEXT,
    center_id TEXT,
    event_id TEXT NOT NULL,
    seq INTEGER,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS annotations_call ON annotations (call_id);
CREATE INDEX IF NOT EXISTS annotations_created ON annotations (created_at);
"""


@dataclass(frozen=True)
class CallRecord:
    call_id: str
    line: str
    started: str | None
    ended: str | None


@dataclass(frozen=True)
class AnnotationRecord:
    annotation_id: str
    call_id: str
    kind: str  # classification / escalation
    choice: str  # the category or the agency
    reference: str | None
    at: str
    source: str
    command_id: str | None
    center_id: str | None
    event_id: str
    seq: int | None  # None: reserved, its event not known to be committed

    def as_dict(self) -> dict[str, object]:
        key = "category" if self.kind == "classification" else "agency"
        return {
            "annotation_id": self.annotation_id,
            "kind": self.kind,
            key: self.choice,
            "reference": self.reference,
            "at": self.at,
            "source": self.source,
            "command_id": self.command_id,
            "event_id": self.event_id,
            "seq": self.seq,
        }


_ANNOTATION_COLUMNS = (
    "annotation_id, call_id, kind, choice, reference, at, source, command_id, center_id, "
    "event_id, seq"
)


class CallRegistry:
    """Reported calls and their annotations; see the module docstring."""

    def __init__(
        self, path: str | Path, *, retention_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.retention_s = retention_s
        self._clock = clock
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=10
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._queue: queue.Queue[list[tuple[str, str, str, str]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="call-registry", daemon=True)
        self.prune()

    # ------------------------------------------------------------ the feed

    def start(self) -> CallRegistry:
        self._thread.start()
        return self

    def on_commit(self, rows: list[PendingRow]) -> None:
        """Outbox commit listener (writer thread): queue the call rows, nothing else."""
        calls = []
        for row in rows:
            if row.type in _CALL_TYPES:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    document = json.loads(row.payload)
                    data = document["data"]
                    calls.append(
                        (row.type, str(data["call_id"]), str(data["line"]), document["ts"])
                    )
        if calls:
            self._queue.put(calls)

    def record_calls(self, calls: list[tuple[str, str, str, str]]) -> None:
        """(type, call_id, line, ts) of committed call events."""
        now = self._clock()
        with self._lock, self._transaction():
            for event_type, call_id, line, ts in calls:
                if event_type == EventType.CALL_OFFERED.value:
                    self._conn.execute(
                        "INSERT INTO calls (call_id, line, started, seen_at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (call_id) DO UPDATE SET started=excluded.started",
                        (call_id, line, ts, now),
                    )
                else:  # an end seen without its offer (reported before the registry existed)
                    self._conn.execute(
                        "INSERT INTO calls (call_id, line, ended, seen_at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (call_id) DO UPDATE SET ended=excluded.ended",
                        (call_id, line, ts, now),
                    )

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until every call committed so far is recorded (lookups call this first)."""
        if not self._thread.is_alive():
            return
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.001)

    def _run(self) -> None:
        next_prune = time.monotonic() + PRUNE_INTERVAL_S
        while True:
            try:
                calls = self._queue.get(timeout=60.0)
            except queue.Empty:
                calls = []
            else:
                if calls is None:
                    self._queue.task_done()
                    return
            try:
                if calls:
                    self.record_calls(calls)
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_INTERVAL_S
                    self.prune()
            except sqlite3.Error:
                log.exception("cannot record calls in %s", self.path)
            finally:
                if calls:  # settle() polls unfinished_tasks: done only after the write
                    self._queue.task_done()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
        with self._lock:
            self._conn.close()

    # ------------------------------------------------------------ lookups

    def call(self, call_id: str) -> CallRecord | None:
        self.settle()
        oldest = self._clock() - self.retention_s
        with self._lock:
            row = self._conn.execute(
                "SELECT call_id, line, started, ended FROM calls WHERE call_id=? AND seen_at>=?",
                (call_id, oldest),
            ).fetchone()
        return None if row is None else CallRecord(*row)

    def annotation(self, annotation_id: str) -> AnnotationRecord | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_ANNOTATION_COLUMNS} FROM annotations WHERE annotation_id=?",
                (annotation_id,),
            ).fetchone()
        return None if row is None else AnnotationRecord(*row)

    def annotations_of(self, call_id: str) -> list[AnnotationRecord]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_ANNOTATION_COLUMNS} FROM annotations WHERE call_id=? "
                "ORDER BY created_at, annotation_id",
                (call_id,),
            ).fetchall()
        return [AnnotationRecord(*row) for row in rows]

    # ------------------------------------------------------------ annotations

    def reserve(self, record: AnnotationRecord) -> None:
        """Store an annotation before its event is submitted (seq unknown yet)."""
        with self._lock, self._transaction():
            self._conn.execute(
                f"INSERT INTO annotations ({_ANNOTATION_COLUMNS}, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) ON CONFLICT DO NOTHING",
                (
                    record.annotation_id,
                    record.call_id,
                    record.kind,
                    record.choice,
                    record.reference,
                    record.at,
                    record.source,
                    record.command_id,
                    record.center_id,
                    record.event_id,
                    self._clock(),
                ),
            )

    def committed(self, annotation_id: str, seq: int) -> None:
        with self._lock, self._transaction():
            self._conn.execute(
                "UPDATE annotations SET seq=? WHERE annotation_id=?", (seq, annotation_id)
            )

    def prune(self) -> int:
        """Delete calls and annotations older than the retention; how many rows went."""
        oldest = self._clock() - self.retention_s
        with self._lock, self._transaction():
            gone = self._conn.execute("DELETE FROM calls WHERE seen_at<?", (oldest,)).rowcount
            gone += self._conn.execute(
                "DELETE FROM annotations WHERE created_at<?", (oldest,)
            ).rowcount
        return int(gone)

    @contextlib.contextmanager
    def _transaction(self):  # type: ignore[no-untyped-def]
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
