"""Benchmark of the spine: outbox + forwarder against a loopback mosquitto.

One run, all numbers from the same machine and broker, printed as a table and
saved as JSON (default ``bench/results/spine.json``):

(a) raw paho QoS 1 throughput of the same payloads (window 20): the baseline
(b) edge112 throughput, event submitted -> PUBACK, synchronous=FULL; ratio b/a
(c) latency from the simulated modem writing RING to a subscriber receiving
    call.offered, p50 and p99, at 100 calls/s
(d) throughput with 1,000,000 events already queued, as a ratio of (b)
(e) the gateway's peak RSS (an ``edge112 run`` process taking calls)

Run: ``make bench`` or ``.venv/bin/python bench/bench_spine.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.broker import PrivateBroker  # noqa: E402
from gateway.config import MqttSettings  # noqa: E402
from gateway.events import CallOffered, LineStatus, Presentation, encode  # noqa: E402
from gateway.forwarder import Forwarder  # noqa: E402
from gateway.outbox import Outbox  # noqa: E402

GATEWAY, REGION = "bench-01", "64.74"
TARGETS = {"ratio_b_a": 0.7, "latency_p99_ms": 10.0, "ratio_backlog": 0.8, "peak_rss_mb": 60.0}


def sample_event(n: int) -> CallOffered:
    return CallOffered(
        call_id=f"0192f1c4-0000-7000-8000-{n:012d}",
        line="gsm0",
        number=f"+62812{n:08d}",
        presentation=Presentation.ALLOWED,
        ring_count=1,
    )


def raw_paho_throughput(url_port: int, count: int) -> float:
    """(a) paho alone: publish ``count`` QoS 1 payloads, window 20, until the last PUBACK."""
    payloads = [
        encode(sample_event(n), seq=n + 1, gateway_id=GATEWAY, region=REGION) for n in range(count)
    ]
    topic = f"edge112/v1/{REGION}/{GATEWAY}/event/call.offered"
    done = threading.Event()
    acked = 0

    def on_publish(*_args: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == count:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(20)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", url_port)
    client.loop_start()
    time.sleep(0.2)
    start = time.perf_counter()
    for payload in payloads:
        client.publish(topic, payload, qos=1)
    done.wait(120)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return count / elapsed


def edge112_throughput(
    broker: PrivateBroker, workdir: Path, count: int, backlog: int = 0
) -> tuple[float, float]:
    """(b) submit ``count`` call events; time until the last is acknowledged and deleted.

    (d) the same with ``backlog`` telemetry events already queued: the calls
    overtake them (priority), every insert, fetch and delete works on a table
    of a million rows, and the forwarder also drains backlog telemetry when no
    call is waiting. Returns (call events/s, all events acknowledged/s).
    """
    path = workdir / f"outbox-{backlog}.db"
    outbox = Outbox(path, gateway_id=GATEWAY, region=REGION, group_commit_max=5000)
    if backlog:
        batch = 100_000
        for start in range(0, backlog, batch):
            last = None
            for n in range(start, min(start + batch, backlog)):
                last = outbox.submit(LineStatus(line="gsm0", state="up", detail=f"backlog {n}"))
            assert last is not None
            last.wait(600)
    forwarder = Forwarder(outbox, MqttSettings(url=broker.url), gateway_id=GATEWAY, region=REGION)
    forwarder.start()
    while not forwarder.stats.connected:
        time.sleep(0.01)
    probe = sqlite3.connect(path)
    acknowledged_before = forwarder.stats.acknowledged
    start = time.perf_counter()
    last_submission = None
    for n in range(count):
        last_submission = outbox.submit(sample_event(n))
    assert last_submission is not None
    last_submission.wait(120)
    while probe.execute("SELECT 1 FROM events WHERE priority = 0 LIMIT 1").fetchone():
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    acknowledged = forwarder.stats.acknowledged - acknowledged_before
    probe.close()
    forwarder.stop()
    outbox.close()
    return count / elapsed, acknowledged / elapsed


def ring_latency(
    broker: PrivateBroker, workdir: Path, rate: float, seconds: float
) -> dict[str, Any]:
    """(c) RING written by the simulated modem -> call.offered at a subscriber."""
    from bench.spine_latency import measure_ring_latency

    return measure_ring_latency(broker.url, workdir, rate=rate, seconds=seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (smoke run)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "spine.json"))
    args = parser.parse_args()
    count = 5_000 if args.quick else 20_000
    backlog = 100_000 if args.quick else 1_000_000
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "count": count,
        "backlog": backlog,
    }
    with tempfile.TemporaryDirectory(prefix="edge112-bench-") as tmp, PrivateBroker() as broker:
        workdir = Path(tmp)
        results["a_raw_paho_msg_s"] = raw_paho_throughput(broker.port, count)
        results["b_edge112_msg_s"], _ = edge112_throughput(broker, workdir, count)
        results["ratio_b_a"] = results["b_edge112_msg_s"] / results["a_raw_paho_msg_s"]
        results["c_latency"] = ring_latency(
            broker, workdir, rate=100.0, seconds=5 if args.quick else 10
        )
        results["latency_p50_ms"] = results["c_latency"]["p50_ms"]
        results["latency_p99_ms"] = results["c_latency"]["p99_ms"]
        calls_s, all_s = edge112_throughput(broker, workdir, count, backlog=backlog)
        results["d_backlog_calls_msg_s"] = calls_s
        results["d_backlog_msg_s"] = all_s  # calls and backlog telemetry acknowledged
        results["ratio_backlog"] = all_s / results["b_edge112_msg_s"]
        # (e) VmHWM of the ``edge112 run`` process that took the calls of (c)
        results["peak_rss_mb"] = results["c_latency"]["gateway_peak_rss_mb"]

    rows = [
        ("(a) raw paho QoS 1, window 20", f"{results['a_raw_paho_msg_s']:,.0f} msg/s", "baseline"),
        ("(b) edge112 submit->PUBACK, FULL", f"{results['b_edge112_msg_s']:,.0f} msg/s", ""),
        ("    ratio b/a", f"{results['ratio_b_a']:.2f}", f">= {TARGETS['ratio_b_a']}"),
        ("(c) RING->call.offered p50", f"{results['latency_p50_ms']:.2f} ms", "at 100 calls/s"),
        ("    p99", f"{results['latency_p99_ms']:.2f} ms", f"< {TARGETS['latency_p99_ms']}"),
        (f"(d) as (b), {backlog:,} queued", f"{results['d_backlog_msg_s']:,.0f} msg/s", "all"),
        ("    of which the new call events", f"{results['d_backlog_calls_msg_s']:,.0f} msg/s", ""),
        ("    ratio d/b", f"{results['ratio_backlog']:.2f}", f">= {TARGETS['ratio_backlog']}"),
        ("(e) gateway peak RSS", f"{results['peak_rss_mb']:.1f} MB", f"< {TARGETS['peak_rss_mb']}"),
    ]
    verdicts = {
        "ratio_b_a": results["ratio_b_a"] >= TARGETS["ratio_b_a"],
        "latency_p99_ms": results["latency_p99_ms"] < TARGETS["latency_p99_ms"],
        "ratio_backlog": results["ratio_backlog"] >= TARGETS["ratio_backlog"],
        "peak_rss_mb": results["peak_rss_mb"] < TARGETS["peak_rss_mb"],
    }
    results["targets"] = TARGETS
    results["pass"] = verdicts
    print(f"\nedge112 spine benchmark ({count:,} events, Python {platform.python_version()})")
    for name, value, target in rows:
        print(f"  {name:36} {value:>16}   {target}")
    print("  " + ", ".join(f"{k}: {'PASS' if v else 'FAIL'}" for k, v in verdicts.items()))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"  saved {args.json}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
