"""The center's own alarms: stored in ``alarms``, announced on MQTT.

Topic (QoS 1, not retained; the table is the record)::

    edge112/v1/center/{center_id}/alarm/{code}

Payload (JSON)::

    {"alarm_id": 7, "code": "gap_open", "state": "raised" | "cleared",
     "severity": "critical", "gateway_id": "bontang-01", "region": "64.74",
     "message": "...", "detail": {...}, "raised_at": "...Z", "cleared_at": null | "...Z",
     "center_id": "center-1"}

An alarm has a key (``gap_open:bontang-01:10-12``) that is unique among open
alarms, so several workers evaluating the same condition raise it once: the
worker whose INSERT took it announces it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select

from center.storage import tables
from center.storage.database import insert_for
from gateway.events import TOPIC_ROOT, format_ts

CENTER_TOPIC = f"{TOPIC_ROOT}/center"


class AlarmCode(StrEnum):
    GAP_OPEN = "gap_open"  # seqs missing for longer than completeness.gap_alarm_after_s
    GATEWAY_OFFLINE = "gateway_offline"  # offline longer than completeness.offline_alarm_after_s
    SEQ_CONFLICT = "seq_conflict"  # a known seq arrived with another event_id (not stored)


@dataclass(frozen=True)
class AlarmNotice:
    alarm_id: int
    code: str
    state: str  # raised / cleared
    severity: str
    gateway_id: str | None
    region: str | None
    message: str
    detail: dict[str, Any]
    raised_at: datetime
    cleared_at: datetime | None

    def topic(self, center_id: str) -> str:
        return f"{CENTER_TOPIC}/{center_id}/alarm/{self.code}"

    def payload(self, center_id: str) -> bytes:
        return json.dumps(
            {
                "alarm_id": self.alarm_id,
                "code": self.code,
                "state": self.state,
                "severity": self.severity,
                "gateway_id": self.gateway_id,
                "region": self.region,
                "message": self.message,
                "detail": self.detail,
                "raised_at": format_ts(self.raised_at),
                "cleared_at": format_ts(self.cleared_at) if self.cleared_at else None,
                "center_id": center_id,
            },
            separators=(",", ":"),
        ).encode()


def raise_alarm(
    connection: Connection,
    *,
    key: str,
    code: AlarmCode,
    severity: str,
    message: str,
    detail: dict[str, Any],
    now: datetime,
    gateway_id: str | None = None,
    region: str | None = None,
) -> AlarmNotice | None:
    """Open the alarm ``key`` unless it is open already; the notice when this call opened it."""
    statement = (
        insert_for(connection, tables.alarms)
        .values(
            alarm_key=key,
            code=code.value,
            severity=severity,
            gateway_id=gateway_id,
            region=region,
            message=message,
            detail=detail,
            raised_at=now,
        )
        .on_conflict_do_nothing()
        .returning(tables.alarms.c.id)
    )
    alarm_id = connection.execute(statement).scalar()
    if alarm_id is None:
        return None
    return AlarmNotice(
        int(alarm_id),
        code.value,
        "raised",
        severity,
        gateway_id,
        region,
        message,
        detail,
        now,
        None,
    )


def clear_alarm(connection: Connection, key: str, now: datetime) -> AlarmNotice | None:
    """Close the open alarm ``key``; the notice when this call closed it."""
    alarms = tables.alarms
    statement = (
        alarms.update()
        .where(alarms.c.alarm_key == key, alarms.c.cleared_at.is_(None))
        .values(cleared_at=now)
        .returning(
            alarms.c.id,
            alarms.c.code,
            alarms.c.severity,
            alarms.c.gateway_id,
            alarms.c.region,
            alarms.c.message,
            alarms.c.detail,
            alarms.c.raised_at,
        )
    )
    row = connection.execute(statement).first()
    if row is None:
        return None
    return AlarmNotice(
        int(row.id),
        row.code,
        "cleared",
        row.severity,
        row.gateway_id,
        row.region,
        row.message,
        dict(row.detail),
        row.raised_at,
        now,
    )


def open_alarm_keys(connection: Connection, code: AlarmCode) -> dict[str, str | None]:
    """Open alarms of one code: key -> gateway_id."""
    alarms = tables.alarms
    rows = connection.execute(
        select(alarms.c.alarm_key, alarms.c.gateway_id).where(
            alarms.c.code == code.value, alarms.c.cleared_at.is_(None)
        )
    )
    return {row.alarm_key: row.gateway_id for row in rows}
