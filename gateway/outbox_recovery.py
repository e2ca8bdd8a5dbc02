"""Recovery of a damaged outbox, and the seq reservation that survives even a lost one.

At start the outbox runs ``PRAGMA integrity_check``. When it fails (or the
file is not a database at all), ``recover`` moves the file and its WAL aside
as ``<outbox>.damaged-<time>``, reads every row it still can (by seq range,
then row by row inside a range that fails, so one bad page costs only its
rows), writes them with their original seq and bytes into a fresh file, and
returns a ``gateway.alarm`` that lists what was recovered, what could not be
read and where seq continues.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gateway.events import AlarmSeverity, GatewayAlarm
from gateway.outbox_schema import migrate

log = logging.getLogger("edge112.outbox")

COLUMNS = "seq, priority, type, event_id, topic, payload, size, created_at"
SEQ_RESERVATION = 10_000  # seqs reserved at a time in the side file <outbox>.seq


class SeqReservation:
    """A high-water mark for seq kept beside the database (``<outbox>.seq``).

    Before the writer hands out a seq at or above the mark, it moves the mark
    ``SEQ_RESERVATION`` further and fsyncs the file: one fsync per 10,000
    events. If the database is ever lost beyond repair, seq resumes at the
    mark, so no seq is used twice; the skipped range is reported in an alarm.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mark = 0
        with contextlib.suppress(OSError, ValueError):
            self.mark = int(path.read_text().strip() or 0)

    def cover(self, next_seq: int) -> None:
        if next_seq < self.mark:
            return
        mark = next_seq + SEQ_RESERVATION
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "w") as handle:
            handle.write(f"{mark}\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self.mark = mark


def connect(path: str | Path, *, synchronous: str = "full") -> sqlite3.Connection:
    """A connection with the outbox's pragmas (autocommit; transactions are explicit)."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def collapse_seqs(seqs: Iterable[int]) -> list[list[int]]:
    """[1,2,3,7,9,10] -> [[1,3],[7,7],[9,10]]: seq ranges for an alarm."""
    ranges: list[list[int]] = []
    for seq in sorted(seqs):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    return ranges


def recover(
    path: Path, damage: str, *, synchronous: str, reservation: SeqReservation
) -> tuple[sqlite3.Connection, GatewayAlarm]:
    """Move a damaged outbox aside, copy every readable row into a fresh one, say what happened."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(str(path) + suffix)
        if source.exists():
            os.replace(source, Path(str(aside) + suffix))
    log.critical("outbox %s is damaged (%s); moved to %s, recovering rows", path, damage, aside)
    rows, next_seq, unreadable = salvage(aside)
    conn = connect(path, synchronous=synchronous)
    migrate(conn)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        f"INSERT OR IGNORE INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    recovered_max = max((row[0] for row in rows), default=0)
    known = max(next_seq or 1, recovered_max + 1)
    # The meta row is the truth when it could be read; otherwise the reservation is.
    next_seq = known if next_seq is not None else max(known, reservation.mark)
    skipped = [[known, next_seq - 1]] if next_seq > known else []
    conn.execute("UPDATE meta SET value=? WHERE key='next_seq'", (next_seq,))
    conn.execute("COMMIT")
    alarm = GatewayAlarm(
        code="outbox_damaged",
        severity=AlarmSeverity.CRITICAL,
        message=(
            f"outbox file was damaged ({damage}); recovered {len(rows)} queued events; "
            + (
                f"{len(unreadable)} seqs could not be read and may be lost: "
                f"{collapse_seqs(unreadable)}; "
                if unreadable
                else ""
            )
            + f"seq continues at {next_seq}"
            + (f" (seqs {known}-{next_seq - 1} may have been used before)" if skipped else "")
            + f"; damaged file kept at {aside}"
        ),
        detail={
            "damage": damage,
            "recovered": len(rows),
            "recovered_seqs": collapse_seqs(row[0] for row in rows),
            "unreadable_seqs": collapse_seqs(unreadable),
            "next_seq": next_seq,
            "skipped_seqs": skipped,
            "moved_to": str(aside),
        },
    )
    return conn, alarm


def salvage(path: Path) -> tuple[list[tuple[Any, ...]], int | None, list[int]]:
    """Rows still readable from a damaged file, its next_seq, and seqs that could not be read.

    Reads by seq range (the rowid b-tree), 256 at a time, falling back to one
    row at a time inside a range that fails, so one bad page costs only its rows.
    """
    rows: list[tuple[Any, ...]] = []
    unreadable: list[int] = []
    try:
        old = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return rows, None, unreadable

    def scalar(sql: str) -> int | None:
        with contextlib.suppress(sqlite3.Error, TypeError, ValueError):
            return int(old.execute(sql).fetchone()[0])
        return None

    with contextlib.closing(old):
        next_seq = scalar("SELECT value FROM meta WHERE key='next_seq'")
        top = (next_seq - 1) if next_seq else scalar("SELECT max(seq) FROM events")
        if top is None:
            return rows, None, unreadable
        low = scalar("SELECT min(seq) FROM events") or 1
        for start in range(low, top + 1, 256):
            stop = min(start + 255, top)
            try:
                chunk = old.execute(
                    f"SELECT {COLUMNS} FROM events WHERE seq BETWEEN ? AND ?", (start, stop)
                ).fetchall()
                rows.extend(tuple(row) for row in chunk)
                continue
            except sqlite3.Error:
                pass
            for seq in range(start, stop + 1):
                try:
                    row = old.execute(
                        f"SELECT {COLUMNS} FROM events WHERE seq=?", (seq,)
                    ).fetchone()
                except sqlite3.Error:
                    unreadable.append(seq)
                    continue
                if row is not None:
                    rows.append(tuple(row))
    return rows, next_seq, unreadable
