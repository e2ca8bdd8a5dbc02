"""A real PRI peer: libpri (Debian ``libpri-dev``, the stack Asterisk runs) on both sides of a
socket pair places and clears calls; edge112 taps every frame of both directions and must
report each call exactly as libpri made it.

    harness.c (built here with gcc -lpri)                        edge112
    network libpri ──frames──┐                ┌──▶ LapdMonitor ─▶ Q.931 ─▶ PriCallTracker
    user libpri    ──frames──┴─▶ frames.txt ──┤                    calls, events, hooks
                                              └──▶ pcapng ─▶ edge112 e1 decode, tshark

Skipped with the reason when gcc or libpri is missing (``apt install gcc libpri-dev``);
failed instead under EDGE112_REQUIRE_TOOLS=1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drivers.e1.decode import TapDecoder, TapFrame
from drivers.e1.lapd import Direction
from drivers.e1.pcap import PcapngWriter, PcapWriter
from gateway.events import CallAbandoned, CallAnswered, CallEnded, CallOffered, Event, encode
from tests.conftest import require_tool, tools_required, validate_event
from tests.drivers.e1.test_cli import cross_check_with_tshark

HERE = Path(__file__).parent
LIBPRI_MISSING = "libpri is not installed (apt install libpri-dev)"

# KIND:CALLER:CALLED:CHANNEL[:CONFIRMED], as harness.c reads them
SCRIPT = [
    "answered:81311112222:112:1",
    "abandoned:81322223333:112:2",
    "busy:81333334444:112:3",
    "nocircuit:81344445555:112:4",
    "rejected:81355556666:112:5",
    "withheld:81366667777:112:6",
    "overlap:81377778888:112:7",
    "served:-:112:8:9",  # no caller id; channel 8 only preferred, the centre takes 9
    "restarted:81388889999:112:17",
    "answered:81399990000:110:31",  # the same CRV values again later: see libpri's crefs
]
# kind -> (outcome, EndCause of the end event, who clears, Q.850 cause)
EXPECTED = {
    "answered": ("answered", "remote_hangup", "network", 16),
    "abandoned": ("abandoned", "remote_hangup", "network", 16),
    "busy": ("rejected", "busy", "user", 17),
    "nocircuit": ("rejected", "busy", "user", 34),
    "rejected": ("rejected", "local_hangup", "user", 21),
    "withheld": ("answered", "remote_hangup", "network", 16),
    "overlap": ("answered", "remote_hangup", "network", 16),
    "served": ("answered", "local_hangup", "user", 16),
    "restarted": ("answered", "line_lost", "network", None),
}
PRESENTATION = {0: "allowed", 32: "restricted", 67: "unavailable"}  # libpri's callingpres


@dataclass(frozen=True)
class LibpriCall:
    """One ``call`` line of the harness: what libpri saw of a call."""

    index: int
    kind: str
    cref: int
    channel: int
    caller: str | None
    presentation: int
    called: str
    cleared_by: str
    cause: int


@dataclass(frozen=True)
class Run:
    frames: list[TapFrame]
    calls: list[LibpriCall]


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = require_tool("gcc")
    binary = tmp_path_factory.mktemp("libpri") / "harness"
    source = HERE / "harness.c"
    result = subprocess.run(
        [gcc, "-Wall", "-Wextra", "-O1", "-o", str(binary), str(source), "-lpri"],
        capture_output=True,
        text=True,
    )
    if result.returncode:
        if "libpri.h" in result.stderr or "-lpri" in result.stderr:
            if tools_required():
                pytest.fail(f"{LIBPRI_MISSING}; EDGE112_REQUIRE_TOOLS is set", pytrace=False)
            pytest.skip(LIBPRI_MISSING)
        pytest.fail(f"the harness does not build:\n{result.stderr}")
    return binary


def run_harness(harness: Path, tmp_path: Path, script: list[str]) -> Run:
    output = tmp_path / "frames.txt"
    result = subprocess.run(
        [str(harness), str(output), *script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    frames: list[TapFrame] = []
    calls: list[LibpriCall] = []
    for line in output.read_text().splitlines():
        kind, *fields = line.split()
        if kind == "frame":
            direction, time_ns, octets = fields
            frames.append(TapFrame(int(time_ns), Direction(direction), bytes.fromhex(octets)))
        elif kind == "call":
            index, call_kind, *pairs = fields
            values = dict(pair.split("=", 1) for pair in pairs)
            calls.append(
                LibpriCall(
                    int(index),
                    call_kind,
                    int(values["cref"]),
                    int(values["channel"]),
                    None if values["caller"] == "-" else values["caller"],
                    int(values["pres"]),
                    values["called"],
                    values["cleared_by"],
                    int(values["cause"]),
                )
            )
    return Run(frames, calls)


@pytest.fixture(scope="module")
def libpri_run(harness: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = run_harness(harness, tmp_path_factory.mktemp("run"), SCRIPT)
    assert [call.kind for call in run.calls] == [spec.split(":")[0] for spec in SCRIPT]
    return run


class Tap:
    """What a span driver would do with the frames: the tap, events and B-channel hooks."""

    def __init__(self, frames: list[TapFrame]) -> None:
        self.events: list[Event] = []
        self.hooks: list[tuple[str, str, int]] = []
        self.decoder = TapDecoder(
            "span0",
            self.events.append,
            on_connected=lambda call_id, channel: self.hooks.append(
                ("connected", call_id, channel)
            ),
            on_cleared=lambda call_id, channel: self.hooks.append(("cleared", call_id, channel)),
        )
        for frame in sorted(frames, key=lambda f: f.time_ns):
            self.decoder.feed(frame)
        self.calls = self.decoder.calls()


def expected_record(call: LibpriCall, spec: str) -> dict[str, Any]:
    fields = spec.split(":")
    confirmed = int(fields[4]) if len(fields) > 4 else call.channel
    outcome, _, cleared_by, cause = EXPECTED[call.kind]
    return {
        "call_ref": call.cref,
        "originator": "network",
        "b_channel": confirmed,
        "caller": call.caller,
        # libpri sends no Calling party number without one (and reports 67 itself)
        "caller_presentation": PRESENTATION[call.presentation] if call.caller else None,
        "called": call.called,
        "cleared_by": cleared_by,
        "cause": cause,
        "outcome": outcome,
    }


def check_records(records: list[dict[str, Any]], run: Run) -> None:
    assert len(records) == len(run.calls)
    for record, call, spec in zip(records, run.calls, SCRIPT, strict=True):
        expected = expected_record(call, spec)
        assert {key: record[key] for key in expected} == expected, spec
        # libpri's own view agrees with the script and with what it says it sent
        assert call.cleared_by == expected["cleared_by"]
        assert call.cause == (expected["cause"] or 0)
        assert record["offered_at"] is not None and record["ended_at"] is not None
        assert record["released_at"] is not None
        answered = expected["outcome"] == "answered"
        assert (record["answered_at"] is not None) == answered


def test_every_call_libpri_made_is_reported_as_it_made_it(libpri_run: Run) -> None:
    tap = Tap(libpri_run.frames)
    check_records([call.to_json_dict() for call in tap.calls], libpri_run)
    assert tap.decoder.monitor.counters.direction_mismatches == 0
    assert tap.decoder.tracker.counters.unknown_call == {}
    assert tap.decoder.tracker.counters.restart_cleared == 1
    # The overlap call's digits came one INFORMATION each: the SETUP had only the first.
    overlap = tap.calls[SCRIPT.index("overlap:81377778888:112:7")]
    assert overlap.called == "112"


def test_the_events_are_the_gsm_contract_with_the_span_additions(libpri_run: Run) -> None:
    tap = Tap(libpri_run.frames)
    by_call: dict[str, list[Event]] = {}
    for event in tap.events:
        by_call.setdefault(event.call_id, []).append(event)  # type: ignore[attr-defined]
        validate_event(json.loads(encode(event, seq=1, gateway_id="test", region="64.74")))
    assert len(by_call) == len(SCRIPT)
    for events, call, spec in zip(by_call.values(), libpri_run.calls, SCRIPT, strict=True):
        outcome, end_cause, cleared_by, cause = EXPECTED[call.kind]
        offered, *rest = events
        assert isinstance(offered, CallOffered)
        assert offered.line == "span0"
        if call.caller is None or call.presentation != 0:
            assert offered.number is None
        else:
            assert offered.number == "0" + call.caller  # national: the trunk prefix
        assert offered.presentation.value == PRESENTATION[call.presentation]
        end = rest[-1]
        if outcome == "answered":
            answered, ended = rest
            assert isinstance(answered, CallAnswered) and isinstance(ended, CallEnded)
            assert answered.ring_time_ms >= 30  # the harness rings 40 ms before answering
            assert answered.b_channel == expected_record(call, spec)["b_channel"]
        else:
            [abandoned] = rest
            assert isinstance(abandoned, CallAbandoned)
            assert abandoned.category == "terputus"
        assert isinstance(end, CallEnded | CallAbandoned)
        assert (end.cause, end.outcome, end.q850_cause) == (end_cause, outcome, cause), spec
        assert end.cleared_by == cleared_by
    # B-channel audio: started for every answered call on its confirmed channel, stopped once.
    answered_ids = [
        events[0].call_id  # type: ignore[attr-defined]
        for events, call in zip(by_call.values(), libpri_run.calls, strict=True)
        if EXPECTED[call.kind][0] == "answered"
    ]
    started = [(call_id, channel) for what, call_id, channel in tap.hooks if what == "connected"]
    stopped = [(call_id, channel) for what, call_id, channel in tap.hooks if what == "cleared"]
    assert [call_id for call_id, _ in started] == answered_ids
    assert stopped == started


def write_capture(run: Run, path: Path, *, classic: bool = False) -> None:
    with path.open("wb") as stream:
        writer: PcapngWriter | PcapWriter = PcapWriter(stream) if classic else PcapngWriter(stream)
        for frame in run.frames:
            assert frame.data is not None
            writer.write(frame.data, frame.time_ns, None if classic else frame.direction)


@pytest.mark.parametrize("classic", [False, True], ids=["pcapng", "classic-pcap"])
def test_edge112_e1_decode_reports_the_same_calls_from_the_capture(
    libpri_run: Run, tmp_path: Path, classic: bool
) -> None:
    capture = tmp_path / ("libpri.pcap" if classic else "libpri.pcapng")
    write_capture(libpri_run, capture, classic=classic)
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "e1", "decode", str(capture), "--calls", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    records = [json.loads(line) for line in result.stdout.splitlines()]
    check_records(records, libpri_run)
    if not classic:  # a classic pcap keeps microseconds only
        assert records == [call.to_json_dict() for call in Tap(libpri_run.frames).calls]


def test_tshark_decodes_the_libpri_capture_as_we_do(libpri_run: Run, tmp_path: Path) -> None:
    require_tool("tshark")
    capture = tmp_path / "libpri.pcapng"
    write_capture(libpri_run, capture)
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "e1", "decode", str(capture), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    ours = [
        {k: v for k, v in json.loads(line).items() if k != "frame.number"}
        for line in result.stdout.splitlines()
    ]
    assert not [frame for frame in ours if "error" in frame]
    cross_check_with_tshark(capture, ours)


def test_calls_keep_coming_when_the_tap_starts_mid_call(libpri_run: Run) -> None:
    """Drop everything before the first call's CONNECT: the link comes up unseen, the call
    is joined late (a record, no events), every later call is whole."""
    tap_all = Tap(libpri_run.frames)
    first_answer = tap_all.calls[0].answered_at
    assert first_answer is not None
    late = [f for f in libpri_run.frames if f.time_ns / 1e9 > first_answer + 1e-6]
    tap = Tap(late)
    joined, *rest = tap.calls
    assert (joined.offered_at, joined.caller, joined.cleared_by, joined.cause) == (
        None,
        None,
        "network",
        16,
    )
    assert [c.to_json_dict() for c in rest] == [c.to_json_dict() for c in tap_all.calls[1:]]
    offered = [e for e in tap.events if isinstance(e, CallOffered)]
    assert len(offered) == len(SCRIPT) - 1
    assert tap.decoder.monitor.counters.implicit_establishments == 1
