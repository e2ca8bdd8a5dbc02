"""Recorded transcripts (tests/transcripts/*.jsonl) replayed into the real GsmModemDriver.

Every ``*.jsonl`` in tests/transcripts/ is a test case; its sidecar
``<name>.expected.json`` lists the calls the driver must report, in order::

    [{"number": "+62812...", "presentation": "allowed", "outcome": "answered"},
     {"number": null, "presentation": "restricted", "outcome": "abandoned"}]

The driver answers after as many rings as it did in the recording (counted
from the transcript: RINGs before the first ATA), so the replay takes the
same path through the session.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from drivers.gsm.modem import GsmModemDriver
from drivers.simulated.replay import ReplayedModem, build_script, recorded_commands
from drivers.transcript import Direction, Transcript, read_transcript
from gateway.events import CallAbandoned, CallAnswered, CallEnded, CallOffered, Event
from tests.conftest import wait_until
from tests.drivers.gsm.support import EventLog

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "transcripts"
SPEED = 5.0
REPLAY_TIMEOUT_S = 15.0
CALL_EVENTS = (CallOffered, CallAnswered, CallEnded, CallAbandoned)
OUTCOME_EVENTS = {
    "answered": [CallOffered, CallAnswered, CallEnded],
    "abandoned": [CallOffered, CallAbandoned],
}
_RING = re.compile(rb"(?:^|[\r\n])(?:RING|\+CRING: VOICE)\r")


def transcripts() -> list[Path]:
    return sorted(TRANSCRIPTS.glob("*.jsonl"))


def rings_before_answer(transcript: Transcript) -> int:
    """How many rings the recorded gateway waited before its first ATA (0: it never answered)."""
    answers = [c.t for c in recorded_commands(transcript) if c.command.upper() == "ATA"]
    if not answers:
        return 0
    in_call = b""
    for chunk in transcript.of(Direction.FROM_MODEM):
        if chunk.t > answers[0]:
            break
        in_call += chunk.data
        if b"NO CARRIER" in chunk.data:
            in_call = b""
    return len(_RING.findall(in_call))


def expected_calls(transcript_path: Path) -> list[dict[str, Any]]:
    sidecar = transcript_path.with_name(transcript_path.stem + ".expected.json")
    assert sidecar.exists(), f"{transcript_path.name} needs {sidecar.name} (see README.md)"
    calls = json.loads(sidecar.read_text())
    assert isinstance(calls, list)
    return calls


def replay(transcript: Transcript, link: Path, log: EventLog, call_events: int) -> ReplayedModem:
    """Replay ``transcript`` to the driver until it has reported ``call_events`` call events."""
    driver = GsmModemDriver(
        "gsm0",
        str(link),
        log,
        answer_after_rings=rings_before_answer(transcript),
        poll_interval_s=0.1,
        caller_id_grace_s=0.1,
        signal_interval_s=30.0,
    )
    with ReplayedModem(transcript, link, speed=SPEED) as modem:
        driver.start()
        try:
            assert modem.done.wait(REPLAY_TIMEOUT_S), "the timeline did not finish"
            wait_until(
                lambda: len(log.of(*CALL_EVENTS)) >= call_events,
                what=f"the driver handled the last lines: {call_events} call events",
            )
        finally:
            driver.stop()
    return modem


@pytest.mark.parametrize("path", transcripts(), ids=lambda path: path.stem)
def test_transcript_replays_into_the_expected_calls(path: Path, tmp_path: Path) -> None:
    transcript = read_transcript(path)
    calls = expected_calls(path)
    expected_types = [kind for call in calls for kind in OUTCOME_EVENTS[call["outcome"]]]
    log = EventLog()
    modem = replay(transcript, tmp_path / "gsm0", log, len(expected_types))

    events: list[Event] = log.of(*CALL_EVENTS)
    assert [type(event) for event in events] == expected_types
    offers = log.of(CallOffered)
    assert [(o.number, o.presentation.value) for o in offers] == [
        (call["number"], call["presentation"]) for call in calls
    ]
    assert modem.unanswered == []


def test_the_shipped_transcript_is_a_quectel_session_with_garbage() -> None:
    script = build_script(read_transcript(TRANSCRIPTS / "quectel_ec25_calls.jsonl"))
    assert script.echo
    assert b"EC25" in script.responses["AT+CGMM"][0][2]
    timeline = b"".join(data for _t, data in script.timeline)
    for urc in (b"+CRING: VOICE", b'+CLIP: "",128', b"NO CARRIER", b"\xff\xfe", b"+QXYZ"):
        assert urc in timeline


def small_transcript(path: Path) -> Transcript:
    records = [
        (0.0, "to_modem", "AT\r"),
        (0.01, "from_modem", "AT\r\r\nOK\r\n"),
        (0.02, "to_modem", "ATE0\r"),
        (0.03, "from_modem", "ATE0\r\r\nOK\r\n"),
        (0.04, "to_modem", "AT+CSQ\r"),
        (0.05, "from_modem", "\r\n+CSQ: 10,99\r\n\r\nOK\r\n"),
        (0.06, "to_modem", "AT+CSQ\r"),
        (0.07, "from_modem", "\r\n+CSQ: 20,99\r\n\r\nOK\r\n"),
        (5.0, "from_modem", "\r\nRING\r\n"),
    ]
    lines = [json.dumps({"edge112_transcript": 1, "port": "test", "started": ""})]
    lines += [json.dumps({"t": t, "dir": way, "data": data}) for t, way, data in records]
    path.write_text("\n".join(lines) + "\n")
    return read_transcript(path)


def exchange(fd: int, command: bytes, until: bytes) -> bytes:
    os.write(fd, command)
    received = b""
    while until not in received:
        received += os.read(fd, 256)
    return received


def test_echo_recorded_order_unknown_commands_and_done(tmp_path: Path) -> None:
    transcript = small_transcript(tmp_path / "small.jsonl")
    link = tmp_path / "gsm0"
    with ReplayedModem(transcript, link, speed=10.0) as modem:
        fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
        try:
            assert exchange(fd, b"AT\r", b"OK\r\n") == b"AT\r\r\nOK\r\n"
            assert exchange(fd, b"ATE0\r", b"OK\r\n") == b"ATE0\r\r\nOK\r\n"
            assert exchange(fd, b"AT+CSQ\r", b"OK\r\n") == b"\r\n+CSQ: 10,99\r\n\r\nOK\r\n"
            assert exchange(fd, b"AT+CSQ\r", b"OK\r\n") == b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
            assert b"+CSQ: 20,99" in exchange(fd, b"AT+CSQ\r", b"OK\r\n")  # the last repeats
            assert exchange(fd, b"AT+XYZ\r", b"ERROR\r\n") == b"\r\nERROR\r\n"
            assert not modem.done.is_set()
            assert modem.done.wait(2.0)  # RING at 5 s recorded, 0.5 s at 10x
            assert b"RING" in exchange(fd, b"AT+XYZ\r", b"ERROR\r\n")
        finally:
            os.close(fd)
    assert modem.unanswered == ["AT+XYZ"]


def test_cli_with_a_bad_transcript_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"edge112_transcript": 1}\n{"t": 0.5, "dir": "up", "data": ""}\n')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "sim",
            "replay",
            "--transcript",
            str(bad),
            "--link",
            str(tmp_path / "gsm0"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert f"{bad}:2" in result.stderr and "'dir'" in result.stderr
