"""The outbox on real filesystems that refuse writes: a full tmpfs, a read-only remount.

No SQLite page limits here: each test mounts a small tmpfs of its own (the
tests run as root in CI), fills it with a real file until the kernel says
ENOSPC, or remounts it read-only, at one write site of the outbox (insert,
delete, checkpoint, seq reservation, opening and migrating the file, the
recordings), and then gives the space back. What must hold at every site:
nothing committed is lost, the writer keeps running, call events and alarms
are held and stored (or sent) once the disk takes writes again, everything
else is announced as ``event_not_kept``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.broker import PrivateBroker
from gateway.config import MqttSettings
from gateway.consumer import FeedMonitor
from gateway.events import CallOffered, GatewayAlarm, LineStatus, Presentation
from gateway.forwarder import Forwarder
from gateway.outbox import EventHeld, Outbox, OutboxWriteFailed
from tests.conftest import wait_until

GATEWAY, REGION = "bontang-01", "64.74"
FILLER_CHUNK = 64 * 1024


class SmallDisk:
    """A size-limited tmpfs mounted for one test: fill it, free it, make it read-only."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        self.size = size
        self._fillers = 0

    def mount(self) -> str | None:
        """Mount; returns why it could not (then the test is skipped), or None."""
        self.path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0755", "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})"
        return None

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)

    def fill(self) -> int:
        """Write a filler file until the kernel refuses (ENOSPC); returns the bytes written."""
        self._fillers += 1
        written = 0
        chunk = b"\xa5" * FILLER_CHUNK
        with open(self.path / f"filler-{self._fillers}", "wb", buffering=0) as filler:
            for size in (FILLER_CHUNK, 4096, 512, 1):
                try:
                    while True:
                        written += filler.write(chunk[:size])
                except OSError:
                    continue
        assert self.free_bytes() < 4096, "the disk is full"
        return written

    def free(self) -> None:
        for filler in self.path.glob("filler-*"):
            filler.unlink()

    def free_bytes(self) -> int:
        stat = os.statvfs(self.path)
        return stat.f_bavail * stat.f_frsize

    def read_only(self, read_only: bool = True) -> None:
        mode = "ro" if read_only else "rw"
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], check=True)


