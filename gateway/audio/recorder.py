"""Call recordings: a WAV written as the call goes, and the store that names, caps and ages them.

``CallRecorder`` writes one call, 8 kHz, as A-law (format tag 6, 8 bits,
the layout sox writes) or 16-bit PCM; mono, or with ``channels=2`` two
interleaved channels (an E1 call: the caller left, the centre right). The
file is a valid WAV at every moment::

    open      header with data size 0                    fsync file + directory
    frames    appended to a buffer in memory
    each 1 s  (of audio, or of wall-clock time, whichever comes first):
              write the buffer after the data            fdatasync
              rewrite the header's RIFF, fact, data sizes (synced by the next fdatasync)
    close     the same, plus a pad byte if the data size is odd, fdatasync; sha256

Data goes to disk before the header that counts it, so the header never
claims audio that is not there, even after a power cut (which loses at most
the last two seconds). A crash (or a kill) loses at most the buffered
second; a copy taken at any time reads as a complete WAV holding all but the
last second (audio past the declared data is ignored by players, by sox and
by ``gateway.audio.wav``). One fdatasync a second per call is the price on
an SD card.

One thread owns a recorder (the call's audio pipeline); it is not
thread-safe. Write errors (a full disk) raise ``OSError``; the file on disk
stays a valid WAV of what was synced before.

``RecordingStore`` lays recordings out as
``<directory>/YYYY/MM/DD/<line>-<YYYYmmddTHHMMSSZ>-<call_id>.wav`` (UTC) and
enforces a size quota (oldest first, by modification time) and an optional
retention age. It only ever deletes files that match that layout, and it
refuses a directory that is ``/`` or that holds a SQLite database (the
outbox): a misconfigured path must not be able to eat the event queue.
Caller numbers never appear in file names (UU PDP 27/2022).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cython_ext import g711
from gateway.audio.wav import TARGET_RATE, BytesLike, fsync_directory, wav_header

log = logging.getLogger("edge112.audio")

RecordingEncoding = Literal["alaw", "pcm"]
SYNC_INTERVAL_S = 1.0
BYTES_PER_MB = 1_000_000
SECONDS_PER_DAY = 86_400
SQLITE_MAGIC = b"SQLite format 3\x00"
DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
RECORDING_NAME = re.compile(r"^[A-Za-z0-9_.-]+-\d{8}T\d{6}Z-[A-Za-z0-9_.-]+\.wav$")
DATE_PARTS = (re.compile(r"^\d{4}$"), re.compile(r"^\d{2}$"), re.compile(r"^\d{2}$"))
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class RecordingInfo:
    """A finished recording: where, its sha256 (hex, whole file), size, length, encoding."""

    path: Path
    sha256: str
    bytes: int
    duration_ms: int
    encoding: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "bytes": self.bytes,
            "duration_ms": self.duration_ms,
            "encoding": self.encoding,
        }


class CallRecorder:
    """One call's recording, valid on disk while it grows; see the module docstring."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        encoding: RecordingEncoding | str = "alaw",
        *,
        sync_interval_s: float = SYNC_INTERVAL_S,
        channels: int = 1,
    ) -> None:
        """``encoding`` is checked at run time (it usually comes from the configuration).
        ``channels``: samples of that many channels come interleaved (1 or 2)."""
        self.path = Path(path)
        self.encoding = _recording_encoding(encoding)
        if channels not in (1, 2):
            raise ValueError(f"a recording has 1 or 2 channels, got {channels}")
        self.channels = channels
        self._bytes_per_sample = (1 if self.encoding == "alaw" else 2) * channels  # a frame
        self._sync_bytes = max(1, int(sync_interval_s * TARGET_RATE)) * self._bytes_per_sample
        self._sync_interval_s = sync_interval_s
        self._header_length = len(self._header(0))
        self._buffer = bytearray()
        self._synced = 0  # data bytes on disk and counted by the header
        self._closed = False
        self._fd = _create(self.path)
        try:
            self._write_at(0, self._header(0))
            os.fsync(self._fd)
            fsync_directory(self.path.parent)
        except BaseException:
            os.close(self._fd)
            raise
        self._last_sync = time.monotonic()

    # ------------------------------------------------------------ writing

    def _header(self, data_bytes: int) -> bytes:
        return wav_header(self.encoding, data_bytes, channels=self.channels)

    def write_pcm(self, frame: BytesLike) -> None:
        """Append 8 kHz signed 16-bit little-endian PCM (encoded to A-law if stored as A-law)."""
        if len(frame) % (2 * self.channels):
            if self.channels == 1:
                raise ValueError(f"16-bit PCM needs an even number of bytes, got {len(frame)}")
            raise ValueError(
                f"16-bit PCM of {self.channels} channels needs whole frames of "
                f"{2 * self.channels} bytes, got {len(frame)}"
            )
        self._append(g711.alaw_encode(frame) if self.encoding == "alaw" else frame)

    def write_alaw(self, codes: BytesLike) -> None:
        """Append 8 kHz A-law codes as they came off the line (stored as is when A-law)."""
        self._append(codes if self.encoding == "alaw" else g711.alaw_decode(codes))

    def _append(self, data: BytesLike) -> None:
        if self._closed:
            raise ValueError(f"{self.path}: recording already closed")
        self._buffer += data
        if (
            len(self._buffer) >= self._sync_bytes
            or time.monotonic() - self._last_sync >= self._sync_interval_s
        ):
            self.sync()

    def sync(self) -> None:
        """Put the buffered audio on disk (fdatasync), then rewrite the header to count it.

        The header write is not synced on its own: the next sync's fdatasync
        carries it. So the header on disk never counts audio that is not on
        disk, a process crash loses nothing written here (the page cache keeps
        it), a power cut loses at most the last two seconds, and a call costs
        one fdatasync a second (``close`` syncs both).
        """
        if self._closed:
            return
        if self._buffer:
            self._write_at(self._header_length + self._synced, self._buffer)
            os.fdatasync(self._fd)
            self._synced += len(self._buffer)
            self._buffer.clear()
            self._write_at(0, self._header(self._synced))
        self._last_sync = time.monotonic()

    def _write_at(self, offset: int, data: BytesLike) -> None:
        # Release the views even when pwrite fails: a view left alive in the traceback
        # would make the next append to the buffer raise BufferError.
        with memoryview(data) as whole:
            view = whole
            try:
                while view:
                    written = os.pwrite(self._fd, view, offset)
                    view = view[written:]
                    offset += written
            finally:
                view.release()

    # ------------------------------------------------------------ state

    @property
    def data_bytes(self) -> int:
        """Audio bytes written so far (synced or still buffered)."""
        return self._synced + len(self._buffer)

    @property
    def duration_ms(self) -> int:
        return self.data_bytes // self._bytes_per_sample * 1000 // TARGET_RATE

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, *, keep_buffered: bool = True) -> RecordingInfo:
        """Finish the file (pad byte, final header, fsync) and describe it.

        ``keep_buffered=False`` after a write failed (a full disk): drop the audio
        not yet on disk and finish the file with what is, rewriting only the
        header in place (which needs no new space).
        """
        if self._closed:
            raise ValueError(f"{self.path}: recording already closed")
        if not keep_buffered:
            self._buffer.clear()
        try:
            self.sync()
            if self._synced % 2:
                try:
                    self._write_at(self._header_length + self._synced, b"\x00")
                except OSError:
                    if keep_buffered:
                        raise  # without the pad byte the file is still read by every reader
            self._write_at(0, self._header(self._synced))
            os.fsync(self._fd)
        finally:
            self._closed = True
            os.close(self._fd)
        return RecordingInfo(
            path=self.path,
            sha256=_sha256(self.path),
            bytes=self.path.stat().st_size,
            duration_ms=self.duration_ms,
            encoding=self.encoding,
        )

    def __enter__(self) -> CallRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._closed:
            self.close()


