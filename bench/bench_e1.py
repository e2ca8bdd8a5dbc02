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
import os
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


# == A fully loaded tapped span, and the gateway's memory ===================================
# Two more measures with their own entry point and JSON (bench/results/e1_span.json), run
# from the checkout:
#
#     .venv/bin/python -c "import bench.bench_e1 as b; raise SystemExit(b.span_main())"
#
# 1. CPU (bench_loaded_span): a span with 30 calls up, both directions carrying speech on
#    every B-channel, tapped by the span driver with B-channel audio on: per call the
#    caller's side analysed (DTMF, voice activity, the ghost rule) and both directions
#    recorded (stereo A-law WAV, an fdatasync a second per call). The simulator writes
#    SPAN_LINE_S of it to files first; the driver replays them at line rate (20 ms pieces,
#    as from a live tap), and once every call is up the process's CPU time over WINDOW_S is
#    the share of one core a live span costs. Baselines in the same run: the same span
#    idle (no calls); the two streams read and dropped (SpanSource alone); loaded with
#    audio off. Target < 5 % of a core.
# 2. RSS (bench_gateway_rss): ``edge112 run`` in a process of its own with 4 simulated GSM
#    modems (each in an answered call, audio on) and one simulated span with 30 calls up
#    over TCP, audio on; VmRSS and VmHWM from /proc once every call has been up for longer
#    than the audio ring buffer (30 s of each call kept in memory). Baseline in the same
#    run: the same gateway with no line at all. Target < 60 MB.

SPAN_TARGET_PERCENT = 5.0
RSS_TARGET_MB = 60.0
SPAN_CALLS = 30
SPAN_LINE_S = 20.0  # of line written; calls are all up after ~4 s (one message a block)
CALLS_UP_S = 4.0  # the idle span and the bare source are measured from then on too
SETTLE_S = 0.5
WINDOW_S = 10.0  # CPU measured over this much line, at line rate
RSS_SETTLE_S = 5.0  # RSS sampled (and the gateway's CPU measured) over this long
RING_BUFFERS_FULL_S = 32.0  # audio.ring_buffer_s (30 s) after every call is up: buffers full


def _span_scenario(calls: int, talk_s: float) -> Any:
    from drivers.simulated.caller_audio import AudioSegment
    from drivers.simulated.e1_script import ScheduledSpanCall, SpanCall, SpanScenario

    caller = (AudioSegment.speech(talk_s, level_dbov=-20.0, seed=1),)
    centre = (AudioSegment.speech(talk_s, level_dbov=-18.0, seed=2),)
    return SpanScenario(
        tuple(
            ScheduledSpanCall(
                0.1 + 0.05 * index,
                SpanCall(
                    caller=f"+62812000{index:04d}",
                    ring_s=0.2,
                    talk_s=talk_s + 60.0,  # still up when the measure ends
                    audio=caller,
                    centre_audio=centre,
                ),
            )
            for index in range(calls)
        )
    )


def _prerender(scenario: Any) -> None:
    """Render the (shared) voice scripts once, as the simulator caches them."""
    from drivers.simulated.e1_span import VoiceTrack

    for scripted in scenario.calls[:1]:
        for script in (scripted.call.audio, scripted.call.centre_audio):
            VoiceTrack(script).take(round(sum(s.duration_s for s in script) * 8000) + 1)


def _write_span_files(directory: Path, calls: int) -> tuple[str, str]:
    from drivers.simulated.e1_outputs import open_output, run_span
    from drivers.simulated.e1_script import N2U, U2N
    from drivers.simulated.e1_span import SimulatedSpan

    scenario = _span_scenario(calls, SPAN_LINE_S)
    _prerender(scenario)
    paths = str(directory / f"n2u-{calls}.e1"), str(directory / f"u2n-{calls}.e1")
    outputs = {N2U: open_output(paths[0]), U2N: open_output(paths[1])}
    run_span(SimulatedSpan(scenario), outputs, speed=0, until_done=False, duration_s=SPAN_LINE_S)
    for output in outputs.values():
        output.close()
    return paths


def _steady_cpu(started: Any, ready: Callable[[], bool]) -> tuple[float, float]:
    """CPU seconds of this process over WINDOW_S of wall time once ``ready()`` (and a
    moment more): the steady state, set-up and tear-down left out. Returns (cpu, window)."""
    deadline = time.monotonic() + SPAN_LINE_S
    while not ready():
        assert time.monotonic() < deadline, "never ready"
        time.sleep(0.05)
    time.sleep(SETTLE_S)
    before, began = time.process_time(), time.monotonic()
    time.sleep(WINDOW_S)
    return time.process_time() - before, time.monotonic() - began


