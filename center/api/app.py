"""The center's HTTP API and dashboard (FastAPI; OpenAPI at ``/openapi.json``, docs at ``/docs``).

::

    GET  /                                   the dashboard (center/web/)
    GET  /api/v1/overview?start&end          everything the dashboard's top shows
    GET  /api/v1/stats/regions?start&end[&format=csv]     calls per kabupaten/kota and category
    GET  /api/v1/stats/calls?start&end&unit&region[&format=csv]  per hour/day/month
    GET  /api/v1/stats/answer-time?start&end&region        ring time percentiles
    GET  /api/v1/stats/escalations?start&end&region[&format=csv]
    GET  /api/v1/gateways                    status, last seen, watermark, gaps, duplicates
    GET  /api/v1/gaps                        open gaps of every gateway
    GET  /api/v1/lines                       line health
    GET  /api/v1/alarms?state=open|all       center alarms
    GET  /api/v1/calls?limit                 newest calls (the live feed)
    GET  /api/v1/quarantine?limit            what could not be stored, and why
    GET  /api/v1/regions                     the kabupaten/kota table
    GET  /api/v1/stream                      server-sent events: "change" when data moved
    POST /api/v1/calls/{call_id}/classification   (bearer token)
    POST /api/v1/calls/{call_id}/escalations      (bearer token)

Periods: ``start`` and ``end`` are ISO dates (local midnight at
``stats.utc_offset``) or date-times with a zone; ``end`` is exclusive. Without
them: the last ``days`` (default 7) local days, today included. Reading needs no login; the
POSTs need ``Authorization: Bearer <http.desk_token>``.

Why FastAPI: typed parameters give exact 422 errors and the OpenAPI document
from the same code; sync endpoints run in a thread pool beside the blocking
SQLAlchemy calls; Starlette streams server-sent events. uvicorn runs it in a
thread of the worker (``center.service``).
"""

import asyncio
import csv
import hmac
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, func, select

from center import stats
from center.api.live import ChangeFeed
from center.completeness import gateway_summaries
from center.config import DESK_CATEGORIES, CenterConfig, offset_minutes
from center.desk import DeskError, annotate
from center.storage import tables
from center.storage.database import BUCKET_UNITS
from gateway.events import format_ts

SSE_KEEPALIVE_S = 15.0
SSE_CHECK_S = 0.2
DEFAULT_DAYS = 7


class ClassificationIn(BaseModel):
    category: str = Field(description=f"one of {', '.join(DESK_CATEGORIES)}")
    at: datetime | None = Field(None, description="when the call-taker decided (default: now)")
    reference: str | None = Field(None, max_length=200)
    annotation_id: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        description="the desk's own id for this decision: a retried request is stored once",
    )


class EscalationIn(BaseModel):
    agency: str = Field(description="an agency code from desk.agencies (damkar, bpbd, ...)")
    at: datetime | None = None
    reference: str | None = Field(
        None, max_length=200, description="the agency's ticket, free text"
    )
    annotation_id: str | None = Field(
        None, pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    )


