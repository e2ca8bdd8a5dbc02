"""The portal's figures, from the ``calls``, ``annotations``, ``gateways`` and ``lines`` tables.

A call's **category** is the call-taker's (``desk_category``: darurat,
informasi, prank, ghost, terputus) when the desk classified it, else what the
gateway knows (``terputus`` for a call abandoned before an answer, ``ghost``
when its audio showed nobody spoke), else ``unclassified``. A call counts in
the period and bucket of ``counted_at``: the time of its ``call.offered``
(the gateway's clock, or the center's when that clock is off).

Buckets (hour, day, month) are in local time at ``stats.utc_offset`` (WIB,
+07:00, by default; WITA +08:00 and WIT +09:00 regions can ask for theirs).
Answer-time percentiles are nearest-rank over ``ring_time_ms`` of answered
calls, to **1 second**: the value is the whole second of the nearest-rank ring
time, in ms (4,999 ms gives 4000); a percentile at 120 s or more is the exact
ring time (the same numbers on PostgreSQL and SQLite).

Whole hours of a period are read from the rollups (``center.rollup``: UTC day
and hour rows kept by triggers on ``calls``), the partial hours at its ends
(a period edge inside an hour) from ``calls``: the answers are those of a scan
of ``calls``, at a cost of about one row per (day or hour, region, category)
instead of one per call.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal_column, or_, select

from center import rollup
from center.regions import region_name, regions
from center.storage import tables
from center.storage.database import bucket
from gateway.events import CallCategory, format_ts

CATEGORIES = (*(category.value for category in CallCategory), "unclassified")
PERCENTILES = (50, 90, 95, 99)


def category_expression() -> Any:
    calls = tables.calls
    # an inline literal: the expression must read the same in SELECT and GROUP BY
    return func.coalesce(
        calls.c.desk_category, calls.c.gateway_category, literal_column("'unclassified'")
    )


def _in_period(column: Any, start: datetime, end: datetime) -> Any:
    return and_(column >= start, column < end)


def _in_rollup(table: Any, ranges: list[tuple[int, datetime, datetime]]) -> Any:
    return or_(
        *(
            and_(table.c.hours == hours, table.c.starts >= first, table.c.starts < last)
            for hours, first, last in ranges
        )
    )


def calls_by_region(connection: Connection, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per kabupaten/kota: calls by category, abandoned, ghost, answered, escalations."""
    calls, annotations = tables.calls, tables.call_annotations
    category = category_expression().label("category")
    per_region: dict[str, dict[str, Any]] = {}

    def row_for(code: str) -> dict[str, Any]:
        if code not in per_region:
            per_region[code] = {
                "region": code,
                "region_name": region_name(code),
                "calls": 0,
                **{name: 0 for name in CATEGORIES},
                "abandoned": 0,
                "ghost_detected": 0,
                "answered": 0,
                "escalations": 0,
            }
        return per_region[code]

    ranges, scans = rollup.split_period(start, end)
    queries = [
        select(
            calls.c.region,
            category,
            func.count(),
            func.sum(case((calls.c.abandoned.is_(True), 1), else_=0)),
            func.sum(case((calls.c.ghost.is_(True), 1), else_=0)),
            func.sum(case((calls.c.answered_at.is_not(None), 1), else_=0)),
        )
        .where(_in_period(calls.c.counted_at, first, last))
        .group_by(calls.c.region, category)
        for first, last in scans  # partial hours at the period's ends
    ]
    if ranges:
        counts = tables.call_rollup
        queries.append(
            select(
                counts.c.region,
                counts.c.category,
                func.sum(counts.c.calls),
                func.sum(counts.c.abandoned),
                func.sum(counts.c.ghost),
                func.sum(counts.c.answered),
            )
            .where(_in_rollup(counts, ranges))
            .group_by(counts.c.region, counts.c.category)
            .having(func.sum(counts.c.calls) > 0)  # a call moved away leaves zeros behind
        )
    for row in (row for query in queries for row in connection.execute(query)):
        entry = row_for(row.region)
        entry[row.category if row.category in CATEGORIES else "unclassified"] += int(row[2])
        entry["calls"] += int(row[2])
        entry["abandoned"] += int(row[3] or 0)
        entry["ghost_detected"] += int(row[4] or 0)
        entry["answered"] += int(row[5] or 0)
    for row in connection.execute(
        select(calls.c.region, func.count())
        .select_from(annotations.join(calls, annotations.c.call_id == calls.c.call_id))
        .where(annotations.c.kind == "escalation", _in_period(annotations.c.at, start, end))
        .group_by(calls.c.region)
    ):
        row_for(row.region)["escalations"] = int(row[1])
    return sorted(per_region.values(), key=lambda entry: (-entry["calls"], entry["region"]))


def calls_over_time(
    connection: Connection,
    start: datetime,
    end: datetime,
    unit: str,
    offset_minutes: int,
    region: str | None = None,
) -> list[dict[str, Any]]:
    """Calls per local hour/day/month, kabupaten/kota and category."""
    calls = tables.calls
    period = bucket(calls.c.counted_at, unit, offset_minutes, connection.dialect.name).label(
        "bucket"
    )
    category = category_expression().label("category")
    query = (
        select(period, calls.c.region, category, func.count().label("calls"))
        .where(_in_period(calls.c.counted_at, start, end))
        .group_by(period, calls.c.region, category)
        .order_by(period, calls.c.region, category)
    )
    if region:
        query = query.where(calls.c.region == region)
    return [
        {
            "bucket": row.bucket,
            "region": row.region,
            "region_name": region_name(row.region),
            "category": row.category,
            "calls": int(row.calls),
        }
        for row in connection.execute(query)
    ]


