"""Desk commands from a real center to a real gateway over a real broker, and back.

The center's desk API queues a command (``center.desk``); the gateway, subscribed with a
persistent session, turns it into an event in its outbox and acknowledges it only then; the
center stores the echo's annotation once. A gateway frozen (SIGSTOP) when the command comes
and killed (SIGKILL) before handling it gets it again after restart: exactly one event.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from center.service import CenterService
from center.storage import tables
from drivers.simulated.gsm_modem import SimulatedGsmModem
from gateway.broker import PrivateBroker, free_port
from gateway.config import load_config
from gateway.consumer import FeedMonitor
from gateway.daemon import Gateway
from tests.center.helpers import center_config
from tests.conftest import PROCESS_TIMEOUT_S, validate_event, wait_until
from tests.gateway.desk_helpers import GATEWAY, TOKEN, report_call, write_gateway_config

CENTER_TOKEN = "center-desk-token-0123456789"
ROOT = Path(__file__).parent.parent.parent


@pytest.fixture
def modem(tmp_path: Path) -> Iterator[SimulatedGsmModem]:
    with SimulatedGsmModem(tmp_path / "gsm0", model="quectel_ec25", seed=2) as sim:
        yield sim


@pytest.fixture
def center(tmp_path: Path, broker: PrivateBroker) -> Iterator[tuple[CenterService, httpx.Client]]:
    config = center_config(
        broker.url,
        f"sqlite:///{tmp_path / 'center.db'}",
        http=True,
        port=free_port(),
        token=CENTER_TOKEN,
    )
    service = CenterService(config).start()
    assert service.wait_ready(10)
    with httpx.Client(base_url=service.url or "", timeout=15) as client:
        wait_until(lambda: _up(client), what="the center's HTTP server answers")
        yield service, client
    service.stop()


def _up(client: httpx.Client) -> bool:
    try:
        return client.get("/api/v1/health").status_code == 200
    except httpx.TransportError:
        return False


def center_events(center: CenterService, event_type: str, call_id: str) -> list[dict[str, Any]]:
    with center.engine.connect() as connection:
        rows = connection.execute(
            select(tables.events.c.data, tables.events.c.event_id, tables.events.c.seq).where(
                tables.events.c.type == event_type
            )
        ).all()
    return [
        {"event_id": row.event_id, "seq": row.seq, "data": row.data}
        for row in rows
        if row.data["call_id"] == call_id
    ]


def center_annotations(center: CenterService, call_id: str) -> list[Any]:
    annotations = tables.call_annotations
    with center.engine.connect() as connection:
        return list(
            connection.execute(select(annotations).where(annotations.c.call_id == call_id)).all()
        )


def center_knows_call(center: CenterService, call_id: str) -> bool:
    with center.engine.connect() as connection:
        return (
            connection.execute(
                select(tables.calls.c.call_id).where(tables.calls.c.call_id == call_id)
            ).first()
            is not None
        )


def desk_post(client: httpx.Client, call_id: str, kind: str, body: dict[str, Any]) -> str:
    answer = client.post(
        f"/api/v1/calls/{call_id}/{kind}",
        json=body,
        headers={"Authorization": f"Bearer {CENTER_TOKEN}"},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["annotation_id"])


def test_center_commands_become_gateway_events_and_the_echo_is_stored_once(
    tmp_path: Path,
    broker: PrivateBroker,
    monitor: FeedMonitor,
    modem: SimulatedGsmModem,
    center: tuple[CenterService, httpx.Client],
) -> None:
    service, api = center
    config, port = write_gateway_config(tmp_path, broker, modem.link)
    gateway = Gateway(load_config(config))
    gateway.start()
    try:
        call_id = report_call(modem, monitor)["data"]["call_id"]
        wait_until(
            lambda: center_knows_call(service, call_id), PROCESS_TIMEOUT_S, what="call at center"
        )
        classify_id = desk_post(api, call_id, "classification", {"category": "darurat"})
        escalate_id = desk_post(
            api, call_id, "escalations", {"agency": "basarnas", "reference": "SAR-7"}
        )
        wait_until(
            lambda: (
                center_events(service, "call.escalated", call_id)
                and center_events(service, "call.classified", call_id)
            ),
            PROCESS_TIMEOUT_S,
            what="the gateway's events for both commands stored at the center",
        )
        [classified] = center_events(service, "call.classified", call_id)
        [escalated] = center_events(service, "call.escalated", call_id)
        assert classified["data"]["command_id"] == classify_id
        assert (escalated["data"]["command_id"], escalated["data"]["agency"]) == (
            escalate_id,
            "basarnas",
        )
        assert escalated["data"]["source"] == "center" and escalated["data"]["center_id"]
        for event in monitor.events_of(GATEWAY, "call.classified"):
            validate_event(event)

        # a classification at the gateway's own desk reaches the center's statistics
        local = httpx.post(
            f"http://127.0.0.1:{port}/v1/calls/{call_id}/escalations",
            json={"agency": "damkar"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=15,
        )
        assert local.status_code == 201, local.text
        wait_until(
            lambda: len(center_annotations(service, call_id)) == 3,
            PROCESS_TIMEOUT_S,
            what="the local escalation stored as an annotation at the center",
        )
        rows = center_annotations(service, call_id)
        assert sorted((r.kind, r.source) for r in rows) == [
            ("classification", "desk_api"),  # the echo of the command was not stored again
            ("escalation", "desk_api"),
            ("escalation", "gateway"),
        ]
        agencies = api.get("/api/v1/stats/escalations").json()["agencies"]
        assert {a["agency"]: a["escalations"] for a in agencies} == {"basarnas": 1, "damkar": 1}
        with service.engine.connect() as connection:
            category = connection.execute(
                select(tables.calls.c.desk_category).where(tables.calls.c.call_id == call_id)
            ).scalar()
        assert category == "darurat"
    finally:
        gateway.stop()


def test_a_command_the_killed_gateway_never_handled_is_redelivered_and_makes_one_event(
    tmp_path: Path,
    broker: PrivateBroker,
    monitor: FeedMonitor,
    modem: SimulatedGsmModem,
    center: tuple[CenterService, httpx.Client],
) -> None:
    service, api = center
    config, _ = write_gateway_config(tmp_path, broker, modem.link)

    def start() -> subprocess.Popen[bytes]:
        log = open(tmp_path / "gateway.log", "ab")  # noqa: SIM115 - the child keeps it
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
            stdout=log,
            stderr=log,
            cwd=ROOT,
        )

    process = start()
    try:
        call_id = report_call(modem, monitor)["data"]["call_id"]
        wait_until(
            lambda: center_knows_call(service, call_id), PROCESS_TIMEOUT_S, what="call at center"
        )
        process.send_signal(signal.SIGSTOP)  # frozen: it cannot handle, commit or ack anything
        command_id = desk_post(api, call_id, "classification", {"category": "prank"})

        def sent() -> bool:
            with service.engine.connect() as connection:
                return bool(
                    connection.execute(
                        select(tables.commands.c.sent_at).where(
                            tables.commands.c.annotation_id == command_id
                        )
                    ).scalar()
                )

        wait_until(sent, PROCESS_TIMEOUT_S, what="the broker took the command (PUBACK to center)")
        process.send_signal(signal.SIGKILL)
        process.wait(PROCESS_TIMEOUT_S)
        assert center_events(service, "call.classified", call_id) == []
        process = start()
        wait_until(
            lambda: center_events(service, "call.classified", call_id),
            PROCESS_TIMEOUT_S,
            what="the redelivered command's event at the center",
        )
        # a later command, handled after the redelivered one: then count
        later = desk_post(api, call_id, "escalations", {"agency": "polri"})
        wait_until(
            lambda: center_events(service, "call.escalated", call_id),
            PROCESS_TIMEOUT_S,
            what="the later command's event at the center",
        )
        [classified] = center_events(service, "call.classified", call_id)
        assert classified["data"]["command_id"] == command_id
        [escalated] = center_events(service, "call.escalated", call_id)
        assert escalated["data"]["command_id"] == later
        on_broker = [
            e
            for e in monitor.everything_of(GATEWAY, "call.classified")
            if e["data"]["call_id"] == call_id
        ]
        assert {e["event_id"] for e in on_broker} == {classified["event_id"]}
        process.send_signal(signal.SIGTERM)
        assert process.wait(PROCESS_TIMEOUT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(PROCESS_TIMEOUT_S)
