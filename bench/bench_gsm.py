"""GSM line benchmark: CPU of idle modems, and RING -> committed ``call.offered`` latency.

Eight simulated modems (``drivers.simulated.SimulatedGsmModem``, Quectel EC25,
each on its own PTY) run in a child process, as hardware would be outside the
gateway; eight real ``GsmModemDriver`` lines in this process talk to them, with
the liveness ping, the signal/registration polls and the worker tick at their
defaults, and emit into a real ``Outbox`` (SQLite file, WAL, synchronous=FULL)::

    child: 8 x SimulatedGsmModem  <- PTY ->  8 x GsmModemDriver -> Outbox.submit -> commit

(a) idle: all lines up, no calls, for ``--idle-s`` seconds: CPU of the gateway
    side (per thread, from /proc/self/task) and of the simulator process, as %
    of one core. Baseline in the same run: 16 bare threads (a line has a worker
    and a port reader) that wait on an idle PTY with the driver's 0.1 s tick
    (the floor of a design that polls at that rate).
    Target: gateway < 1 % of a core.
(b) busy: every modem takes calls back to back for ``--busy-s`` seconds (ring,
    ``+CLIP``, answer on the first ring, 1 s of call with ``AT+CLCC`` polls,
    hang-up); latency from the simulator writing the first RING (its
    ``time.monotonic()``, the same clock in both processes) to the outbox
    writer having committed that call's ``call.offered``, p50/p99. Baselines
    in the same run: a bare PTY write -> read, a bare one-row SQLite commit
    (WAL, FULL) in the same directory, and ``Outbox.submit`` -> committed with
    nothing else running. Target: p99 < 5 ms.

Run: ``make bench`` or ``.venv/bin/python bench/bench_gsm.py [--quick]``. Prints
a table and writes JSON (default ``bench/results/gsm.json``); the load average
is printed too, since other work on the machine moves these numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pty
import re
import select
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drivers.gsm.modem import TICK_S, GsmModemDriver  # noqa: E402
from gateway.events import CallOffered, Event, LineStatus, Presentation  # noqa: E402
from gateway.outbox import Outbox  # noqa: E402
from gateway.outbox_reader import PendingRow  # noqa: E402

GATEWAY, REGION = "bench-01", "64.74"
MODEMS = 8
TARGETS = {"idle_gateway_percent": 1.0, "offer_p99_ms": 5.0}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------- the simulator child


def run_simulator(workdir: Path, count: int) -> int:
    """Child process: ``count`` modems; on ``busy`` in stdin, calls back to back on each.

    Prints ``ready``, then ``ring NUMBER MONOTONIC`` for each call's first RING.
    """
    from drivers.simulated.gsm_calls import SimulatedCall
    from drivers.simulated.gsm_modem import SimulatedGsmModem

    modems = [SimulatedGsmModem(workdir / f"gsm{index}", seed=index) for index in range(count)]
    out_lock = threading.Lock()
    stop = threading.Event()

    def say(line: str) -> None:
        with out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def calls(index: int) -> None:
        modem, serial = modems[index], 0
        while not stop.is_set():
            serial += 1
            number = f"+62812{index:02d}{serial:06d}"
            placed = modem.place_call(SimulatedCall(number, talk_s=1.0, ring_interval_s=1.0))
            while placed.first_ring_monotonic is None and not placed.done:
                time.sleep(0.002)
            if placed.first_ring_monotonic is not None:
                say(f"ring {number} {placed.first_ring_monotonic!r}")
            placed.wait(30.0)

    say("ready")
    threads: list[threading.Thread] = []
    for line in sys.stdin:
        if line.strip() == "busy" and not threads:
            threads = [threading.Thread(target=calls, args=(i,), daemon=True) for i in range(count)]
            for thread in threads:
                thread.start()
        elif line.strip() == "quit":
            break
    stop.set()
    for modem in modems:
        modem.close()
    return 0


# --------------------------------------------------------------------- CPU accounting


def thread_cpu_s() -> dict[int, float]:
    """CPU seconds (user + system) of each thread of this process, by native id."""
    times: dict[int, float] = {}
    for task in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        times[int(task)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return times


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def thread_names() -> dict[int, str]:
    return {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# --------------------------------------------------------------------- baselines


def bare_tick_cpu_percent(threads: int, seconds: float) -> float:
    """8 threads each waiting on an idle PTY with the driver's tick: % of one core."""
    stop = threading.Event()
    pairs = [pty.openpty() for _ in range(threads)]

    def wait_loop(fd: int) -> None:
        while not stop.is_set():
            if select.select([fd], [], [], TICK_S)[0]:
                os.read(fd, 4096)

    workers = [threading.Thread(target=wait_loop, args=(slave,)) for _, slave in pairs]
    start_cpu, start = time.process_time(), time.monotonic()
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    used = time.process_time() - start_cpu
    for master, slave in pairs:
        os.close(master)
        os.close(slave)
    return 100.0 * used / (time.monotonic() - start)


