"""CallRecorder (a valid WAV at every moment, even after a kill) and RecordingStore (quota, age)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from cython_ext import g711
from gateway.audio.recorder import CallRecorder, RecordingInfo, RecordingStore
from gateway.audio.wav import read_wav

from .sounds import dtmf, noise, pack, sox_reads

FRAME_MS = 20
FRAME_SAMPLES = 160
REPO = Path(__file__).resolve().parents[3]


def call_audio(seconds: float) -> bytes:
    return pack(noise(seconds * 1000, 3000.0, seed=7))


def frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + 2 * FRAME_SAMPLES] for i in range(0, len(pcm), 2 * FRAME_SAMPLES)]


def copy_of(path: Path, tmp_path: Path, name: str) -> Path:
    copy = tmp_path / name
    shutil.copyfile(path, copy)
    return copy


# --------------------------------------------------------------------- recorder


@dataclass
class Recorded:
    pcm: bytes  # what was written
    path: Path  # the closed recording
    middle: Path  # a copy taken after 2.52 s had been written
    info: RecordingInfo


def record_a_call(tmp_path: Path, encoding: str) -> Recorded:
    """5.3 s of call audio through a CallRecorder, with a copy of the file taken halfway."""
    pcm = call_audio(5.3)
    path = tmp_path / "rec" / "call.wav"
    recorder = CallRecorder(path, encoding=encoding)
    assert read_wav(path).frames == 0  # valid from the start
    middle = tmp_path / "mid.wav"
    for index, frame in enumerate(frames(pcm)):
        recorder.write_pcm(frame)
        if index == 125:  # 2.52 s written
            copy_of(path, tmp_path, middle.name)
    assert recorder.duration_ms == 5300
    return Recorded(pcm, path, middle, recorder.close())


@pytest.mark.parametrize("encoding", ["alaw", "pcm"])
def test_recording_is_valid_while_written_and_complete_after_close(
    tmp_path: Path, encoding: str
) -> None:
    recorded = record_a_call(tmp_path, encoding)
    pcm, path, info = recorded.pcm, recorded.path, recorded.info
    assert 1520 <= read_wav(recorded.middle).duration_ms <= 2520

    stored = path.read_bytes()
    assert info.path == path
    assert info.bytes == len(stored)
    assert info.sha256 == hashlib.sha256(stored).hexdigest()
    assert (info.duration_ms, info.encoding) == (5300, encoding)
    audio = read_wav(path)
    assert audio.source.encoding == ("alaw" if encoding == "alaw" else "pcm_s16")
    assert audio.pcm == (g711.alaw_decode(g711.alaw_encode(pcm)) if encoding == "alaw" else pcm)
    assert len(stored) == (58 + 42400 if encoding == "alaw" else 44 + 84800)


ODD_ALAW_CODES = bytes(range(256)) + b"\xd5"  # odd length: a pad byte follows the data


def record_alaw_codes(path: Path) -> Path:
    with CallRecorder(path) as recorder:
        recorder.write_alaw(ODD_ALAW_CODES)
    return path


def test_alaw_codes_are_stored_as_they_came(tmp_path: Path) -> None:
    path = record_alaw_codes(tmp_path / "a.wav")
    assert path.read_bytes()[58:] == ODD_ALAW_CODES + b"\x00"
    assert read_wav(path).pcm == g711.alaw_decode(ODD_ALAW_CODES)


def test_alaw_into_a_pcm_recording_is_decoded(tmp_path: Path) -> None:
    codes = bytes(range(256))
    with CallRecorder(tmp_path / "p.wav", encoding="pcm") as recorder:
        recorder.write_alaw(codes)
    assert read_wav(tmp_path / "p.wav").pcm == g711.alaw_decode(codes)


def test_crash_without_close_loses_at_most_a_second(tmp_path: Path) -> None:
    path = tmp_path / "crash.wav"
    recorder = CallRecorder(path)
    pcm = call_audio(3.7)
    for frame in frames(pcm):
        recorder.write_pcm(frame)
    # The process "crashes" here: the file stays open, never closed.
    audio = read_wav(copy_of(path, tmp_path, "copy.wav"))
    assert 2700 <= audio.duration_ms <= 3700
    assert audio.pcm == g711.alaw_decode(g711.alaw_encode(pcm))[: len(audio.pcm)]
    recorder.close()


CHILD = """
import sys, time
from gateway.audio.recorder import CallRecorder
recorder = CallRecorder(sys.argv[1])
frame = bytes(320)
written_ms = 0
while True:
    recorder.write_pcm(frame)
    written_ms += 20
    if written_ms % 200 == 0:
        print(written_ms, flush=True)
        time.sleep(0.002)