def _source_cpu(paths: tuple[str, str]) -> dict[str, Any]:
    """The span's two files read by SpanSource at line rate, nothing done with them."""
    import threading

    from drivers.e1.sources import SpanSource

    source = SpanSource(paths[0], paths[1], speed=1.0)
    stop = threading.Event()
    chunks = [0]

    def read() -> None:
        with source:
            for _ in source.chunks(timeout=1.0):
                chunks[0] += 1
                if stop.is_set():
                    return

    reader = threading.Thread(target=read, daemon=True)
    began = time.monotonic()
    reader.start()
    cpu, window = _steady_cpu(began, lambda: time.monotonic() - began > CALLS_UP_S)
    stop.set()
    reader.join(5)
    return {"cpu_s": cpu, "window_s": window, "percent_of_core": 100 * cpu / window}


def _tap_cpu(paths: tuple[str, str], workdir: Path, audio: bool, calls: int) -> dict[str, Any]:
    """A SpanDriver on a span's files replayed at line rate: CPU of the process in the
    steady state (every call up), as a share of a core."""
    from drivers.e1.family import E1Family
    from drivers.e1.span import SpanDriver
    from gateway.audio.pipeline import pipeline_factory
    from gateway.config import AudioSettings
    from gateway.events import Event

    settings = E1Family().validate(
        "bench",
        "spans[0]",
        {
            "name": "e1a",
            "network_to_user": paths[0],
            "user_to_network": paths[1],
            "b_channel_audio": audio,
        },
    )
    events: list[Event] = []
    factory = None
    if audio:
        recordings = workdir / f"recordings-{len(list(workdir.iterdir()))}"
        factory = pipeline_factory(
            AudioSettings(recordings_dir=str(recordings), min_free_mb=0), events.append
        )
    driver = SpanDriver(settings, events.append, audio_sink_factory=factory)
    began = time.monotonic()
    driver.start()

    def answered() -> int:
        return sum(1 for event in list(events) if event.TYPE.value == "call.answered")

    ready = (
        (lambda: answered() == calls) if calls else (lambda: time.monotonic() - began > CALLS_UP_S)
    )
    try:
        cpu, window = _steady_cpu(began, ready)
        recordings_open = 0
        if audio:
            recordings_open = len(list((workdir / recordings.name).rglob("*.wav")))
    finally:
        driver.stop()
    return {
        "cpu_s": cpu,
        "window_s": window,
        "percent_of_core": 100 * cpu / window,
        "calls_up": answered(),
        "recordings": recordings_open,
    }


def _pipelines_cpu(workdir: Path, calls: int) -> dict[str, Any]:
    """The gateway's audio pipelines alone: ``calls`` two-channel A-law calls fed 100 ms of
    speech each every 100 ms (what the span driver hands them), analysed and recorded."""
    import threading

    from cython_ext import g711
    from drivers.simulated.audio_signals import speech_like, to_pcm
    from gateway.audio.contract import AudioEncoding, CallAudio
    from gateway.audio.pipeline import pipeline_factory
    from gateway.config import AudioSettings

    voice = g711.alaw_encode(to_pcm(speech_like(2.0, seed=1)))
    stereo = bytearray(2 * len(voice))
    stereo[0::2] = voice
    stereo[1::2] = voice[::-1]
    frames = [bytes(stereo[i : i + 1600]) for i in range(0, len(stereo), 1600)]
    factory = pipeline_factory(
        AudioSettings(recordings_dir=str(workdir / "recordings-alone"), min_free_mb=0),
        lambda event: None,
    )
    sinks = [
        factory(CallAudio(f"call{n}", "e1a", AudioEncoding.ALAW, channels=2)) for n in range(calls)
    ]
    stop = threading.Event()

    def feed() -> None:
        tick = 0
        began = time.monotonic()
        while not stop.is_set():
            for sink in sinks:
                sink.feed(frames[tick % len(frames)])
            tick += 1
            time.sleep(max(0.0, began + tick * 0.1 - time.monotonic()))

    feeder = threading.Thread(target=feed, daemon=True)
    began = time.monotonic()
    feeder.start()
    cpu, window = _steady_cpu(began, lambda: time.monotonic() - began > 1.0)
    stop.set()
    feeder.join(5)
    for sink in sinks:
        sink.close()
    return {"cpu_s": cpu, "window_s": window, "percent_of_core": 100 * cpu / window}


