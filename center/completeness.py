"""Completeness per gateway: what is missing, since when, and the alarms it raises.

A gateway numbers its committed events 1, 2, 3, ... (``seq``). The store
keeps a watermark per gateway (``gateways.contiguous_seq``): every seq from 1
up to it is stored, or listed as gone by a ``gateway.alarm`` (``shed_seqs``,
``unreadable_seqs``, ``skipped_seqs``: telemetry the gateway shed, rows a
damaged outbox lost). Above the watermark, a **gap** is a range of missing
seqs below the highest one stored. Its age counts from the first time the
center stored a later seq (so a gap exists from the moment it could be seen).
A gap the gateway's alarms explain is listed as ``explained``, not as loss.

Alarms (``evaluate_alarms``, every ``check_interval_s``, on every worker; the
alarm key makes each one open once):

* ``gap_open:{gateway}:{first}-{last}``: an unexplained gap older than
  ``gap_alarm_after_s``; cleared when it is filled (or becomes explained).
* ``gateway_offline:{gateway}``: the retained status has said ``offline`` for
  longer than ``offline_alarm_after_s``; cleared when it says ``online``.

Events with seq 0 (held by a gateway whose disk refused writes) are outside
the sequence: counted here as ``unsequenced`` until their sequenced copy
arrives and the store merges them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from center.alarms import AlarmCode, AlarmNotice, clear_alarm, open_alarm_keys, raise_alarm
from center.config import CompletenessSettings
from center.ingest.watermarks import walk_watermark
from center.storage import tables
from gateway.events import format_ts


@dataclass(frozen=True)
class Gap:
    gateway_id: str
    first_seq: int
    last_seq: int
    opened_at: datetime
    explained_by: str | None  # the gateway.alarm code that lists these seqs, or None: a loss

    @property
    def size(self) -> int:
        return self.last_seq - self.first_seq + 1

    def age_s(self, now: datetime) -> float:
        return max(0.0, (now - self.opened_at).total_seconds())

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "gateway_id": self.gateway_id,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "size": self.size,
            "opened_at": format_ts(self.opened_at),
            "age_s": round(self.age_s(now), 1),
            "explained_by": self.explained_by,
        }


def gaps_of(connection: Connection, gateway_id: str) -> list[Gap]:
    """The gaps above the gateway's watermark, in seq order."""
    gateways, events, explained = tables.gateways, tables.events, tables.explained
    mark = connection.execute(
        select(gateways.c.contiguous_seq).where(gateways.c.gateway_id == gateway_id)
    ).scalar()
    mark = int(mark or 0)
    rows = connection.execute(
        select(events.c.seq, events.c.received_at)
        .where(events.c.gateway_id == gateway_id, events.c.seq > mark)
        .order_by(events.c.seq)
    ).all()
    if not rows:
        return []
    reasons = sorted(
        (int(r.first_seq), int(r.last_seq), str(r.reason))
        for r in connection.execute(
            select(explained.c.first_seq, explained.c.last_seq, explained.c.reason).where(
                explained.c.gateway_id == gateway_id, explained.c.last_seq > mark
            )
        )
    )
    # the first time anything above each row was stored: a suffix minimum
    seen_from: list[datetime] = [rows[-1].received_at] * len(rows)
    earliest = rows[-1].received_at
    for index in range(len(rows) - 1, -1, -1):
        earliest = min(earliest, rows[index].received_at)
        seen_from[index] = earliest
    gaps: list[Gap] = []
    previous = mark
    for index, row in enumerate(rows):
        if row.seq > previous + 1:
            for first, last, reason in _split(previous + 1, int(row.seq) - 1, reasons):
                gaps.append(Gap(gateway_id, first, last, seen_from[index], reason))
        previous = int(row.seq)
    return gaps


def _split(
    first: int, last: int, reasons: list[tuple[int, int, str]]
) -> list[tuple[int, int, str | None]]:
    """[first, last] cut into pieces that an alarm explains and pieces nothing explains."""
    pieces: list[tuple[int, int, str | None]] = []
    current = first
    for low, high, reason in reasons:
        if high < current or low > last:
            continue
        if low > current:
            pieces.append((current, low - 1, None))
        pieces.append((max(low, current), min(high, last), reason))
        current = min(high, last) + 1
        if current > last:
            break
    if current <= last:
        pieces.append((current, last, None))
    return pieces


