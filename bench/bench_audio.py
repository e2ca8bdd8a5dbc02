"""Audio hot-path benchmark: G.711, DTMF, the per-channel pipeline and E1 demux.

Run once, single thread, CPU time (``time.process_time``), best of several
repeats so that other load on the machine matters less::

    .venv/bin/python bench/bench_audio.py [--json PATH] [--repeats N]

Prints a table with PASS/FAIL against the targets and writes JSON (default
``bench/results/audio.json``). Targets:

- G.711 encode >= 1.0x audioop, decode >= 0.5x audioop (when audioop is gone,
  Python >= 3.13, against the baselines measured on this kind of machine:
  184 MB/s encode, 2,750 MB/s decode);
- DTMF >= 20,000 real-time channels per core (worst case: digits half the
  time, in noise);
- per-channel pipeline (A-law decode -> DTMF -> voice activity -> ring
  buffer -> recorder) >= 2,000 real-time channels per core;
- demux + A-law decode of one full E1 (8,000 frames/s) < 0.5 % of a core.

A "real-time channel per core" is one second of 8 kHz audio processed per
CPU second.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import random
import struct
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cython_ext import dtmf, e1, g711, ringbuffer, vad
from cython_ext.reference import dtmf as dtmf_reference

RATE = 8000
BASELINE_ENCODE_MB_S = 184.0  # audioop lin2alaw, KNOWLEDGE.md section 9
BASELINE_DECODE_MB_S = 2750.0  # audioop alaw2lin
DIGITS = "123A456B789C*0#D"
ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)


def _audioop() -> ModuleType | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            return None
    return audioop


def _numpy() -> ModuleType | None:
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def cpu_seconds(function: Callable[[], object], repeats: int) -> float:
    """The smallest CPU time of ``repeats`` runs of ``function``."""
    best = math.inf
    for _ in range(repeats):
        start = time.process_time()
        function()
        best = min(best, time.process_time() - start)
    return max(best, 1e-9)


def dtmf_signal(seconds: float, seed: int = 1) -> bytes:
    """Digits 50 ms on / 50 ms off at -10 dBm0 in white noise at 20 dB S/N."""
    rng = random.Random(seed)
    peak = 32768.0 * 10.0 ** ((-3.14 - 10.0) / 20.0)
    noise = peak / math.sqrt(2.0) / 10.0 ** (20.0 / 20.0)
    samples = []
    count = round(seconds * RATE)
    while len(samples) < count:
        digit = DIGITS.index(rng.choice(DIGITS))
        row = 2.0 * math.pi * ROWS[digit // 4] / RATE
        column = 2.0 * math.pi * COLUMNS[digit % 4] / RATE
        for n in range(400):
            value = peak * (math.sin(row * n) + math.sin(column * n)) if n < 400 else 0.0
            samples.append(value + rng.gauss(0.0, noise))
        samples.extend(rng.gauss(0.0, noise) for _ in range(400))
    clipped = [max(-32768, min(32767, round(value))) for value in samples[:count]]
    return struct.pack(f"<{count}h", *clipped)


def bench_g711(repeats: int) -> dict[str, Any]:
    audioop = _audioop()
    numpy = _numpy()
    pcm = os.urandom(8_000_000)
    codes = os.urandom(4_000_000)
    results: dict[str, Any] = {}
    for name, encode, audioop_name in (
        ("alaw_encode", g711.alaw_encode, "lin2alaw"),
        ("ulaw_encode", g711.ulaw_encode, "lin2ulaw"),
    ):
        ours = len(pcm) / cpu_seconds(lambda f=encode: f(pcm), repeats) / 1e6
        entry: dict[str, Any] = {"mb_s_in": ours}
        if audioop is not None:
            function = getattr(audioop, audioop_name)
            entry["audioop_mb_s_in"] = (
                len(pcm) / cpu_seconds(lambda f=function: f(pcm, 2), repeats) / 1e6
            )
        if numpy is not None:
            shift = 3 if name == "alaw_encode" else 2
            table = numpy.frombuffer(
                encode(
                    struct.pack(
                        f"<{65536 >> shift}h",
                        *[(i << shift) - 32768 for i in range(65536 >> shift)],
                    )
                ),
                dtype=numpy.uint8,
            )
            table = numpy.roll(table, -(32768 >> shift))  # index by the unsigned top bits

            def numpy_encode(table: Any = table, shift: int = shift) -> bytes:
                samples = numpy.frombuffer(pcm, dtype="<u2")
                return bytes(table[samples >> shift].tobytes())

            assert numpy_encode()[:1000] == encode(pcm[:2000])
            entry["numpy_mb_s_in"] = len(pcm) / cpu_seconds(numpy_encode, repeats) / 1e6
        results[name] = entry
    for name, decode, audioop_name in (
        ("alaw_decode", g711.alaw_decode, "alaw2lin"),
        ("ulaw_decode", g711.ulaw_decode, "ulaw2lin"),
    ):
        ours = len(codes) / cpu_seconds(lambda f=decode: f(codes), repeats) / 1e6
        entry = {"mb_s_in": ours}
        if audioop is not None:
            function = getattr(audioop, audioop_name)
            entry["audioop_mb_s_in"] = (
                len(codes) / cpu_seconds(lambda f=function: f(codes, 2), repeats) / 1e6
            )
        if numpy is not None:
            table = numpy.frombuffer(decode(bytes(range(256))), dtype="<i2")

            def numpy_decode(table: Any = table) -> bytes:
                indices = numpy.frombuffer(codes, dtype=numpy.uint8)
                return bytes(numpy.take(table, indices).tobytes())

            assert numpy_decode()[:2000] == decode(codes[:1000])
            entry["numpy_mb_s_in"] = len(codes) / cpu_seconds(numpy_decode, repeats) / 1e6
        results[name] = entry
    # Per-call cost on a 20 ms frame, which is how the pipeline calls it.
    frame = codes[:160]
    calls = 20000
    results["alaw_decode_20ms_frame_ns"] = (
        cpu_seconds(lambda: [g711.alaw_decode(frame) for _ in range(calls)], repeats) / calls * 1e9
    )
    return results


def bench_dtmf(repeats: int) -> dict[str, Any]:
    pcm = dtmf_signal(20.0)
    seconds = len(pcm) / 2 / RATE

    def run(module: ModuleType, data: bytes) -> None:
        detector = module.DtmfDetector()
        for start in range(0, len(data), 320):
            detector.feed(data[start : start + 320])
        detector.flush()

    ours = seconds / cpu_seconds(lambda: run(dtmf, pcm), repeats)
    quiet = bytes(len(pcm))
    ours_silence = seconds / cpu_seconds(lambda: run(dtmf, quiet), repeats)
    short = pcm[: 2 * RATE * 2]  # 2 s for the slow reference
    theirs = (len(short) / 2 / RATE) / cpu_seconds(lambda: run(dtmf_reference, short), 1)
    detector = dtmf.DtmfDetector()
    found = len(detector.feed(pcm) + detector.flush())
    return {
        "channels_per_core": ours,
        "channels_per_core_silence": ours_silence,
        "reference_channels_per_core": theirs,
        "speedup": ours / theirs,
        "digits_found": found,
        "digits_sent": round(seconds / 0.1),
    }


class Channel:
    """One B-channel's analysis chain, as the gateway would run it."""

    def __init__(self, ring_seconds: int = 10) -> None:
        self.dtmf = dtmf.DtmfDetector()
        self.activity = vad.VoiceActivity()
        self.ring = ringbuffer.RingBuffer(ring_seconds * RATE * 2)
        self.recorder = io.BytesIO()
        self.digits: list[tuple[str, int, int]] = []

    def process(self, alaw: bytes) -> None:
        pcm = g711.alaw_decode(alaw)
        self.digits += self.dtmf.feed(pcm)
        self.activity.feed(pcm)
        self.ring.write(pcm)
        self.recorder.write(pcm)


