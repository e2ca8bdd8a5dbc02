"""The span driver on real streams: files replayed, TCP and unix sockets fed by the simulator,
FIFOs; every call reported as simulated, line states and D-channel link reported, bad input
counted and survived, streams lost and reopened with backoff, a clean stop.

Each test plays a ``SpanScenario`` through the product simulator (``drivers.simulated``),
points a ``SpanDriver`` at what it wrote, and compares the events with the simulator's
record of what happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from drivers.e1 import generator as line
from drivers.e1.family import E1Family, SpanSettings
from drivers.e1.lapd import Direction
from drivers.e1.span import SpanDriver
from drivers.simulated.e1_outputs import OutputFormat, open_output, run_span
from drivers.simulated.e1_script import (
    FaultKind,
    ScheduledFault,
    ScheduledSpanCall,
    SpanCall,
    SpanCallRecord,
    SpanFault,
    SpanOutcome,
    SpanScenario,
)
from drivers.simulated.e1_span import SimulatedSpan
from gateway.events import (
    CallAbandoned,
    CallAnswered,
    CallEnded,
    CallOffered,
    EndCause,
    Event,
    LineStatus,
    envelope,
)
from tests.conftest import validate_event, wait_until
from tests.drivers.e1.test_sim import MIX, check_reported

N2U = Direction.NETWORK_TO_USER
U2N = Direction.USER_TO_NETWORK
FAST = {"reopen_backoff_s": 0.05, "reopen_backoff_max_s": 0.2}


class Events(list[Event]):
    """What a driver emitted (its emit callback is ``append``: thread-safe)."""

    def of(self, kind: type[Event]) -> list[Any]:
        return [event for event in list(self) if isinstance(event, kind)]

    def statuses(self) -> list[tuple[str, str]]:
        return [(event.state, event.detail) for event in self.of(LineStatus)]

    def has_status(self, text: str) -> bool:
        return any(text in detail for _, detail in self.statuses())


def settings(n2u: str, u2n: str, **overrides: Any) -> SpanSettings:
    entry = {"name": "e1a", "network_to_user": n2u, "user_to_network": u2n, **overrides}
    return E1Family().validate("test.toml", "spans[0]", entry)


def write_files(
    tmp_path: Path, scenario: SpanScenario, stream_format: OutputFormat = OutputFormat.E1
) -> tuple[SimulatedSpan, str, str]:
    paths = str(tmp_path / "n2u"), str(tmp_path / "u2n")
    outputs = {N2U: open_output(paths[0]), U2N: open_output(paths[1])}
    span = SimulatedSpan(scenario)
    run_span(span, outputs, stream_format=stream_format, speed=0)
    for output in outputs.values():
        output.close()
    return span, *paths


@contextlib.contextmanager
def driving(span_settings: SpanSettings, **base: Any) -> Iterator[tuple[SpanDriver, Events]]:
    events = Events()
    driver = SpanDriver(span_settings, events.append, **{**FAST, **base})
    driver.start()
    try:
        yield driver, events
    finally:
        driver.stop()


def replay(span_settings: SpanSettings, **base: Any) -> Events:
    """Run the driver on files until the replay ended, then stop it."""
    with driving(span_settings, **base) as (_, events):
        wait_until(lambda: events.has_status("replay ended"), what="the replay ends")
    return events


@contextlib.contextmanager
def serving(
    scenario: SpanScenario,
    urls: tuple[str, str],
    *,
    stream_format: OutputFormat = OutputFormat.E1,
    speed: float = 1.0,
) -> Iterator[SimulatedSpan]:
    """The simulator writing to listening sockets in a thread until the block ends."""
    outputs = {N2U: open_output(urls[0]), U2N: open_output(urls[1])}
    span = SimulatedSpan(scenario)
    stop = threading.Event()
    runner = threading.Thread(
        target=run_span,
        args=(span, outputs),
        kwargs={"stream_format": stream_format, "speed": speed, "stop": stop, "until_done": False},
        daemon=True,
    )
    runner.start()
    try:
        yield span
    finally:
        stop.set()
        runner.join(5)
        for output in outputs.values():
            output.close()


def free_tcp_urls() -> tuple[str, str]:
    from tests.drivers.e1.test_sim import _free_port

    return f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}"


def done(records: list[SpanCallRecord], events: Events) -> bool:
    return len(events.of(CallEnded) + events.of(CallAbandoned)) >= len(records)


# -- calls ------------------------------------------------------------------------------------


def test_a_replayed_span_reports_every_call_with_schema_valid_events(tmp_path: Path) -> None:
    span, n2u, u2n = write_files(tmp_path, SpanScenario(MIX))
    events = replay(settings(n2u, u2n, speed=0))
    check_reported(span.records, events)
    for seq, event in enumerate(events, start=1):
        validate_event(envelope(event, seq=seq, gateway_id="bontang-01", region="64.74"))
    ups = [detail for state, detail in events.statuses() if state == "up"]
    assert ups == ["D-channel up; E1 frame and CRC-4 multiframe aligned"]
    assert events.statuses()[-2:] == [("down", "replay ended"), ("down", "driver stopped")]


def test_a_random_mix_through_line_faults_loses_no_call(tmp_path: Path) -> None:
    from drivers.simulated.e1_scenario import random_span_calls

    calls = tuple(
        ScheduledSpanCall(c.at_s, SpanCall(**{**c.call.__dict__, "talk_s": min(c.call.talk_s, 3)}))
        for c in random_span_calls(15, rate=90, seed=11, ring_interval_s=0.5)
    )
    faults = (
        ScheduledFault(0.7, SpanFault(FaultKind.BIT_ERRORS, count=200, duration_s=2, timeslot=16)),
        ScheduledFault(1.5, SpanFault(FaultKind.RETRANSMISSION, count=2)),
        ScheduledFault(2.5, SpanFault(FaultKind.BAD_FCS, count=3)),
        ScheduledFault(3.0, SpanFault(FaultKind.SLIP, U2N, count=1)),
        ScheduledFault(4.0, SpanFault(FaultKind.ABORT, N2U, count=2)),
    )
    span, n2u, u2n = write_files(tmp_path, SpanScenario(calls, faults, seed=2))
    events = replay(settings(n2u, u2n, speed=0))
    check_reported(span.records, events)


@pytest.mark.parametrize("stream_format", [OutputFormat.TIMESLOT, OutputFormat.LAPD])
def test_d_channel_only_streams_over_unix_sockets(
    tmp_path: Path, stream_format: OutputFormat
) -> None:
    urls = f"unix://{tmp_path / 'n2u'}", f"unix://{tmp_path / 'u2n'}"
    # A live stream is paced by its line (here twice real time): its octets or frames are
    # stamped as they arrive, which orders the two directions.
    with serving(SpanScenario(MIX), urls, stream_format=stream_format, speed=2.0) as span:
        config = settings(*urls, format=stream_format.value)
        with driving(config) as (_, events):
            wait_until(lambda: span.done and done(span.records, events), what="every call")
    check_reported(span.records, events)
    ups = [detail for state, detail in events.statuses() if state == "up"]
    assert ups == ["D-channel up"]  # no E1 framing to speak of


def test_lsb_first_streams(tmp_path: Path) -> None:
    span, n2u, u2n = write_files(tmp_path, SpanScenario(MIX[:2]))
    for path in (n2u, u2n):
        Path(path).write_bytes(line.reverse_bit_order(Path(path).read_bytes()))
    events = replay(settings(n2u, u2n, speed=0, bit_order="lsb-first"))
    check_reported(span.records, events)


def test_calls_the_user_side_offers_are_reported_with_incoming_side_user(tmp_path: Path) -> None:
    span, n2u, u2n = write_files(tmp_path, SpanScenario(MIX[:1]))
    # The same streams with the sides swapped: the calls now come from the "user" side.
    events = replay(settings(u2n, n2u, speed=0, incoming_side="user"))
    (offer,) = events.of(CallOffered)
    assert offer.number == MIX[0].call.caller
    assert len(span.records) == 1


# -- line state ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (FaultKind.LOS, "network-to-user: loss of signal (LOS)"),
        (FaultKind.AIS, "network-to-user: alarm indication signal (AIS, all ones)"),
        (FaultKind.LOST_ALIGNMENT, "network-to-user: no frame alignment (LOF)"),
        (FaultKind.RAI, "network-to-user: remote alarm (RAI)"),
    ],
)
def test_line_defects_take_the_span_down_and_back_up(
    tmp_path: Path, kind: FaultKind, text: str
) -> None:
    fault = ScheduledFault(1.0, SpanFault(kind, N2U, duration_s=0.5))
    call = ScheduledSpanCall(2.0, SpanCall(caller="+62811", talk_s=0.5))
    span, n2u, u2n = write_files(tmp_path, SpanScenario((call,), (fault,)))
    events = replay(settings(n2u, u2n, speed=0))
    statuses = events.statuses()
    down = statuses.index(("down", text))
    assert any(state == "up" for state, _ in statuses[:down])
    assert any(state == "up" for state, _ in statuses[down:])
    check_reported(span.records, events)


def test_both_directions_lost_is_said_once(tmp_path: Path) -> None:
    fault = ScheduledFault(1.0, SpanFault(FaultKind.LOS, duration_s=0.5))
    _, n2u, u2n = write_files(tmp_path, SpanScenario((), (fault,)))
    events = replay(settings(n2u, u2n, speed=0))
    assert ("down", "both directions: loss of signal (LOS)") in events.statuses()


def test_d_channel_released_and_reestablished(tmp_path: Path) -> None:
    fault = ScheduledFault(1.0, SpanFault(FaultKind.LINK_DOWN, duration_s=1.0))
    call = ScheduledSpanCall(1.2, SpanCall(caller="+62812", talk_s=0.3))  # waits for the link
    span, n2u, u2n = write_files(tmp_path, SpanScenario((call,), (fault,)))
    events = replay(settings(n2u, u2n, speed=0))
    details = [detail for _, detail in events.statuses()]
    released = details.index("D-channel down")  # DISC, UA (read in one chunk of the file)
    assert details[released - 1].startswith("D-channel up")
    assert details[-3].startswith("D-channel up")  # before "replay ended", "driver stopped"
    check_reported(span.records, events)


# -- bad input ---------------------------------------------------------------------------------


def test_noise_never_crashes_the_driver(tmp_path: Path) -> None:
    rng = random.Random(9)
    for name in ("n2u", "u2n"):
        (tmp_path / name).write_bytes(rng.randbytes(256_000 * 2))
    with driving(settings(str(tmp_path / "n2u"), str(tmp_path / "u2n"), speed=0)) as (
        driver,
        events,
    ):
        wait_until(lambda: events.has_status("replay ended"), what="the replay ends")
        assert driver.health().ok and driver.health().worker_alive
    assert not events.of(CallOffered)
    assert [state for state, _ in events.statuses()] == ["down"] * len(events.statuses())


def test_garbage_d_channel_messages_are_counted_and_dropped(tmp_path: Path) -> None:
    """Good E1 framing, good HDLC frames carrying junk on the simulated D-channel: LAPD and
    Q.931 refuse it, and the well-formed call among it is still reported."""
    rng = random.Random(4)
    span = SimulatedSpan(SpanScenario(MIX[:2]))
    outputs = {N2U: open_output(str(tmp_path / "n2u")), U2N: open_output(str(tmp_path / "u2n"))}
    while not span.done:
        for direction in (N2U, U2N):
            if rng.random() < 0.2:  # not LAPD (mostly): too short, reserved bits, ...
                span.link.peer(direction).writer.send(rng.randbytes(rng.randrange(1, 40)))
            if rng.random() < 0.2:  # a good I frame whose information is not Q.931
                span.link.send_information(direction, rng.randbytes(rng.randrange(1, 30)), 0)
        block = span.block()
        for direction, output in outputs.items():
            output.write(block.e1[direction])
    for output in outputs.values():
        output.close()
    with driving(settings(str(tmp_path / "n2u"), str(tmp_path / "u2n"), speed=0)) as (
        driver,
        events,
    ):
        wait_until(lambda: events.has_status("replay ended"), what="the replay ends")
        snapshot = driver.snapshot()
    assert snapshot is not None
    assert sum(snapshot["q931_errors"].values()) > 10
    assert snapshot["lapd"]["malformed"] > 5
    check_reported(span.records, events)


# -- sources: open, lose, reopen ----------------------------------------------------------------


def test_a_missing_stream_is_retried_with_backoff(tmp_path: Path) -> None:
    n2u, u2n = str(tmp_path / "n2u"), str(tmp_path / "u2n")
    with driving(settings(n2u, u2n, speed=0)) as (driver, events):
        wait_until(lambda: driver.health().sessions >= 3, what="reopened with backoff")
        assert events.statuses()[0][1].startswith("cannot open span streams: ")
        assert "network-to-user stream" in events.statuses()[0][1]
        staging = tmp_path / "staging"
        staging.mkdir()
        span, *written = write_files(staging, SpanScenario(MIX[:1]))
        for source, target in zip(written, (n2u, u2n), strict=True):
            os.replace(source, target)  # whole files appear (a replay of half a file ends)
        wait_until(lambda: events.of(CallEnded), what="the call once the files are there")
    assert len(events.of(CallOffered)) == 1 and span.records


def test_a_lost_tcp_stream_is_reopened_and_calls_go_on(tmp_path: Path) -> None:
    urls = free_tcp_urls()
    scenario = SpanScenario(
        (
            ScheduledSpanCall(0.3, SpanCall(caller="+6281", ring_s=0.2, talk_s=0.3)),
            ScheduledSpanCall(2.5, SpanCall(caller="+6282", ring_s=0.2, talk_s=0.3)),
        ),
        (ScheduledFault(1.5, SpanFault(FaultKind.DISCONNECT)),),
    )
    with serving(scenario, urls, speed=2.0) as span, driving(settings(*urls)) as (driver, events):
        wait_until(lambda: len(events.of(CallEnded)) == 2, what="both calls, across the loss")
        assert driver.health().sessions >= 2
    lost = [detail for state, detail in events.statuses() if "closed by the far end" in detail]
    assert lost and lost[0].startswith(("network-to-user stream", "user-to-network stream"))
    assert [e.number for e in events.of(CallOffered)] == ["+6281", "+6282"]
    assert span.records[0].spec.caller == "+6281"


def test_a_silent_live_stream_ends_the_session(tmp_path: Path) -> None:
    paths = tmp_path / "n2u", tmp_path / "u2n"
    for path in paths:
        os.mkfifo(path)
    with driving(settings(str(paths[0]), str(paths[1])), silent_stream_s=0.3) as (driver, events):
        wait_until(lambda: driver.health().sessions >= 2, what="a new session after silence")
        assert driver.health().ok
    assert events.has_status("stream: nothing for 0.3 s")


def test_stop_ends_the_calls_in_progress(tmp_path: Path) -> None:
    urls = free_tcp_urls()
    scenario = SpanScenario((ScheduledSpanCall(0.2, SpanCall(caller="+6283", talk_s=60)),))
    with serving(scenario, urls, speed=1.0), driving(settings(*urls)) as (driver, events):
        wait_until(lambda: events.of(CallAnswered), what="the call is answered")
        health = driver.health()
        assert health.state == "up" and health.ok and health.progress_age_s < 1.0
    (ended,) = events.of(CallEnded)
    assert ended.cause is EndCause.UNKNOWN and ended.outcome is not None
    assert events.statuses()[-1] == ("down", "driver stopped")


def test_a_replay_that_ends_mid_call_ends_the_call_as_line_lost(tmp_path: Path) -> None:
    scenario = SpanScenario((ScheduledSpanCall(0.2, SpanCall(caller="+6284", talk_s=60)),))
    span = SimulatedSpan(scenario)
    outputs = {N2U: open_output(str(tmp_path / "a")), U2N: open_output(str(tmp_path / "b"))}
    run_span(span, outputs, speed=0, until_done=False, duration_s=3.0)
    for output in outputs.values():
        output.close()
    events = replay(settings(str(tmp_path / "a"), str(tmp_path / "b"), speed=0))
    (ended,) = events.of(CallEnded)
    assert ended.cause is EndCause.LINE_LOST
    assert span.records[0].spec.outcome is SpanOutcome.ANSWERED


def test_a_replay_of_unequal_files_is_not_taken_for_a_lost_stream(tmp_path: Path) -> None:
    span, n2u, u2n = write_files(tmp_path, SpanScenario(MIX[:2]))
    data = Path(u2n).read_bytes()
    Path(u2n).write_bytes(data[: len(data) // 2])  # this direction's recording stops early
    config = settings(n2u, u2n, speed=4.0)
    with driving(config, silent_stream_s=0.3) as (driver, events):
        wait_until(lambda: events.has_status("replay ended"), what="the replay ends")
        assert driver.health().sessions == 1  # no reopen: the replay would report calls twice
    assert len(events.of(CallOffered)) == len(span.records)


@hypothesis_settings(max_examples=80, deadline=None)
@given(
    span_format=st.sampled_from(["e1", "timeslot", "lapd"]),
    pieces=st.lists(
        st.tuples(st.booleans(), st.binary(min_size=1, max_size=300), st.floats(0, 0.05)),
        max_size=25,
    ),
)
def test_any_bytes_from_either_direction_never_stop_the_tap(
    span_format: str, pieces: list[tuple[bool, bytes, float]]
) -> None:
    """Garbage on the line, in every format: counted and dropped, never an exception; any
    event the tap does emit is a valid contract event."""
    from drivers.e1.sources import Chunk
    from drivers.e1.span import SpanTap
    from gateway.events import encode

    emitted: list[Event] = []
    tap = SpanTap(settings("a", "b", format=span_format), emitted.append)
    now = 1_800_000_000.0
    for network_side, data, gap in pieces:
        now += gap
        direction = Direction.NETWORK_TO_USER if network_side else Direction.USER_TO_NETWORK
        tap.feed(Chunk(direction, now, data))
        tap.tick(now)
    tap.tick(now + 60)
    for event in emitted:
        validate_event(json.loads(encode(event, seq=1, gateway_id="g", region="64.74")))
