"""Modem transcripts: every byte a serial port carried, both ways, with its time.

Engineers record a real modem session once in the field (``record://``, see
``drivers.urlhandler.protocol_record``) and CI replays it against the real
driver (``drivers.simulated.replay``). A transcript is JSON Lines: a header,
then one record per chunk, in the order the chunks crossed the port::

    {"edge112_transcript": 1, "port": "/dev/ttyUSB2", "started": "2024-05-01T08:00:00.000000Z"}
    {"t": 0.000412, "dir": "to_modem", "data": "AT\\r"}
    {"t": 0.002190, "dir": "from_modem", "data": "AT\\r\\r\\nOK\\r\\n"}
    {"t": 4.810532, "dir": "from_modem", "data": "\\r\\nRING\\r\\n"}
     |               |                    '- the bytes, decoded latin-1: every byte 0-255 is
     |               |                       one character, so garbage round-trips exactly
     |               '- to_modem: the gateway wrote it; from_modem: the gateway read it
     '- seconds since the writer started (monotonic clock), never decreasing

``started`` is RFC 3339 UTC wall-clock time. A chunk is whatever one
``write`` or one ``read`` moved; readers must not assume chunks are lines.
``read_transcript`` checks everything and raises ``TranscriptError`` naming
the file and the line for the first problem.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

FORMAT_VERSION = 1
HEADER_KEY = "edge112_transcript"
ENCODING = "latin-1"  # one character per byte, 0-255


class Direction(StrEnum):
    TO_MODEM = "to_modem"
    FROM_MODEM = "from_modem"


@dataclass(frozen=True)
class Chunk:
    """Bytes one read or write moved, ``t`` seconds after the recording started."""

    t: float
    direction: Direction
    data: bytes


@dataclass(frozen=True)
class Transcript:
    port: str
    started: str
    chunks: tuple[Chunk, ...]
    path: Path | None = None

    def of(self, direction: Direction) -> list[Chunk]:
        return [chunk for chunk in self.chunks if chunk.direction is direction]


class TranscriptError(ValueError):
    """A transcript file that cannot be read; says which file and line."""

    def __init__(self, path: Path | str, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = Path(path)
        self.line = line
        self.problem = problem


def header_record(port: str, started: datetime) -> dict[str, Any]:
    stamp = started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {HEADER_KEY: FORMAT_VERSION, "port": port, "started": stamp}


def chunk_record(chunk: Chunk) -> dict[str, Any]:
    return {
        "t": round(chunk.t, 6),
        "dir": chunk.direction.value,
        "data": chunk.data.decode(ENCODING),
    }


class TranscriptWriter:
    """Appends chunks to a transcript file; safe to call from any thread.

    The header goes out at once; each record is flushed as it is written, so
    a gateway that dies mid-session leaves a readable transcript.
    """

    def __init__(self, path: str | Path, *, port: str = "") -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = self.path.open("w", encoding="utf-8")
        self._write_record(header_record(port, datetime.now(UTC)))

    def __enter__(self) -> TranscriptWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def record(self, direction: Direction, data: bytes) -> None:
        """Log one chunk (empty chunks are not worth a line); a closed writer drops it."""
        if not data:
            return
        with self._lock:
            t = time.monotonic() - self._start
            self._write_record(chunk_record(Chunk(t, direction, bytes(data))))

    def to_modem(self, data: bytes) -> None:
        self.record(Direction.TO_MODEM, data)

    def from_modem(self, data: bytes) -> None:
        self.record(Direction.FROM_MODEM, data)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _write_record(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(record, ensure_ascii=True) + "\n")
        self._file.flush()


def read_transcript(path: str | Path) -> Transcript:
    """Load and check a transcript; ``TranscriptError`` says what is wrong, and where."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TranscriptError(path, None, f"cannot read: {exc}") from exc
    numbered = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not numbered:
        raise TranscriptError(path, None, "empty file, expected a transcript header")
    port, started = _parse_header(path, *numbered[0])
    chunks: list[Chunk] = []
    for number, line in numbered[1:]:
        chunk = _parse_chunk(path, number, line)
        if chunks and chunk.t < chunks[-1].t:
            raise TranscriptError(path, number, f"t={chunk.t} goes back in time")
        chunks.append(chunk)
    return Transcript(port=port, started=started, chunks=tuple(chunks), path=path)


def _parse_object(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TranscriptError(path, number, f"not JSON: {exc.msg}") from exc
    if not isinstance(record, dict):
        raise TranscriptError(path, number, "expected a JSON object")
    return record


def _parse_header(path: Path, number: int, line: str) -> tuple[str, str]:
    record = _parse_object(path, number, line)
    version = record.get(HEADER_KEY)
    if version is None:
        raise TranscriptError(path, number, f"not a transcript header (no {HEADER_KEY!r})")
    if version != FORMAT_VERSION:
        raise TranscriptError(path, number, f"unsupported transcript version {version!r}")
    port, started = record.get("port", ""), record.get("started", "")
    if not isinstance(port, str) or not isinstance(started, str):
        raise TranscriptError(path, number, "header 'port' and 'started' must be strings")
    return port, started


def _parse_chunk(path: Path, number: int, line: str) -> Chunk:
    record = _parse_object(path, number, line)
    t, direction, data = record.get("t"), record.get("dir"), record.get("data")
    if isinstance(t, bool) or not isinstance(t, int | float) or t < 0:
        raise TranscriptError(path, number, f"'t' must be seconds >= 0, not {t!r}")
    if direction not in {member.value for member in Direction}:
        raise TranscriptError(path, number, f"'dir' must be to_modem or from_modem: {direction!r}")
    if not isinstance(data, str):
        raise TranscriptError(path, number, "'data' must be a string")
    try:
        raw = data.encode(ENCODING)
    except UnicodeEncodeError as exc:
        raise TranscriptError(path, number, "'data' holds a character above U+00FF") from exc
    return Chunk(float(t), Direction(direction), raw)
