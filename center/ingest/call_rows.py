"""The ``calls`` rows a batch's new call events make: one row per call, whatever the order.

A call's events arrive in any order, split between batches and workers. Each
event type sets its own columns (``_call_row``); the columns it does not set
keep their value, or their default on a new row::

    call.offered      presentation, offered_at, and counted_at / line (which the
                      first event of a call sets on its new row)
    call.answered     answered_at, ring_time_ms
    call.abandoned    abandoned, ended_at, ring_time_ms, cause, gateway_category=terputus
    call.ended        ended_at, duration_ms, cause
    call.audio_summary (ghost)  ghost, gateway_category=ghost

The events of one batch are merged in Python in a fixed type order (the
later type wins a column both set; ``abandoned`` / ``ghost`` once true stay
true), then stored by one ``INSERT ... SELECT FROM stage_calls ORDER BY call_id
ON CONFLICT DO UPDATE`` (``COALESCE`` keeps what the batch does not set): one
statement per batch, rows locked in ``call_id`` order, so two workers that
share a call's events cannot deadlock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, or_

from center.desk import ANNOTATION_EVENT_TYPES
from center.ingest.staging import insert_from, load, stage_calls
from center.ingest.validate import Incoming
from center.storage import tables

INSERT_ONLY_CALL_COLUMNS = ("gateway_id", "region")
OFFER_CALL_COLUMNS = ("counted_at", "line")  # set by the first event, then by call.offered
FLAG_CALL_COLUMNS = ("abandoned", "ghost")
NOT_CALL_ROWS = frozenset({"call.dtmf", *ANNOTATION_EVENT_TYPES})  # call events with no call row


def apply_calls(connection: Connection, fresh: Sequence[Incoming], now: datetime) -> None:
    """Merge the batch's new call events into ``calls`` (in the ingest transaction)."""
    groups: dict[tuple[str, bool], list[Incoming]] = defaultdict(list)
    for message in fresh:
        if message.type.startswith("call.") and message.type not in NOT_CALL_ROWS:
            ghost = message.data.get("category") == "ghost"
            groups[(message.type, ghost)].append(message)
    # One row per call, merged in the order the per-type upserts used to run (sorted
    # types; the first event of a type per call): one statement, locks in call_id order
    # (two workers sharing a call's events cannot deadlock).
    merged: dict[str, dict[str, Any]] = {}
    for (event_type, _ghost), messages in sorted(groups.items()):
        seen: set[str] = set()
        for message in messages:
            row = _call_row(message, now)
            call_id = row["call_id"]
            if call_id in seen:
                continue
            seen.add(call_id)
            current = merged.get(call_id)
            if current is None:
                merged[call_id] = row  # the row that inserts a new call
                continue
            for key, value in row.items():
                if key in INSERT_ONLY_CALL_COLUMNS:
                    continue
                if key in OFFER_CALL_COLUMNS and event_type != "call.offered":
                    continue
                current[key] = current[key] or value if key in FLAG_CALL_COLUMNS else value
    if not merged:
        return
    calls = tables.calls
    load(connection, stage_calls, [merged[call_id] for call_id in sorted(merged)])
    names = [c.name for c in calls.columns if not c.name.startswith("desk_")]
    statement = insert_from(connection, calls, stage_calls, names, order_by=("call_id",))
    excluded = statement.excluded
    updates: dict[str, Any] = {"updated_at": excluded.updated_at}
    for name in names:
        if name in OFFER_CALL_COLUMNS:  # only call.offered moves them
            updates[name] = case(
                (excluded.offered_at.is_not(None), excluded[name]), else_=calls.c[name]
            )
        elif name in FLAG_CALL_COLUMNS:  # once true, true
            updates[name] = or_(calls.c[name], excluded[name])
        elif name not in INSERT_ONLY_CALL_COLUMNS and name not in ("call_id", "updated_at"):
            updates[name] = func.coalesce(excluded[name], calls.c[name])  # set by a type
    connection.execute(statement.on_conflict_do_update(index_elements=["call_id"], set_=updates))


def _call_row(message: Incoming, now: datetime) -> dict[str, Any]:
    """The columns this event sets (the same keys for every event of one type and ghost flag:
    they share one executemany; the others keep their value, or their default when new)."""
    data = message.data
    row: dict[str, Any] = {
        "call_id": data["call_id"],
        "gateway_id": message.gateway_id,
        "region": message.region,
        "line": data["line"],
        "counted_at": message.counted_at,
        "updated_at": now,
        "abandoned": False,
        "ghost": False,
    }
    if message.type == "call.offered":
        row |= {"presentation": data["presentation"], "offered_at": message.ts}
    elif message.type == "call.answered":
        row |= {"answered_at": message.ts, "ring_time_ms": data["ring_time_ms"]}
    elif message.type == "call.abandoned":
        row |= {
            "abandoned": True,
            "ended_at": message.ts,
            "ring_time_ms": data["ring_time_ms"],
            "cause": data["cause"],
            "gateway_category": "terputus",
        }
    elif message.type == "call.ended":
        row |= {"ended_at": message.ts, "duration_ms": data["duration_ms"], "cause": data["cause"]}
    elif message.type == "call.audio_summary" and data.get("category") == "ghost":
        row |= {"ghost": True, "gateway_category": "ghost"}
    return row
