"""The whole chain as a technician runs it: ``edge112 run`` on simulated modems, a real broker.

The gateway runs as its own process (the installed console script), the
simulated modems sit on real pseudo-terminals in this process, and a
subscriber checks what a regional center would receive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.simulated.gsm_modem import PlacedCall, SimulatedCall, SimulatedGsmModem
from gateway.broker import PrivateBroker
from gateway.consumer import FeedMonitor
from gateway.events import Presentation
from tests.conftest import validate_event

GATEWAY, REGION = "bontang-01", "64.74"
RING_S = 0.3


def write_config(tmp_path: Path, broker: PrivateBroker, modems: list[Path]) -> Path:
    config = tmp_path / "edge112.toml"
    lines = [
        f'[gateway]\nid = "{GATEWAY}"\nregion = "{REGION}"\n',
        f'[mqtt]\nurl = "{broker.url}"\nreconnect_min_s = 0.1\nreconnect_max_s = 0.5\n',
        f'[outbox]\npath = "{tmp_path / "outbox.db"}"\n',
    ]
    for index, link in enumerate(modems):
        lines.append(
            f'[[modems]]\nname = "gsm{index}"\nport = "{link}"\n'
            "answer_after_rings = 2\ncaller_id_grace_ms = 200\n"
        )
    config.write_text("\n".join(lines))
    return config


class GatewayProcess:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None
        self.log = config.with_name("gateway.log")

    def start(self) -> GatewayProcess:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config)],
                stdout=log,
                stderr=log,
                cwd=Path(__file__).parent.parent,
            )
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(5)

    def terminate(self) -> float:
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(15)
        return time.monotonic() - started


@pytest.fixture
def modem(tmp_path: Path) -> Iterator[SimulatedGsmModem]:
    with SimulatedGsmModem(tmp_path / "gsm0", model="quectel_ec25", seed=1) as sim:
        yield sim


def call(
    number: str | None,
    *,
    presentation: Presentation | None = None,
    hangup_after_rings: int | None = None,
    talk_s: float = 0.5,
) -> SimulatedCall:
    return SimulatedCall(
        number=number,
        presentation=presentation,
        hangup_after_rings=hangup_after_rings,
        talk_s=talk_s,
        ring_interval_s=RING_S,
    )


def lines_up(monitor: FeedMonitor) -> int:
    return len([e for e in monitor.events_of(GATEWAY, "line.status") if e["data"]["state"] == "up"])


def test_simulated_calls_reach_the_subscriber_schema_valid_with_contiguous_seq(
    tmp_path: Path, broker: PrivateBroker, monitor: FeedMonitor, modem: SimulatedGsmModem
) -> None:
    gateway = GatewayProcess(write_config(tmp_path, broker, [modem.link])).start()
    try:
        assert monitor.wait_for(lambda m: lines_up(m) == 1, 15), "modem set up (+CLIP on)"
        placed: list[PlacedCall] = [
            modem.place_call(call("+6281234567890", talk_s=0.6)),  # answered after 2 rings
            modem.place_call(
                call(None, presentation=Presentation.RESTRICTED, hangup_after_rings=1)
            ),  # withheld, abandoned
            modem.place_call(call(None, talk_s=0.3)),  # no caller id at all, answered
        ]
        for each in placed:
            assert each.wait(20)
        assert monitor.wait_for(
            lambda m: (
                len(m.events_of(GATEWAY, "call.ended"))
                + len(m.events_of(GATEWAY, "call.abandoned"))
                == 3
            ),
            15,
        )
        elapsed = gateway.terminate()
    finally:
        if gateway.process and gateway.process.poll() is None:
            gateway.kill()
    assert gateway.process and gateway.process.returncode == 0
    assert elapsed < 5, "SIGTERM stops the gateway within a few seconds"
    events = monitor.events_of(GATEWAY)
    for event in events:
        validate_event(event)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    offered = monitor.events_of(GATEWAY, "call.offered")
    assert [(e["data"]["number"], e["data"]["presentation"]) for e in offered] == [
        ("+6281234567890", "allowed"),
        (None, "restricted"),
        (None, "unavailable"),
    ]
    by_call: dict[str, list[str]] = {}
    for event in events:
        if event["type"].startswith("call."):
            by_call.setdefault(event["data"]["call_id"], []).append(event["type"])
    assert sorted(by_call.values()) == sorted(
        [
            ["call.offered", "call.answered", "call.ended"],
            ["call.offered", "call.abandoned"],
            ["call.offered", "call.answered", "call.ended"],
        ]
    )
    assert monitor.wait_for(lambda m: m.feed(GATEWAY).status == "offline", 5)
    log_text = gateway.log.read_text()
    assert "+6281234567890" not in log_text, "caller numbers never reach the log"


def test_sigkill_during_a_stream_loses_nothing_committed(
    tmp_path: Path, broker: PrivateBroker, monitor: FeedMonitor
) -> None:
    links = [tmp_path / "gsm0", tmp_path / "gsm1"]
    sims = [
        SimulatedGsmModem(link, model=model, seed=i)
        for i, (link, model) in enumerate(zip(links, ["quectel_ec25", "huawei_e173"], strict=True))
    ]
    config = write_config(tmp_path, broker, links)
    gateway = GatewayProcess(config).start()
    try:
        assert monitor.wait_for(lambda m: lines_up(m) == 2, 15)
        for round_number in range(4):
            for index, sim in enumerate(sims):
                for n in range(3):
                    sim.place_call(
                        call(f"+62812{round_number}{index}{n:05d}", hangup_after_rings=1)
                    )
            time.sleep(1.0 + 0.3 * round_number)
            gateway.kill()  # no goodbye, no flush: like a power cut of the process
            gateway = GatewayProcess(config).start()
        time.sleep(3)
        gateway.terminate()
        gateway = GatewayProcess(config).start()  # whatever was queued at the end goes out now
        outbox = tmp_path / "outbox.db"
        assert monitor.wait_for(
            lambda m: (
                _pending(outbox) == 0 and m.feed(GATEWAY).missing(_committed_seqs(outbox)) == []
            ),
            30,
        ), "every committed seq reached the subscriber"
    finally:
        if gateway.process and gateway.process.poll() is None:
            gateway.terminate()
        for sim in sims:
            sim.close()
    feed = monitor.feed(GATEWAY)
    offered = [e for e in feed.events.values() if e["type"] == "call.offered"]
    # Calls that rang while the gateway was dead were never seen, so never committed:
    # the stream must still have gone on across the kills.
    assert len(offered) >= 8, f"only {len(offered)} calls were seen across four kills"
    assert feed.duplicates <= 5 * 20, "duplicates are bounded by the in-flight window per restart"
    for event in feed.events.values():
        validate_event(event)


def _committed_seqs(outbox: Path) -> int:
    import sqlite3

    with sqlite3.connect(outbox) as conn:
        return int(conn.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]) - 1


def _pending(outbox: Path) -> int:
    import sqlite3

    with sqlite3.connect(outbox) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def test_queue_stats_and_peek_on_a_live_outbox(tmp_path: Path, modem: SimulatedGsmModem) -> None:
    unreachable = PrivateBroker(workdir=tmp_path / "never-started")  # nobody listens there
    config = write_config(tmp_path, unreachable, [modem.link])
    gateway = GatewayProcess(config).start()
    try:
        time.sleep(1.5)  # the driver sets the modem up
        placed = modem.place_call(call("+6281100000001", hangup_after_rings=1))
        assert placed.wait(20)
        time.sleep(1.0)
        stats = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "queue",
                "stats",
                "--config",
                str(config),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        peek = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "queue", "peek", "--config", str(config)],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        gateway.terminate()
    import json

    numbers = json.loads(stats.stdout)
    assert numbers["pending"] >= 2  # offered + abandoned (+ line status)
    assert numbers["pending_by_priority"]["emergency"] >= 2
    assert "call.offered" in peek.stdout and "call.abandoned" in peek.stdout
    assert os.path.exists(tmp_path / "outbox.db")
