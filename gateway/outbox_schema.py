"""Versioned schema of the outbox database, with its migration chain.

``PRAGMA user_version`` holds the schema version. Each migration takes the
database from version N-1 to N inside one transaction; a new release appends a
migration and never edits an old one. Tables are created through sqlite-utils
so their definitions read as data.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils


class SchemaTooNew(RuntimeError):
    """The file was written by a newer edge112 whose schema this one does not know."""


def _v1_events_and_meta(db: sqlite_utils.Database) -> None:
    db["events"].create(  # type: ignore[union-attr]
        {
            "seq": int,  # per-gateway sequence, the contract's seq
            "priority": int,  # gateway.events.Priority, lower leaves first
            "type": str,
            "event_id": str,
            "topic": str,
            "payload": bytes,  # the exact bytes published
            "size": int,  # len(payload) + row overhead, counts against the budget
            "created_at": float,  # unix time of commit
        },
        pk="seq",
        not_null={"priority", "type", "event_id", "topic", "payload", "size", "created_at"},
    )
    db["events"].create_index(  # type: ignore[union-attr]
        ["priority", "seq"], index_name="events_by_priority"
    )
    db["meta"].create({"key": str, "value": int}, pk="key", not_null={"value"})  # type: ignore[union-attr]
    db["meta"].insert({"key": "next_seq", "value": 1})  # type: ignore[union-attr]


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1_events_and_meta]
CURRENT_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Bring the database to CURRENT_VERSION; returns the versions applied."""
    version = schema_version(conn)
    if version > CURRENT_VERSION:
        raise SchemaTooNew(
            f"outbox schema version {version} is newer than this edge112 knows ({CURRENT_VERSION})"
        )
    applied = []
    db = sqlite_utils.Database(conn)
    for target in range(version + 1, CURRENT_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[target - 1](db)
            conn.execute(f"PRAGMA user_version = {target}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(target)
    return applied
