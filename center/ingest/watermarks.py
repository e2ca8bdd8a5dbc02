"""A gateway's watermark: the seq up to which every event is stored or explained as gone.

``gateways.contiguous_seq`` moves in the ingest transaction (``EventStore``)
and in the alarm check (``completeness.heal_watermarks``). In-order arrival
extends it from the batch's own seqs; a gap, an out-of-order seq, or a
gateway whose events two workers share walks the stored seqs and the
``explained`` ranges (``walk_watermarks`` for a batch's gateways together,
``walk_watermark`` for one).
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection, and_, or_, select

from center.storage import tables

WATERMARK_CHUNK = 1000  # seqs read at a time while advancing a gateway's watermark


def walk_watermarks(connection: Connection, marks: dict[str, int]) -> dict[str, int]:
    """``walk_watermark`` for many gateways at once: two queries, not two per gateway.

    The stored seqs of each gateway in (mark, mark + WATERMARK_CHUNK] and its explained
    ranges are read together; a gateway whose watermark reaches the end of that window
    goes on with ``walk_watermark``. (Two workers on a shared subscription each see every
    other seq of a gateway, so most of a batch's gateways need a walk.)
    """
    if not marks:
        return {}
    events, explained = tables.events, tables.explained
    ranges: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for row in connection.execute(
        select(explained.c.gateway_id, explained.c.first_seq, explained.c.last_seq).where(
            explained.c.gateway_id.in_(sorted(marks))
        )
    ):
        ranges[row.gateway_id].append((int(row.first_seq), int(row.last_seq)))
    stored: dict[str, set[int]] = defaultdict(set)
    windows = [
        and_(
            events.c.gateway_id == gateway_id,
            events.c.seq > mark,
            events.c.seq <= mark + WATERMARK_CHUNK,
        )
        for gateway_id, mark in sorted(marks.items())
    ]
    for gateway_id, seq in connection.execute(
        select(events.c.gateway_id, events.c.seq).where(or_(*windows))
    ):
        stored[gateway_id].add(int(seq))
    walked: dict[str, int] = {}
    for gateway_id, start in marks.items():
        mark, limit, seqs = start, start + WATERMARK_CHUNK, stored[gateway_id]
        while True:
            before = mark
            for first, last in ranges[gateway_id]:
                if first <= mark + 1 <= last:
                    mark = max(mark, last)
            while mark + 1 in seqs:
                mark += 1
            if mark >= limit:  # past what was read: on with the general walk
                mark = walk_watermark(connection, gateway_id, mark)
                break
            if mark == before:
                break
        walked[gateway_id] = mark
    return walked


def walk_watermark(connection: Connection, gateway_id: str, mark: int) -> int:
    """The watermark past every seq stored or explained after ``mark``.

    Two workers committing neighbouring seqs of one gateway at the same time cannot see
    each other's rows (PostgreSQL, READ COMMITTED), so each may leave the watermark short;
    the next batch of that gateway, or the alarm check (``completeness.heal_watermarks``),
    walks it forward.
    """
    events, explained = tables.events, tables.explained
    ranges = sorted(
        connection.execute(
            select(explained.c.first_seq, explained.c.last_seq).where(
                explained.c.gateway_id == gateway_id, explained.c.last_seq > mark
            )
        ).all()
    )
    while True:
        for first, last in ranges:
            if first <= mark + 1 <= last:
                mark = max(mark, int(last))
        seqs = connection.execute(
            select(events.c.seq)
            .where(events.c.gateway_id == gateway_id, events.c.seq > mark)
            .order_by(events.c.seq)
            .limit(WATERMARK_CHUNK)
        ).scalars()
        moved = False
        for seq in seqs:
            if seq != mark + 1:
                break
            mark = int(seq)
            moved = True
        explained_next = any(first <= mark + 1 <= last for first, last in ranges)
        if not moved and not explained_next:
            return mark
