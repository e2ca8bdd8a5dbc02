"""The whole chain as a technician runs it: ``edge112 run`` on simulated modems, a real broker.

The gateway runs as its own process (the installed console script), the
simulated modems sit on real pseudo-terminals in this process, and a
subscriber checks what a regional center would receive.

Nothing here sleeps to let something happen: every step waits for what it
needs to see (the subscriber received an event, the outbox file committed a
row) up to ``PROCESS_TIMEOUT_S``, so a loaded machine makes the tests slower,
not red.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drivers.simulated.gsm_modem import PlacedCall, SimulatedCall, SimulatedGsmModem
from gateway.broker import PrivateBroker
from gateway.consumer import FeedMonitor
from gateway.events import Presentation
from tests.conftest import PROCESS_TIMEOUT_S, require_tool, validate_event, wait_until

GATEWAY, REGION = "bontang-01", "64.74"
RING_S = 0.3
STOP_BUDGET_S = 5.0  # SIGTERM to exit: the gateway's own stop timeouts (daemon.STOP_TIMEOUT_S)


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
        self.process.wait(PROCESS_TIMEOUT_S)

    def terminate(self) -> float:
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(PROCESS_TIMEOUT_S)
        return time.monotonic() - started

    def stop_if_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


@dataclass(frozen=True)
class OutboxSnapshot:
    """The outbox file as the gateway left it at one moment (one read transaction)."""

    committed: int  # the highest seq committed (meta next_seq - 1)
    pending: dict[int, dict[str, Any]]  # seq -> event, for the rows not yet acknowledged

    def pending_of(self, event_type: str) -> list[dict[str, Any]]:
        return [event for event in self.pending.values() if event["type"] == event_type]


def read_outbox(path: Path) -> OutboxSnapshot | None:
    """Read the live outbox without disturbing it (read-only); None while it cannot be read.

    The gateway creates the file at start, and a reader can meet it half
    created; the caller polls until a snapshot comes.
    """
    if not path.exists():
        return None
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=5)
        ) as conn:
            conn.execute("BEGIN")  # both reads from the same snapshot
            (next_seq,) = conn.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
            rows = conn.execute("SELECT seq, payload FROM events").fetchall()
            conn.execute("COMMIT")
    except sqlite3.Error:
        return None
    return OutboxSnapshot(int(next_seq) - 1, {seq: json.loads(payload) for seq, payload in rows})


def outbox_snapshot(path: Path) -> OutboxSnapshot:
    return wait_until(lambda: read_outbox(path), PROCESS_TIMEOUT_S, what=f"{path} readable")


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
        assert monitor.wait_for(lambda m: lines_up(m) == 1, PROCESS_TIMEOUT_S), "modem set up"
        placed: list[PlacedCall] = [
            modem.place_call(call("+6281234567890", talk_s=0.6)),  # answered after 2 rings
            modem.place_call(
                call(None, presentation=Presentation.RESTRICTED, hangup_after_rings=1)
            ),  # withheld, abandoned
            modem.place_call(call(None, talk_s=0.3)),  # no caller id at all, answered
        ]
        for each in placed:
            assert each.wait(PROCESS_TIMEOUT_S)
        assert monitor.wait_for(
            lambda m: (
                len(m.events_of(GATEWAY, "call.ended"))
                + len(m.events_of(GATEWAY, "call.abandoned"))
                == 3
            ),
            PROCESS_TIMEOUT_S,
        ), "three calls over"
        elapsed = gateway.terminate()
    finally:
        gateway.stop_if_running()
    assert gateway.process and gateway.process.returncode == 0
    assert elapsed < STOP_BUDGET_S, "SIGTERM stops the gateway within a few seconds"
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
    assert monitor.wait_for(lambda m: m.feed(GATEWAY).status == "offline", PROCESS_TIMEOUT_S)
    log_text = gateway.log.read_text()
    assert "+6281234567890" not in log_text, "caller numbers never reach the log"


class CallStream:
    """Keeps simulated modems ringing: whenever fewer than two calls wait on one, queue another.

    Every call rings once and the caller gives up (``call.offered`` then
    ``call.abandoned``); each number is new, so a call reported twice shows.
    """

    WAITING = 2
    PACE_S = 0.05  # how often the queues are topped up

    def __init__(self, sims: list[SimulatedGsmModem]) -> None:
        self.sims = sims
        self.placed: list[list[PlacedCall]] = [[] for _ in sims]
        self._numbers = itertools.count(1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="call-stream", daemon=True)

    def start(self) -> CallStream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(PROCESS_TIMEOUT_S)

    def all_done(self) -> bool:
        return all(placed.done for calls in self.placed for placed in calls)

    def _run(self) -> None:
        while not self._stop.wait(self.PACE_S):
            for index, (sim, calls) in enumerate(zip(self.sims, self.placed, strict=True)):
                if sum(not placed.done for placed in calls) < self.WAITING:
                    number = f"+62812{index}{next(self._numbers):06d}"
                    calls.append(sim.place_call(call(number, hangup_after_rings=1)))


KILLS = 4
OFFERS_PER_LIFE = 2  # call.offered each gateway process commits before it is killed


def offered_seqs_received(monitor: FeedMonitor) -> set[int]:
    return {event["seq"] for event in monitor.events_of(GATEWAY, "call.offered")}


def offered_seqs_committed(outbox: Path, monitor: FeedMonitor) -> set[int]:
    """call.offered known to be committed: waiting in the outbox, or already received."""
    snapshot = read_outbox(outbox)
    waiting = {e["seq"] for e in snapshot.pending_of("call.offered")} if snapshot else set()
    return waiting | offered_seqs_received(monitor)


def wait_for_new_offers(progress: Callable[[], set[int]], floor: int, point: str) -> set[int]:
    """Wait until ``progress`` shows OFFERS_PER_LIFE call.offered seqs above ``floor``."""
    __tracebackhide__ = True

    def fresh() -> set[int]:
        new = {seq for seq in progress() if seq > floor}
        return new if len(new) >= OFFERS_PER_LIFE else set()

    return wait_until(
        fresh, PROCESS_TIMEOUT_S, what=f"{OFFERS_PER_LIFE} calls after seq {floor} {point}"
    )


@pytest.mark.timeout(KILLS * PROCESS_TIMEOUT_S)  # each step fails on its own deadline first
def test_sigkill_during_a_stream_loses_nothing_committed(
    tmp_path: Path, broker: PrivateBroker, monitor: FeedMonitor
) -> None:
    """SIGKILL the gateway four times while calls stream in; every committed event arrives.

    The kill points are defined by progress, not by time: alternately just
    after the subscriber *received* this process's second new call, and just
    after the outbox *committed* it (perhaps before it was sent, or before
    its PUBACK was recorded). Calls that ring while no gateway runs are never
    seen, so never committed: the test accounts for what was committed, not
    for what was placed. The fifth process takes calls too, sees the stream
    end, delivers what is left, and stops cleanly.
    """
    links = [tmp_path / "gsm0", tmp_path / "gsm1"]
    sims = [
        SimulatedGsmModem(link, model=model, seed=i)
        for i, (link, model) in enumerate(zip(links, ["quectel_ec25", "huawei_e173"], strict=True))
    ]
    config = write_config(tmp_path, broker, links)
    outbox = tmp_path / "outbox.db"
    stream = CallStream(sims)
    seen: set[int] = set()  # call.offered seqs seen committed, OFFERS_PER_LIFE per process
    gateway = GatewayProcess(config).start()
    try:
        assert monitor.wait_for(lambda m: lines_up(m) == 2, PROCESS_TIMEOUT_S), "lines up"
        floor = outbox_snapshot(outbox).committed
        stream.start()
        for life in range(KILLS + 1):
            if life % 2 == 0:
                seen |= wait_for_new_offers(
                    lambda: offered_seqs_received(monitor), floor, "received by the subscriber"
                )
            else:
                seen |= wait_for_new_offers(
                    lambda: offered_seqs_committed(outbox, monitor), floor, "committed"
                )
            if life == KILLS:
                break  # the last process lives on: it sees the stream end
            gateway.kill()  # no goodbye, no flush: like a power cut of the process
            floor = outbox_snapshot(outbox).committed  # what the killed process committed
            gateway = GatewayProcess(config).start()
        stream.stop()
        wait_until(stream.all_done, PROCESS_TIMEOUT_S, what="every simulated call over")

        def everything_committed_received() -> bool:
            snapshot = read_outbox(outbox)
            return (
                snapshot is not None
                and not snapshot.pending
                and monitor.feed(GATEWAY).missing(snapshot.committed) == []
            )

        wait_until(
            everything_committed_received,
            PROCESS_TIMEOUT_S,
            what="every committed seq received and acknowledged",
        )
        gateway.terminate()
        assert gateway.process and gateway.process.returncode == 0
    finally:
        stream.stop()
        gateway.stop_if_running()
        for sim in sims:
            sim.close()
    feed = monitor.feed(GATEWAY)
    assert seen <= set(feed.events), "a call committed before a kill was lost"
    offered = [e for e in feed.events.values() if e["type"] == "call.offered"]
    assert len(offered) >= (KILLS + 1) * OFFERS_PER_LIFE
    assert feed.duplicates <= (KILLS + 1) * 20, "duplicates: at most the in-flight window per life"
    for event in feed.events.values():
        validate_event(event)


def test_queue_stats_and_peek_on_a_live_outbox(tmp_path: Path, modem: SimulatedGsmModem) -> None:
    require_tool("mosquitto")  # PrivateBroker names a port even when it is not started
    unreachable = PrivateBroker(workdir=tmp_path / "never-started")  # nobody listens there
    config = write_config(tmp_path, unreachable, [modem.link])
    outbox = tmp_path / "outbox.db"
    gateway = GatewayProcess(config).start()

    def pending(event_type: str) -> list[dict[str, Any]]:
        snapshot = read_outbox(outbox)
        return snapshot.pending_of(event_type) if snapshot else []

    try:
        wait_until(
            lambda: [e for e in pending("line.status") if e["data"]["state"] == "up"],
            PROCESS_TIMEOUT_S,
            what="the driver has set the modem up",
        )
        placed = modem.place_call(call("+6281100000001", hangup_after_rings=1))
        assert placed.wait(PROCESS_TIMEOUT_S)
        wait_until(
            lambda: pending("call.offered") and pending("call.abandoned"),
            PROCESS_TIMEOUT_S,
            what="the abandoned call committed",
        )
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
    numbers = json.loads(stats.stdout)
    assert numbers["pending"] >= 3  # line status, offered, abandoned
    assert numbers["pending_by_priority"]["emergency"] >= 2
    assert "call.offered" in peek.stdout and "call.abandoned" in peek.stdout
