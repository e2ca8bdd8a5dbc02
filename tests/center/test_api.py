"""The HTTP API of a running center (real uvicorn, real broker, both engines): statistics,
CSV, completeness, and the desk's classification and escalations travelling to the gateway."""

from __future__ import annotations

import csv
import io
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from center.ingest.store import EventStore
from center.ingest.validate import check_message
from center.service import CenterService
from center.storage import tables
from gateway.broker import PrivateBroker, free_port
from gateway.ids import uuid7_str
from tests.center.conftest import EventFactory
from tests.center.helpers import TopicRecorder, center_config
from tests.conftest import wait_until

TOKEN = "desk-token-0123456789"
DAY = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)  # 09:00 WIB
PERIOD = {"start": "2026-11-28", "end": "2026-11-29"}


@pytest.fixture
def center(broker: PrivateBroker, database_url: str) -> Iterator[CenterService]:
    service = CenterService(
        center_config(broker.url, database_url, http=True, port=free_port(), token=TOKEN)
    ).start()
    assert service.wait_ready(10)
    yield service
    service.stop()


@pytest.fixture
def api(center: CenterService) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=center.url or "", timeout=10) as client:
        wait_until(lambda: _up(client), what="the center's HTTP server answers")
        yield client


def _up(client: httpx.Client) -> bool:
    try:
        return client.get("/api/v1/health").status_code == 200
    except httpx.TransportError:
        return False


def ingest(center: CenterService, calls: list[tuple[EventFactory, dict[str, object]]]) -> list[str]:
    """Store calls straight into the center's database; their call ids."""
    messages, call_ids = [], []
    for factory, options in calls:
        events = factory.call(**options)  # type: ignore[arg-type]
        call_ids.append(events[0].call_id)  # type: ignore[attr-defined]
        messages += [check_message(*factory.payload(e), datetime.now(UTC)) for e in events]
    EventStore(center.engine, "test").store(messages)
    return call_ids


