"""The desk endpoint of a running gateway (simulated modem on a PTY, real broker): a reported
call classified and escalated over HTTP and with ``edge112 annotate``, the events on the broker;
refusals 401/404/413/422 with the problem named."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from drivers.simulated.gsm_modem import SimulatedGsmModem
from gateway.broker import PrivateBroker, free_port
from gateway.config import load_config
from gateway.consumer import FeedMonitor
from gateway.daemon import Gateway
from tests.conftest import PROCESS_TIMEOUT_S, validate_event, wait_until
from tests.gateway.desk_helpers import (
    GATEWAY,
    TOKEN,
    events_for,
    report_call,
    write_gateway_config,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).parent.parent.parent


@pytest.fixture
def modem(tmp_path: Path) -> Iterator[SimulatedGsmModem]:
    with SimulatedGsmModem(tmp_path / "gsm0", model="quectel_ec25", seed=1) as sim:
        yield sim


@pytest.fixture
def running(
    tmp_path: Path, broker: PrivateBroker, monitor: FeedMonitor, modem: SimulatedGsmModem
) -> Iterator[tuple[Gateway, Path, httpx.Client]]:
    config_path, port = write_gateway_config(tmp_path, broker, modem.link)
    gateway = Gateway(load_config(config_path))
    gateway.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15) as client:
            yield gateway, config_path, client
    finally:
        gateway.stop()


def annotate_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "annotate", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=PROCESS_TIMEOUT_S,
    )


def test_a_reported_call_is_classified_and_escalated_twice_and_the_center_sees_it(
    running: tuple[Gateway, Path, httpx.Client], monitor: FeedMonitor, modem: SimulatedGsmModem
) -> None:
    _gateway, config, desk = running
    offered = report_call(modem, monitor)
    call_id = offered["data"]["call_id"]
    url = f"/v1/calls/{call_id}"
    classified = desk.post(
        f"{url}/classification",
        json={"category": "darurat", "reference": "kebakaran"},
        headers=AUTH,
    )
    assert classified.status_code == 201, classified.text
    first = desk.post(
        f"{url}/escalations", json={"agency": "damkar", "reference": "LP-0042"}, headers=AUTH
    )
    assert first.status_code == 201, first.text
    second = annotate_cli(
        config, call_id, "--escalate", "Dinkes", "--at", "2026-11-28T11:40:00+07:00"
    )
    assert second.returncode == 0, second.stderr
    assert "call.escalated committed: seq" in second.stdout

    wait_until(
        lambda: len(events_for(monitor, "call.escalated", call_id)) == 2,
        PROCESS_TIMEOUT_S,
        what="both escalations on the broker",
    )
    [on_broker] = events_for(monitor, "call.classified", call_id)
    validate_event(on_broker)
    assert (on_broker["event_id"], on_broker["seq"]) == (
        classified.json()["event_id"],
        classified.json()["seq"],
    )
    assert on_broker["data"]["category"] == "darurat" and on_broker["data"]["line"] == "gsm0"
    assert on_broker["data"]["reference"] == "kebakaran"
    escalations = events_for(monitor, "call.escalated", call_id)
    for event in escalations:
        validate_event(event)
    assert sorted(e["data"]["agency"] for e in escalations) == ["damkar", "dinkes"]
    assert {e["data"]["source"] for e in escalations} == {"local"}
    dinkes = next(e for e in escalations if e["data"]["agency"] == "dinkes")
    assert dinkes["data"]["at"] == "2026-11-28T04:40:00.000Z"

    shown = desk.get(url, headers=AUTH).json()
    assert [a.get("category") or a.get("agency") for a in shown["annotations"]] == [
        "darurat",
        "damkar",
        "dinkes",
    ]
    assert (shown["line"], shown["started"]) == ("gsm0", offered["ts"])


def test_refusals_name_the_problem(
    running: tuple[Gateway, Path, httpx.Client], monitor: FeedMonitor, modem: SimulatedGsmModem
) -> None:
    _gateway, config, desk = running
    call_id = report_call(modem, monitor)["data"]["call_id"]
    url = f"/v1/calls/{call_id}"
    body = {"category": "prank"}

    def refused(answer: httpx.Response, status: int, says: str) -> None:
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert says in answer.json()["error"], answer.json()

    refused(desk.post(f"{url}/classification", json=body), 401, "bearer token")
    wrong = {"Authorization": "Bearer not-the-token-at-all"}
    refused(desk.post(f"{url}/classification", json=body, headers=wrong), 401, "bearer token")
    refused(desk.get(url), 401, "bearer token")
    refused(
        desk.post("/v1/calls/no-such-call/classification", json=body, headers=AUTH),
        404,
        "unknown call_id 'no-such-call'",
    )
    refused(desk.get("/v1/calls/no-such-call", headers=AUTH), 404, "unknown call_id")
    refused(
        desk.post(f"{url}/classification", json={"category": "urgent"}, headers=AUTH),
        422,
        "unknown category 'urgent'",
    )
    refused(
        desk.post(f"{url}/escalations", json={"agency": "ghostbusters"}, headers=AUTH),
        422,
        "unknown agency 'ghostbusters'",
    )
    refused(desk.post(f"{url}/escalations", json={}, headers=AUTH), 422, "agency: missing")
    refused(
        desk.post(f"{url}/escalations", json={"agency": "tni", "colour": 1}, headers=AUTH),
        422,
        "unknown field(s) colour",
    )
    refused(desk.post(f"{url}/classification", content=b"[1", headers=AUTH), 400, "not JSON")
    refused(desk.post(f"{url}/classification", content=b"x" * 20_000, headers=AUTH), 413, "at most")
    refused(desk.post(f"{url}/reboot", json=body, headers=AUTH), 404, "no such path")
    vocabulary = desk.get("/v1/vocabulary", headers=AUTH).json()
    assert "darurat" in vocabulary["categories"] and "satpol_pp" in vocabulary["agencies"]

    unknown = annotate_cli(config, "no-such-call", "--category", "prank")
    assert unknown.returncode == 2 and "unknown call_id 'no-such-call'" in unknown.stderr
    bad = annotate_cli(config, call_id, "--escalate", "ghostbusters")
    assert bad.returncode == 2 and "unknown agency 'ghostbusters'" in bad.stderr
    assert events_for(monitor, "call.classified", call_id) == []
    assert events_for(monitor, "call.escalated", call_id) == []


def test_annotate_says_so_when_the_gateway_is_not_running(
    tmp_path: Path, broker: PrivateBroker
) -> None:
    config, port = write_gateway_config(tmp_path, broker, tmp_path / "gsm0", port=free_port())
    answer = annotate_cli(config, "0192f1c4-0000-7000-8000-000000000000", "--category", "prank")
    assert answer.returncode == 1
    assert f"desk endpoint at 127.0.0.1:{port} does not answer" in answer.stderr
    assert "edge112 run" in answer.stderr


def test_an_address_in_use_is_an_alarm_not_a_crash(
    tmp_path: Path, broker: PrivateBroker, monitor: FeedMonitor, modem: SimulatedGsmModem
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config, _ = write_gateway_config(tmp_path, broker, modem.link, port=port)
        gateway = Gateway(load_config(config))
        gateway.start()
        try:

            def alarm() -> list[dict[str, Any]]:
                return [
                    e
                    for e in monitor.events_of(GATEWAY, "gateway.alarm")
                    if e["data"]["code"] == "desk_unavailable"
                ]

            [event] = wait_until(alarm, PROCESS_TIMEOUT_S, what="desk_unavailable alarm")
            assert f"127.0.0.1:{port}" in event["data"]["message"]
            assert report_call(modem, monitor)  # calls are still reported
        finally:
            gateway.stop()