def bench_loaded_span() -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="edge112-bench-span-") as tmp:
        workdir = Path(tmp)
        idle = _write_span_files(workdir, 0)
        loaded = _write_span_files(workdir, SPAN_CALLS)
        results = {
            "idle": _tap_cpu(idle, workdir, audio=False, calls=0),
            "source_only": _source_cpu(loaded),
            "loaded_audio_off": _tap_cpu(loaded, workdir, audio=False, calls=SPAN_CALLS),
            "loaded_audio_on": _tap_cpu(loaded, workdir, audio=True, calls=SPAN_CALLS),
            "pipelines_alone": _pipelines_cpu(workdir, SPAN_CALLS),
        }
    assert results["loaded_audio_on"]["calls_up"] == SPAN_CALLS, results
    return results


def _rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of process ``pid`` in kB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def _cpu_ticks(pid: int) -> int:
    """utime + stime of process ``pid`` (all its threads), in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def _gateway_config(workdir: Path, broker_url: str, lines: str) -> Path:
    config = workdir / "edge112.toml"
    config.write_text(
        '[gateway]\nid = "bench-rss"\nregion = "64.74"\n'
        f'[mqtt]\nurl = "{broker_url}"\n'
        f'[outbox]\npath = "{workdir / "outbox.db"}"\n'
        f'[audio]\nrecordings_dir = "{workdir / "recordings"}"\nmin_free_mb = 0\n' + lines
    )
    return config


def _start_gateway(config: Path) -> Any:
    import subprocess

    log = open(config.with_name("gateway.log"), "ab")  # noqa: SIM115 (the process owns it)
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
        stdout=log,
        stderr=log,
        cwd=Path(__file__).resolve().parent.parent,
    )


def _stop_gateway(process: Any) -> None:
    import signal

    process.send_signal(signal.SIGTERM)
    process.wait(30)


def bench_gateway_rss() -> dict[str, Any]:
    import tempfile
    import threading

    from drivers.simulated.e1_outputs import open_output, run_span
    from drivers.simulated.e1_script import N2U, U2N
    from drivers.simulated.e1_span import SimulatedSpan
    from drivers.simulated.gsm_modem import SimulatedCall, SimulatedGsmModem
    from gateway.broker import PrivateBroker, free_port
    from gateway.consumer import FeedMonitor

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="edge112-bench-rss-") as tmp:
        workdir = Path(tmp)
        with PrivateBroker(workdir=workdir / "broker") as broker:
            # Baseline: the same gateway, no line at all.
            bare = workdir / "bare"
            bare.mkdir()
            process = _start_gateway(_gateway_config(bare, broker.url, ""))
            time.sleep(2 * RSS_SETTLE_S)
            results["no_lines_kb"] = _rss_kb(process.pid)
            _stop_gateway(process)

            loaded = workdir / "loaded"
            loaded.mkdir()
            modems = [
                SimulatedGsmModem(
                    loaded / f"gsm{index}", seed=index, audio_link=loaded / f"gsm{index}-audio"
                )
                for index in range(4)
            ]
            urls = (f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")
            lines = "".join(
                f'[[modems]]\nname = "gsm{index}"\nport = "{modem.link}"\n'
                f'audio_port = "{modem.audio_link}"\nanswer_after_rings = 1\n'
                for index, modem in enumerate(modems)
            )
            lines += (
                f'[[spans]]\nname = "e1a"\nnetwork_to_user = "{urls[0]}"\n'
                f'user_to_network = "{urls[1]}"\nb_channel_audio = true\n'
            )
            scenario = _span_scenario(SPAN_CALLS, 60.0)
            _prerender(scenario)
            span = SimulatedSpan(scenario)
            outputs = {N2U: open_output(urls[0]), U2N: open_output(urls[1])}
            stop = threading.Event()
            runner = threading.Thread(
                target=run_span,
                args=(span, outputs),
                kwargs={"stop": stop, "until_done": False},
                daemon=True,
            )
            runner.start()
            feed = FeedMonitor(broker.url, "edge112/v1/64.74/bench-rss/#").start()
            process = _start_gateway(_gateway_config(loaded, broker.url, lines))
            try:
                for modem in modems:
                    modem.place_call(SimulatedCall(number="+6281100000", talk_s=180.0))
                every_call = 4 + SPAN_CALLS
                up = feed.wait_for(
                    lambda m: len(m.events_of("bench-rss", "call.answered")) >= every_call, 120
                )
                assert up, "every call answered"
                results["calls_just_up_kb"] = _rss_kb(process.pid)
                time.sleep(RING_BUFFERS_FULL_S)  # each call's last 30 s are in memory
                samples = []
                ticks, began = _cpu_ticks(process.pid), time.monotonic()
                deadline = began + RSS_SETTLE_S
                while time.monotonic() < deadline:
                    samples.append(_rss_kb(process.pid))
                    time.sleep(0.5)
                cpu_s = (_cpu_ticks(process.pid) - ticks) / os.sysconf("SC_CLK_TCK")
                results["gateway_percent_of_core"] = 100 * cpu_s / (time.monotonic() - began)
                results["four_modems_one_span_kb"] = (
                    max(rss for rss, _ in samples),
                    max(hwm for _, hwm in samples),
                )
                results["calls_up"] = every_call
            finally:
                _stop_gateway(process)
                stop.set()
                runner.join(5)
                for output in outputs.values():
                    output.close()
                for modem in modems:
                    modem.close()
                feed.stop()
    return results


def span_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="E1 span load and gateway RSS benchmark")
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "e1_span.json"
    )
    parser.add_argument("--skip-rss", action="store_true", help="the CPU measure only")
    args = parser.parse_args(argv)

    load = bench_loaded_span()
    on, off, idle = load["loaded_audio_on"], load["loaded_audio_off"], load["idle"]
    source = load["source_only"]
    cpu_ok = on["percent_of_core"] < SPAN_TARGET_PERCENT
    rows = [
        (
            "tapped span, 30 calls, audio on",
            f"{on['percent_of_core']:.2f} % of a core ({on['cpu_s']:.2f} CPU-s in "
            f"{on['window_s']:.0f} s of line, both directions; {on['recordings']} stereo "
            "recordings being written)",
            f"< {SPAN_TARGET_PERCENT:g} %",
            cpu_ok,
        ),
        (
            "baseline: 30 calls, audio off",
            f"{off['percent_of_core']:.2f} % of a core (read, framing, D-channel, calls)",
            "-",
            True,
        ),
        ("baseline: idle span", f"{idle['percent_of_core']:.2f} % of a core", "-", True),
        (
            "baseline: 30 audio pipelines alone",
            f"{load['pipelines_alone']['percent_of_core']:.2f} % of a core (the gateway's "
            "analysis and stereo recording, fed 100 ms frames directly)",
            "-",
            True,
        ),
        (
            "baseline: streams read only",
            f"{source['percent_of_core']:.2f} % of a core (SpanSource, both files at line rate)",
            "-",
            True,
        ),
    ]
    rss: dict[str, Any] = {}
    rss_ok = True
    if not args.skip_rss:
        rss = bench_gateway_rss()
        loaded_rss, loaded_hwm = rss["four_modems_one_span_kb"]
        bare_rss, _ = rss["no_lines_kb"]
        rss_ok = loaded_rss / 1024 < RSS_TARGET_MB
        rows += [
            (
                "gateway RSS, 4 modems + 1 span",
                f"{loaded_rss / 1024:.1f} MB (peak {loaded_hwm / 1024:.1f} MB) with "
                f"{rss['calls_up']} calls up for {RING_BUFFERS_FULL_S:.0f} s, audio on",
                f"< {RSS_TARGET_MB:g} MB",
                rss_ok,
            ),
            (
                "same, the moment every call is up",
                f"{rss['calls_just_up_kb'][0] / 1024:.1f} MB (audio ring buffers, 30 s of "
                "PCM a call, still nearly empty)",
                "-",
                True,
            ),
            ("baseline: gateway, no lines", f"{bare_rss / 1024:.1f} MB", "-", True),
            (
                "gateway CPU, 4 modems + 1 span",
                f"{rss['gateway_percent_of_core']:.1f} % of a core (the whole edge112 run "
                "process meanwhile: every line, the outbox, MQTT)",
                "-",
                True,
            ),
        ]
    width = max(len(row[0]) for row in rows)
    print(f"{'measure':<{width}}  {'result':<92} {'target':<8} verdict")
    for name, result, target, ok in rows:
        print(f"{name:<{width}}  {result:<92} {target:<8} {verdict(ok) if target != '-' else '-'}")
    report = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "span_load": load,
        "gateway_rss_kb": rss,
        "verdicts": {rows[0][0]: verdict(cpu_ok)}
        | ({"gateway RSS, 4 modems + 1 span": verdict(rss_ok)} if rss else {}),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if cpu_ok and rss_ok else 1


# == end of the span load and RSS bench =====================================================


if __name__ == "__main__":
    hdlc_status = main()
    framing_status = framing_main()
    raise SystemExit(span_main() or framing_status or hdlc_status)
