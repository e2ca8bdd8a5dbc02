"""What the outbox does while its disk refuses writes: name the fault, hold, reserve.

The outbox's rule is that what was committed is kept and sent, and what could
not be stored is announced. A full SD card, a filesystem remounted read-only
after an error, or a failing card sit between the two. This module holds the
three pieces the writer uses for that time::

    write fails ──▶ classify(error) ──▶ StorageFault(kind, errno name, detail)
                         │
       ENOSPC/EDQUOT ────┼──▶ SpaceReserve.release(): delete the reserve file
                         │    kept beside the outbox, try again at once
                         ▼
    call events, alarms ──▶ HeldEvents (memory, at most ``held_max``)
                             │    mirrored into <outbox>.held, a file allocated
                             │    in advance, overwritten in place (a full disk
                             │    can still take it); the forwarder sends them
                             │    from memory with seq 0; the writer stores
                             │    them (with a seq) as soon as the disk takes
                             │    writes again, and only then forgets them
    telemetry, overflow ───▶ ``event_not_kept`` alarm with the event's data

* ``classify`` understands ``OSError`` errnos and SQLite result codes
  (SQLITE_FULL, SQLITE_IOERR_*, SQLITE_READONLY, SQLITE_CANTOPEN).
* ``SpaceReserve`` is the ballast file the outbox gives up on the first
  ENOSPC/EDQUOT: ``RESERVE_BYTES`` lets the queue keep taking events (and
  SQLite create its ``-shm``/``-wal``) while the operator frees the disk. It
  is taken again once the filesystem has ``2 * RESERVE_BYTES`` free.
* ``HeldJournal`` layout (``JOURNAL_BYTES``, zero padded)::

      edge112-held 1 <count>\\n        # count: events held, stored or not
      <envelope JSON, seq 0>\\n        # as many as fit, oldest first
      ...
      \\0\\0\\0...

  Rewritten in place and ``fdatasync``-ed on every change. After a process
  death during a fault, the next start stores every event it can parse and
  the alarm says how many of ``count`` could not be read back.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.events import (
    AlarmSeverity,
    Event,
    GatewayAlarm,
    Priority,
    decode,
    encode,
    topic_for,
)

log = logging.getLogger("edge112.outbox")

RESERVE_BYTES = 1024 * 1024  # ballast released on the first ENOSPC
JOURNAL_BYTES = 256 * 1024  # room for about 500 held call events on disk
JOURNAL_MAGIC = b"edge112-held 1 "
HELD_RETRY_S = 1.0  # while events are held or the outbox is closed, try the disk this often

# SQLite primary result codes (the low byte of an extended code)
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26


@dataclass(frozen=True)
class StorageFault:
    """Why a write failed, in words an operator can act on."""

    kind: str  # "disk_full" | "read_only" | "io_error" | "other"
    code: str  # the errno name (ENOSPC, EROFS, ...) or SQLite's error name
    detail: str  # the underlying message

    def describe(self) -> str:
        words = {
            "disk_full": "the disk is full",
            "read_only": "the filesystem is read-only",
            "io_error": "the disk reports I/O errors",
            "other": "a write failed",
        }[self.kind]
        return f"{words} ({self.code}: {self.detail})"


_ERRNO_KINDS = {
    errno.ENOSPC: "disk_full",
    errno.EDQUOT: "disk_full",
    errno.EFBIG: "disk_full",
    errno.EROFS: "read_only",
    errno.EACCES: "read_only",
    errno.EPERM: "read_only",
    errno.EIO: "io_error",
    errno.ENXIO: "io_error",
    errno.ENODEV: "io_error",
}


def classify(error: BaseException, where: Path | None = None) -> StorageFault:
    """Name the fault behind a failed write (an ``OSError`` or a ``sqlite3.Error``).

    SQLite reports a full or read-only disk under some write sites only as an
    I/O error (``SQLITE_IOERR_SHMSIZE`` when it cannot grow its ``-shm``); with
    ``where`` (a directory on the filesystem written to), such an error is
    named after what the filesystem says: no free space, or mounted read-only.
    """
    fault = _classify(error)
    if fault.kind in ("io_error", "other") and where is not None:
        probed = _probe(where)
        if probed is not None and probed.kind != "io_error":
            return StorageFault(probed.kind, fault.code, f"{fault.detail} ({probed.describe()})")
    return fault


def _probe(directory: Path) -> StorageFault | None:
    """Ask the filesystem itself: create and remove an empty file (needs no data block)."""
    probe = directory / ".edge112-write-probe"
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return StorageFault("read_only", "EROFS", "mounted read-only")
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600))
        os.unlink(probe)
        if free_bytes(directory) == 0:
            return StorageFault("disk_full", "ENOSPC", "no free space")
    except OSError as error:
        return _classify(error)
    return None


def _classify(error: BaseException) -> StorageFault:
    if isinstance(error, OSError) and error.errno is not None:
        name = errno.errorcode.get(error.errno, str(error.errno))
        return StorageFault(_ERRNO_KINDS.get(error.errno, "other"), name, error.strerror or "")
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        name = getattr(error, "sqlite_errorname", None) or type(error).__name__
        primary = (code or 0) & 0xFF
        kind = {
            _SQLITE_FULL: "disk_full",
            _SQLITE_READONLY: "read_only",
            _SQLITE_IOERR: "io_error",
            _SQLITE_CANTOPEN: "io_error",
        }.get(primary, "other")
        return StorageFault(kind, name, str(error))
    return StorageFault("other", type(error).__name__, str(error))


def is_damage(error: sqlite3.Error) -> bool:
    """True when SQLite says the file itself is damaged (not when the disk refuses writes)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:  # no code: judge by the words
        text = str(error).lower()
        return "malformed" in text or "not a database" in text
    return (code & 0xFF) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path``."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