def parse_moment(text: str, zone: timezone, name: str) -> datetime:
    """A date (local midnight) or an aware date-time; HTTP 422 otherwise."""
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d")
            return day.replace(tzinfo=zone).astimezone(UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(
            422, f"{name}: expected YYYY-MM-DD or an ISO date-time, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        raise HTTPException(422, f"{name}: give a zone (Z or +07:00) with a date-time")
    return moment.astimezone(UTC)


def _csv_response(rows: list[dict[str, Any]], columns: list[str], name: str) -> Response:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def create_app(
    engine: Engine,
    config: CenterConfig,
    *,
    write_engine: Engine | None = None,
    live: ChangeFeed | None = None,
    on_command: Callable[[], None] | None = None,
) -> FastAPI:
    """The API: reads through ``engine`` (``open_engine(..., for_reads=True)``), the desk's
    writes through ``write_engine`` (default: the same)."""
    write_engine = write_engine or engine
    app = FastAPI(
        title="edge112 regional center",
        version="1",
        description="Calls per kabupaten/kota, completeness of every gateway's feed, and the "
        "call-taker's classification and escalations.",
    )
    utc_offset = config.stats.offset_minutes
    zone = timezone(timedelta(minutes=utc_offset))
    token = config.http.resolved_token()
    web = resources.files("center") / "web"

    def connection() -> Any:
        with engine.connect() as conn:
            yield conn

    Db = Annotated[Connection, Depends(connection)]  # noqa: N806 - a type alias

    def period(
        start: Annotated[str | None, Query(description="YYYY-MM-DD or ISO date-time")] = None,
        end: Annotated[
            str | None, Query(description="exclusive; YYYY-MM-DD or ISO date-time")
        ] = None,
        days: Annotated[
            int | None, Query(ge=1, le=3660, description="without start: the last N local days")
        ] = None,
    ) -> tuple[datetime, datetime]:
        now = datetime.now(UTC)
        local_today = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
        tomorrow = (local_today + timedelta(days=1)).astimezone(UTC)
        end_at = parse_moment(end, zone, "end") if end else tomorrow
        if start:
            start_at = parse_moment(start, zone, "start")
        else:
            start_at = (local_today - timedelta(days=(days or DEFAULT_DAYS) - 1)).astimezone(UTC)
        if start_at >= end_at:
            raise HTTPException(422, "start must be before end")
        return start_at, end_at

    Period = Annotated[tuple[datetime, datetime], Depends(period)]  # noqa: N806 - a type alias

    def period_dict(window: tuple[datetime, datetime]) -> dict[str, str]:
        return {
            "start": format_ts(window[0]),
            "end": format_ts(window[1]),
            "utc_offset": config.stats.utc_offset,
            "first_day": window[0].astimezone(zone).date().isoformat(),  # local dates, inclusive
            "last_day": (window[1] - timedelta(microseconds=1)).astimezone(zone).date().isoformat(),
        }

    def require_desk(authorization: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            raise HTTPException(
                403, "the desk API is off: set http.desk_token_file in the center's config"
            )
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not authorization or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    # ------------------------------------------------------------ the dashboard

    @app.get("/", include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse((web / "index.html").read_text(encoding="utf-8"))

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        media = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}
        kind = name.rsplit(".", 1)[-1]
        if "/" in name or kind not in media or not (web / name).is_file():
            raise HTTPException(404, "no such file")
        return Response((web / name).read_bytes(), media_type=media[kind])

    # ------------------------------------------------------------ reading

    @app.get("/api/v1/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "center_id": config.center.id}

    @app.get("/api/v1/regions")
    def region_list() -> list[dict[str, str]]:
        return stats.region_table()

    @app.get("/api/v1/overview")
    def overview(db: Db, window: Period) -> dict[str, Any]:
        regions = stats.calls_by_region(db, *window)
        totals: dict[str, int] = {}
        for key in (
            "calls",
            *stats.CATEGORIES,
            "abandoned",
            "ghost_detected",
            "answered",
            "escalations",
        ):
            totals[key] = sum(int(row[key]) for row in regions)
        open_alarms = db.execute(
            select(tables.alarms.c.id).where(tables.alarms.c.cleared_at.is_(None))
        ).all()
        return {
            "period": period_dict(window),
            "totals": totals,
            "regions": regions,
            "answer_time": stats.answer_time(db, *window),
            "escalations": stats.escalations_by_agency(db, *window),
            "health": stats.health_summary(db),
            "open_alarms": len(open_alarms),
        }

    @app.get("/api/v1/stats/regions")
    def stats_regions(db: Db, window: Period, format: str = "json") -> Any:
        rows = stats.calls_by_region(db, *window)
        if format == "csv":
            columns = [
                "region",
                "region_name",
                "calls",
                *stats.CATEGORIES,
                "abandoned",
                "ghost_detected",
                "answered",
                "escalations",
            ]
            return _csv_response(rows, columns, "calls-per-region")
        return {"period": period_dict(window), "regions": rows}

    @app.get("/api/v1/stats/calls")
    def stats_calls(
        db: Db,
        window: Period,
        unit: Annotated[str, Query(pattern="^(hour|day|month)$")] = "day",
        region: str | None = None,
        tz: Annotated[
            str | None, Query(description="UTC offset such as +08:00 (default: the config's)")
        ] = None,
        format: str = "json",
    ) -> Any:
        try:
            minutes = offset_minutes(tz) if tz else utc_offset
        except ValueError as error:
            raise HTTPException(422, f"tz: {error}") from None
        assert unit in BUCKET_UNITS
        rows = stats.calls_over_time(db, *window, unit, minutes, region)
        if format == "csv":
            return _csv_response(
                rows, ["bucket", "region", "region_name", "category", "calls"], f"calls-per-{unit}"
            )
        return {"period": period_dict(window), "unit": unit, "rows": rows}

    @app.get("/api/v1/stats/answer-time")
    def stats_answer_time(db: Db, window: Period, region: str | None = None) -> dict[str, Any]:
        return {"period": period_dict(window), **stats.answer_time(db, *window, region)}

    @app.get("/api/v1/stats/escalations")
    def stats_escalations(
        db: Db, window: Period, region: str | None = None, format: str = "json"
    ) -> Any:
        rows = stats.escalations_by_agency(db, *window, region)
        if format == "csv":
            return _csv_response(rows, ["agency", "escalations"], "escalations-per-agency")
        return {"period": period_dict(window), "agencies": rows}

    @app.get("/api/v1/gateways")
    def gateway_list(db: Db) -> list[dict[str, Any]]:
        return gateway_summaries(db, datetime.now(UTC))

    @app.get("/api/v1/gaps")
    def gap_list(db: Db) -> list[dict[str, Any]]:
        return [
            gap for summary in gateway_summaries(db, datetime.now(UTC)) for gap in summary["gaps"]
        ]

    @app.get("/api/v1/lines")
    def line_list(db: Db) -> list[dict[str, Any]]:
        return stats.lines_health(db)

    @app.get("/api/v1/alarms")
    def alarm_list(
        db: Db, state: Annotated[str, Query(pattern="^(open|all)$")] = "open", limit: int = 200
    ) -> list[dict[str, Any]]:
        alarms = tables.alarms
        query = (
            select(alarms)
            .order_by(alarms.c.raised_at.desc(), alarms.c.id.desc())
            .limit(min(limit, 5000))
        )
        if state == "open":
            query = query.where(alarms.c.cleared_at.is_(None))
        return [
            {
                "alarm_id": row.id,
                "code": row.code,
                "severity": row.severity,
                "gateway_id": row.gateway_id,
                "region": row.region,
                "message": row.message,
                "detail": row.detail,
                "raised_at": format_ts(row.raised_at),
                "cleared_at": format_ts(row.cleared_at) if row.cleared_at else None,
            }
            for row in db.execute(query)
        ]

    @app.get("/api/v1/calls")
    def call_list(db: Db, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict[str, Any]]:
        return stats.recent_calls(db, limit)

    @app.get("/api/v1/quarantine")
    def quarantine_list(
        db: Db, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> dict[str, Any]:
        quarantine = tables.quarantine
        rows = db.execute(select(quarantine).order_by(quarantine.c.id.desc()).limit(limit)).all()
        counts = dict(
            db.execute(
                select(quarantine.c.reason, func.sum(quarantine.c.times)).group_by(
                    quarantine.c.reason
                )
            ).all()
        )
        return {
            "counts": {reason: int(n) for reason, n in counts.items()},
            "messages": [
                {
                    "id": row.id,
                    "topic": row.topic,
                    "reason": row.reason,
                    "detail": row.detail,
                    "gateway_id": row.gateway_id,
                    "times": row.times,
                    "received_at": format_ts(row.received_at),
                    "payload": bytes(row.payload)[:2000].decode("utf-8", "replace"),
                }
                for row in rows
            ],
        }

    @app.get("/api/v1/stream", response_class=StreamingResponse)
    async def stream(request: Request) -> StreamingResponse:
        async def events() -> Any:
            seen = -1
            quiet = 0.0
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                if live is not None and live.version != seen:
                    seen = live.version
                    payload = json.dumps({"version": seen, "changed": live.changed})
                    yield f"event: change\ndata: {payload}\n\n"
                    quiet = 0.0
                await asyncio.sleep(SSE_CHECK_S)
                quiet += SSE_CHECK_S
                if quiet >= SSE_KEEPALIVE_S:
                    yield ": keepalive\n\n"
                    quiet = 0.0

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # ------------------------------------------------------------ the desk

    def _annotate(call_id: str, kind: str, body: ClassificationIn | EscalationIn) -> JSONResponse:
        try:
            result = annotate(
                write_engine,
                call_id=call_id,
                kind=kind,
                center_id=config.center.id,
                categories=DESK_CATEGORIES,
                agencies=config.desk.agencies,
                category=getattr(body, "category", None),
                agency=getattr(body, "agency", None),
                reference=body.reference,
                at=body.at,
                annotation_id=body.annotation_id,
            )
        except DeskError as error:
            raise HTTPException(error.status, error.message) from None
        if on_command is not None and result.created:
            on_command()
        return JSONResponse(result.as_dict(), status_code=201 if result.created else 200)

    @app.post(
        "/api/v1/calls/{call_id}/classification",
        dependencies=[Depends(require_desk)],
        status_code=201,
    )
    def classify(call_id: str, body: ClassificationIn) -> JSONResponse:
        return _annotate(call_id, "classification", body)

    @app.post(
        "/api/v1/calls/{call_id}/escalations", dependencies=[Depends(require_desk)], status_code=201
    )
    def escalate(call_id: str, body: EscalationIn) -> JSONResponse:
        return _annotate(call_id, "escalation", body)

    return app
