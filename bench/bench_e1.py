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


# == E1 framing (FAS search, frame alignment, CRC-4): a separate bench ======================
# The framer hot path (cython_ext/e1_framing.pyx) against its pure-Python reference, and the
# share of a core that framing one tapped span takes. Separate from the HDLC bench above, with
# its own entry point and JSON (bench/results/e1_framing.json), run from the checkout:
#
#     .venv/bin/python -c "import bench.bench_e1 as b; raise SystemExit(b.framing_main())"
#
# Target: both directions of a span (2 x 2.048 Mbit/s, CRC-4 on) framed through E1Receiver in
# less than 0.5 % of a core (the budget is < 5 % for the whole loaded span).

FRAMING_TARGET_SPAN_PERCENT = 0.5
E1_LINE_MBIT_S = 2.048
E1_CHUNK_20MS = 5120  # octets of a whole E1 in 20 ms


def framing_throughput(
    framer_factory: Callable[[], Any], stream: bytes, chunk: int, repeats: int
) -> float:
    """Mbit/s of line through a fresh framer (or receiver) fed ``chunk``-octet pieces."""
    pieces = [stream[start : start + chunk] for start in range(0, len(stream), chunk)]

    def run() -> None:
        feed = framer_factory().feed
        for piece in pieces:
            feed(piece)

    return 8 * len(stream) / cpu_seconds(run, repeats) / 1e6


def bench_framing(repeats: int) -> dict[str, Any]:
    from cython_ext import e1_framing
    from cython_ext.reference import e1_framing as framing_reference
    from drivers.e1 import generator
    from drivers.e1.framing import E1Receiver

    second = generator.generate(8000, crc4=True, seed=1)  # random payload, CRC-4 multiframes
    clean = second * 4
    shifted = generator.delay_bits(clean, 3)  # a raw tap off the octet grid
    noise = random.Random(3).randbytes(len(clean))  # the search never ends: the worst case
    small = second[: len(second) // 4]  # the reference is ~700x slower

    _, _, counters = e1_framing.frame_all(clean, crc4=True)
    assert counters["frames"] == 4 * 8000 and counters["losses"] == 0, counters
    assert e1_framing.frame_all(small, True) == framing_reference.frame_all(small, True)

    def cython(crc4: bool) -> Callable[[], Any]:
        return lambda: e1_framing.E1Framer(crc4)

    results: dict[str, Any] = {
        "cython_crc4_mbit_s": framing_throughput(cython(True), clean, E1_CHUNK_20MS, repeats),
        "cython_basic_mbit_s": framing_throughput(cython(False), clean, E1_CHUNK_20MS, repeats),
        "cython_bit_shifted_mbit_s": framing_throughput(
            cython(True), shifted, E1_CHUNK_20MS, repeats
        ),
        "cython_searching_noise_mbit_s": framing_throughput(
            cython(True), noise, E1_CHUNK_20MS, repeats
        ),
        "reference_crc4_mbit_s": framing_throughput(
            lambda: framing_reference.E1Framer(True), small, E1_CHUNK_20MS, max(1, repeats // 2)
        ),
        "receiver_crc4_mbit_s": framing_throughput(
            lambda: E1Receiver(crc4=True), clean, E1_CHUNK_20MS, repeats
        ),
        "reference_receiver_crc4_mbit_s": framing_throughput(
            lambda: E1Receiver(crc4=True, implementation=framing_reference),
            small,
            E1_CHUNK_20MS,
            max(1, repeats // 2),
        ),
    }
    results["speedup_crc4"] = results["cython_crc4_mbit_s"] / results["reference_crc4_mbit_s"]
    span = 2 * E1_LINE_MBIT_S
    results["span_percent_of_core"] = 100 * span / results["receiver_crc4_mbit_s"]
    results["reference_span_percent_of_core"] = (
        100 * span / results["reference_receiver_crc4_mbit_s"]
    )
    return results


def framing_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="E1 framing benchmark")
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "e1_framing.json"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    f = bench_framing(args.repeats)
    ok = f["span_percent_of_core"] < FRAMING_TARGET_SPAN_PERCENT
    rows = [
        (
            "E1 framing, Cython",
            f"{f['cython_crc4_mbit_s']:,.0f} Mbit/s CRC-4 on, 20 ms chunks (CRC-4 off "
            f"{f['cython_basic_mbit_s']:,.0f}; off the octet grid "
            f"{f['cython_bit_shifted_mbit_s']:,.0f}; searching noise "
            f"{f['cython_searching_noise_mbit_s']:,.0f})",
            "-",
        ),
        (
            "E1 framing, reference",
            f"{f['reference_crc4_mbit_s']:,.2f} Mbit/s CRC-4 on "
            f"(Cython is {f['speedup_crc4']:,.0f}x faster)",
            "-",
        ),
        (
            "one tapped span framed",
            f"{f['span_percent_of_core']:.3f} % of a core (2 x 2.048 Mbit/s through "
            f"E1Receiver, CRC-4 on; with the reference: "
            f"{f['reference_span_percent_of_core']:,.0f} %)",
            f"< {FRAMING_TARGET_SPAN_PERCENT} %",
        ),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"{'measure':<{width}}  {'result':<100} {'target':<8} verdict")
    for name, result, target in rows:
        mark = "-" if target == "-" else verdict(ok)
        print(f"{name:<{width}}  {result:<100} {target:<8} {mark}")
    report = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "framing": f,
        "verdicts": {rows[2][0]: verdict(ok)},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if ok else 1


# == end of the E1 framing bench ============================================================


if __name__ == "__main__":
    hdlc_status = main()
    raise SystemExit(framing_main() or hdlc_status)