def _recording_encoding(value: str) -> RecordingEncoding:
    if value == "alaw":
        return "alaw"
    if value == "pcm":
        return "pcm"
    raise ValueError(f"recording encoding must be 'alaw' or 'pcm', got {value!r}")


def _create(path: Path) -> int:
    """Create ``path`` and its directories; never overwrite (a recording is evidence).

    Retried once: a store's ``enforce()`` in another thread may remove an
    empty day directory between ``mkdir`` and ``open``.
    """
    for attempt in range(2):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        except FileNotFoundError:
            if attempt:
                raise
    raise AssertionError("unreachable")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------- the store


@dataclass(frozen=True)
class StoredRecording:
    path: Path
    bytes: int
    modified: float  # st_mtime


class RecordingStore:
    """Recordings under one directory: names, a size quota, a retention age."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        quota_mb: float,
        retention_days: float = 0,
        protected: Collection[str | os.PathLike[str]] = (),
        min_free_mb: float = 0,
    ) -> None:
        """``protected``: files that must never be under ``directory`` (the outbox database).
        ``min_free_mb``: recordings stop before their filesystem has less free than this, so
        they never take the outbox's last space (see ``space_problem``)."""
        if quota_mb <= 0:
            raise ValueError(f"quota_mb must be positive, got {quota_mb}")
        if retention_days < 0:
            raise ValueError(f"retention_days must be 0 (no limit) or more, got {retention_days}")
        self.directory = Path(directory).resolve()
        self.quota_bytes = int(quota_mb * BYTES_PER_MB)
        self.retention_days = retention_days
        self.min_free_bytes = int(min_free_mb * BYTES_PER_MB)
        self._protected = [Path(path).resolve() for path in protected]
        problem = self._unsafe()
        if problem is not None:
            raise ValueError(f"refusing recordings directory {self.directory}: {problem}")

    def _unsafe(self, *, deep: bool = True) -> str | None:
        """Why this directory must not be managed, or None (``deep``: search every level)."""
        if self.directory == Path(self.directory.anchor):
            return "it is the root of the filesystem"
        for path in self._protected:
            if path == self.directory or self.directory in path.parents:
                return f"it contains {path}"
        database = _find_database(self.directory, deep=deep)
        if database is not None:
            return f"it contains a SQLite database ({database}), the outbox?"
        return None

    def space_problem(self) -> str | None:
        """Why no recording may start or go on now (its filesystem is at the floor), or None.

        The floor keeps the last ``min_free_mb`` of the filesystem for the event
        queue: a call's recording is worth less than the call's events.
        """
        if self.min_free_bytes <= 0:
            return None
        probe = self.directory
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            stat = os.statvfs(probe)
        except OSError as error:
            return f"cannot read the free space of {probe}: {error.strerror or error}"
        free = stat.f_bavail * stat.f_frsize
        if free < self.min_free_bytes:
            return (
                f"{free} bytes free on the recordings filesystem, below the "
                f"{self.min_free_bytes} bytes kept for the event queue (audio.min_free_mb)"
            )
        return None

    def path_for(self, call_id: str, line: str, started: datetime) -> Path:
        """Where the recording of ``call_id`` on ``line``, started at ``started``, goes."""
        if started.tzinfo is None:
            raise ValueError("started must be timezone-aware (UTC)")
        moment = started.astimezone(UTC)
        name = f"{_safe(line)}-{moment:%Y%m%dT%H%M%SZ}-{_safe(call_id)}.wav"
        return self.directory / f"{moment:%Y}" / f"{moment:%m}" / f"{moment:%d}" / name

    def recordings(self) -> list[StoredRecording]:
        """Every recording in the store, oldest first (by mtime, then path)."""
        found = []
        for path in self._recording_paths():
            try:
                stat = path.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            found.append(StoredRecording(path, stat.st_size, stat.st_mtime))
        found.sort(key=lambda recording: (recording.modified, str(recording.path)))
        return found

    def usage_bytes(self) -> int:
        return sum(recording.bytes for recording in self.recordings())

    def enforce(
        self, *, now: float | None = None, in_use: Collection[str | os.PathLike[str]] = ()
    ) -> list[Path]:
        """Delete recordings past the retention age, then the oldest until within quota.

        Recordings in ``in_use`` (being written) are never deleted. Returns the
        deleted paths. Deletes nothing, and logs an error, if a SQLite database
        has appeared at the top of the directory since the store was made (the
        whole tree was searched then; this runs after every call, so it stays
        cheap).
        """
        problem = self._unsafe(deep=False)
        if problem is not None:
            log.error("not enforcing the recordings quota in %s: %s", self.directory, problem)
            return []
        moment = time.time() if now is None else now
        keep = {Path(path).resolve() for path in in_use}
        stored = self.recordings()
        total = sum(item.bytes for item in stored)
        candidates = [item for item in stored if item.path.resolve() not in keep]
        deleted: list[Path] = []
        if self.retention_days > 0:
            oldest_allowed = moment - self.retention_days * SECONDS_PER_DAY
            expired = [item for item in candidates if item.modified < oldest_allowed]
            for item in expired:
                if self._delete(item, moment, "older than the retention period"):
                    deleted.append(item.path)
                    total -= item.bytes
                candidates.remove(item)
        for item in candidates:
            if total <= self.quota_bytes:
                break
            if self._delete(item, moment, "over the quota"):
                deleted.append(item.path)
                total -= item.bytes
        self._remove_empty_date_directories()
        return deleted

    def _delete(self, item: StoredRecording, now: float, reason: str) -> bool:
        try:
            item.path.unlink()
        except FileNotFoundError:
            return False
        age_days = (now - item.modified) / SECONDS_PER_DAY
        log.info(
            "deleted recording %s (%d bytes, %.1f days old): %s",
            item.path.relative_to(self.directory),
            item.bytes,
            age_days,
            reason,
        )
        return True

    def _recording_paths(self) -> Iterator[Path]:
        """Regular files named like recordings, at YYYY/MM/DD/ depth; nothing else."""
        for year in _subdirectories(self.directory, DATE_PARTS[0]):
            for month in _subdirectories(year, DATE_PARTS[1]):
                for day in _subdirectories(month, DATE_PARTS[2]):
                    for entry in _scan(day):
                        if entry.is_file(follow_symlinks=False) and RECORDING_NAME.match(
                            entry.name
                        ):
                            yield Path(entry.path)

    def _remove_empty_date_directories(self) -> None:
        for year in _subdirectories(self.directory, DATE_PARTS[0]):
            for month in _subdirectories(year, DATE_PARTS[1]):
                for day in _subdirectories(month, DATE_PARTS[2]):
                    _remove_if_empty(day)
                _remove_if_empty(month)
            _remove_if_empty(year)