"""


def kill_a_recording_process(path: Path) -> int:
    """Record in a child process, SIGKILL it after 3 s of audio; how much it said it wrote."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    reported = 0
    while reported < 3000:
        reported = int(child.stdout.readline())
    child.send_signal(signal.SIGKILL)
    child.wait()
    return reported


def test_killed_recorder_process_leaves_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "killed.wav"
    reported = kill_a_recording_process(path)
    assert read_wav(path).duration_ms >= reported - 1000


@pytest.mark.requires_tool("sox")
@pytest.mark.parametrize("encoding", ["alaw", "pcm"])
def test_sox_opens_a_recording_while_written_and_after_close(tmp_path: Path, encoding: str) -> None:
    recorded = record_a_call(tmp_path, encoding)
    assert sox_reads(recorded.middle), "a copy taken mid-call"
    assert sox_reads(recorded.path), "the closed recording"


@pytest.mark.requires_tool("sox")
def test_sox_opens_stored_alaw_codes_with_a_pad_byte(tmp_path: Path) -> None:
    assert sox_reads(record_alaw_codes(tmp_path / "a.wav"))


@pytest.mark.requires_tool("sox")
def test_sox_opens_what_a_killed_recorder_left(tmp_path: Path) -> None:
    path = tmp_path / "killed.wav"
    kill_a_recording_process(path)
    assert sox_reads(path)


def test_sync_on_wall_clock_time_too(tmp_path: Path) -> None:
    """Audio that trickles in slower than real time still reaches the disk each interval."""
    path = tmp_path / "slow.wav"
    recorder = CallRecorder(path, sync_interval_s=0.05)
    recorder.write_pcm(bytes(320))
    time.sleep(0.06)
    recorder.write_pcm(bytes(320))
    assert read_wav(path).frames == 320
    recorder.close()


def test_recorder_errors(tmp_path: Path) -> None:
    path = tmp_path / "e.wav"
    recorder = CallRecorder(path, encoding="pcm")
    with pytest.raises(ValueError, match="even number"):
        recorder.write_pcm(b"\x00\x01\x02")
    recorder.close()
    with pytest.raises(ValueError, match="already closed"):
        recorder.close()
    with pytest.raises(ValueError, match="already closed"):
        recorder.write_pcm(bytes(2))
    with pytest.raises(FileExistsError):
        CallRecorder(path)  # never overwrite a recording
    with pytest.raises(ValueError, match="encoding"):
        CallRecorder(tmp_path / "x.wav", encoding="mp3")


# --------------------------------------------------------------------- store

STARTED = datetime(2025, 3, 9, 14, 5, 7, tzinfo=UTC)


def test_path_for(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path, quota_mb=1)
    path = store.path_for("0190-abc", "gsm1", STARTED)
    assert path == tmp_path.resolve() / "2025/03/09/gsm1-20250309T140507Z-0190-abc.wav"
    wib = timezone(timedelta(hours=7))  # Jakarta: stored by UTC date and time
    early = datetime(2025, 3, 10, 5, 0, 0, tzinfo=wib)
    assert store.path_for("c", "e1/span1:ts3", early).relative_to(tmp_path.resolve()) == Path(
        "2025/03/09/e1_span1_ts3-20250309T220000Z-c.wav"
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        store.path_for("c", "gsm1", datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="cannot name"):
        store.path_for("..", "gsm1", STARTED)


def make_recording(store: RecordingStore, call: str, size: int, age_days: float) -> Path:
    path = store.path_for(call, "gsm1", STARTED - timedelta(days=age_days))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"R" * size)
    moment = time.time() - age_days * 86400
    os.utime(path, (moment, moment))
    return path


