"""``edge112 demo``: the whole chain on simulated hardware and embedded defaults.

In a temporary directory: a private mosquitto on a free loopback port (unless
``--broker`` is given), two simulated GSM modems on pseudo-terminals (a
Quectel EC25 and a SIMCom SIM7600) and one simulated E1 PRI span on unix
sockets (``edge112 sim e1``: both directions, real time), each taking a
random 112 call mix, the gateway exactly as ``edge112 run`` builds it (the
span tapped with B-channel audio on: stereo recordings, caller left), and a
subscriber that prints what a regional center receives, with the line LEDs
of the simulated board (``[board] backend = "simulated"``) as they change.
Beside them, a regional center (``center/``: SQLite in the same directory,
its dashboard on a free loopback port, printed at the start) stores the feed.

At the end, a summary: calls placed by the simulators against calls
reported; events committed (the gateway's outbox) and delivered (the
subscriber); and the center's own completeness check of the gateway's feed
(events stored, highest contiguous seq, gaps, duplicates) and its calls by
category. Modules: ``demo_view`` (the live lines), ``demo_center`` (the center).

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
from firmware_py.board_settings import BoardSettings, parse_board_settings
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
from gateway.demo_center import CenterFigures, CenterUnavailable, DemoCenter
from gateway.demo_view import LedWatcher, describe
from gateway.events import TOPIC_ROOT
from gateway.ids import uuid7_str

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
LED_IDLE_S = 2.0  # the LEDs follow the gateway's state within a tick or two
CENTER_DRAIN_S = 15.0  # the center stores what the subscriber received (well under a second)
LINES = (*(name for name, _ in MODEMS), SPAN)
DEMO_PINS = {"led_ready": 17, "led_broker": 27, "led_backlog": 22, "led_alarm": 23}
LINE_LED_PINS = dict(zip(LINES, (5, 6, 13), strict=True))


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


def demo_board(workdir: Path) -> BoardSettings:
    """A simulated board with the system LEDs and one LED per line, its state in a file."""
    pins = {**DEMO_PINS, **{f"led_{line}": pin for line, pin in LINE_LED_PINS.items()}}
    table = {"backend": "simulated", "state_file": str(workdir / "board.json"), "pins": pins}
    return parse_board_settings(table, LINES, ())


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


def _start_center(workdir: Path, broker_url: str, say: Any) -> DemoCenter | None:
    try:
        center = DemoCenter(workdir, broker_url).start()
    except CenterUnavailable as error:
        say(f"  regional center: not started ({error}); the summary counts the subscriber only")
        return None
    say(f"  regional center: dashboard {center.url}  (SQLite {center.database})")
    return center


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
        board=demo_board(workdir),
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
    say(
        f"  simulated board: one LED per line (ready = steady, ringing = fast blink, in call = "
        f"slow blink); watch it with: edge112 sim board --watch --state {workdir / 'board.json'}"
    )
    center = _start_center(workdir, broker_url, say)
    say(f"  subscriber on {TOPIC_ROOT}/{DEMO_REGION}/{gateway_id}/#  (caller numbers masked here)")
    monitor = FeedMonitor(
        broker_url,
        f"{TOPIC_ROOT}/{DEMO_REGION}/{gateway_id}/#",
        on_event=lambda event: say(describe(event)),
    ).start()
    gateway = Gateway(config)
    gateway.start()
    leds = LedWatcher(lambda: gateway.leds.shown, list(LINES), say).start()
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
    leds.wait_idle(LED_IDLE_S)  # the LED thread's last tick shows the lines ready again
    leds.stop()
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
    last_seq = next_seq - 1
    monitor.wait_for(lambda m: len(m.feed(gateway_id).events) >= last_seq, 5)
    gateway.stop()
    monitor.stop()
    figures = None
    if center is not None:
        figures = _center_figures(center, gateway_id, last_seq)
        center.stop()
    say("")
    say("summary")
    _say_calls(say, monitor, gateway_id, placed, span.records)
    say(
        "  line LEDs seen:                 "
        + ", ".join(f"{line} {state}" for line, state in sorted(leds.seen))
    )
    return _say_delivery(say, monitor, gateway_id, last_seq, committed, figures)


def _center_figures(center: DemoCenter, gateway_id: str, last_seq: int) -> CenterFigures | None:
    """The center's figures once it holds every seq up to ``last_seq`` (or at the deadline)."""
    deadline = time.monotonic() + CENTER_DRAIN_S
    while True:
        figures = center.figures(gateway_id, DEMO_REGION)
        done = figures is not None and figures.contiguous_seq >= last_seq
        if done or time.monotonic() > deadline:
            return figures
        time.sleep(0.1)