def _safe(text: str) -> str:
    cleaned = _UNSAFE_NAME_CHARACTERS.sub("_", text)
    if not cleaned.strip("."):
        raise ValueError(f"cannot name a recording after {text!r}")
    return cleaned


def _scan(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _subdirectories(directory: Path, pattern: re.Pattern[str]) -> list[Path]:
    return sorted(
        Path(entry.path)
        for entry in _scan(directory)
        if entry.is_dir(follow_symlinks=False) and pattern.match(entry.name)
    )


def _remove_if_empty(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (or already gone): leave it
        directory.rmdir()


def _find_database(directory: Path, *, deep: bool) -> Path | None:
    """The first SQLite database under ``directory`` (only at its top unless ``deep``), or None.

    A database is a file named ``*.db``/``*.sqlite``/``*.sqlite3`` (a fresh
    outbox may still be empty) or one that starts with SQLite's 16-byte magic.
    Files named like recordings are not opened: the check stays cheap with
    thousands of them.
    """
    for root, _dirs, files in os.walk(directory):
        for name in files:
            if RECORDING_NAME.match(name):
                continue
            path = Path(root) / name
            if name.endswith(DATABASE_SUFFIXES) or _has_sqlite_magic(path):
                return path
        if not deep:
            break
    return None


def _has_sqlite_magic(path: Path) -> bool:
    try:
        if path.is_symlink() or not path.is_file():
            return False
        with open(path, "rb") as file:
            return file.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False
