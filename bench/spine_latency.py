"""Bench parts (c) and (e): RING-to-subscriber latency and the gateway's peak RSS.

The gateway runs as its own ``edge112 run`` process, as in production; the
simulated modems and the subscriber run in the benchmark process. Calls are
spread round-robin over several simulated modems (a modem carries one call at
a time), each ringing once with a caller id and then abandoned.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from drivers.simulated.gsm_modem import PlacedCall, SimulatedCall, SimulatedGsmModem
from gateway.consumer import FeedMonitor

GATEWAY, REGION = "bench-lat", "64.74"
MODEM_COUNT = 12
RING_INTERVAL_S = 0.05


def _config(workdir: Path, url: str, links: list[Path]) -> Path:
    path = workdir / "latency.toml"
    text = (
        f'[gateway]\nid = "{GATEWAY}"\nregion = "{REGION}"\nlog_level = "warning"\n'
        f'[mqtt]\nurl = "{url}"\n[outbox]\npath = "{workdir / "latency.db"}"\n'
    )
    for index, link in enumerate(links):
        text += f'[[modems]]\nname = "gsm{index}"\nport = "{link}"\n'
    path.write_text(text)
    return path


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_ring_latency(url: str, workdir: Path, *, rate: float, seconds: float) -> dict[str, Any]:
    links = [workdir / f"lat-gsm{i}" for i in range(MODEM_COUNT)]
    modems = [SimulatedGsmModem(link, model="quectel_ec25", seed=i) for i, link in enumerate(links)]
    received: dict[str, float] = {}
    lines_up: set[str] = set()
    lock = threading.Lock()

    def on_event(event: dict[str, Any]) -> None:
        now = time.time()
        with lock:
            if event["type"] == "call.offered" and event["data"]["number"]:
                received[event["data"]["number"]] = now
            elif event["type"] == "line.status" and event["data"]["state"] == "up":
                lines_up.add(event["data"]["line"])

    monitor = FeedMonitor(url, f"edge112/v1/{REGION}/{GATEWAY}/#", on_event=on_event).start()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(_config(workdir, url, links))],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while len(lines_up) < MODEM_COUNT and time.monotonic() < deadline:
            time.sleep(0.05)
        placed: list[PlacedCall] = []
        total = int(rate * seconds)
        start = time.monotonic()
        for n in range(total):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            spec = SimulatedCall(
                number=f"+62813{n:08d}", hangup_after_rings=1, ring_interval_s=RING_INTERVAL_S
            )
            placed.append(modems[n % MODEM_COUNT].place_call(spec))
        achieved_rate = total / (time.monotonic() - start)
        monitor.wait_for(lambda _m: len(received) >= total, 20)
        peak_rss = _peak_rss_mb(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(15)
        monitor.stop()
        for modem in modems:
            modem.close()
    latencies = sorted(
        (received[call.spec.number] - call.first_ring_wall) * 1000
        for call in placed
        if call.spec.number in received and call.first_ring_wall is not None
    )
    quantiles = (
        statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
    )
    return {
        "calls": total,
        "measured": len(latencies),
        "offered_rate_per_s": round(achieved_rate, 1),
        "p50_ms": quantiles[49],
        "p99_ms": quantiles[98],
        "max_ms": max(latencies, default=float("nan")),
        "gateway_peak_rss_mb": peak_rss,
        "modems": MODEM_COUNT,
    }
