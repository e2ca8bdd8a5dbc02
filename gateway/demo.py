"""``edge112 demo``: the whole chain on simulated hardware and embedded defaults.

In a temporary directory: a private mosquitto on a free loopback port (unless
``--broker`` is given), two simulated GSM modems on pseudo-terminals (a
Quectel EC25 and a SIMCom SIM7600) and one simulated E1 PRI span on unix
sockets (``edge112 sim e1``: both directions, real time), each taking a
random 112 call mix, the gateway exactly as ``edge112 run`` builds it (the
span tapped with B-channel audio on: stereo recordings, caller left), and a
subscriber that prints what a regional center receives. At the end, a
summary: events committed, delivered, lost, duplicated; calls placed by the
simulators against calls reported.

The demo plays the technician who plugs hardware in, so it imports
``drivers`` (the simulators and the GSM and E1 settings) by design, as
``cli.py``'s ``sim`` commands do: a documented exception to "the gateway
reaches drivers only through ``gateway.families``". The gateway it starts
gets its drivers through the registry, exactly like ``edge112 run``.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from drivers.e1.family import SpanSettings
from drivers.gsm.family import ModemSettings
from drivers.simulated.audio_signals import speech_like, to_pcm
from drivers.simulated.e1_outputs import open_output, run_span
from drivers.simulated.e1_scenario import random_span_calls
from drivers.simulated.e1_script import N2U, U2N, ScheduledSpanCall, SpanCallRecord, SpanScenario
from drivers.simulated.e1_span import SimulatedSpan
from drivers.simulated.gsm_modem import PlacedCall, SimulatedGsmModem
from drivers.simulated.scenario import Scenario, play, random_calls
from gateway.audio.wav import write_wav
from gateway.broker import PrivateBroker
from gateway.config import (
    AudioSettings,
    Config,
    GatewaySettings,
    MqttSettings,
    OutboxSettings,
)
from gateway.consumer import FeedMonitor
from gateway.daemon import Gateway
from gateway.events import TOPIC_ROOT
from gateway.ids import uuid7_str
from gateway.privacy import mask_number

DEMO_REGION = "64.74"  # Kota Bontang
MODEMS = (("gsm0", "quectel_ec25"), ("gsm1", "simcom_sim7600"))
SPAN = "e1a"  # one simulated E1 PRI span, tapped with B-channel audio
RING_INTERVAL_S = 1.0  # real networks ring every ~5 s; the demo is in a hurry
MAX_TALK_S = 6.0
ANSWER_AFTER_RINGS = 2
DRAIN_TIMEOUT_S = 15.0
GHOST_AFTER_S = 3.0
SILENT_PROMPT_AFTER_S = 2.0
PROMPT_S = 1.0


def describe(event: dict[str, Any]) -> str:
    """One line of the live view for an event as received."""
    data = event.get("data", {})
    kind = event.get("type", "?")
    detail = ""
    if kind == "call.offered":
        detail = f"{mask_number(data.get('number')):>16} {data.get('presentation')}"
    elif kind == "call.answered":
        detail = f"after {data.get('ring_count')} ring(s), {data.get('ring_time_ms')} ms"
    elif kind == "call.ended":
        detail = f"{data.get('duration_ms', 0) / 1000:.1f} s, {data.get('cause')}"
    elif kind == "call.abandoned":
        detail = f"terputus after {data.get('ring_count')} ring(s), {data.get('cause')}"
        if data.get("outcome") is not None:  # a span: abandoned by the caller, or refused
            detail = f"{data['outcome']} after {data.get('ring_time_ms')} ms, {data.get('cause')}"
    if data.get("b_channel") is not None:  # span calls: the B-channel, the Q.850 cause
        detail += f", B-channel {data['b_channel']}"
    if data.get("q850_cause") is not None:
        detail += f", Q.850 cause {data['q850_cause']} from the {data.get('cleared_by')} side"
    elif kind == "call.dtmf":
        detail = f"digit {data.get('digit')} at {data.get('offset_ms', 0) / 1000:.1f} s"
    elif kind == "call.audio_summary":
        first = data.get("first_speech_ms")
        silent_call = data.get("silent_call") or {}
        detail = (
            f"speech {data.get('speech_ratio', 0):.0%}"
            + (f", first at {first / 1000:.1f} s" if first is not None else ", nobody spoke")
            + (f", digits {data['digits']}" if data.get("digits") else "")
            + (f", category {data['category']}" if data.get("category") else "")
            + (", prompted" if silent_call.get("prompted") else "")
            + (", pressed 55" if silent_call.get("pressed_55") else "")
            + (", recorded" if data.get("recording") else "")
        )
    elif kind == "line.status":
        signal = data.get("signal_dbm")
        detail = f"{data.get('state')}: {data.get('detail')}" + (
            f", {signal} dBm" if signal is not None else ""
        )
    elif kind == "gateway.alarm":
        detail = f"{data.get('severity')}: {data.get('message')}"
    call = str(data.get("call_id", ""))[-6:]
    return (
        f"  {event.get('ts', '')[11:23]}  seq {event.get('seq'):>4}  "
        f"{data.get('line', '-'):5} {kind:15} {call:6} {detail}"
    )


def demo_scenario(calls_per_minute: float, duration_s: float, seed: int) -> Scenario:
    count = max(1, int(calls_per_minute * duration_s / 60 * 1.5))
    calls = tuple(
        dataclasses.replace(
            scheduled,
            call=dataclasses.replace(scheduled.call, talk_s=min(scheduled.call.talk_s, MAX_TALK_S)),
        )
        for scheduled in random_calls(
            count, calls_per_minute, seed, ring_interval_s=RING_INTERVAL_S
        )
    )
    return Scenario(calls=calls)


def demo_span_scenario(calls_per_minute: float, duration_s: float, seed: int) -> SpanScenario:
    """The span's mix: calls offered during the demo, each short enough to end soon after."""
    count = max(1, int(calls_per_minute * duration_s / 60 * 1.5))
    calls = tuple(
        ScheduledSpanCall(
            scheduled.at_s + 0.5,
            dataclasses.replace(scheduled.call, talk_s=min(scheduled.call.talk_s, MAX_TALK_S)),
        )
        for scheduled in random_span_calls(
            count, calls_per_minute, seed, ring_interval_s=RING_INTERVAL_S
        )
        if scheduled.at_s < duration_s
    )
    return SpanScenario(calls=calls, seed=seed)


