"""The read side of the outbox: pending rows for the forwarder, stats and peek for the CLI.

Readers never block the writer (WAL). One reader per thread; each opens its
own connection. ``immutable`` readers serve the start-up case where the
outbox could not open its file for writing (see ``Outbox.reader``).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.events import Priority


@dataclass(frozen=True)
class PendingRow:
    seq: int
    priority: int
    type: str
    topic: str
    payload: bytes


@dataclass
class OutboxStats:
    pending: int
    pending_by_priority: dict[str, int]
    pending_bytes: int
    max_bytes: int
    oldest_age_s: float | None
    next_seq: int
    path: str
    file_bytes: int
    counters: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "pending_by_priority": self.pending_by_priority,
            "pending_bytes": self.pending_bytes,
            "max_bytes": self.max_bytes,
            "oldest_age_s": self.oldest_age_s,
            "next_seq": self.next_seq,
            "path": self.path,
            "file_bytes": self.file_bytes,
            "counters": self.counters,
        }


class OutboxReader:
    """Read side of the outbox, one per thread: fetch pending rows, stats, peek."""

    def __init__(self, path: str | Path, *, immutable: bool = False) -> None:
        """``immutable``: read the file as it is, without the WAL index (no ``-shm`` to
        create): only correct while nobody writes and no ``-wal`` holds commits, which is
        the case when the outbox could not open its file at start (a full disk)."""
        self.path = Path(path)
        self.immutable = immutable
        if immutable:
            uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
            self._conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        else:
            self._conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
            self._conn.execute("PRAGMA busy_timeout=30000")

    def fetch_after(self, priority: int, after_seq: int, limit: int) -> list[PendingRow]:
        rows = self._conn.execute(
            "SELECT seq, priority, type, topic, payload FROM events"
            " WHERE priority=? AND seq>? ORDER BY seq LIMIT ?",
            (priority, after_seq, limit),
        ).fetchall()
        return [PendingRow(*row) for row in rows]

    def peek(self, limit: int = 10) -> list[PendingRow]:
        rows = self._conn.execute(
            "SELECT seq, priority, type, topic, payload FROM events ORDER BY priority, seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [PendingRow(*row) for row in rows]

    def stats(self, max_bytes: int = 0, counters: dict[str, int] | None = None) -> OutboxStats:
        by_priority = {
            Priority(priority).name.lower(): count
            for priority, count in self._conn.execute(
                "SELECT priority, count(*) FROM events GROUP BY priority"
            )
        }
        pending_bytes, oldest = self._conn.execute(
            "SELECT coalesce(sum(size), 0), min(created_at) FROM events"
        ).fetchone()
        next_seq = self._conn.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
        file_bytes = sum(
            Path(str(self.path) + suffix).stat().st_size
            for suffix in ("", "-wal")
            if Path(str(self.path) + suffix).exists()
        )
        return OutboxStats(
            pending=sum(by_priority.values()),
            pending_by_priority=by_priority,
            pending_bytes=int(pending_bytes),
            max_bytes=max_bytes,
            oldest_age_s=None if oldest is None else round(time.time() - oldest, 3),
            next_seq=int(next_seq),
            path=str(self.path),
            file_bytes=file_bytes,
            counters=dict(counters or {}),
        )

    def close(self) -> None:
        self._conn.close()
