"""The simulated span (``edge112 sim e1``) checked by the E1 stack the gateway reads it with.

What the simulator writes goes through the tools' independent decode path
(``drivers.e1.decode``: E1Receiver, TS16, HdlcDeframer, LapdMonitor, Q.931,
PriCallTracker), so a simulator bug cannot hide behind the span driver's own:

    SimulatedSpan ─▶ blocks ─▶ StreamDeframer (per direction) ─▶ TapDecoder ─▶ calls, events

and over real outputs: files, TCP and unix sockets read back by ``SpanSource``,
the command line as a subprocess.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cython_ext import g711, hdlc
from drivers.e1.decode import StreamDeframer, TapDecoder
from drivers.e1.framing import Defect, DefectCleared, DefectRaised, SlipDetected, SlipKind
from drivers.e1.lapd import Direction, IFrame, LapdFrame, SFrame, UFrame, Unnumbered
from drivers.e1.sources import SourceEnded, SpanSource
from drivers.simulated.caller_audio import AudioSegment, script_frames
from drivers.simulated.e1_dchannel import DChannelWriter, FrameDamage
from drivers.simulated.e1_outputs import OutputFormat, block_data, open_output, run_span
from drivers.simulated.e1_scenario import (
    load_span_scenario,
    parse_span_scenario,
    random_span_calls,
)
from drivers.simulated.e1_script import (
    ClearingSide,
    FaultKind,
    ScheduledFault,
    ScheduledSpanCall,
    SpanCall,
    SpanCallRecord,
    SpanFault,
    SpanOutcome,
    SpanScenario,
)
from drivers.simulated.e1_span import SimulatedSpan, SpanBlock
from drivers.simulated.scenario import ScenarioError
from gateway.audio.analyze import analyze_pcm
from gateway.events import (
    CallAbandoned,
    CallAnswered,
    CallEnded,
    CallOffered,
    Event,
    Presentation,
)

N2U = Direction.NETWORK_TO_USER
U2N = Direction.USER_TO_NETWORK
REPO = Path(__file__).resolve().parents[3]
SIM_E1 = [sys.executable, "-m", "gateway.cli", "sim", "e1"]

MIX = (
    ScheduledSpanCall(0.2, SpanCall(caller="+6281234567890", talk_s=1.0)),
    ScheduledSpanCall(0.3, SpanCall(caller="081398765432", outcome=SpanOutcome.ABANDONED)),
    ScheduledSpanCall(
        0.4,
        SpanCall(
            caller="0215551234", presentation=Presentation.RESTRICTED, outcome=SpanOutcome.BUSY
        ),
    ),
    ScheduledSpanCall(
        0.5,
        SpanCall(
            overlap=True,
            exclusive=False,
            confirmed_channel=20,
            cleared_by=ClearingSide.CENTRE,
            talk_s=0.5,
        ),
    ),
    ScheduledSpanCall(0.6, SpanCall(caller="+628555", outcome=SpanOutcome.REJECTED, ring_s=0.5)),
)


class Tap:
    """The decode path of ``edge112 e1 decode``, fed block by block in line order."""

    def __init__(self) -> None:
        self.deframers = {d: StreamDeframer(d, "e1") for d in (N2U, U2N)}
        self.decoder = TapDecoder("span0")
        self.frames: list[tuple[Direction, LapdFrame]] = []

    def feed(self, block: SpanBlock) -> None:
        frames = [f for d in (N2U, U2N) for f in self.deframers[d].feed(block.e1[d])]
        for frame in sorted(frames, key=lambda f: f.time_ns):
            if frame.data is not None and frame.direction is not None:
                self.frames.append((frame.direction, LapdFrame.from_bytes(frame.data)))
            self.decoder.feed(frame)

    @property
    def events(self) -> list[Event]:
        return self.decoder.events

    def line_events(self, direction: Direction) -> list[Any]:
        return self.deframers[direction].line_events


def play(scenario: SpanScenario, *, seconds: float | None = None) -> tuple[SimulatedSpan, Tap]:
    span = SimulatedSpan(scenario)
    tap = Tap()
    while not span.done or (seconds is not None and span.time_s < seconds):
        tap.feed(span.block())
        assert span.time_s < 600, "the scenario never ended"
    for _ in range(10):  # a little idle line after the last call
        tap.feed(span.block())
    return span, tap


def end_events(tap: Tap) -> list[CallEnded | CallAbandoned]:
    return [e for e in tap.events if isinstance(e, CallEnded | CallAbandoned)]


def check_reported(records: list[SpanCallRecord], events: list[Event]) -> None:
    """Every simulated call reported once, with the caller, channel, cause and outcome."""
    offered = [e for e in events if isinstance(e, CallOffered)]
    ends = {e.call_id: e for e in events if isinstance(e, CallEnded | CallAbandoned)}
    assert len(offered) == len(records) == len(ends)
    by_order = sorted(records, key=lambda r: r.offered_at_s)
    for record, offer in zip(by_order, offered, strict=True):
        expected = record.expected()
        end = ends[offer.call_id]
        assert offer.number == record.spec.number
        assert offer.presentation is record.spec.shown_presentation
        assert end.TYPE.value == expected["event"]
        assert end.b_channel == record.channel
        assert end.called == record.spec.called
        assert end.outcome == expected["outcome"]
        assert end.cleared_by == expected["cleared_by"]
        assert end.cause == expected["cause"]
        assert end.q850_cause == expected["q850_cause"]


# -- the call mix --------------------------------------------------------------------------


def test_every_kind_of_call_is_decoded_as_scripted() -> None:
    span, tap = play(SpanScenario(MIX))
    check_reported(span.records, tap.events)
    overlap = next(r for r in span.records if r.spec.overlap)
    assert overlap.channel == 20  # preferred 1 in the SETUP, the centre confirmed 20
    answered = [e for e in tap.events if isinstance(e, CallAnswered)]
    assert {e.called for e in answered} == {"112"}  # overlap digits joined
    counters = tap.decoder.monitor.counters
    assert counters.retransmissions == 0 and not counters.malformed
    assert not tap.decoder.counters.bad_frames


def test_the_data_link_comes_up_numbers_its_frames_and_keeps_alive() -> None:
    _, tap = play(SpanScenario((ScheduledSpanCall(0.1, SpanCall(talk_s=0.2)),)), seconds=13)
    kinds = [(d, f) for d, f in tap.frames]
    first = kinds[:2]
    assert [(d, f.function) for d, f in first if isinstance(f, UFrame)] == [
        (U2N, Unnumbered.SABME),
        (N2U, Unnumbered.UA),
    ]
    for direction in (N2U, U2N):
        numbers = [f.ns for d, f in kinds if d is direction and isinstance(f, IFrame)]
        assert numbers == list(range(len(numbers))) and numbers
    acknowledgements = [f for _, f in kinds if isinstance(f, SFrame)]
    assert acknowledgements, "RR responses acknowledge the I frames"
    polls = [f for d, f in kinds if isinstance(f, SFrame) and f.poll_final and d is U2N]
    assert polls, "after T203 without frames the user side polls"
    assert tap.decoder.monitor.counters.implicit_establishments == 0


def test_random_mix_is_decoded_call_for_call() -> None:
    calls = random_span_calls(12, rate=120, seed=5, ring_interval_s=0.3)
    short = tuple(
        ScheduledSpanCall(c.at_s, SpanCall(**{**c.call.__dict__, "talk_s": min(c.call.talk_s, 2)}))
        for c in calls
    )
    span, tap = play(SpanScenario(short, seed=5))
    check_reported(span.records, tap.events)
    outcomes = {r.spec.outcome for r in span.records}
    assert SpanOutcome.ANSWERED in outcomes and SpanOutcome.ABANDONED in outcomes


# -- faults ----------------------------------------------------------------------------------


def test_damaged_and_retransmitted_frames_cost_no_call() -> None:
    faults = (
        ScheduledFault(0.25, SpanFault(FaultKind.BAD_FCS, N2U, count=2)),
        ScheduledFault(0.25, SpanFault(FaultKind.ABORT, U2N, count=2)),
        ScheduledFault(0.3, SpanFault(FaultKind.RETRANSMISSION, count=3)),
        ScheduledFault(0.1, SpanFault(FaultKind.BIT_ERRORS, count=40, duration_s=0.2)),
        ScheduledFault(3.0, SpanFault(FaultKind.BIT_ERRORS, N2U, count=30, timeslot=16)),
    )
    span, tap = play(SpanScenario(MIX, faults, seed=3))
    check_reported(span.records, tap.events)
    bad = tap.decoder.counters.bad_frames
    assert bad["bad_fcs"] >= 2 and bad["aborted"] >= 2
    assert tap.decoder.monitor.counters.retransmissions >= 6  # 3 a side (and the bit errors)


@pytest.mark.parametrize(
    ("kind", "defect"),
    [
        (FaultKind.LOS, Defect.LOS),
        (FaultKind.AIS, Defect.AIS),
        (FaultKind.LOST_ALIGNMENT, Defect.LOF),
        (FaultKind.RAI, Defect.RAI),
    ],
)
def test_line_faults_raise_and_clear_their_defect(kind: FaultKind, defect: Defect) -> None:
    fault = ScheduledFault(1.0, SpanFault(kind, N2U, duration_s=0.5))
    call = ScheduledSpanCall(2.0, SpanCall(caller="+62811", talk_s=0.5))
    span, tap = play(SpanScenario((call,), (fault,)))
    seen = [e for e in tap.line_events(N2U) if getattr(e, "defect", None) is defect]
    raised = [e for e in seen if isinstance(e, DefectRaised)]
    cleared = [e for e in seen if isinstance(e, DefectCleared)]
    assert raised and cleared and 0.9 < raised[0].time < cleared[-1].time < 2.0
    assert not [e for e in tap.line_events(U2N) if isinstance(e, DefectRaised)]
    check_reported(span.records, tap.events)  # the call after the outage is whole
    if kind is not FaultKind.RAI:  # an outage: the link is set up again when it ends
        sabme = [f for d, f in tap.frames if isinstance(f, UFrame) and f.function.name == "SABME"]
        assert len(sabme) == 2


def test_frame_slips_are_seen_by_the_framer() -> None:
    faults = (
        ScheduledFault(0.5, SpanFault(FaultKind.SLIP, U2N, count=1)),
        ScheduledFault(0.8, SpanFault(FaultKind.SLIP, U2N, count=-1)),
    )
    _, tap = play(SpanScenario((), faults), seconds=1.2)
    slips = [e for e in tap.line_events(U2N) if isinstance(e, SlipDetected)]
    assert [e.kind for e in slips] == [SlipKind.FRAME, SlipKind.FRAME]  # repeated, deleted
    assert 0.45 < slips[0].time < 0.55 and 0.75 < slips[1].time < 0.85
    assert not [e for e in tap.line_events(N2U) if isinstance(e, SlipDetected)]


def test_link_down_fault_releases_and_reestablishes_the_data_link() -> None:
    fault = ScheduledFault(0.5, SpanFault(FaultKind.LINK_DOWN, duration_s=0.5))
    call = ScheduledSpanCall(0.6, SpanCall(caller="+62812", talk_s=0.2))  # set up after it
    span, tap = play(SpanScenario((call,), (fault,)))
    functions = [f.function.name for _, f in tap.frames if isinstance(f, UFrame)]
    assert functions == ["SABME", "UA", "DISC", "UA", "SABME", "UA"]
    check_reported(span.records, tap.events)


# -- B-channel voice -------------------------------------------------------------------------


def test_voices_go_on_the_calls_b_channel_from_the_answer() -> None:
    caller_script = (AudioSegment.speech(0.6, seed=4), AudioSegment.dtmf("55"))
    centre_script = (AudioSegment.speech(0.4, seed=8),)
    call = SpanCall(
        caller="+62813", channel=7, talk_s=1.5, audio=caller_script, centre_audio=centre_script
    )
    span = SimulatedSpan(SpanScenario((ScheduledSpanCall(0.1, call),)))
    blocks = []
    while not span.done:
        blocks.append(span.block())
    record = span.records[0]
    assert record.answered_at_s is not None
    answered_at = round(record.answered_at_s * 8000)  # samples since the start
    for direction, script in ((N2U, caller_script), (U2N, centre_script)):
        stream = b"".join(block.e1[direction][7::32] for block in blocks)
        expected = g711.alaw_encode(b"".join(_frames(script, 70)))
        start = stream.find(expected)
        assert start >= 0, f"{direction.value}: the script is not on channel 7"
        assert abs(start - answered_at) <= 160  # from the answer (within a block)
        assert set(stream[: start - 160]) == {0xD5}  # idle before
    heard = {
        d: b"".join(block.e1[d][7::32] for block in blocks)[answered_at - 160 :] for d in (N2U, U2N)
    }
    assert analyze_pcm(g711.alaw_decode(heard[N2U])).digits == "55"
    idle = b"".join(block.e1[N2U][9::32] for block in blocks)
    assert set(idle) == {0xD5}  # a channel without a call idles


def _frames(script: tuple[AudioSegment, ...], count: int) -> list[bytes]:
    frames = script_frames(script)
    return [next(frames) for _ in range(count)]


# -- the HDLC transmitter --------------------------------------------------------------------


def test_d_channel_writer_round_trips_through_the_deframer_at_every_bit_offset() -> None:
    import random

    rng = random.Random(7)
    writer = DChannelWriter()
    deframer = hdlc.HdlcDeframer()
    sent, received = [], []
    for _ in range(400):
        if rng.random() < 0.4:
            frame = rng.randbytes(rng.randrange(3, 60))
            sent.append(frame)
            writer.send(frame, rng.choice([None, None, FrameDamage.BAD_FCS, FrameDamage.ABORT]))
        received += [f.data for f in deframer.feed(writer.take(rng.randrange(1, 40)))]
    received += [f.data for f in deframer.feed(writer.take(2000))]
    assert received == sent
    counters = deframer.counters()
    assert counters["bad_fcs"] + counters["aborts"] == writer.damaged
    assert counters["too_short"] == counters["not_aligned"] == 0
    assert writer.take(16) in {bytes((rot,)) * 16 for rot in _rotations(0x7E)}


def _rotations(octet: int) -> set[int]:
    return {((octet >> k) | (octet << (8 - k))) & 0xFF for k in range(8)}


# -- scenarios -------------------------------------------------------------------------------


def test_scenario_file_with_every_key(tmp_path: Path) -> None:
    path = tmp_path / "span.toml"
    path.write_text(
        "[span]\ncrc4 = false\nseed = 4\n"
        '[[calls]]\nat_s = 1.0\ncaller = "+6281234567890"\npresentation = "restricted"\n'
        'called = "112"\noverlap = true\noutcome = "answered"\nring_s = 1.5\ntalk_s = 3\n'
        'cleared_by = "centre"\nchannel = 5\nexclusive = false\nconfirmed_channel = 7\n'
        'audio = [{silence = 0.5}, {speech = 1.0}, {dtmf = "1"}]\n'
        "centre_audio = [{speech = 1.0, level_dbov = -15}]\n"
        '[[faults]]\nat_s = 2\nkind = "los"\ndirection = "n2u"\nduration_s = 0.5\n'
        '[[faults]]\nat_s = 3\nkind = "bit_errors"\ncount = 20\ntimeslot = 16\n'
    )
    scenario = load_span_scenario(path)
    assert not scenario.crc4 and scenario.seed == 4
    call = scenario.calls[0].call
    assert call.confirmed_channel == 7 and call.cleared_by is ClearingSide.CENTRE
    assert call.shown_presentation is Presentation.RESTRICTED and call.number is None
    assert [f.fault.kind for f in scenario.faults] == [FaultKind.LOS, FaultKind.BIT_ERRORS]
    assert scenario.faults[0].fault.directions == (N2U,)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[[calls]]\ncallr = "1"\n', "unknown key(s) callr"),
        ('[[calls]]\noutcome = "maybe"\n', "outcome: expected one of answered"),
        ("[[calls]]\nchannel = 16\n", "B-channel"),
        ('[[calls]]\npresentation = "allowed"\n', "needs a caller"),
        ('[[faults]]\nkind = "meteor"\n', "kind: expected one of bit_errors"),
        ('[[faults]]\nkind = "los"\ndirection = "up"\n', "direction"),
        ("[[faults]]\nat_s = 1\n", "kind is required"),
        ("[span]\ncrc4 = 1\n", "crc4"),
    ],
)
def test_bad_scenarios_say_what_is_wrong(text: str, problem: str) -> None:
    import tomllib

    with pytest.raises(ScenarioError, match=re.escape(problem)):
        parse_span_scenario(tomllib.loads(text), "bad.toml")


# -- outputs ---------------------------------------------------------------------------------


def test_files_are_replayed_by_a_span_source(tmp_path: Path) -> None:
    outputs = {N2U: open_output(str(tmp_path / "n2u.e1")), U2N: open_output(str(tmp_path / "u2n"))}
    span = SimulatedSpan(SpanScenario(MIX[:2]))
    report = run_span(span, outputs, speed=0)
    for output in outputs.values():
        output.close()
    assert (tmp_path / "n2u.e1").stat().st_size == report.octets[N2U] == report.blocks * 5120
    tap = TapDecoder("span0")
    deframers = {d: StreamDeframer(d, "e1") for d in (N2U, U2N)}
    with SpanSource(str(tmp_path / "n2u.e1"), str(tmp_path / "u2n"), speed=0, start_time=0) as src:
        for chunk in src.chunks(timeout=5):
            for frame in deframers[chunk.direction].feed(chunk.data):
                tap.feed(frame)
    check_reported(span.records, tap.events)


def test_tcp_output_is_paced_at_8000_frames_a_second() -> None:
    ports = {N2U: _free_port(), U2N: _free_port()}
    outputs = {d: open_output(f"tcp://127.0.0.1:{port}") for d, port in ports.items()}
    stop = threading.Event()
    span = SimulatedSpan(SpanScenario())
    runner = threading.Thread(
        target=lambda: run_span(span, outputs, speed=1.0, stop=stop, until_done=False)
    )
    runner.start()
    try:
        source = SpanSource(f"tcp://127.0.0.1:{ports[N2U]}", f"tcp://127.0.0.1:{ports[U2N]}")
        with source:
            started = time.monotonic()
            octets = 0
            while time.monotonic() - started < 2.0:
                chunk = source.read(0.5)
                octets += len(chunk.data) if chunk else 0
            elapsed = time.monotonic() - started
    finally:
        stop.set()
        runner.join(5)
        for output in outputs.values():
            output.close()
    rate = octets / 2 / elapsed  # both directions
    assert 0.85 * 256_000 < rate < 1.15 * 256_000, rate


def test_unix_output_in_lapd_format(tmp_path: Path) -> None:
    paths = [tmp_path / "n2u.sock", tmp_path / "u2n.sock"]
    outputs = {d: open_output(f"unix://{p}") for d, p in zip((N2U, U2N), paths, strict=True)}
    span = SimulatedSpan(SpanScenario(MIX[:1]))
    runner = threading.Thread(
        target=lambda: run_span(span, outputs, stream_format=OutputFormat.LAPD, speed=0)
    )
    runner.start()
    tap = TapDecoder("span0")
    from drivers.e1.decode import TapFrame

    try:
        source = SpanSource(f"unix://{paths[0]}", f"unix://{paths[1]}", format="lapd")
        with source:
            deadline = time.monotonic() + 10
            while not [e for e in tap.events if isinstance(e, CallEnded)]:
                assert time.monotonic() < deadline, "the call did not come over the socket"
                chunk = source.read(0.5)
                if chunk is not None:
                    tap.feed(TapFrame(round(chunk.timestamp * 1e9), chunk.direction, chunk.data))
    finally:
        runner.join(10)
        for output in outputs.values():
            output.close()
    assert not paths[0].exists()  # the socket is removed on close


def test_timeslot_format_is_the_d_channel_alone() -> None:
    span = SimulatedSpan(SpanScenario(MIX[:1]))
    block = span.block()
    assert block_data(block, N2U, OutputFormat.TIMESLOT) == block.e1[N2U][16::32]
    assert len(block_data(block, U2N, OutputFormat.TIMESLOT)) == 160


def test_command_line_writes_files_and_prints_each_call(tmp_path: Path) -> None:
    scenario = tmp_path / "span.toml"
    scenario.write_text(
        '[[calls]]\nat_s = 0.1\ncaller = "+6281111"\ntalk_s = 0.5\n'
        '[[calls]]\nat_s = 0.2\noutcome = "busy"\n'
    )
    result = subprocess.run(
        [
            *SIM_E1,
            "--from-network",
            str(tmp_path / "n2u"),
            "--from-user",
            f"file://{tmp_path / 'u2n'}",
            "--scenario",
            str(scenario),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(c["scripted"] for c in calls) == ["answered", "busy"]
    busy = next(c for c in calls if c["scripted"] == "busy")
    assert busy["event"] == "call.abandoned" and busy["cause"] == "busy"
    assert (tmp_path / "n2u").stat().st_size == (tmp_path / "u2n").stat().st_size > 0
    bad = subprocess.run(
        [*SIM_E1, "--from-network", "a", "--from-user", "b", "--scenario", "missing.toml"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert bad.returncode == 2 and "cannot read" in bad.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_replay_source_ends_after_the_last_block(tmp_path: Path) -> None:
    outputs = {N2U: open_output(str(tmp_path / "a")), U2N: open_output(str(tmp_path / "b"))}
    run_span(SimulatedSpan(SpanScenario()), outputs, speed=0)
    for output in outputs.values():
        output.close()
    source = SpanSource(str(tmp_path / "a"), str(tmp_path / "b"), speed=0)
    with source, pytest.raises(SourceEnded):
        while True:
            source.read(5)


def test_a_busy_centre_refuses_before_overlap_digits() -> None:
    busy = SpanCall(caller="+6281", overlap=True, outcome=SpanOutcome.BUSY, called="112")
    span, tap = play(SpanScenario((ScheduledSpanCall(0.1, busy),)))
    check_reported(span.records, tap.events)  # the whole called number came in the SETUP


def test_the_example_scenario_plays_as_it_says() -> None:
    scenario = load_span_scenario(REPO / "examples" / "span_scenario.toml")
    span, tap = play(scenario, seconds=18)
    check_reported(span.records, tap.events)
    assert {r.spec.outcome for r in span.records} == set(SpanOutcome)
    assert any(isinstance(e, DefectRaised) and e.defect is Defect.LOS for e in tap.line_events(N2U))