def run_demo(
    *,
    broker_url: str | None = None,
    duration_s: float = 30.0,
    calls_per_minute: float = 20.0,
    out: TextIO = sys.stdout,
) -> int:
    with tempfile.TemporaryDirectory(prefix="edge112-demo-") as tmp:
        workdir = Path(tmp)
        broker = None
        if broker_url is None:
            broker = PrivateBroker(workdir=workdir / "broker").start()
            broker_url = broker.url
        try:
            return _run(workdir, broker_url, duration_s, calls_per_minute, out)
        finally:
            if broker is not None:
                broker.close()


def _run(
    workdir: Path, broker_url: str, duration_s: float, calls_per_minute: float, out: TextIO
) -> int:
    gateway_id = f"demo-{uuid7_str()[-6:]}"
    say = lambda text: print(text, file=out, flush=True)  # noqa: E731
    modems = [
        SimulatedGsmModem(
            workdir / name, model=model, seed=index, audio_link=workdir / f"{name}-audio"
        )
        for index, (name, model) in enumerate(MODEMS)
    ]
    span_urls = (f"unix://{workdir / 'e1a-n2u.sock'}", f"unix://{workdir / 'e1a-u2n.sock'}")
    span = SimulatedSpan(demo_span_scenario(calls_per_minute, duration_s, seed=7))
    span_outputs = {N2U: open_output(span_urls[0]), U2N: open_output(span_urls[1])}
    prompt = workdir / "tekan-55.wav"  # "press 55 if you need help", as a speech-like stand-in
    write_wav(prompt, to_pcm(speech_like(PROMPT_S, seed=55)), "pcm")
    config = Config(
        gateway=GatewaySettings(id=gateway_id, region=DEMO_REGION),
        mqtt=MqttSettings(url=broker_url, reconnect_min_s=0.2, reconnect_max_s=2.0),
        outbox=OutboxSettings(path=str(workdir / "outbox.db")),
        lines=(
            *(
                ModemSettings(
                    name=name,
                    port=str(workdir / name),
                    answer_after_rings=ANSWER_AFTER_RINGS,
                    audio_port=str(workdir / f"{name}-audio"),
                )
                for name, _ in MODEMS
            ),
            SpanSettings(
                name=SPAN,
                network_to_user=span_urls[0],
                user_to_network=span_urls[1],
                b_channel_audio=True,
            ),
        ),
        audio=AudioSettings(
            recordings_dir=str(workdir / "recordings"),
            ghost_after_s=GHOST_AFTER_S,
            silent_prompt=str(prompt),
            silent_prompt_after_s=SILENT_PROMPT_AFTER_S,
            silent_listen_s=3.0,
        ),
        source="<demo>",
    )
    say(f"edge112 demo: gateway {gateway_id}, region {DEMO_REGION}, broker {broker_url}")
    say(f"  simulated modems: {', '.join(f'{n} ({m}) at {workdir / n}' for n, m in MODEMS)}")
    say(
        f"  simulated E1 span: {SPAN} (network -> user {span_urls[0]}, user -> network "
        f"{span_urls[1]}), B-channels recorded in stereo (caller left, centre right)"
    )
    say(
        f"  recordings in {workdir / 'recordings'}; silent callers hear a prompt after "
        f"{SILENT_PROMPT_AFTER_S:g} s"
    )
    say(f"  subscriber on {TOPIC_ROOT}/{DEMO_REGION}/{gateway_id}/#  (caller numbers masked here)")
    monitor = FeedMonitor(
        broker_url,
        f"{TOPIC_ROOT}/{DEMO_REGION}/{gateway_id}/#",
        on_event=lambda event: say(describe(event)),
    ).start()
    gateway = Gateway(config)
    gateway.start()
    stop = threading.Event()
    placed: list[PlacedCall] = []
    players = [
        threading.Thread(
            target=lambda modem=modem, seed=index: placed.extend(
                play(modem, demo_scenario(calls_per_minute, duration_s, seed + 11), stop=stop)
            ),
            daemon=True,
        )
        for index, modem in enumerate(modems)
    ]
    span_stop = threading.Event()
    players.append(
        threading.Thread(
            target=run_span,
            args=(span, span_outputs),
            # Real time, once the gateway taps both sides; an idle line after the last call
            # (flags, RR polls) until the demo stops it.
            kwargs={"stop": span_stop, "until_done": False},
            daemon=True,
        )
    )
    for player in players:
        player.start()
    try:
        time.sleep(duration_s)
    except KeyboardInterrupt:
        say("  interrupted: finishing up")
    stop.set()  # no new calls; let the ones ringing or talking finish
    for player in players[:-1]:
        player.join(5)
    for modem in modems:
        modem.cancel_queued()
    deadline = time.monotonic() + MAX_TALK_S + 30 * RING_INTERVAL_S
    while not (all(call.done for call in placed) and span.done) and time.monotonic() < deadline:
        time.sleep(0.1)
    # The simulators are done; give the gateway the moment it needs to see the last hang-ups.
    monitor.wait_for(lambda m: not _calls_in_progress(m, gateway_id), DRAIN_TIMEOUT_S)
    gateway.stop_drivers()
    for modem in modems:
        modem.close()  # calls still queued in a simulator never rang: cancelled
    span_stop.set()
    players[-1].join(5)
    for output in span_outputs.values():
        output.close()
    gateway.outbox.flush()
    committed = gateway.outbox.counters["committed"]
    reader = gateway.outbox.reader()
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while reader.stats().pending and time.monotonic() < deadline:
        time.sleep(0.1)
    next_seq = reader.stats().next_seq
    reader.close()
    monitor.wait_for(lambda m: len(m.feed(gateway_id).events) >= next_seq - 1, 5)
    gateway.stop()
    monitor.stop()
    return _summary(say, monitor, gateway_id, next_seq - 1, committed, placed, span.records)