def bench_pipeline(repeats: int) -> dict[str, Any]:
    channels = 30
    seconds = 10.0
    alaw = g711.alaw_encode(dtmf_signal(seconds, seed=2))
    frames = [alaw[start : start + 160] for start in range(0, len(alaw), 160)]

    def run() -> None:
        chain = [Channel() for _ in range(channels)]
        for frame in frames:
            for channel in chain:
                channel.process(frame)

    cpu = cpu_seconds(run, repeats)
    return {
        "channels_per_core": channels * seconds / cpu,
        "frame_ms": 20,
        "channels": channels,
        "us_per_channel_frame": cpu / (channels * len(frames)) * 1e6,
    }


def bench_call_pipeline(repeats: int) -> dict[str, Any]:
    """The product's own ``CallAudioPipeline``: events, analysis, ring buffer, a WAV on disk.

    Two numbers: the steady cost of a frame (pipelines already open), in
    real-time channels per core, and the fixed cost of a call (open the WAV,
    close it: final sync, SHA-256, the quota scan), in CPU milliseconds.
    """
    import tempfile

    from gateway.audio.contract import CallAudio
    from gateway.audio.pipeline import CallAudioPipeline
    from gateway.audio.recorder import RecordingStore
    from gateway.config import AudioSettings

    channels = 30
    seconds = 10.0
    alaw = g711.alaw_encode(dtmf_signal(seconds, seed=2))
    frames = [alaw[start : start + 160] for start in range(0, len(alaw), 160)]
    events: list[object] = []
    best_frames = best_calls = float("inf")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="edge112-bench-rec-") as directory:
            settings = AudioSettings(recordings_dir=directory, quota_mb=10_000)
            store = RecordingStore(directory, quota_mb=10_000)
            begin = time.process_time()
            chain = [
                CallAudioPipeline(
                    CallAudio(call_id=f"c{n}", line=f"ts{n}", encoding="alaw"),
                    settings,
                    events.append,
                    store=store,
                )
                for n in range(channels)
            ]
            opened = time.process_time()
            for frame in frames:
                for pipeline in chain:
                    pipeline.feed(frame)
            fed = time.process_time()
            for pipeline in chain:
                pipeline.close()
            closed = time.process_time()
        best_frames = min(best_frames, fed - opened)
        best_calls = min(best_calls, (opened - begin) + (closed - fed))
    per_call_ms = best_calls / channels * 1000
    channels_per_core = channels * seconds / best_frames
    # A full E1 (30) and 8 GSM lines, calls of 60 s on average: 38/60 calls a second.
    load = 38 / channels_per_core + (38 / 60) * per_call_ms / 1000
    return {
        "channels_per_core": channels_per_core,
        "us_per_channel_frame": best_frames / (channels * len(frames)) * 1e6,
        "per_call_cpu_ms": per_call_ms,
        "e1_plus_8_gsm_core_fraction": load,
        "includes": "A-law decode, DTMF events, streaming analysis, ring buffer, WAV recorder",
    }