class SpaceReserve:
    """A ballast file beside the outbox, given up on the first ENOSPC so the queue can go on."""

    def __init__(self, path: Path, size: int = RESERVE_BYTES) -> None:
        self.path = path
        self.size = size
        self.released = 0  # times released since start

    @property
    def held(self) -> bool:
        return self.path.exists() and self.path.stat().st_size >= self.size

    def take(self) -> bool:
        """Allocate the reserve if the disk has twice its size free; True when it is there."""
        with contextlib.suppress(OSError):
            if self.held:
                return True
            if free_bytes(self.path.parent) < 2 * self.size:
                return False
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
                os.fsync(fd)
            except OSError:
                os.close(fd)
                os.unlink(self.path)
                return False
            os.close(fd)
            return True
        return False

    def release(self) -> bool:
        """Delete the reserve; True when it existed (the disk just gained ``size`` bytes)."""
        try:
            os.unlink(self.path)
        except OSError:
            return False
        self.released += 1
        log.critical("disk full: released the outbox's %d byte reserve %s", self.size, self.path)
        return True


class HeldJournal:
    """The on-disk mirror of the held events, in a file allocated while there was room."""

    def __init__(self, path: Path, size: int = JOURNAL_BYTES) -> None:
        self.path = path
        self.size = size
        self._fd: int | None = None
        self._used = 0  # bytes of the last image written (the rest is already zero)

    @property
    def ready(self) -> bool:
        return self._fd is not None

    def read(self) -> tuple[int, list[bytes]]:
        """What a previous process left: the count it held, and the payloads that parse."""
        try:
            data = self.path.read_bytes()
        except OSError:
            return 0, []
        if not data.startswith(JOURNAL_MAGIC):
            return 0, []
        header, _, body = data.partition(b"\n")
        try:
            count = int(header[len(JOURNAL_MAGIC) :])
        except ValueError:
            return 0, []
        payloads = [line for line in body.split(b"\0", 1)[0].split(b"\n") if line]
        return max(count, len(payloads)), payloads  # a damaged count is at least what is there

    def open(self) -> bool:
        """Allocate the file (once, while the disk has room); True when the journal is usable."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            log.warning("held-event journal %s unavailable: %s", self.path, error)
            return False
        try:
            if os.fstat(fd).st_size < self.size:
                os.posix_fallocate(fd, 0, self.size)
            os.fsync(fd)
        except OSError as error:
            os.close(fd)
            log.warning("held-event journal %s could not be allocated: %s", self.path, error)
            return False
        self._fd = fd
        self._used = self.size  # unknown content: clear it all on the first write
        return True

    def write(self, count: int, payloads: list[bytes]) -> bool:
        """Overwrite the journal with ``count`` and as many payloads as fit; True when synced."""
        if self._fd is None:
            return False
        image = bytearray(JOURNAL_MAGIC + str(count).encode() + b"\n")
        for payload in payloads:
            if len(image) + len(payload) + 1 > self.size:
                break
            image += payload + b"\n"
        used = len(image)
        if used < self._used:
            image += bytes(self._used - used)
        for attempt in (1, 2):
            try:
                os.pwrite(self._fd, image, 0)
                os.fdatasync(self._fd)
                break
            except OSError as error:
                log.error("held-event journal %s not written: %s", self.path, error)
                # The filesystem may have been repaired and mounted again under the same
                # path: the old descriptor points at the dead one. Open the path once more.
                self.close()
                if attempt == 2 or not self.open():
                    return False
                image += bytes(max(0, self.size - len(image)))
        self._used = used
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class HeldEvent:
    event: Event
    topic: str
    payload: bytes  # the envelope with seq 0, as the forwarder publishes it from memory


class HeldEvents:
    """Call events and alarms the disk refused, in memory (bounded) and in the journal.

    The writer adds them and forgets them once stored; the forwarder sends
    them meanwhile (seq 0). One lock, held briefly.
    """

    def __init__(self, journal: HeldJournal, *, gateway_id: str, region: str, limit: int) -> None:
        self.journal = journal
        self.gateway_id = gateway_id
        self.region = region
        self.limit = limit
        self.version = 0  # bumped on every change, so the forwarder rescans only then
        self._events: collections.OrderedDict[str, HeldEvent] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._events)

    def add_many(self, events: list[Event]) -> list[Event]:
        """Hold these events (one journal write); returns those refused because the memory
        queue is full (the caller announces them)."""
        refused: list[Event] = []
        with self._lock:
            added = False
            for event in events:
                if event.event_id in self._events:
                    continue
                if len(self._events) >= self.limit:
                    refused.append(event)
                    continue
                payload = encode(event, seq=0, gateway_id=self.gateway_id, region=self.region)
                topic = topic_for(self.region, self.gateway_id, event.TYPE.value)
                self._events[event.event_id] = HeldEvent(event, topic, payload)
                added = True
            if added:
                self._changed()
        return refused

    def snapshot(self) -> list[HeldEvent]:
        with self._lock:
            return list(self._events.values())

    def discard(self, event_ids: list[str]) -> int:
        """Forget these (stored in the outbox now); returns how many."""
        with self._lock:
            gone = sum(1 for event_id in event_ids if self._events.pop(event_id, None))
            if gone:
                self._changed()
        return gone

    def _changed(self) -> None:
        self.version += 1
        self.journal.write(len(self._events), [held.payload for held in self._events.values()])

    def recover(self) -> tuple[int, list[Event]]:
        """Events a previous process held when it died: (count it held, events read back)."""
        count, payloads = self.journal.read()
        events: list[Event] = []
        for payload in payloads:
            try:
                events.append(decode(payload))
            except (ValueError, KeyError, TypeError) as error:
                log.error("held-event journal: an entry could not be read back: %s", error)
        return count, events


class StorageFaults:
    """What the outbox keeps while its disk refuses writes: the fault, its cost, the held
    events, the reserve, and the alarms that say so. Used by the outbox's writer thread
    (and read by others: ``fault`` and ``held``)."""

    def __init__(
        self,
        outbox_path: Path,
        *,
        gateway_id: str,
        region: str,
        held_max: int,
        reserve_bytes: int,
        on_unkept: Callable[[GatewayAlarm], None] | None,
        count: Callable[[str], None],
    ) -> None:
        def beside(suffix: str) -> Path:
            return outbox_path.with_name(outbox_path.name + suffix)

        self.outbox_path = outbox_path
        self.held = HeldEvents(
            HeldJournal(beside(".held")), gateway_id=gateway_id, region=region, limit=held_max
        )
        self.reserve = SpaceReserve(beside(".reserve"), reserve_bytes)
        self.fault: StorageFault | None = None  # None while the disk takes writes
        self._since = 0.0
        self._counts = {"held": 0, "not_kept": 0, "reserve_released": 0}  # this episode
        self._on_unkept = on_unkept
        self._count = count  # the outbox's counters

    def recover_journal(self) -> GatewayAlarm | None:
        """Hold again what a previous process held when it died; the alarm that says so."""
        count, events = self.held.recover()
        self.held.journal.open()
        if not count:
            if self.held.journal.ready:
                self.held.journal.write(0, [])
            return None
        refused = self.held.add_many(events)
        recovered = len(events) - len(refused)
        lost = count - recovered
        log.critical(
            "a previous run held %d events when it stopped; %d read back, %d lost",
            count,
            recovered,
            lost,
        )
        return GatewayAlarm(
            code="held_events_recovered",
            severity=AlarmSeverity.CRITICAL if lost else AlarmSeverity.WARNING,
            message=f"the previous run stopped while its disk refused writes, holding {count} "
            f"events in memory; {recovered} were read back from {self.held.journal.path} and "
            "queued again" + (f"; {lost} could not be read back and are lost" if lost else ""),
            detail={
                "held": count,
                "recovered": recovered,
                "lost": lost,
                "event_ids": [event.event_id for event in events],
            },
        )

    def release_reserve(self) -> bool:
        released = self.reserve.release()
        if released:
            self._counts["reserve_released"] += 1
        return released

    def enter(self, fault: StorageFault, where: str) -> None:
        """The first failure of an episode: remember it and hold an alarm that says so."""
        if self.fault is not None:
            return
        self.fault = fault
        self._since = time.time()
        journal = (
            f"; held events are mirrored in {self.held.journal.path}"
            if self.held.journal.ready
            else "; held events are in memory only (no journal)"
        )
        log.critical("outbox cannot write while %s: %s", where, fault.describe())
        alarm = GatewayAlarm(
            code="storage_fault",
            severity=AlarmSeverity.CRITICAL,
            message=f"outbox {self.outbox_path} cannot store events while {where}: "
            f"{fault.describe()}; call events and alarms are held in memory (at most "
            f"{self.held.limit}) and sent with seq 0, telemetry is not kept" + journal,
            detail={
                "fault": fault.kind,
                "code": fault.code,
                "error": fault.detail,
                "path": str(self.outbox_path),
                "held_max": self.held.limit,
            },
        )
        self.hold_or_announce([alarm], fault)

    def hold_or_announce(self, events: list[Event], fault: StorageFault) -> dict[str, bool]:
        """Hold call events and alarms; announce the rest (telemetry, overflow) as
        ``event_not_kept`` with their data. Returns held-or-not per event_id."""
        urgent = [event for event in events if event.PRIORITY == Priority.EMERGENCY]
        overflow = {event.event_id for event in self.held.add_many(urgent)}
        outcome: dict[str, bool] = {}
        for event in events:
            held = event.PRIORITY == Priority.EMERGENCY and event.event_id not in overflow
            outcome[event.event_id] = held
            name = "held" if held else "not_kept"
            self._counts[name] += 1
            self._count(name)
            if not held:
                reason = fault.describe()
                if event.event_id in overflow:
                    reason = f"the held-event queue is full ({self.held.limit}); {reason}"
                self._announce(event, reason)
        return outcome

    def _announce(self, event: Event, reason: str) -> None:
        log.critical("outbox could not keep %s %s: %s", event.TYPE.value, event.event_id, reason)
        if self._on_unkept is None:
            return
        alarm = GatewayAlarm(
            code="event_not_kept",
            severity=AlarmSeverity.CRITICAL,
            message=f"outbox could not store {event.TYPE.value} {event.event_id}: {reason}",
            detail={
                "type": event.TYPE.value,
                "event_id": event.event_id,
                "data": event.data(),
                "error": reason,
            },
        )
        try:
            self._on_unkept(alarm)
        except Exception:  # the writer must survive its callbacks
            log.exception("on_unkept callback failed")

    def recovery_alarm(self, held_stored: int) -> GatewayAlarm:
        """The alarm stored with the held events in the first transaction that succeeds."""
        assert self.fault is not None
        counts = self._counts
        lasted = time.time() - self._since
        return GatewayAlarm(
            code="storage_recovered",
            severity=AlarmSeverity.WARNING,
            message=f"outbox stores events again after {lasted:.0f} s ({self.fault.describe()}); "
            f"{held_stored} held events stored now, {counts['not_kept']} events could not be kept",
            detail={
                "fault": self.fault.kind,
                "code": self.fault.code,
                "lasted_s": round(lasted, 3),
                "held_stored": held_stored,
                "held_total": counts["held"],
                "not_kept": counts["not_kept"],
                "reserve_released": counts["reserve_released"],
            },
        )

    def end(self) -> None:
        """The recovery alarm was committed: the episode is over."""
        self.fault = None
        self._counts = dict.fromkeys(self._counts, 0)
        self.reserve.take()

    def close(self) -> None:
        if len(self.held):
            log.critical(
                "outbox closed with %d events held (the disk refused them); %s",
                len(self.held),
                f"they are in {self.held.journal.path} for the next start"
                if self.held.journal.ready
                else "there is no journal: they are lost",
            )
        self.held.journal.close()