def _calls_in_progress(monitor: FeedMonitor, gateway_id: str) -> set[str]:
    """Calls offered to the subscriber that have not ended yet."""
    started = {e["data"]["call_id"] for e in monitor.events_of(gateway_id, "call.offered")}
    for kind in ("call.ended", "call.abandoned"):
        started -= {e["data"]["call_id"] for e in monitor.events_of(gateway_id, kind)}
    return started


def _summary(
    say: Any,
    monitor: FeedMonitor,
    gateway_id: str,
    last_seq: int,
    committed: int,
    placed: list[PlacedCall],
    span_calls: list[SpanCallRecord],
) -> int:
    feed = monitor.feed(gateway_id)
    lost = feed.missing(last_seq)
    types = Counter(event["type"] for event in feed.events.values())
    outcomes = Counter(call.outcome.value if call.outcome else "unfinished" for call in placed)
    say("")
    say("summary")
    queued = outcomes.pop("cancelled", 0)
    rang = len(placed) - queued
    say(
        f"  calls that rang in the simulators: {rang} "
        f"({', '.join(f'{n} {o}' for o, n in sorted(outcomes.items()))})"
        + (f"; {queued} more were queued when the demo ended and never rang" if queued else "")
    )
    span_outcomes = Counter(record.spec.outcome.value for record in span_calls)
    say(
        f"  calls offered on the span {SPAN}: {len(span_calls)} "
        f"({', '.join(f'{n} {o}' for o, n in sorted(span_outcomes.items()))}); recordings of "
        f"answered ones in stereo"
    )
    span_reported = len(
        [e for e in monitor.events_of(gateway_id, "call.offered") if e["data"]["line"] == SPAN]
    )
    say(
        f"  calls reported (call.offered):  {types['call.offered']} (one per call that rang; "
        f"{span_reported} on {SPAN})"
    )
    say(f"  events by type:                 {dict(sorted(types.items()))}")
    say(f"  committed to the outbox:        {last_seq} (seq 1..{last_seq}; {committed} this run)")
    say(f"  delivered to the subscriber:    {len(feed.events)}")
    say(f"  duplicates dropped by event_id: {feed.duplicates}")
    say(f"  lost:                           {len(lost)}" + (f" {lost[:20]}" if lost else ""))
    return 0 if not lost and len(feed.events) == last_seq else 1
