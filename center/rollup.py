"""The dashboard's rollup of ``calls``: counts per UTC hour and day, kept by triggers.

Two tables (``center.storage.tables``)::

    call_rollup  (hours, starts, region, category) -> calls, abandoned, ghost, answered
    ring_rollup  (hours, region or '', starts, ring_s) -> answered calls with that ring time

``hours`` is 1 (a row per UTC hour) or 24 (a row per UTC day): a month reads
about 30 day rows and at most 46 hour rows per key instead of every call.
``category`` is the call's category as ``center.stats`` defines it (desk,
else gateway, else ``unclassified``); ``ring_s`` is the whole second of an
answered call's ``ring_time_ms`` (0..119; 120 holds every ring of 120 s or
more), for all regions together (``region = ''``) and per region.

**Triggers on ``calls``** keep them: every writer of ``calls`` (the ingest's
batch upsert, the desk API's and the gateways' classifications, a hand-made
fix) moves the call from its old bucket to its new one in the same
transaction (subtract the old row's key, add the new row's). PostgreSQL:
statement triggers with transition tables, one grouped upsert per statement,
keys in sorted order (two workers lock rollup rows in the same order);
SQLite: row triggers (its writers are serialised anyway). The key expressions
are in one place per engine (``_expressions``), shared by the triggers and the
backfill (``backfill``: at migration time, from the existing ``calls``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

RING_OVERFLOW_S = 120  # ring_s 120: 120 s or more (the percentile is then read from calls)
SPANS = (1, 24)
_COLUMNS = (
    "counted_at",
    "region",
    "desk_category",
    "gateway_category",
    "abandoned",
    "ghost",
    "answered_at",
    "ring_time_ms",
)


def _expressions(dialect: str, span: int) -> dict[str, str]:
    """SQL for a source row ``r`` (columns _COLUMNS and ``sign``): its rollup key and counts."""
    if dialect == "postgresql":
        unit = "hour" if span == 1 else "day"
        return {
            "starts": f"date_trunc('{unit}', r.counted_at, 'UTC')",
            "abandoned": "CASE WHEN r.abandoned THEN 1 ELSE 0 END",
            "ghost": "CASE WHEN r.ghost THEN 1 ELSE 0 END",
            "ring": f"least(greatest(r.ring_time_ms, 0) / 1000, {RING_OVERFLOW_S})",
        }
    fmt = "%Y-%m-%d %H:00:00.000000" if span == 1 else "%Y-%m-%d 00:00:00.000000"
    return {  # the text SQLAlchemy stores for a SQLite DATETIME
        "starts": f"strftime('{fmt}', r.counted_at)",
        "abandoned": "r.abandoned",
        "ghost": "r.ghost",
        "ring": f"min(max(r.ring_time_ms, 0) / 1000, {RING_OVERFLOW_S})",
    }


def _apply(dialect: str, source: str) -> list[str]:
    """Statements adding ``sign`` times each row of ``source`` to both rollups, both spans."""
    category = "coalesce(r.desk_category, r.gateway_category, 'unclassified')"
    answered = "CASE WHEN r.answered_at IS NOT NULL THEN 1 ELSE 0 END"
    ringing = "r.answered_at IS NOT NULL AND r.ring_time_ms IS NOT NULL"
    statements = []
    for span in SPANS:
        e = _expressions(dialect, span)
        statements.append(
            "INSERT INTO call_rollup (hours, starts, region, category, calls, abandoned, ghost, "
            f"answered) SELECT {span}, {e['starts']}, r.region, {category}, sum(r.sign), "
            f"sum(r.sign * {e['abandoned']}), sum(r.sign * {e['ghost']}), "
            f"sum(r.sign * {answered}) FROM ({source}) AS r WHERE true GROUP BY 2, 3, 4 "
            f"HAVING sum(r.sign) <> 0 OR sum(r.sign * {e['abandoned']}) <> 0 "
            f"OR sum(r.sign * {e['ghost']}) <> 0 OR sum(r.sign * {answered}) <> 0 "
            "ORDER BY 2, 3, 4 ON CONFLICT (hours, starts, region, category) DO UPDATE SET "
            "calls = call_rollup.calls + excluded.calls, "
            "abandoned = call_rollup.abandoned + excluded.abandoned, "
            "ghost = call_rollup.ghost + excluded.ghost, "
            "answered = call_rollup.answered + excluded.answered"
        )
        for region in ("r.region", "CAST('' AS VARCHAR(16))"):  # '': all regions
            statements.append(
                "INSERT INTO ring_rollup (hours, region, starts, ring_s, answered) "
                f"SELECT {span}, {region}, {e['starts']}, {e['ring']}, sum(r.sign) "
                f"FROM ({source}) AS r WHERE {ringing} GROUP BY 2, 3, 4 "
                "HAVING sum(r.sign) <> 0 ORDER BY 2, 3, 4 "
                "ON CONFLICT (hours, region, starts, ring_s) DO UPDATE SET "
                "answered = ring_rollup.answered + excluded.answered"
            )
    return statements


def _rows(sign: int, table: str) -> str:
    return f"SELECT {sign} AS sign, {', '.join(_COLUMNS)} FROM {table}"


def _trigger_row(sign: int, alias: str) -> str:  # SQLite: OLD / NEW have no *
    return f"SELECT {sign} AS sign, " + ", ".join(f"{alias}.{c} AS {c}" for c in _COLUMNS)


def install_triggers(connection: Connection) -> None:
    """Create (or replace) the triggers that keep the rollups in step with ``calls``."""
    if connection.dialect.name == "postgresql":
        branches = {
            "INSERT": _rows(1, "new_rows"),
            "UPDATE": f"{_rows(-1, 'old_rows')} UNION ALL {_rows(1, 'new_rows')}",
            "DELETE": _rows(-1, "old_rows"),
        }
        body = "\n".join(
            f"{'IF' if n == 0 else 'ELSIF'} TG_OP = '{op}' THEN\n"
            + "".join(f"  {s};\n" for s in _apply("postgresql", source))
            for n, (op, source) in enumerate(branches.items())
        )
        connection.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION call_rollup_apply() RETURNS trigger "
            f"LANGUAGE plpgsql AS $rollup$\nBEGIN\n{body}END IF;\nRETURN NULL;\nEND\n$rollup$"
        )
        tables = {"INSERT": "NEW TABLE AS new_rows", "DELETE": "OLD TABLE AS old_rows"}
        tables["UPDATE"] = "OLD TABLE AS old_rows NEW TABLE AS new_rows"
        for op, referencing in tables.items():
            name = f"calls_rollup_{op.lower()}"
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON calls")
            connection.exec_driver_sql(
                f"CREATE TRIGGER {name} AFTER {op} ON calls REFERENCING {referencing} "
                "FOR EACH STATEMENT EXECUTE FUNCTION call_rollup_apply()"
            )
        return
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _COLUMNS)
    triggers = {
        "INSERT": ("", _trigger_row(1, "NEW")),
        "UPDATE": (
            f" WHEN {changed}",
            f"{_trigger_row(-1, 'OLD')} UNION ALL {_trigger_row(1, 'NEW')}",
        ),
        "DELETE": ("", _trigger_row(-1, "OLD")),
    }
    for op, (when, source) in triggers.items():
        name = f"calls_rollup_{op.lower()}"
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        connection.exec_driver_sql(
            f"CREATE TRIGGER {name} AFTER {op} ON calls FOR EACH ROW{when} BEGIN\n"
            + "".join(f"  {s};\n" for s in _apply("sqlite", source))
            + "END"
        )


def backfill(connection: Connection) -> None:
    """Rebuild both rollups from ``calls`` (migration time; in the caller's transaction)."""
    connection.exec_driver_sql("DELETE FROM call_rollup")
    connection.exec_driver_sql("DELETE FROM ring_rollup")
    for statement in _apply(connection.dialect.name, _rows(1, "calls")):
        connection.exec_driver_sql(statement)


# ---------------------------------------------------------------- reading


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floor = _floor_hour(moment)
    return floor if floor == moment else floor + timedelta(hours=1)


def _ceil_day(moment: datetime) -> datetime:
    floor = moment.replace(hour=0)
    return floor if floor == moment else floor + timedelta(days=1)


def split_period(
    start: datetime, end: datetime
) -> tuple[list[tuple[int, datetime, datetime]], list[tuple[datetime, datetime]]]:
    """[start, end) as rollup ranges (hours, first starts, end of starts) and the partial
    hours at its ends that only ``calls`` can answer (empty for a period of whole hours)."""
    if end <= start:
        return [], []
    first_hour, last_hour = _ceil_hour(start), _floor_hour(end)
    if first_hour >= last_hour:
        return [], [(start, end)]
    scans = [(start, first_hour)] if start < first_hour else []
    if end > last_hour:
        scans.append((last_hour, end))
    first_day = _ceil_day(first_hour)
    last_day = last_hour.replace(hour=0)
    if first_day >= last_day:
        return [(1, first_hour, last_hour)], scans
    ranges = [(24, first_day, last_day)]
    if first_hour < first_day:
        ranges.append((1, first_hour, first_day))
    if last_day < last_hour:
        ranges.append((1, last_day, last_hour))
    return ranges, scans