def answer_time(
    connection: Connection, start: datetime, end: datetime, region: str | None = None
) -> dict[str, Any]:
    """Nearest-rank percentiles of ring_time_ms over answered calls, to the second."""
    calls = tables.calls
    where: list[Any] = [calls.c.answered_at.is_not(None), calls.c.ring_time_ms.is_not(None)]
    if region:
        where.append(calls.c.region == region)
    ranges, scans = rollup.split_period(start, end)
    seconds: Counter[int] = Counter()  # answered calls per whole second of ring time
    for first, last in scans:  # partial hours at the period's ends
        for ring_ms, n in connection.execute(
            select(calls.c.ring_time_ms, func.count())
            .where(_in_period(calls.c.counted_at, first, last), *where)
            .group_by(calls.c.ring_time_ms)
        ):
            seconds[min(max(int(ring_ms), 0) // 1000, rollup.RING_OVERFLOW_S)] += int(n)
    if ranges:
        ring = tables.ring_rollup
        for ring_s, n in connection.execute(
            select(ring.c.ring_s, func.sum(ring.c.answered))
            .where(ring.c.region == (region or ""), _in_rollup(ring, ranges))
            .group_by(ring.c.ring_s)
        ):
            seconds[int(ring_s)] += int(n)
    count = sum(seconds.values())
    result: dict[str, Any] = {"answered": count}
    for percentile in PERCENTILES:
        value = None
        if count:
            rank = max(1, math.ceil(percentile / 100 * count))
            below = 0
            for ring_s in sorted(seconds):
                if below + seconds[ring_s] >= rank:
                    break
                below += seconds[ring_s]
            value = ring_s * 1000
            if ring_s == rollup.RING_OVERFLOW_S:  # 120 s or more: the exact ring time
                value = connection.execute(
                    select(calls.c.ring_time_ms)
                    .where(
                        _in_period(calls.c.counted_at, start, end),
                        calls.c.ring_time_ms >= rollup.RING_OVERFLOW_S * 1000,
                        *where,
                    )
                    .order_by(calls.c.ring_time_ms)
                    .limit(1)
                    .offset(rank - below - 1)
                ).scalar()
        result[f"p{percentile}_ms"] = value
    return result


def escalations_by_agency(
    connection: Connection, start: datetime, end: datetime, region: str | None = None
) -> list[dict[str, Any]]:
    annotations, calls = tables.call_annotations, tables.calls
    query = (
        select(annotations.c.agency, func.count().label("escalations"))
        .select_from(annotations.join(calls, annotations.c.call_id == calls.c.call_id))
        .where(annotations.c.kind == "escalation", _in_period(annotations.c.at, start, end))
        .group_by(annotations.c.agency)
        .order_by(func.count().desc(), annotations.c.agency)
    )
    if region:
        query = query.where(calls.c.region == region)
    return [
        {"agency": row.agency, "escalations": int(row.escalations)}
        for row in connection.execute(query)
    ]


def lines_health(connection: Connection) -> list[dict[str, Any]]:
    lines, gateways = tables.lines, tables.gateways
    query = (
        select(lines, gateways.c.region, gateways.c.status)
        .select_from(lines.join(gateways, lines.c.gateway_id == gateways.c.gateway_id))
        .order_by(lines.c.gateway_id, lines.c.line)
    )
    return [
        {
            "gateway_id": row.gateway_id,
            "region": row.region,
            "line": row.line,
            "state": row.state if row.status != "offline" else "unknown",
            "reported_state": row.state,
            "detail": row.detail,
            "signal_dbm": row.signal_dbm,
            "changed_at": format_ts(row.changed_at),
        }
        for row in connection.execute(query)
    ]


def health_summary(connection: Connection) -> dict[str, Any]:
    """Gateways and lines up/down (a line of an offline gateway counts as down)."""
    gateways = tables.gateways
    state = func.coalesce(gateways.c.status, literal_column("'unknown'"))
    status: dict[str, int] = {
        str(name): int(n)
        for name, n in connection.execute(select(state, func.count()).group_by(state)).all()
    }
    line_states: dict[str, int] = defaultdict(int)
    for line in lines_health(connection):
        line_states["up" if line["state"] == "up" else "down"] += 1
    return {
        "gateways_online": int(status.get("online", 0)),
        "gateways_offline": int(status.get("offline", 0)),
        "gateways_unknown": int(status.get("unknown", 0)),
        "lines_up": line_states["up"],
        "lines_down": line_states["down"],
    }


def recent_calls(connection: Connection, limit: int = 50) -> list[dict[str, Any]]:
    calls = tables.calls
    category = category_expression().label("category")
    query = (
        select(calls, category).order_by(calls.c.counted_at.desc(), calls.c.call_id).limit(limit)
    )
    return [
        {
            "call_id": row.call_id,
            "gateway_id": row.gateway_id,
            "region": row.region,
            "region_name": region_name(row.region),
            "line": row.line,
            "counted_at": format_ts(row.counted_at),
            "answered": row.answered_at is not None,
            "abandoned": bool(row.abandoned),
            "ring_time_ms": row.ring_time_ms,
            "duration_ms": row.duration_ms,
            "category": row.category,
            "category_source": "desk"
            if row.desk_category
            else ("gateway" if row.gateway_category else None),
        }
        for row in connection.execute(query)
    ]


def region_table() -> list[dict[str, str]]:
    return [
        {"code": r.code, "name": r.name, "province_code": r.province_code, "province": r.province}
        for r in regions().values()
    ]