def _calls_in_progress(monitor: FeedMonitor, gateway_id: str) -> set[str]:
    """Calls offered to the subscriber that have not ended yet."""
    started = {e["data"]["call_id"] for e in monitor.events_of(gateway_id, "call.offered")}
    for kind in ("call.ended", "call.abandoned"):
        started -= {e["data"]["call_id"] for e in monitor.events_of(gateway_id, kind)}
    return started


def _say_calls(
    say: Any,
    monitor: FeedMonitor,
    gateway_id: str,
    placed: list[PlacedCall],
    span_calls: list[SpanCallRecord],
) -> None:
    """Calls placed by the simulators against calls the gateway reported, in plain words."""
    types = Counter(event["type"] for event in monitor.feed(gateway_id).events.values())
    outcomes = Counter(call.outcome.value if call.outcome else "unfinished" for call in placed)
    cancelled = outcomes.pop("cancelled", 0)
    rang = len(placed) - cancelled
    say(
        f"  calls placed by the simulated modems: {len(placed)}; {rang} rang the gateway "
        f"({', '.join(f'{n} {o}' for o, n in sorted(outcomes.items()))})"
    )
    if cancelled:
        say(
            f"    {cancelled} 'cancelled': still waiting in a simulator's queue when the demo "
            "stopped taking calls; they never rang, so no gateway could report them"
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
        f"  calls reported (call.offered):  {types['call.offered']} (one per call that rang "
        f"or was offered; {span_reported} on {SPAN})"
    )
    say(f"  events by type:                 {dict(sorted(types.items()))}")


def _say_delivery(
    say: Any,
    monitor: FeedMonitor,
    gateway_id: str,
    last_seq: int,
    committed: int,
    figures: CenterFigures | None,
) -> int:
    """Gateway side (committed, delivered), then the center's completeness check; exit code."""
    feed = monitor.feed(gateway_id)
    say(f"  committed to the outbox:        {last_seq} (seq 1..{last_seq}; {committed} this run)")
    say(f"  delivered to the subscriber:    {len(feed.events)}")
    delivered = len(feed.events) == last_seq
    if figures is None:  # no center: the subscriber's own count
        lost = feed.missing(last_seq)
        say(f"  duplicates dropped by event_id: {feed.duplicates}")
        say(f"  lost:                           {len(lost)}" + (f" {lost[:20]}" if lost else ""))
        return 0 if not lost and delivered else 1
    lost = figures.missing_below(last_seq)
    gaps = ", ".join(f"{g['first_seq']}-{g['last_seq']}" for g in figures.gaps) or "none"
    say(f"  the center's completeness check of {gateway_id}:")
    say(f"    events stored:                {figures.events}")
    say(f"    highest contiguous seq:       {figures.contiguous_seq} (of {last_seq} committed)")
    say(f"    gaps:                         {gaps}")
    say(f"    duplicates (stored once):     {figures.duplicates}")
    say(
        f"    calls by category:            {figures.calls} in {DEMO_REGION} ("
        + ", ".join(f"{n} {name}" for name, n in figures.categories.items() if n)
        + "; a call-taker classifies the unclassified ones on the desk)"
    )
    say(f"  lost:                           {len(lost)}" + (f" {lost[:20]}" if lost else ""))
    stored = figures.events == last_seq and figures.contiguous_seq == last_seq
    return 0 if not lost and stored and delivered else 1
