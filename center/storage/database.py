"""Opening the center's database (PostgreSQL or SQLite) and bringing its schema up to date.

One code path for both engines: SQLAlchemy Core statements; the few places
where the engines differ are functions here (``insert_for``, ``bucket``).

* **SQLite** (the embedded default): WAL, ``synchronous=FULL``, a busy
  timeout, and every write transaction opened with ``BEGIN IMMEDIATE`` so two
  workers on one file queue for the write lock instead of failing on upgrade
  (readers get an engine whose transactions begin deferred: ``for_reads``).
* **PostgreSQL** through psycopg 3 (``postgresql+psycopg://``).

Schema versions: the ``center_schema`` table holds the version. An empty
database gets the current tables (``tables.metadata``) and is stamped with
``CURRENT_VERSION``; an older one runs each migration N-1 -> N in order. All
of it in one transaction under a lock (``pg_advisory_xact_lock`` on
PostgreSQL, the write lock on SQLite), so workers starting together migrate
once. A database newer than this code is refused (``SchemaTooNew``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.expression import literal_column
from sqlalchemy.types import String

from center.storage import tables

log = logging.getLogger("edge112.center.storage")

SQLITE_BUSY_TIMEOUT_MS = 30_000
MIGRATION_LOCK_ID = 112_112  # pg_advisory_xact_lock key for schema changes


class SchemaTooNew(RuntimeError):
    """The database was written by a newer edge112 center."""


class DatabaseUrlError(ValueError):
    """A database URL this center cannot use."""


def _add_rollups(connection: Connection) -> None:
    """2: the dashboard's rollups (center.rollup), their triggers, filled from ``calls``."""
    from center import rollup

    tables.call_rollup.create(connection)
    tables.ring_rollup.create(connection)
    rollup.install_triggers(connection)
    rollup.backfill(connection)


# Migration N takes a database from version N-1 to N. A release appends one and never
# edits an old one; tables.py always describes the newest version.
MIGRATIONS: list[Callable[[Connection], None]] = [_add_rollups]
CURRENT_VERSION = 1 + len(MIGRATIONS)


def open_engine(url: str, *, pool_size: int = 5, for_reads: bool = False) -> Engine:
    """An engine for ``url`` set up as the module docstring says.

    ``for_reads``: on SQLite, transactions begin deferred (a reader must not take the
    write lock); the API and the live view use such an engine.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise DatabaseUrlError(f"{url}: the center needs a database file, not memory")
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _setup_sqlite(engine, "BEGIN" if for_reads else "BEGIN IMMEDIATE")
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_size=pool_size, pool_pre_ping=True)
    raise DatabaseUrlError(f"{url}: expected a sqlite:// or postgresql+psycopg:// URL")


def _setup_sqlite(engine: Engine, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we say BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin)


def insert_for(connection: Connection, table: Any) -> Any:
    """An INSERT that knows ``ON CONFLICT`` for this connection's engine."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def migrate(engine: Engine) -> list[int]:
    """Bring the schema to CURRENT_VERSION; returns the versions applied (empty if current)."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_ID)))
        version = schema_version(connection)
        if version > CURRENT_VERSION:
            raise SchemaTooNew(
                f"center database schema version {version} is newer than this edge112 "
                f"knows ({CURRENT_VERSION}): upgrade edge112"
            )
        if version == CURRENT_VERSION:
            return []
        now = datetime.now(UTC)
        if version == 0:
            tables.metadata.create_all(connection)
            from center import rollup

            rollup.install_triggers(connection)  # what create_all cannot say
            connection.execute(
                tables.schema_version.insert().values(version=CURRENT_VERSION, applied_at=now)
            )
            log.info("created the center schema, version %d", CURRENT_VERSION)
            return [CURRENT_VERSION]
        applied = []
        for target in range(version + 1, CURRENT_VERSION + 1):
            MIGRATIONS[target - 2](connection)  # MIGRATIONS[0] takes 1 -> 2
            applied.append(target)
        connection.execute(
            tables.schema_version.update().values(version=CURRENT_VERSION, applied_at=now)
        )
        log.info("migrated the center schema from %d to %d", version, CURRENT_VERSION)
        return applied


def schema_version(connection: Connection) -> int:
    if not inspect(connection).has_table(tables.schema_version.name):
        return 0
    found = connection.execute(select(func.max(tables.schema_version.c.version))).scalar()
    return int(found or 0)


# ---------------------------------------------------------------- time buckets

BUCKET_UNITS = ("hour", "day", "month")
_SQLITE_FORMATS = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "month": "%Y-%m"}
_POSTGRES_FORMATS = {"hour": 'YYYY-MM-DD"T"HH24', "day": "YYYY-MM-DD", "month": "YYYY-MM"}


def bucket(
    column: ColumnElement[Any], unit: str, offset_minutes: int, dialect: str
) -> ColumnElement[str]:
    """The local hour, day or month of a UTC time as text ('2026-11-28T04', '2026-11-28',
    '2026-11'), the same on both engines. Inline literals (a unit from BUCKET_UNITS, an
    integer offset), so the expression reads the same in SELECT and GROUP BY."""
    if unit not in BUCKET_UNITS:
        raise ValueError(f"unit must be one of {BUCKET_UNITS}, got {unit!r}")
    offset = int(offset_minutes)
    if dialect == "postgresql":
        local = column.op("AT TIME ZONE")(literal_column("'UTC'")) + literal_column(
            f"interval '{offset} minutes'"
        )
        return func.to_char(local, literal_column(f"'{_POSTGRES_FORMATS[unit]}'"), type_=String)
    return func.strftime(
        literal_column(f"'{_SQLITE_FORMATS[unit]}'"),
        column,
        literal_column(f"'{offset:+d} minutes'"),
        type_=String,
    )