def test_statistics_per_region_category_bucket_and_answer_time(
    center: CenterService, api: httpx.Client
) -> None:
    bontang, kutai = EventFactory("bontang-01", "64.74"), EventFactory("kukar-01", "64.02")
    ingest(
        center,
        [(bontang, {"at": DAY, "ring_time_ms": 1000 * n}) for n in range(1, 9)]
        + [
            (bontang, {"at": DAY, "answered": False}),
            (bontang, {"at": DAY, "ghost": True, "ring_time_ms": 9000}),
        ]
        + [(kutai, {"at": DAY + timedelta(hours=16), "ring_time_ms": 10_000})]  # 01:00 WIB next day
        + [(kutai, {"at": DAY - timedelta(days=3), "answered": False})],  # outside the period
    )
    regions = api.get("/api/v1/stats/regions", params=PERIOD).json()["regions"]
    assert [(r["region"], r["region_name"], r["calls"]) for r in regions] == [
        ("64.74", "Kota Bontang", 10)
    ]
    assert (regions[0]["terputus"], regions[0]["ghost"], regions[0]["unclassified"]) == (1, 1, 8)
    assert (regions[0]["abandoned"], regions[0]["answered"]) == (1, 9)
    week = api.get("/api/v1/stats/regions", params={"start": "2026-11-24", "end": "2026-12-01"})
    assert {r["region"]: r["calls"] for r in week.json()["regions"]} == {"64.74": 10, "64.02": 2}

    days = api.get(
        "/api/v1/stats/calls", params={"start": "2026-11-28", "end": "2026-11-30", "unit": "day"}
    ).json()["rows"]
    assert {(r["bucket"], r["region"]) for r in days} == {
        ("2026-11-28", "64.74"),
        ("2026-11-29", "64.02"),
    }
    hours = api.get("/api/v1/stats/calls", params={**PERIOD, "unit": "hour", "tz": "+08:00"}).json()
    assert {r["bucket"] for r in hours["rows"]} == {"2026-11-28T10"}  # 02:00Z is 10:00 WITA
    months = api.get("/api/v1/stats/calls", params={**PERIOD, "unit": "month"}).json()["rows"]
    assert {r["bucket"] for r in months} == {"2026-11"}

    answer = api.get("/api/v1/stats/answer-time", params={**PERIOD, "region": "64.74"}).json()
    assert answer["answered"] == 9
    assert (answer["p50_ms"], answer["p90_ms"], answer["p99_ms"]) == (5000, 9000, 9000)

    exported = api.get("/api/v1/stats/regions", params={**PERIOD, "format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert rows[0]["region_name"] == "Kota Bontang" and rows[0]["calls"] == "10"

    bad = api.get("/api/v1/stats/calls", params={"start": "28/11/2026"})
    assert bad.status_code == 422 and "start" in bad.text
    assert api.get("/api/v1/stats/calls", params={"unit": "week"}).status_code == 422
    spec = api.get("/openapi.json").json()
    assert "/api/v1/calls/{call_id}/classification" in spec["paths"]
    assert "/api/v1/stats/regions" in spec["paths"]


def test_the_desk_classifies_and_escalates_and_the_gateway_is_told(
    broker: PrivateBroker, center: CenterService, api: httpx.Client
) -> None:
    commands = TopicRecorder(broker.url, "edge112/v1/+/+/command/#")
    try:
        factory = EventFactory()
        call_id, other = ingest(center, [(factory, {"at": DAY}), (factory, {"at": DAY})])
        url = f"/api/v1/calls/{call_id}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert api.post(f"{url}/classification", json={"category": "darurat"}).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token-at-all"}
        assert (
            api.post(
                f"{url}/classification", json={"category": "darurat"}, headers=wrong
            ).status_code
            == 401
        )
        refused = api.post(f"{url}/classification", json={"category": "urgent"}, headers=auth)
        assert refused.status_code == 422 and "unknown category 'urgent'" in refused.text
        unknown = api.post(
            "/api/v1/calls/no-such-call/classification", json={"category": "prank"}, headers=auth
        )
        assert unknown.status_code == 404 and "unknown call_id" in unknown.text
        bad_agency = api.post(f"{url}/escalations", json={"agency": "ghostbusters"}, headers=auth)
        assert bad_agency.status_code == 422 and "unknown agency" in bad_agency.text

        decided = (DAY + timedelta(minutes=2)).isoformat()
        made = api.post(
            f"{url}/classification", json={"category": "darurat", "at": decided}, headers=auth
        )
        assert made.status_code == 201, made.text
        annotation_id = uuid7_str()
        body = {
            "agency": "damkar",
            "reference": "LP-0042",
            "annotation_id": annotation_id,
            "at": decided,
        }
        assert api.post(f"{url}/escalations", json=body, headers=auth).status_code == 201
        assert api.post(f"{url}/escalations", json=body, headers=auth).status_code == 200  # a retry
        assert (
            api.post(
                f"{url}/escalations", json={"agency": "dinkes", "at": decided}, headers=auth
            ).status_code
            == 201
        )
        assert (
            api.post(
                f"/api/v1/calls/{other}/classification", json={"category": "prank"}, headers=auth
            ).status_code
            == 201
        )

        overview = api.get("/api/v1/overview", params=PERIOD).json()
        assert (overview["totals"]["darurat"], overview["totals"]["prank"]) == (1, 1)
        assert overview["totals"]["escalations"] == 2
        agencies = api.get("/api/v1/stats/escalations", params=PERIOD).json()["agencies"]
        assert {a["agency"]: a["escalations"] for a in agencies} == {"damkar": 1, "dinkes": 1}

        wait_until(
            lambda: len(commands.received()) == 4, what="four commands published to the gateway"
        )
        topics = sorted(topic for topic, _ in commands.received())
        assert topics == sorted(
            ["edge112/v1/64.74/bontang-01/command/classify"] * 2
            + ["edge112/v1/64.74/bontang-01/command/escalate"] * 2
        )
        escalation = next(p for _, p in commands.received() if p.get("agency") == "damkar")
        assert (escalation["command_id"], escalation["call_id"], escalation["reference"]) == (
            annotation_id,
            call_id,
            "LP-0042",
        )

        def all_sent() -> bool:
            with center.engine.connect() as connection:
                return all(
                    row.sent_at is not None
                    for row in connection.execute(select(tables.commands.c.sent_at))
                )

        wait_until(all_sent, what="every command marked sent at the broker's PUBACK")
    finally:
        commands.close()


def test_the_desk_api_is_off_without_a_token(broker: PrivateBroker, database_url: str) -> None:
    service = CenterService(center_config(broker.url, database_url, http=True)).start()
    try:
        with httpx.Client(base_url=service.url or "", timeout=10) as client:
            wait_until(lambda: _up(client), what="HTTP up")
            answer = client.post("/api/v1/calls/x/classification", json={"category": "prank"})
            assert answer.status_code == 403 and "desk_token" in answer.text
            assert client.get("/api/v1/gateways").status_code == 200  # reading needs no login
    finally:
        service.stop()


_NASTY_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "-1", "0", "1e309", "nan", "9" * 40, "2026-13-45", "64.74", "%00", "'"]),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_request_makes_the_api_fail_with_a_server_error(
    center: CenterService, api: httpx.Client, data: st.DataObject
) -> None:
    """Every documented endpoint, with random values for each of its parameters and random
    JSON bodies for the desk's POSTs: a 2xx or a 4xx that says why, never a 5xx."""
    spec = api.get("/openapi.json").json()
    for path, operations in sorted(spec["paths"].items()):
        if path.endswith("/stream"):
            continue  # server-sent events never end; covered by the dashboard test
        for method, operation in operations.items():
            url = path
            query: dict[str, str] = {}
            for parameter in operation.get("parameters", []):
                value = data.draw(_NASTY_TEXT, label=f"{method} {path} {parameter['name']}")
                if parameter["in"] == "path":
                    segment = urllib.parse.quote(value or "x", safe="")
                    url = url.replace("{" + parameter["name"] + "}", segment)
                elif parameter["in"] == "query":
                    query[parameter["name"]] = value
            if method == "get":
                response = api.get(url, params=query)
            else:
                body = data.draw(
                    st.dictionaries(st.text(max_size=12), _NASTY_TEXT | st.integers(), max_size=4),
                    label=f"{method} {path} body",
                )
                response = api.request(
                    method.upper(),
                    url,
                    params=query,
                    json=body,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
            assert response.status_code < 500, (method, url, query, response.text[:300])
