"""Staging tables: a batch's rows reach the database in one bulk load, then set-based SQL.

::

    rows (dicts) ─▶ load(connection, stage, rows)
        PostgreSQL: COPY stage_x FROM STDIN (psycopg 3 ``cursor.copy``), one stream
        SQLite:     sqlite3 executemany into a TEMP table (a C loop, no SQL parsing per row)
    ─▶ INSERT INTO x SELECT ... FROM stage_x ORDER BY ... ON CONFLICT ... [RETURNING]
       (SQLAlchemy Core ``insert().from_select``: the same statement on both engines)

Why: binding a 500-row batch through SQLAlchemy's executemany / insertmanyvalues
costs more than the database's own work (PostgreSQL: psycopg re-parses a
query with thousands of placeholders for every batch; both engines: a
Python bind processor per value). A staging table keeps every guarantee of
the set-based statements (``ON CONFLICT DO NOTHING RETURNING`` says which
rows were new) and moves the rows in bulk.

A stage table is a TEMPORARY table private to its connection, with the
columns of the table it feeds (plus ``ord``), created on its first use on
that connection (remembered in the pool's connection ``info``; after a failed
transaction, which took the creation with it, ``forget`` makes the next use
create it again, ``IF NOT EXISTS``). PostgreSQL empties it at commit (``ON
COMMIT DELETE ROWS``); SQLite has no such clause, so ``load`` empties it
first. Each stage table is loaded at most once per transaction.

Values: Python values as the center's tables take them (aware UTC
datetimes, bools, dicts for JSON columns); ``load`` converts them the way
SQLAlchemy's own types would store them (SQLite: naive UTC text
``YYYY-MM-DD HH:MM:SS.ffffff``, 0/1, JSON text), so rows read back the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, Column, Connection, Integer, MetaData, Table, select, true
from sqlalchemy.schema import CreateTable

from center.storage import tables
from center.storage.database import insert_for

stage_metadata = MetaData()  # never created by create_all: by _ensure, per connection

ORDER_COLUMN = "ord"  # arrival order within the batch


def _stage_of(table: Table, *, skip: Sequence[str] = ()) -> Table:
    columns = [Column(ORDER_COLUMN, Integer, nullable=False)]
    columns += [Column(c.name, c.type) for c in table.columns if c.name not in skip]
    return Table(
        f"stage_{table.name}",
        stage_metadata,
        *columns,
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DELETE ROWS",
    )


stage_events = _stage_of(tables.events, skip=("id",))
stage_calls = _stage_of(tables.calls)
stage_gateways = _stage_of(tables.gateways)
stage_lines = _stage_of(tables.lines)


def _sqlite_time(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text of the UTC time (always 6 fraction digits)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: the center stores aware UTC times only")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_bool(value: bool) -> int:
    return int(value)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


@cache
def _converters(stage: Table, dialect: str) -> tuple[Callable[[Any], Any] | None, ...]:
    """Per column: how a Python value becomes what the driver loads (None: as it is)."""
    converters: list[Callable[[Any], Any] | None] = []
    for column in stage.columns:
        if isinstance(column.type, JSON):
            converters.append(_json_text)
        elif dialect == "sqlite" and isinstance(column.type, tables.UtcDateTime):
            converters.append(_sqlite_time)
        elif dialect == "sqlite" and isinstance(column.type, Boolean):
            converters.append(_sqlite_bool)
        else:
            converters.append(None)
    return tuple(converters)


def row_keys(stage: Table) -> tuple[str, ...]:
    """The column names in the order ``load`` expects each row's values."""
    return tuple(column.name for column in stage.columns)


def load(connection: Connection, stage: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Put ``rows`` (dicts; a missing key is NULL) into ``stage``, replacing what it held.

    Each row gets its position in ``rows`` as ``ord`` unless it carries one.
    """
    dialect = connection.dialect.name
    _ensure(connection, stage)
    keys = row_keys(stage)
    converters = _converters(stage, dialect)
    values = []
    for position, row in enumerate(rows):
        record = []
        for key, convert in zip(keys, converters, strict=True):
            value = row.get(key, position if key == ORDER_COLUMN else None)
            record.append(value if convert is None or value is None else convert(value))
        values.append(record)
    driver = connection.connection.driver_connection
    assert driver is not None
    names = ", ".join(keys)
    if dialect == "postgresql":
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY {stage.name} ({names}) FROM STDIN") as copy,
        ):
            for record in values:
                copy.write_row(record)
        return
    cursor = driver.cursor()
    try:
        cursor.execute(f"DELETE FROM temp.{stage.name}")
        marks = ", ".join("?" for _ in keys)
        cursor.executemany(f"INSERT INTO temp.{stage.name} ({names}) VALUES ({marks})", values)
    finally:
        cursor.close()


def insert_from(
    connection: Connection,
    table: Table,
    stage: Table,
    names: Sequence[str],
    *,
    where: Any = None,
    order_by: Sequence[str] = (ORDER_COLUMN,),
) -> Any:
    """``INSERT INTO table (names) SELECT names FROM stage [WHERE] ORDER BY ...``, with the
    dialect's ``ON CONFLICT`` methods (the WHERE clause is always there: SQLite needs one
    before ``ON CONFLICT`` in an ``INSERT ... SELECT``)."""
    query = select(*(stage.c[name] for name in names)).where(true() if where is None else where)
    return insert_for(connection, table).from_select(
        list(names), query.order_by(*(stage.c[name] for name in order_by))
    )


CREATED_KEY = "edge112_stage_tables"  # in the pool's per-DBAPI-connection info


def _ensure(connection: Connection, stage: Table) -> None:
    """Create ``stage`` once per database connection (the pool clears ``info`` on reconnect)."""
    created = connection.connection.info.setdefault(CREATED_KEY, set())
    if stage.name not in created:
        connection.exec_driver_sql(_create_sql(stage, connection))
        created.add(stage.name)


def forget(connection_info: dict[Any, Any]) -> None:
    """A transaction failed (``connection.connection.info`` of its connection): a stage
    table it created is gone with it, so the next use creates it again."""
    connection_info.pop(CREATED_KEY, None)


_created: dict[tuple[Table, str], str] = {}


def _create_sql(stage: Table, connection: Connection) -> str:
    key = (stage, connection.dialect.name)
    if key not in _created:
        ddl = CreateTable(stage, if_not_exists=True).compile(dialect=connection.dialect)
        _created[key] = str(ddl).strip()
    return _created[key]