def gateway_summaries(connection: Connection, now: datetime) -> list[dict[str, Any]]:
    """Every gateway's completeness, for the API and the dashboard."""
    gateways, events = tables.gateways, tables.events
    unsequenced: dict[str, int] = dict(
        connection.execute(
            select(events.c.gateway_id, func.count())
            .where(events.c.unsequenced.is_(True))
            .group_by(events.c.gateway_id)
        ).all()
    )
    summaries = []
    for row in connection.execute(select(gateways).order_by(gateways.c.gateway_id)):
        gaps = gaps_of(connection, row.gateway_id) if row.highest_seq > row.contiguous_seq else []
        lost = [gap for gap in gaps if gap.explained_by is None]
        summaries.append(
            {
                "gateway_id": row.gateway_id,
                "region": row.region,
                "status": row.status,
                "status_since": format_ts(row.status_since) if row.status_since else None,
                "last_seen": format_ts(row.last_seen),
                "last_seen_age_s": round((now - row.last_seen).total_seconds(), 1),
                "contiguous_seq": int(row.contiguous_seq),
                "highest_seq": int(row.highest_seq),
                "events": int(row.events),
                "duplicates": int(row.duplicates),
                "clock_suspect": int(row.clock_suspect),
                "unsequenced": int(unsequenced.get(row.gateway_id, 0)),
                "missing": sum(gap.size for gap in lost),
                "explained_missing": sum(gap.size for gap in gaps if gap.explained_by),
                "gaps": [gap.as_dict(now) for gap in gaps],
            }
        )
    return summaries


def heal_watermarks(connection: Connection) -> int:
    """Walk forward every watermark that stops below the highest seq (see
    ``walk_watermark``: concurrent workers can leave one short); how many moved."""
    gateways = tables.gateways
    moved = 0
    for row in connection.execute(
        select(gateways.c.gateway_id, gateways.c.contiguous_seq)
        .where(gateways.c.highest_seq > gateways.c.contiguous_seq)
        .order_by(gateways.c.gateway_id)
    ).all():
        mark = walk_watermark(connection, row.gateway_id, int(row.contiguous_seq))
        if mark > row.contiguous_seq:
            connection.execute(
                gateways.update()
                .where(gateways.c.gateway_id == row.gateway_id, gateways.c.contiguous_seq < mark)
                .values(contiguous_seq=mark)
            )
            moved += 1
    return moved


def evaluate_alarms(
    engine: Engine, settings: CompletenessSettings, now: datetime
) -> list[AlarmNotice]:
    """Raise and clear gap and offline alarms (after healing watermarks); the notices this
    call caused."""
    notices: list[AlarmNotice] = []
    gateways = tables.gateways
    with engine.begin() as connection:
        heal_watermarks(connection)
        rows = connection.execute(
            select(
                gateways.c.gateway_id,
                gateways.c.region,
                gateways.c.status,
                gateways.c.status_since,
                gateways.c.contiguous_seq,
                gateways.c.highest_seq,
            ).order_by(gateways.c.gateway_id)
        ).all()
        wanted_gaps: dict[str, tuple[Any, Gap]] = {}
        wanted_offline: dict[str, Any] = {}
        for row in rows:
            if row.highest_seq > row.contiguous_seq:
                for gap in gaps_of(connection, row.gateway_id):
                    if gap.explained_by is None and gap.age_s(now) >= settings.gap_alarm_after_s:
                        key = f"gap_open:{row.gateway_id}:{gap.first_seq}-{gap.last_seq}"
                        wanted_gaps[key] = (row, gap)
            if (
                row.status == "offline"
                and row.status_since is not None
                and (now - row.status_since).total_seconds() >= settings.offline_alarm_after_s
            ):
                wanted_offline[f"gateway_offline:{row.gateway_id}"] = row
        open_gaps = open_alarm_keys(connection, AlarmCode.GAP_OPEN)
        for key, (row, gap) in sorted(wanted_gaps.items()):
            if key in open_gaps:
                continue
            notice = raise_alarm(
                connection,
                key=key,
                code=AlarmCode.GAP_OPEN,
                severity="critical",
                message=(
                    f"{row.gateway_id}: seqs {gap.first_seq}-{gap.last_seq} ({gap.size}) missing "
                    f"for {gap.age_s(now):.0f} s"
                ),
                detail=gap.as_dict(now),
                now=now,
                gateway_id=row.gateway_id,
                region=row.region,
            )
            if notice:
                notices.append(notice)
        for key in sorted(set(open_gaps) - set(wanted_gaps)):
            notice = clear_alarm(connection, key, now)
            if notice:
                notices.append(notice)
        open_offline = open_alarm_keys(connection, AlarmCode.GATEWAY_OFFLINE)
        for key, row in sorted(wanted_offline.items()):
            if key in open_offline:
                continue
            offline_s = (now - row.status_since).total_seconds()
            notice = raise_alarm(
                connection,
                key=key,
                code=AlarmCode.GATEWAY_OFFLINE,
                severity="critical",
                message=f"{row.gateway_id} offline for {offline_s:.0f} s",
                detail={
                    "offline_since": format_ts(row.status_since),
                    "offline_s": round(offline_s),
                },
                now=now,
                gateway_id=row.gateway_id,
                region=row.region,
            )
            if notice:
                notices.append(notice)
        for key in sorted(set(open_offline) - set(wanted_offline)):
            notice = clear_alarm(connection, key, now)
            if notice:
                notices.append(notice)
    return notices