def mounted_or_skip(problem: str | None, needs: str) -> None:
    """Skip with the reason where mounting is impossible; in CI (EDGE112_REQUIRE_TOOLS) fail."""
    __tracebackhide__ = True
    if problem is None:
        return
    message = f"storage fault tests need {needs}: {problem}"
    if os.environ.get("EDGE112_REQUIRE_TOOLS", "") not in ("", "0"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def small_disk(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SmallDisk]:
    size = getattr(request, "param", "4m")
    disk = SmallDisk(tmp_path / "disk", size)
    mounted_or_skip(disk.mount(), "a tmpfs mount (run as root)")
    try:
        yield disk
    finally:
        disk.unmount()


def offered(n: int) -> CallOffered:
    return CallOffered(
        call_id=f"call-{n}",
        line="gsm0",
        number=f"+62812000{n:05d}",
        presentation=Presentation.ALLOWED,
        ring_count=1,
    )


def open_outbox(disk: SmallDisk, **kwargs: Any) -> Outbox:
    kwargs.setdefault("reserve_bytes", 0)
    return Outbox(disk.path / "outbox.db", gateway_id=GATEWAY, region=REGION, **kwargs)


def stored(disk: SmallDisk) -> list[dict[str, Any]]:
    with sqlite3.connect(disk.path / "outbox.db") as conn:
        rows = conn.execute("SELECT payload FROM events ORDER BY seq").fetchall()
    return [json.loads(row[0]) for row in rows]


def alarm_codes(events: list[dict[str, Any]]) -> list[str]:
    return [event["data"]["code"] for event in events if event["type"] == "gateway.alarm"]


def hold(outbox: Outbox, events: list[CallOffered]) -> float:
    """Submit while the disk refuses: every call event is held, each put() answers at once."""
    started = time.monotonic()
    for event in events:
        with pytest.raises(EventHeld):
            outbox.submit(event).wait(timeout=5)
    return time.monotonic() - started


def assert_complete(events: list[dict[str, Any]], calls: list[CallOffered]) -> None:
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no seq is missing"
    call_ids = {event["data"].get("call_id") for event in events}
    missing = [call.call_id for call in calls if call.call_id not in call_ids]
    assert not missing, f"call events lost: {missing}"


# ---------------------------------------------------------------- inserts


def test_full_disk_at_insert_gives_up_the_reserve_first_then_holds_and_stores_later(
    small_disk: SmallDisk,
) -> None:
    unkept: list[GatewayAlarm] = []
    outbox = open_outbox(small_disk, reserve_bytes=256 * 1024, on_unkept=unkept.append)
    reserve = small_disk.path / "outbox.db.reserve"
    assert reserve.stat().st_size == 256 * 1024
    calls = [offered(n) for n in range(40)]
    for call in calls[:5]:
        outbox.put(call)
    small_disk.fill()
    outbox.put(calls[5])  # stored: the reserve made room
    assert not reserve.exists() and outbox.fault is None
    small_disk.fill()
    assert hold(outbox, calls[6:30]) < 3.0, "a refused put() wakes its caller at once"
    with pytest.raises(OutboxWriteFailed) as refused:
        outbox.submit(LineStatus(line="gsm0", state="up", detail="tick")).wait(timeout=5)
    assert not isinstance(refused.value, EventHeld), "telemetry is announced, not held"
    assert outbox.writer_alive
    assert outbox.fault is not None and outbox.fault.kind == "disk_full"
    assert outbox.fault.code in ("ENOSPC", "SQLITE_FULL")
    assert [alarm.code for alarm in unkept] == ["event_not_kept"]
    assert unkept[0].detail["data"]["detail"] == "tick", "the announcement carries the data"
    small_disk.free()
    for call in calls[30:]:
        outbox.put(call)  # space is back: stored at once, after the held ones
    assert len(outbox.held) == 0
    outbox.close()
    events = stored(small_disk)
    assert_complete(events, calls)
    assert alarm_codes(events) == ["disk_full", "storage_fault", "storage_recovered"]
    recovered = next(e for e in events if e["data"].get("code") == "storage_recovered")
    assert recovered["data"]["detail"]["not_kept"] == 1
    call_seqs = [e["seq"] for e in events if e["type"] == "call.offered"]
    assert call_seqs == sorted(call_seqs), "held events keep their order"


def test_held_events_are_retried_without_new_submissions(small_disk: SmallDisk) -> None:
    outbox = open_outbox(small_disk)
    outbox.put(offered(0))
    small_disk.fill()
    hold(outbox, [offered(1), offered(2)])
    small_disk.free()
    wait_until(lambda: len(outbox.held) == 0, 5, what="the writer tries again on its own")
    outbox.close()
    assert_complete(stored(small_disk), [offered(n) for n in range(3)])


def test_the_held_queue_is_bounded_and_announces_what_it_cannot_hold(
    small_disk: SmallDisk,
) -> None:
    unkept: list[GatewayAlarm] = []
    outbox = open_outbox(small_disk, held_max=5, on_unkept=unkept.append)
    outbox.put(offered(0))
    small_disk.fill()
    results = [outbox.submit(offered(n)) for n in range(1, 10)]
    errors = []
    for result in results:
        with pytest.raises(OutboxWriteFailed) as error:
            result.wait(timeout=5)
        errors.append(error.value)
    held = [error for error in errors if isinstance(error, EventHeld)]
    assert len(held) == 4, "the storage_fault alarm takes one of the five places"
    assert [alarm.detail["event_id"] for alarm in unkept] == [
        offered_event.event.event_id
        for offered_event, error in zip(results, errors, strict=True)
        if not isinstance(error, EventHeld)
    ]
    assert all("held-event queue is full" in alarm.message for alarm in unkept)
    outbox.close()


# ---------------------------------------------------------------- seq reservation


def test_full_disk_when_the_seq_reservation_must_move_holds_instead_of_killing_the_writer(
    small_disk: SmallDisk,
) -> None:
    """The reproduction of issue 6: SQLite still has room in its WAL, the .seq file has none."""
    outbox = open_outbox(small_disk)
    calls = [offered(n) for n in range(30)]
    for call in calls[:10]:
        outbox.put(call)
    with outbox._write_lock:  # the writer is idle; restart the WAL so SQLite needs no new space
        assert outbox._conn is not None
        outbox._conn.execute("PRAGMA wal_checkpoint(RESTART)")
        outbox._reservation.mark = outbox._next_seq + 3  # the next reservation is 3 events away
    small_disk.fill()
    seqs = [outbox.put(call) for call in calls[10:13]]  # fit: SQLite reuses its WAL
    assert seqs == [11, 12, 13]
    hold(outbox, calls[13:20])  # the 14th needs the .seq file to move
    assert outbox.writer_alive and outbox.fault is not None
    assert outbox.fault.code == "ENOSPC"
    small_disk.free()
    for call in calls[20:]:
        outbox.put(call)
    outbox.close()
    events = stored(small_disk)
    assert_complete(events, calls)
    mark = int((small_disk.path / "outbox.db.seq").read_text())
    assert mark > events[-1]["seq"], "the reservation covers every seq handed out"


# ---------------------------------------------------------------- deletes and checkpoints


def test_full_disk_at_delete_and_checkpoint_keeps_every_row_or_deletes_it(
    small_disk: SmallDisk,
) -> None:
    outbox = open_outbox(small_disk)
    seqs = [outbox.put(offered(n)) for n in range(200)]
    small_disk.fill()
    done: list[list[int]] = []
    for start in range(0, 200, 20):
        outbox.acknowledge(seqs[start : start + 20], done.append)
    wait_until(lambda: len(done) == 10, 5, what="every acknowledgement is answered")
    assert outbox.writer_alive
    outbox.close()  # the WAL checkpoint on a full disk must not raise
    small_disk.free()
    remaining = {event["seq"] for event in stored(small_disk)}
    deleted = {seq for batch in done for seq in batch}
    assert remaining | deleted == set(seqs), "each row is either still queued or acknowledged"
    assert not remaining & deleted
    with open_outbox(small_disk) as again:
        assert again.put(offered(999)) > 200, "seq continues after a restart"
    events = stored(small_disk)
    # The storage_fault alarm was held when the first run stopped; the journal gave it back.
    assert alarm_codes(events) == ["storage_fault", "held_events_recovered"]
    assert [e["seq"] for e in events if e["seq"] > 200] == [201, 202, 203]


# ---------------------------------------------------------------- opening


@pytest.mark.parametrize("existing", ["nothing", "empty file"])
def test_start_on_a_full_disk_starts_anyway_and_stores_once_space_returns(
    small_disk: SmallDisk, existing: str
) -> None:
    """Creating the file, its schema (the migration chain) and the .seq file all fail."""
    if existing == "empty file":
        (small_disk.path / "outbox.db").touch()  # schema version 0: the migration must run
    small_disk.fill()
    outbox = open_outbox(small_disk)
    assert outbox.writer_alive and outbox.fault is not None
    assert outbox.fault.kind == "disk_full"
    hold(outbox, [offered(1)])
    small_disk.free()
    wait_until(lambda: len(outbox.held) == 0, 5, what="the held events were stored")
    assert outbox.put(offered(2)) == 4  # storage_fault alarm, call 1, storage_recovered
    outbox.close()
    events = stored(small_disk)
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert alarm_codes(events) == ["storage_fault", "storage_recovered"]


def test_start_on_a_full_disk_forwards_what_is_already_queued(
    small_disk: SmallDisk, broker: PrivateBroker, monitor: FeedMonitor
) -> None:
    with open_outbox(small_disk) as first_run:
        queued = [first_run.put(offered(n)) for n in range(25)]
    small_disk.fill()
    outbox = open_outbox(small_disk)
    assert outbox.fault is not None, "no room even for the WAL index: read-only forwarding"
    settings = MqttSettings(url=broker.url, reconnect_min_s=0.1, reconnect_max_s=0.5)
    forwarder = Forwarder(outbox, settings, gateway_id=GATEWAY, region=REGION)
    forwarder.start()
    try:
        got = monitor.wait_for(
            lambda m: {e["seq"] for e in m.events_of(GATEWAY, "call.offered")} >= set(queued), 15
        )
        assert got, "everything queued before the restart reaches the broker"
        fault_alarm = monitor.wait_for(
            lambda m: "storage_fault" in alarm_codes(list(m.feed(GATEWAY).unsequenced.values())),
            10,
        )
        assert fault_alarm, "the held storage_fault alarm is sent from memory with seq 0"
        small_disk.free()
        assert monitor.wait_for(
            lambda m: "storage_recovered" in alarm_codes(m.events_of(GATEWAY, "gateway.alarm")),
            15,
        )
    finally:
        forwarder.stop()
        outbox.close()


# ---------------------------------------------------------------- read-only and failing disks

EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32): every later I/O fails with EIO
EXT4_GOING_FLAGS_NOLOGFLUSH = 2