def bystanders(root: Path) -> list[Path]:
    """Files under a store that are not recordings, each a trap for a careless cleaner."""
    outside = root.parent / "outside-target.wav"
    outside.write_bytes(b"x" * 500_000)
    day = root / "2020" / "01" / "01"
    day.mkdir(parents=True, exist_ok=True)
    traps = [
        day / "notes.txt",
        day / "gsm1-20200101T000000Z-c.wav.part",
        root / "gsm1-20200101T000000Z-top.wav",  # right name, wrong place
        root / "other" / "gsm1-20200101T000000Z-deep.wav",
        root / "2020" / "13x" / "01" / "gsm1-20200101T000000Z-m.wav",
    ]
    for trap in traps:
        trap.parent.mkdir(parents=True, exist_ok=True)
        trap.write_bytes(b"t" * 300_000)
        os.utime(trap, (0, 0))  # older than anything
    link = day / "gsm1-20200101T000000Z-link.wav"
    link.symlink_to(outside)
    return [*traps, link, outside]


def test_quota_deletes_the_oldest_first_and_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "rec"
    store = RecordingStore(root, quota_mb=0.6)  # 1.3 MB of recordings
    oldest = make_recording(store, "a", 400_000, age_days=3)
    older = make_recording(store, "b", 400_000, age_days=2)
    newer = make_recording(store, "c", 400_000, age_days=1)
    newest = make_recording(store, "d", 100_000, age_days=0)
    traps = bystanders(root)
    with caplog.at_level(logging.INFO, logger="edge112.audio"):
        deleted = store.enforce()
    assert deleted == [oldest, older]
    assert all(path.exists() for path in (newer, newest, *traps))
    assert store.usage_bytes() == 500_000
    assert [record.name for record in caplog.records] == ["edge112.audio"] * 2
    assert "gsm1-" in caplog.records[0].getMessage()
    assert "over the quota" in caplog.records[0].getMessage()
    assert not oldest.parent.exists()  # its empty day directory went too
    assert store.enforce() == []


def test_recordings_in_use_are_kept(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path, quota_mb=0.5)
    oldest = make_recording(store, "a", 400_000, age_days=2)
    other = make_recording(store, "b", 400_000, age_days=1)
    assert store.enforce(in_use=[oldest]) == [other]
    assert oldest.exists()


def test_retention_by_age(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    store = RecordingStore(root, quota_mb=100, retention_days=30)
    expired = make_recording(store, "old", 1000, age_days=31)
    kept = make_recording(store, "young", 1000, age_days=29)
    traps = bystanders(root)
    assert store.enforce() == [expired]
    assert kept.exists()
    assert all(path.exists() for path in traps)
    assert RecordingStore(root, quota_mb=100).enforce() == []  # 0 days: no age limit


def test_a_real_recording_counts(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path, quota_mb=0.01)
    path = store.path_for("call", "gsm2", datetime.now(UTC))
    with CallRecorder(path) as recorder:
        recorder.write_pcm(pack(dtmf("55")))
    assert [item.path for item in store.recordings()] == [path]
    assert store.enforce() == [] and path.exists()  # 3.3 kB: within 10 kB


def test_refuses_root_and_the_outbox(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="root of the filesystem"):
        RecordingStore("/", quota_mb=1)
    outbox_dir = tmp_path / "var"
    (outbox_dir / "db").mkdir(parents=True)
    connection = sqlite3.connect(outbox_dir / "db" / "queue")  # no suffix: found by its magic
    connection.execute("create table t (x)")
    connection.commit()
    connection.close()
    with pytest.raises(ValueError, match="SQLite database"):
        RecordingStore(outbox_dir, quota_mb=1)
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "outbox.db").touch()  # a brand-new, still empty outbox
    with pytest.raises(ValueError, match=r"outbox\.db"):
        RecordingStore(tmp_path / "fresh", quota_mb=1)
    with pytest.raises(ValueError, match=r"contains .*outbox\.db"):
        RecordingStore(
            tmp_path / "clean", quota_mb=1, protected=[tmp_path / "clean" / "sub" / "outbox.db"]
        )

    # A database that appears later: enforce() deletes nothing and says why.
    root = tmp_path / "rec"
    store = RecordingStore(root, quota_mb=0.1)
    recording = make_recording(store, "a", 400_000, age_days=1)
    sqlite3.connect(root / "events.db").close()
    with caplog.at_level(logging.ERROR, logger="edge112.audio"):
        assert store.enforce() == []
    assert recording.exists()
    assert "SQLite database" in caplog.text


def test_bad_store_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="quota_mb"):
        RecordingStore(tmp_path, quota_mb=0)
    with pytest.raises(ValueError, match="retention_days"):
        RecordingStore(tmp_path, quota_mb=1, retention_days=-1)