def bare_pty_latency_ms(count: int) -> list[float]:
    """A line written on a PTY master until a select/read loop on the raw slave has it."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    samples: list[float] = []
    got = threading.Event()
    stop = threading.Event()
    arrived = [0.0]

    def reader() -> None:
        while not stop.is_set():
            if select.select([slave], [], [], 0.1)[0]:
                os.read(slave, 4096)
                arrived[0] = time.monotonic()
                got.set()

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(count):
        got.clear()
        sent = time.monotonic()
        os.write(master, b"\r\nRING\r\n")
        got.wait(1.0)
        samples.append((arrived[0] - sent) * 1000.0)
        time.sleep(0.002)
    stop.set()
    thread.join()
    os.close(master)
    os.close(slave)
    return samples


def bare_sqlite_commit_ms(path: Path, count: int) -> list[float]:
    """One ~300-byte row inserted and committed per transaction, WAL, synchronous=FULL."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, payload BLOB)")
    payload = b"x" * 300
    samples = []
    for _ in range(count):
        start = time.monotonic()
        db.execute("BEGIN")
        db.execute("INSERT INTO t (payload) VALUES (?)", (payload,))
        db.execute("COMMIT")
        samples.append((time.monotonic() - start) * 1000.0)
    db.close()
    return samples


def bare_outbox_commit_ms(path: Path, count: int) -> list[float]:
    """``Outbox.submit(call.offered)`` until its commit listener runs, nothing else running."""
    outbox = Outbox(path, gateway_id=GATEWAY, region=REGION)
    committed = threading.Event()
    at = [0.0]

    def on_commit(rows: list[PendingRow]) -> None:
        at[0] = time.monotonic()
        committed.set()

    outbox.add_commit_listener(on_commit)
    samples = []
    for n in range(count):
        committed.clear()
        event = CallOffered(
            call_id=f"0192f1c4-0000-7000-8000-{n:012d}",
            line="gsm0",
            number=f"+62812{n:08d}",
            presentation=Presentation.ALLOWED,
            ring_count=1,
        )
        start = time.monotonic()
        outbox.submit(event)
        committed.wait(5.0)
        samples.append((at[0] - start) * 1000.0)
        time.sleep(0.002)
    outbox.close()
    return samples


# --------------------------------------------------------------------- the gateway side


class Gateway:
    """Eight drivers emitting into one outbox; notes when each call.offered is committed."""

    def __init__(self, workdir: Path, count: int) -> None:
        self.outbox = Outbox(workdir / "outbox.db", gateway_id=GATEWAY, region=REGION)
        self.committed: dict[str, float] = {}  # caller number -> monotonic commit time
        self.emitted: dict[str, float] = {}  # caller number -> when the driver emitted the offer
        self.up: set[str] = set()
        self._lock = threading.Lock()
        self.outbox.add_commit_listener(self._on_commit)
        self.drivers = [
            GsmModemDriver(f"gsm{i}", str(workdir / f"gsm{i}"), self._emit, answer_after_rings=1)
            for i in range(count)
        ]

    def _emit(self, event: Event) -> Any:
        if isinstance(event, CallOffered) and event.number:
            self.emitted[event.number] = time.monotonic()
        if isinstance(event, LineStatus) and event.state == "up":
            with self._lock:
                self.up.add(event.line)
        return self.outbox.submit(event)

    def _on_commit(self, rows: list[PendingRow]) -> None:
        now = time.monotonic()
        for row in rows:
            if row.type == "call.offered":
                number = json.loads(row.payload)["data"].get("number")
                with self._lock:
                    self.committed[number] = now

    def start(self) -> None:
        for driver in self.drivers:
            driver.start()

    def stop(self) -> None:
        for driver in self.drivers:
            driver.stop()
        self.outbox.close()


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_gsm: timed out waiting for {what}")
        time.sleep(0.05)


