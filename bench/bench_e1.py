"""E1 D-channel benchmark: HDLC deframe + FCS check in Mbit/s per core.

Run once, single thread, CPU time (``time.process_time``), best of several
repeats so that other load on the machine matters less::

    .venv/bin/python bench/bench_e1.py [--json PATH] [--repeats N]

Prints a table with PASS/FAIL against the target and writes JSON (default
``bench/results/e1.json``). The Cython deframer (``cython_ext/hdlc.pyx``)
and its pure-Python reference (``cython_ext/reference/hdlc.py``) run in the
same process on the same streams:

- busy: LAPD frames of 3 to 263 octets back to back (one shared flag), the
  worst case for a D-channel, fed in 20 ms chunks (160 octets, how a span
  driver hands TS16 over) and in one-second chunks;
- random: random octets (hunting, aborts, stray flags, bad frames);
- idle: flags only.

Target: HDLC deframe + FCS >= 200 Mbit/s per core (Cython, busy line,
20 ms chunks). One timeslot is 0.064 Mbit/s, so that is ~3,000 D-channels
per core.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cython_ext import hdlc
from cython_ext.reference import hdlc as hdlc_reference

TARGET_MBIT_S = 200.0
CHUNK_20MS = 160  # octets of one 64 kbit/s timeslot in 20 ms
TIMESLOT_MBIT_S = 0.064


def cpu_seconds(function: Callable[[], object], repeats: int) -> float:
    """The smallest CPU time of ``repeats`` runs of ``function``."""
    best = math.inf
    for _ in range(repeats):
        start = time.process_time()
        function()
        best = min(best, time.process_time() - start)
    return max(best, 1e-9)


def busy_stream(octets: int, seed: int = 1) -> tuple[bytes, int]:
    """LAPD-sized frames back to back, msb-first as from TS16; returns (stream, frames)."""
    rng = random.Random(seed)
    encoder = hdlc_reference.HdlcEncoder(hdlc_reference.MSB_FIRST)
    encoder.add_flags(1)
    out = bytearray()
    count = 0
    while len(out) < octets:
        for _ in range(64):
            encoder.add_frame(rng.randbytes(rng.randrange(3, 264)))
            count += 1
        out += encoder.take()
    return bytes(out[:octets]), count


def throughput(module: ModuleType, stream: bytes, chunk: int, repeats: int) -> float:
    """Mbit/s of line fed through a fresh deframer in ``chunk``-octet pieces."""
    pieces = [stream[start : start + chunk] for start in range(0, len(stream), chunk)]

    def run() -> None:
        deframer = module.HdlcDeframer()
        feed = deframer.feed
        for piece in pieces:
            feed(piece)

    return 8 * len(stream) / cpu_seconds(run, repeats) / 1e6


def bench_hdlc(repeats: int) -> dict[str, Any]:
    busy, frame_count = busy_stream(4_000_000)
    small = busy[:100_000]  # the reference is ~1000x slower
    rng = random.Random(2)
    noise = rng.randbytes(4_000_000)
    idle = b"\x7e" * 4_000_000

    check = hdlc.HdlcDeframer()
    delivered = len(check.feed(busy))
    assert check.bad_fcs == 0 and check.too_short == 0, check.counters()
    assert hdlc.HdlcDeframer().feed(small) == hdlc_reference.HdlcDeframer().feed(small)

    results: dict[str, Any] = {
        "busy_frames_delivered": delivered,
        "busy_frames_sent": frame_count,
        "cython_busy_20ms_mbit_s": throughput(hdlc, busy, CHUNK_20MS, repeats),
        "cython_busy_1s_mbit_s": throughput(hdlc, busy, 8000, repeats),
        "cython_random_20ms_mbit_s": throughput(hdlc, noise, CHUNK_20MS, repeats),
        "cython_idle_20ms_mbit_s": throughput(hdlc, idle, CHUNK_20MS, repeats),
        "reference_busy_20ms_mbit_s": throughput(
            hdlc_reference, small, CHUNK_20MS, max(1, repeats // 2)
        ),
        "reference_random_20ms_mbit_s": throughput(
            hdlc_reference, noise[:100_000], CHUNK_20MS, max(1, repeats // 2)
        ),
    }
    results["speedup_busy_20ms"] = (
        results["cython_busy_20ms_mbit_s"] / results["reference_busy_20ms_mbit_s"]
    )
    results["d_channels_per_core"] = results["cython_busy_20ms_mbit_s"] / TIMESLOT_MBIT_S
    return results


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "e1.json")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    h = bench_hdlc(args.repeats)
    rows = [
        (
            "HDLC deframe + FCS, Cython",
            f"{h['cython_busy_20ms_mbit_s']:,.0f} Mbit/s busy line, 20 ms chunks "
            f"(1 s chunks {h['cython_busy_1s_mbit_s']:,.0f}; random "
            f"{h['cython_random_20ms_mbit_s']:,.0f}; idle {h['cython_idle_20ms_mbit_s']:,.0f})",
            f">= {TARGET_MBIT_S:,.0f}",
            h["cython_busy_20ms_mbit_s"] >= TARGET_MBIT_S,
        ),
        (
            "HDLC deframe + FCS, reference",
            f"{h['reference_busy_20ms_mbit_s']:,.2f} Mbit/s busy line, 20 ms chunks "
            f"(random {h['reference_random_20ms_mbit_s']:,.2f}; "
            f"Cython is {h['speedup_busy_20ms']:,.0f}x faster)",
            "-",
            True,
        ),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"{'measure':<{width}}  {'result':<92} {'target':<8} verdict")
    for name, result, target, ok in rows:
        print(f"{name:<{width}}  {result:<92} {target:<8} {verdict(ok) if target != '-' else '-'}")
    print(
        f"{h['d_channels_per_core']:,.0f} busy D-channels (64 kbit/s) per core; "
        f"{h['busy_frames_delivered']} frames delivered in the busy stream"
    )

    report = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "hdlc": h,
        "verdicts": {rows[0][0]: verdict(rows[0][3])},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if rows[0][3] else 1


if __name__ == "__main__":
    raise SystemExit(main())
