"""Transcripts (drivers.transcript) and the record:// URL handler, on loop:// and a real PTY."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest
import serial

import drivers.at_channel  # noqa: F401  (registers drivers.urlhandler with pyserial)
from drivers.at_channel import open_port
from drivers.transcript import (
    Chunk,
    Direction,
    TranscriptError,
    TranscriptWriter,
    read_transcript,
)
from drivers.urlhandler.protocol_record import parse_record_url
from tests.drivers.conftest import PtyPair

ALL_BYTES = bytes(range(256))


def test_every_byte_value_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with TranscriptWriter(path, port="/dev/ttyUSB2") as writer:
        writer.to_modem(ALL_BYTES)
        writer.from_modem(ALL_BYTES[::-1])
        writer.from_modem(b"")  # not worth a record

    transcript = read_transcript(path)
    assert transcript.port == "/dev/ttyUSB2"
    assert transcript.started.endswith("Z")
    assert [(c.direction, c.data) for c in transcript.chunks] == [
        (Direction.TO_MODEM, ALL_BYTES),
        (Direction.FROM_MODEM, ALL_BYTES[::-1]),
    ]
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["edge112_transcript"] == 1
    assert set(json.loads(lines[1])) == {"t", "dir", "data"}
    assert lines[1].isascii()


@pytest.mark.parametrize(
    ("body", "line", "problem"),
    [
        ("", None, "empty"),
        ('{"t": 0, "dir": "to_modem", "data": ""}\n', 1, "header"),
        ('{"edge112_transcript": 2}\n', 1, "version"),
        ('{"edge112_transcript": 1}\nnot json\n', 2, "not JSON"),
        ('{"edge112_transcript": 1}\n[1]\n', 2, "object"),
        ('{"edge112_transcript": 1}\n{"t": -1, "dir": "to_modem", "data": ""}\n', 2, "'t'"),
        ('{"edge112_transcript": 1}\n{"t": 1, "dir": "sideways", "data": ""}\n', 2, "'dir'"),
        ('{"edge112_transcript": 1}\n{"t": 1, "dir": "to_modem", "data": 5}\n', 2, "'data'"),
        (
            '{"edge112_transcript": 1}\n{"t": 1, "dir": "to_modem", "data": "\\u20ac"}\n',
            2,
            "U+00FF",
        ),
        (
            '{"edge112_transcript": 1}\n\n{"t": 2, "dir": "to_modem", "data": "a"}\n'
            '{"t": 1, "dir": "to_modem", "data": "b"}\n',
            4,
            "back in time",
        ),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path: Path, body: str, line: int, problem: str):
    path = tmp_path / "bad.jsonl"
    path.write_text(body)
    with pytest.raises(TranscriptError) as caught:
        read_transcript(path)
    assert caught.value.line == line
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"{path}:{line}:" if line else f"{path}:")


def test_a_missing_file_is_a_transcript_error(tmp_path: Path) -> None:
    with pytest.raises(TranscriptError, match="cannot read"):
        read_transcript(tmp_path / "absent.jsonl")


def test_record_url_grammar(tmp_path: Path) -> None:
    assert parse_record_url("record:///dev/ttyUSB2?file=/var/log/g.jsonl") == (
        "/dev/ttyUSB2",
        Path("/var/log/g.jsonl"),
    )
    assert parse_record_url("record://loop://?logging=debug?file=/tmp/a%20b.jsonl") == (
        "loop://?logging=debug",
        Path("/tmp/a b.jsonl"),
    )
    for bad in ("record:///dev/ttyUSB2", "record://?file=x", "record://loop://?file=x&raw"):
        with pytest.raises(serial.SerialException):
            parse_record_url(bad)


def test_record_wraps_loop_and_logs_both_directions(tmp_path: Path) -> None:
    path = tmp_path / "loop.jsonl"
    port = open_port(f"record://loop://?file={path}")
    port.write(b"AT\r")
    assert port.read(3) == b"AT\r"
    port.close()

    transcript = read_transcript(path)
    assert transcript.port == "loop://"
    assert [(c.direction, c.data) for c in transcript.chunks] == [
        (Direction.TO_MODEM, b"AT\r"),
        (Direction.FROM_MODEM, b"AT\r"),
    ]
    assert 0 <= transcript.chunks[0].t <= transcript.chunks[1].t


def test_record_wraps_a_pty_with_timestamps_and_stays_exclusive(
    tmp_path: Path, pty_pair: PtyPair
) -> None:
    path = tmp_path / "pty.jsonl"
    port = open_port(f"record://{pty_pair.path}?file={path}")
    try:
        with pytest.raises(serial.SerialException, match="exclusively lock"):
            open_port(pty_pair.path)
        with pytest.raises(serial.SerialException, match="exclusively lock"):
            open_port(f"record://{pty_pair.path}?file={tmp_path / 'second.jsonl'}")
        port.write(b"ATI\r")
        assert os.read(pty_pair.master, 16) == b"ATI\r"
        os.write(pty_pair.master, ALL_BYTES)
        received = b""
        while len(received) < len(ALL_BYTES):
            received += port.read(len(ALL_BYTES) - len(received))
    finally:
        port.close()

    assert received == ALL_BYTES
    chunks = read_transcript(path).chunks
    assert chunks[0] == Chunk(chunks[0].t, Direction.TO_MODEM, b"ATI\r")
    assert b"".join(c.data for c in chunks if c.direction is Direction.FROM_MODEM) == ALL_BYTES
    assert all(a.t <= b.t for a, b in itertools.pairwise(chunks))
    assert not (tmp_path / "second.jsonl").exists()  # the refused open wrote nothing


def test_a_reopened_port_starts_a_new_transcript(tmp_path: Path) -> None:
    path = tmp_path / "gsm0.jsonl"
    for payload in (b"first", b"second"):
        port = open_port(f"record://loop://?file={path}")
        port.write(payload)
        port.close()

    assert read_transcript(path).chunks[0].data == b"first"
    assert read_transcript(tmp_path / "gsm0.1.jsonl").chunks[0].data == b"second"