def idle_cpu(gateway: Gateway, simulator: subprocess.Popen[str], seconds: float) -> dict[str, Any]:
    main_thread = threading.get_native_id()
    before, sim_before, start = thread_cpu_s(), process_cpu_s(simulator.pid), time.monotonic()
    time.sleep(seconds)
    after, sim_after, wall = thread_cpu_s(), process_cpu_s(simulator.pid), time.monotonic() - start
    names = thread_names()
    per_thread: dict[str, float] = {}
    for tid, cpu in after.items():
        if tid == main_thread:
            continue
        kind = re.sub(r"gsm\d+", "gsmN", names.get(tid, "unnamed"))  # one row per kind
        per_thread[kind] = per_thread.get(kind, 0.0) + cpu - before.get(tid, 0.0)
    gateway_cpu = sum(per_thread.values())
    top = sorted(per_thread.items(), key=lambda item: -item[1])[:6]
    return {
        "seconds": wall,
        "gateway_percent": 100.0 * gateway_cpu / wall,
        "simulator_percent": 100.0 * (sim_after - sim_before) / wall,
        "top_threads_percent": {name: round(100.0 * cpu / wall, 3) for name, cpu in top},
    }


def busy_latency(
    gateway: Gateway, simulator: subprocess.Popen[str], seconds: float
) -> dict[str, Any]:
    assert simulator.stdin is not None and simulator.stdout is not None
    rings: dict[str, float] = {}
    stdout = simulator.stdout

    def read_rings() -> None:
        for line in stdout:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "ring":
                rings[parts[1]] = float(parts[2])

    reader = threading.Thread(target=read_rings, daemon=True)
    reader.start()
    simulator.stdin.write("busy\n")
    simulator.stdin.flush()
    time.sleep(seconds)
    gateway.outbox.flush()
    with gateway._lock:
        committed = dict(gateway.committed)
    latencies = [
        (committed[number] - rung) * 1000.0 for number, rung in rings.items() if number in committed
    ]
    to_emit = [
        (gateway.emitted[number] - rung) * 1000.0
        for number, rung in rings.items()
        if number in committed and number in gateway.emitted
    ]
    missing = len(rings) - len(latencies)
    if not latencies:
        raise SystemExit("bench_gsm: no call.offered committed")
    return {
        "calls": len(latencies),
        "not_offered_yet": missing,
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies),
        "ring_to_emit_p50_ms": statistics.median(to_emit),
        "ring_to_emit_p99_ms": percentile(to_emit, 0.99),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s phases (smoke run)")
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--busy-s", type=float, default=40.0)
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "gsm.json"))
    parser.add_argument("--simulator", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.simulator:
        return run_simulator(Path(args.simulator), MODEMS)
    idle_s, busy_s = (10.0, 10.0) if args.quick else (args.idle_s, args.busy_s)
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "load_average_before": os.getloadavg(),
        "modems": MODEMS,
    }
    with tempfile.TemporaryDirectory(prefix="edge112-bench-gsm-") as tmp:
        workdir = Path(tmp)
        results["baseline_tick_percent"] = bare_tick_cpu_percent(2 * MODEMS, min(idle_s, 10.0))
        pty_ms = bare_pty_latency_ms(300)
        sqlite_ms = bare_sqlite_commit_ms(workdir / "bare.db", 300)
        outbox_ms = bare_outbox_commit_ms(workdir / "bare-outbox.db", 300)
        results["baseline_outbox_ms"] = {
            "p50": statistics.median(outbox_ms),
            "p99": percentile(outbox_ms, 0.99),
        }
        results["baseline_pty_ms"] = {
            "p50": statistics.median(pty_ms),
            "p99": percentile(pty_ms, 0.99),
        }
        results["baseline_sqlite_ms"] = {
            "p50": statistics.median(sqlite_ms),
            "p99": percentile(sqlite_ms, 0.99),
        }
        simulator = subprocess.Popen(
            [sys.executable, __file__, "--simulator", str(workdir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert simulator.stdout is not None and simulator.stdin is not None
        try:
            if simulator.stdout.readline().strip() != "ready":
                raise SystemExit("bench_gsm: the simulator did not start")
            gateway = Gateway(workdir, MODEMS)
            gateway.start()
            try:
                wait_for(lambda: len(gateway.up) == MODEMS, 60.0, "8 lines up")
                time.sleep(2.0)  # the set-up's tail (first signal poll) is not idle work
                results["a_idle"] = idle_cpu(gateway, simulator, idle_s)
                results["b_busy"] = busy_latency(gateway, simulator, busy_s)
            finally:
                gateway.stop()
                simulator.stdin.write("quit\n")
                simulator.stdin.flush()
        finally:
            try:
                simulator.wait(10.0)
            except subprocess.TimeoutExpired:
                simulator.kill()
    results["load_average_after"] = os.getloadavg()
    idle, busy = results["a_idle"], results["b_busy"]
    verdicts = {
        "idle_gateway_percent": idle["gateway_percent"] < TARGETS["idle_gateway_percent"],
        "offer_p99_ms": busy["p99_ms"] < TARGETS["offer_p99_ms"],
    }
    rows = [
        (
            f"baseline: {2 * MODEMS} bare threads, idle PTY, {TICK_S} s tick",
            f"{results['baseline_tick_percent']:.3f} %",
            "of one core",
        ),
        (
            f"(a) {MODEMS} idle lines, gateway (driver threads)",
            f"{idle['gateway_percent']:.3f} %",
            f"< {TARGETS['idle_gateway_percent']} %",
        ),
        ("    simulator process", f"{idle['simulator_percent']:.3f} %", ""),
        (
            "baseline: PTY write -> read p50 / p99",
            "{p50:.3f} / {p99:.3f} ms".format(**results["baseline_pty_ms"]),
            "",
        ),
        (
            "baseline: SQLite 1-row commit p50 / p99",
            "{p50:.3f} / {p99:.3f} ms".format(**results["baseline_sqlite_ms"]),
            "WAL, FULL",
        ),
        (
            "baseline: Outbox.submit -> committed p50 / p99",
            "{p50:.3f} / {p99:.3f} ms".format(**results["baseline_outbox_ms"]),
            "alone",
        ),
        (
            f"(b) RING -> committed call.offered p50 ({busy['calls']} calls)",
            f"{busy['p50_ms']:.2f} ms",
            f"{MODEMS} modems in calls",
        ),
        ("    p99", f"{busy['p99_ms']:.2f} ms", f"< {TARGETS['offer_p99_ms']} ms"),
        (
            "    of which RING -> driver emits, p50 / p99",
            f"{busy['ring_to_emit_p50_ms']:.2f} / {busy['ring_to_emit_p99_ms']:.2f} ms",
            "",
        ),
    ]
    results["targets"], results["pass"] = TARGETS, verdicts
    print(
        f"\nedge112 GSM benchmark ({MODEMS} simulated EC25 modems, "
        f"Python {platform.python_version()}, "
        f"load average {results['load_average_before'][0]:.2f})"
    )
    for name, value, target in rows:
        print(f"  {name:48} {value:>18}   {target}")
    print(f"  busiest gateway threads (% of a core): {idle['top_threads_percent']}")
    print("  " + ", ".join(f"{k}: {'PASS' if v else 'FAIL'}" for k, v in verdicts.items()))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"  saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