class LoopDisk:
    """An ext4 image loop-mounted with errors=remount-ro: made to fail as an SD card does."""

    def __init__(self, directory: Path) -> None:
        self.image = directory / "disk.ext4"
        self.path = directory / "disk"

    def mount(self) -> str | None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.image, "wb") as image:
            image.truncate(16 * 1024 * 1024)
        for command in (
            ["mkfs.ext4", "-q", "-F", str(self.image)],
            ["mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.path)],
        ):
            try:
                done = subprocess.run(command, capture_output=True, text=True)
            except FileNotFoundError as error:
                return f"{command[0]} is not installed ({error})"
            if done.returncode != 0:
                return f"{' '.join(command[:2])} failed: {done.stderr.strip()}"
        return None

    def error_to_read_only(self) -> None:
        """What the kernel does on a metadata error: remount read-only at once (EROFS)."""
        device = Path(
            subprocess.run(
                ["findmnt", "-n", "-o", "SOURCE", str(self.path)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        ).name
        Path(f"/sys/fs/ext4/{device}/trigger_fs_error").write_text("edge112 test\n")

    def fail_every_io(self) -> None:
        """A card that stopped answering: every later read and write fails with EIO."""
        import fcntl
        import struct

        handle = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.ioctl(handle, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
        finally:
            os.close(handle)

    def repair(self) -> None:
        """What a technician does: unmount, fsck, mount again at the same place."""
        subprocess.run(["umount", "-l", str(self.path)], check=True)
        subprocess.run(["e2fsck", "-fy", str(self.image)], capture_output=True)
        subprocess.run(
            ["mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.path)], check=True
        )

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@pytest.fixture
def loop_disk(tmp_path: Path) -> Iterator[LoopDisk]:
    disk = LoopDisk(tmp_path)
    mounted_or_skip(disk.mount(), "a loop-mounted ext4 image (root, e2fsprogs)")
    try:
        yield disk
    finally:
        disk.unmount()


@pytest.mark.parametrize("failure", ["read_only", "io_error"])
def test_a_disk_that_fails_holds_events_until_it_is_repaired_and_mounted_again(
    loop_disk: LoopDisk, failure: str
) -> None:
    outbox = Outbox(loop_disk.path / "outbox.db", gateway_id=GATEWAY, region=REGION)
    calls = [offered(n) for n in range(20)]
    for call in calls[:5]:
        outbox.put(call)
    if failure == "read_only":
        loop_disk.error_to_read_only()
    else:
        loop_disk.fail_every_io()
    hold(outbox, calls[5:15])
    assert outbox.writer_alive and outbox.fault is not None
    assert outbox.fault.kind == failure, outbox.fault
    loop_disk.repair()
    wait_until(lambda: len(outbox.held) == 0, 10, what="stored once the disk is back")
    for call in calls[15:]:
        outbox.put(call)
    outbox.close()
    with sqlite3.connect(loop_disk.path / "outbox.db") as conn:
        rows = conn.execute("SELECT payload FROM events ORDER BY seq").fetchall()
    events = [json.loads(row[0]) for row in rows]
    assert_complete(events, calls)
    assert alarm_codes(events) == ["storage_fault", "storage_recovered"]


# ---------------------------------------------------------------- a death during the fault

_HOLD_THEN_DIE = textwrap.dedent(
    """
    import os, sys, time
    from gateway.events import CallOffered, Presentation
    from gateway.outbox import Outbox
    outbox = Outbox(sys.argv[1], gateway_id="bontang-01", region="64.74", reserve_bytes=0)
    outbox.put(CallOffered(call_id="before", line="gsm0", number=None,
                           presentation=Presentation.UNAVAILABLE, ring_count=1))
    print("ready", flush=True)
    sys.stdin.readline()  # the disk is filled now
    for n in range(int(sys.argv[2])):
        outbox.submit(CallOffered(call_id=f"held-{n}", line="gsm0", number=None,
                                  presentation=Presentation.UNAVAILABLE, ring_count=1))
    deadline = time.monotonic() + 10
    while len(outbox.held) < int(sys.argv[2]) + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    print("held", len(outbox.held), flush=True)
    time.sleep(60)  # killed here
    """
)


def test_a_process_killed_while_holding_events_leaves_them_in_the_journal(
    small_disk: SmallDisk,
) -> None:
    path = small_disk.path / "outbox.db"
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD_THEN_DIE, str(path), "12"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        small_disk.fill()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().split() == ["held", "13"]  # 12 calls + storage_fault
    finally:
        child.kill()
        child.wait(5)
    small_disk.free()
    with open_outbox(small_disk) as outbox:
        wait_until(lambda: len(outbox.held) == 0, 5, what="the held events were stored")
    events = stored(small_disk)
    call_ids = [e["data"]["call_id"] for e in events if e["type"] == "call.offered"]
    assert call_ids == ["before", *(f"held-{n}" for n in range(12))]
    recovered = next(e for e in events if e["data"].get("code") == "held_events_recovered")
    assert recovered["data"]["detail"]["held"] == 13
    assert recovered["data"]["detail"]["lost"] == 0


# ---------------------------------------------------------------- recordings


def _record_call(disk: SmallDisk, seconds: float, min_free_mb: float) -> dict[str, Any]:
    """One answered call of speech-like audio through the product pipeline; its summary."""
    from drivers.simulated.audio_signals import speech_like, to_pcm
    from gateway.audio.contract import CallAudio
    from gateway.audio.pipeline import CallAudioPipeline
    from gateway.audio.recorder import RecordingStore
    from gateway.config import AudioSettings
    from gateway.events import CallAudioSummary, Event

    settings = AudioSettings(recordings_dir=str(disk.path / "recordings"), min_free_mb=min_free_mb)
    store = RecordingStore(settings.recordings_dir, quota_mb=100, min_free_mb=min_free_mb)
    events: list[Event] = []
    call = CallAudio(call_id="call-1", line="gsm0", encoding="pcm16", play=None)
    pipeline = CallAudioPipeline(call, settings, events.append, store=store)
    pcm = to_pcm(speech_like(seconds, seed=3))
    for position in range(0, len(pcm), 320):
        pipeline.feed(pcm[position : position + 320])
    pipeline.close()
    summaries = [event for event in events if isinstance(event, CallAudioSummary)]
    assert len(summaries) == 1, "the call's analysis is reported whatever became of its recording"
    return summaries[0].data()


def _leave_free(disk: SmallDisk, free: int) -> None:
    with open(disk.path / "filler-partial", "wb") as filler:
        filler.write(b"\xa5" * max(0, disk.free_bytes() - free))


def test_a_recording_stops_before_it_takes_the_outbox_last_space(small_disk: SmallDisk) -> None:
    from gateway.audio.wav import read_wav

    _leave_free(small_disk, 1_100_000)
    summary = _record_call(small_disk, seconds=30, min_free_mb=1.0)  # 240 kB of A-law
    recording = summary["recording"]
    assert recording is not None and recording["stopped"] == "disk_low"
    assert 5_000 < recording["duration_ms"] < 25_000, "stopped part way, at the floor"
    assert small_disk.free_bytes() >= 1_000_000 - 8_000 * 2, "the floor held (within 2 s)"
    kept = read_wav(Path(recording["path"]))
    assert abs(kept.duration_ms - recording["duration_ms"]) <= 20, "what was kept is a valid WAV"


def test_no_recording_starts_below_the_floor(small_disk: SmallDisk) -> None:
    _leave_free(small_disk, 500_000)
    summary = _record_call(small_disk, seconds=3, min_free_mb=1.0)
    assert summary["recording"] is None
    assert not list((small_disk.path / "recordings").rglob("*.wav"))


def test_a_recording_the_disk_refuses_ends_cleanly_and_says_so(small_disk: SmallDisk) -> None:
    _leave_free(small_disk, 60_000)
    summary = _record_call(small_disk, seconds=20, min_free_mb=0)  # no floor: ENOSPC itself
    recording = summary["recording"]
    assert recording is not None and recording["stopped"] == "write_failed"
    assert recording["duration_ms"] < 20_000
