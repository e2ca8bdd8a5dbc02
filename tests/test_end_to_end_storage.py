"""``edge112 run`` on a disk that fills up, with SIGKILLs while it is full.

The issue-6 reproduction end to end: the outbox lives on a small tmpfs, a
simulated modem keeps placing calls, the disk is filled with a real file,
the gateway is killed (SIGKILL, at a random point chosen by a printed seed)
while it holds calls in memory and restarted on the still-full disk, and the
space comes back. The subscriber must see every call that rang while a
gateway was running, either sent from memory (seq 0) or stored (seq), and no
gap in the sequence.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from drivers.simulated.gsm_modem import SimulatedGsmModem
from gateway.broker import PrivateBroker
from gateway.consumer import FeedMonitor
from tests.conftest import validate_event
from tests.gateway.test_storage_faults import SmallDisk, small_disk  # noqa: F401 (fixture)
from tests.test_end_to_end import GatewayProcess, call

GATEWAY, REGION = "bontang-01", "64.74"


def write_config(tmp_path: Path, broker: PrivateBroker, modem: Path, outbox: Path) -> Path:
    config = tmp_path / "edge112.toml"
    config.write_text(
        f'[gateway]\nid = "{GATEWAY}"\nregion = "{REGION}"\n\n'
        f'[mqtt]\nurl = "{broker.url}"\nreconnect_min_s = 0.1\nreconnect_max_s = 0.5\n\n'
        f'[outbox]\npath = "{outbox}"\n\n'
        f'[[modems]]\nname = "gsm0"\nport = "{modem}"\n'
        "answer_after_rings = 0\ncaller_id_grace_ms = 200\n"
    )
    return config


def offered_numbers(monitor: FeedMonitor) -> set[str]:
    return {e["data"]["number"] for e in monitor.everything_of(GATEWAY, "call.offered")}


def alarms(monitor: FeedMonitor, code: str) -> list[dict[str, Any]]:
    return [e for e in monitor.everything_of(GATEWAY, "gateway.alarm") if e["data"]["code"] == code]


def line_came_up(monitor: FeedMonitor) -> int:
    """Line-up reports, stored or (disk full) announced as not kept with their data."""
    stored = [
        e for e in monitor.everything_of(GATEWAY, "line.status") if e["data"]["state"] == "up"
    ]
    announced = [
        e
        for e in alarms(monitor, "event_not_kept")
        if e["data"]["detail"]["type"] == "line.status"
        and e["data"]["detail"]["data"]["state"] == "up"
    ]
    return len(stored) + len(announced)


def test_a_full_disk_and_sigkills_lose_no_call(
    tmp_path: Path,
    broker: PrivateBroker,
    monitor: FeedMonitor,
    small_disk: SmallDisk,  # noqa: F811
) -> None:
    seed = int(os.environ.get("EDGE112_FAULT_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    context = f"(EDGE112_FAULT_SEED={seed})"
    placed: list[str] = []
    sim = SimulatedGsmModem(tmp_path / "gsm0", model="quectel_ec25", seed=seed)
    config = write_config(tmp_path, broker, sim.link, small_disk.path / "outbox.db")

    def ring(count: int) -> None:
        """Place calls one after the other; each must reach the subscriber (seq or seq 0)."""
        for _ in range(count):
            number = f"+62813{len(placed):07d}"
            placed.append(number)
            assert sim.place_call(call(number, hangup_after_rings=2)).wait(20)
            seen = monitor.wait_for(lambda m, n=number: n in offered_numbers(m), 20)
            assert seen, f"call {number} reached the subscriber {context}"

    def restart(gateway: GatewayProcess) -> GatewayProcess:
        ups = line_came_up(monitor)
        gateway.kill()  # no goodbye, no flush: like a power cut of the process
        time.sleep(rng.uniform(0, 0.3))
        gateway = GatewayProcess(config).start()
        assert monitor.wait_for(lambda m: line_came_up(m) > ups, 20), f"line up again {context}"
        return gateway

    gateway = GatewayProcess(config).start()
    try:
        assert monitor.wait_for(lambda m: line_came_up(m) == 1, 20), "modem set up"
        ring(3)
        small_disk.fill()
        ring(1)  # stored: the outbox gives up its reserve file
        assert monitor.wait_for(lambda m: alarms(m, "disk_full") != [], 10), context
        small_disk.fill()  # and now there is nothing left to give up
        ring(rng.randint(1, 4))  # held: sent from memory with seq 0
        gateway = restart(gateway)  # killed while holding; starts on the full disk
        ring(rng.randint(1, 3))
        if rng.random() < 0.5:
            gateway = restart(gateway)
            ring(1)
        small_disk.free()
        assert monitor.wait_for(lambda m: alarms(m, "storage_recovered") != [], 20), context
        ring(2)
        gateway.terminate()
        gateway = GatewayProcess(config).start()  # whatever was queued at the end goes out now
        feed = monitor.feed(GATEWAY)
        assert monitor.wait_for(
            lambda m: m.feed(GATEWAY).missing() == [] and m.feed(GATEWAY).status == "online", 20
        ), f"no seq missing: {feed.missing()} {context}"
    finally:
        if gateway.process and gateway.process.poll() is None:
            gateway.terminate()
        sim.close()
    assert set(placed) <= offered_numbers(monitor), f"every call rang through {context}"
    stored_numbers = {
        e["data"]["number"] for e in monitor.events_of(GATEWAY, "call.offered") if e["seq"] > 0
    }
    assert set(placed) <= stored_numbers, (
        f"every held call was stored once space came back {context}"
    )
    assert alarms(monitor, "storage_fault"), context
    for event in monitor.everything_of(GATEWAY):
        validate_event(event)  # seq-0 events too
    recovered = alarms(monitor, "held_events_recovered")
    assert recovered, f"the restart read the held events back from the journal {context}"
    assert all(alarm["data"]["detail"]["lost"] == 0 for alarm in recovered), context


@pytest.fixture(autouse=True)
def _no_leftover_fillers(small_disk: SmallDisk) -> None:  # noqa: F811
    small_disk.free()