def bench_e1(repeats: int) -> dict[str, Any]:
    one_second = os.urandom(32 * 8000)
    b_channels = [ts for ts in range(1, 32) if ts != 16]
    results: dict[str, Any] = {}
    for label, frames_per_call in (("20ms_chunks", 160), ("1ms_chunks", 8)):
        chunks = [
            one_second[start : start + 32 * frames_per_call]
            for start in range(0, len(one_second), 32 * frames_per_call)
        ]

        def run(chunks: list[bytes] = chunks) -> None:
            for chunk in chunks:
                streams = e1.demux(chunk)
                for timeslot in b_channels:
                    g711.alaw_decode(streams[timeslot])

        results[f"core_fraction_{label}"] = cpu_seconds(run, repeats)
    out = bytearray(len(one_second))

    def run_into() -> None:
        for start in range(0, len(one_second), 32 * 160):
            chunk = one_second[start : start + 32 * 160]
            e1.demux_into(chunk, out)

    results["demux_into_core_fraction_20ms_chunks"] = cpu_seconds(run_into, repeats)
    results["demux_core_fraction_20ms_chunks"] = cpu_seconds(
        lambda: [e1.demux(one_second[s : s + 5120]) for s in range(0, len(one_second), 5120)],
        repeats,
    )
    return results


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "audio.json"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    g = bench_g711(args.repeats)
    d = bench_dtmf(args.repeats)
    p = bench_pipeline(max(1, args.repeats // 2))
    c = bench_call_pipeline(max(1, args.repeats // 2))
    e = bench_e1(args.repeats)

    checks = []
    for name, key, target, baseline in (
        ("G.711 A-law encode", "alaw_encode", 1.0, BASELINE_ENCODE_MB_S),
        ("G.711 mu-law encode", "ulaw_encode", 1.0, BASELINE_ENCODE_MB_S),
        ("G.711 A-law decode", "alaw_decode", 0.5, BASELINE_DECODE_MB_S),
        ("G.711 mu-law decode", "ulaw_decode", 0.5, BASELINE_DECODE_MB_S),
    ):
        entry = g[key]
        against = entry.get("audioop_mb_s_in", baseline)
        ratio = entry["mb_s_in"] / against
        entry["ratio"] = ratio
        extra = f", numpy {entry['numpy_mb_s_in']:,.0f} MB/s" if "numpy_mb_s_in" in entry else ""
        checks.append(
            (
                name,
                f"{entry['mb_s_in']:,.0f} MB/s in = {ratio:.2f}x audioop ({against:,.0f}){extra}",
                f">= {target:.1f}x",
                ratio >= target,
            )
        )
    checks.append(
        (
            "DTMF (digits in noise)",
            f"{d['channels_per_core']:,.0f} RT channels/core "
            f"({d['speedup']:,.0f}x reference; silence {d['channels_per_core_silence']:,.0f})",
            ">= 20,000",
            d["channels_per_core"] >= 20000,
        )
    )
    checks.append(
        (
            "Pipeline per channel",
            f"{p['channels_per_core']:,.0f} RT channels/core "
            f"({p['us_per_channel_frame']:.2f} us per 20 ms frame)",
            ">= 2,000",
            p["channels_per_core"] >= 2000,
        )
    )
    checks.append(
        (
            "CallAudioPipeline + WAV",
            f"{c['channels_per_core']:,.0f} RT channels/core "
            f"({c['us_per_channel_frame']:.2f} us/frame; {c['per_call_cpu_ms']:.2f} ms per call)",
            ">= 2,000",
            c["channels_per_core"] >= 2000,
        )
    )
    checks.append(
        (
            "E1 + 8 GSM, 60 s calls",
            f"{100 * c['e1_plus_8_gsm_core_fraction']:.2f} % of a core (CallAudioPipeline + WAV)",
            "< 2 %",
            c["e1_plus_8_gsm_core_fraction"] < 0.02,
        )
    )
    fraction = e["core_fraction_20ms_chunks"]
    checks.append(
        (
            "E1 demux + A-law decode",
            f"{100 * fraction:.3f} % of a core (20 ms chunks; "
            f"1 ms chunks {100 * e['core_fraction_1ms_chunks']:.3f} %)",
            "< 0.5 %",
            fraction < 0.005,
        )
    )

    width = max(len(check[0]) for check in checks)
    print(f"{'measure':<{width}}  {'result':<74} {'target':<10} verdict")
    for name, result, target, ok in checks:
        print(f"{name:<{width}}  {result:<74} {target:<10} {verdict(ok)}")
    print(f"DTMF digits found {d['digits_found']} of {d['digits_sent']} sent")

    report = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "g711": g,
        "dtmf": d,
        "pipeline": p,
        "call_pipeline": c,
        "e1": e,
        "verdicts": {name: verdict(ok) for name, _, _, ok in checks},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
