"""AudioPort on a real pseudo-terminal: whole frames from any split, playback, a vanished port."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator

import pytest
import serial

from drivers.audio_port import FRAME_BYTES, AudioPort

from .conftest import PtyPair

FRAME_COUNT = 6


class FrameCollector:
    """An AudioSink that keeps what it is fed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frames: list[bytes] = []
        self.closed = 0

    def feed(self, frame: bytes) -> None:
        with self._lock:
            self.frames.append(frame)

    def close(self) -> None:
        self.closed += 1

    def count(self) -> int:
        with self._lock:
            return len(self.frames)


class FailingSink(FrameCollector):
    def feed(self, frame: bytes) -> None:
        super().feed(frame)
        raise RuntimeError("consumer bug")


def numbered_frames(count: int, first: int = 0) -> list[bytes]:
    """Frames whose every byte says which frame it is, so any misalignment shows."""
    return [bytes([(first + index) % 256]) * FRAME_BYTES for index in range(count)]


@pytest.fixture
def audio_port(pty_pair: PtyPair) -> Iterator[AudioPort]:
    port = AudioPort(pty_pair.path, name="gsm0-audio")
    yield port
    port.close()


def test_frames_are_reassembled_from_odd_sized_writes(pty_pair, audio_port, wait_until):
    sink = FrameCollector()
    audio_port.attach(sink)
    stream = b"".join(numbered_frames(FRAME_COUNT))

    sizes = [1, 7, 319, 2, 333, 641, 13]
    position = 0
    for size in sizes * 10:
        piece = stream[position : position + size]
        if not piece:
            break
        os.write(pty_pair.master, piece)
        position += len(piece)
        time.sleep(0.002)
    assert position == len(stream)

    wait_until(lambda: sink.count() == FRAME_COUNT)
    assert sink.frames == numbered_frames(FRAME_COUNT)


def test_frames_without_a_sink_are_dropped_and_detach_stops_delivery(
    pty_pair, audio_port, wait_until
):
    os.write(pty_pair.master, b"".join(numbered_frames(2)))
    time.sleep(0.2)  # read and dropped: nobody is attached
    sink = FrameCollector()
    audio_port.attach(sink)
    os.write(pty_pair.master, b"".join(numbered_frames(3, first=2)))
    wait_until(lambda: sink.count() == 3)

    assert audio_port.detach() is sink
    os.write(pty_pair.master, b"".join(numbered_frames(2, first=5)))
    time.sleep(0.2)

    assert sink.frames == numbered_frames(3, first=2)
    assert sink.closed == 0  # closing is the owner's job
    assert audio_port.detach() is None


def test_write_plays_to_the_port(pty_pair, audio_port):
    pcm = bytes(range(256)) * 5

    audio_port.write(pcm)

    received = b""
    deadline = time.monotonic() + 2.0
    while len(received) < len(pcm) and time.monotonic() < deadline:
        received += os.read(pty_pair.master, 4096)
    assert received == pcm


def test_write_refuses_half_samples(audio_port):
    with pytest.raises(ValueError, match="whole samples"):
        audio_port.write(b"\x00\x01\x02")


def test_a_failing_sink_is_logged_once_and_still_fed(pty_pair, audio_port, wait_until, caplog):
    sink = FailingSink()
    audio_port.attach(sink)

    os.write(pty_pair.master, b"".join(numbered_frames(4)))

    wait_until(lambda: sink.count() == 4)
    failures = [record for record in caplog.records if "audio sink" in record.getMessage()]
    assert len(failures) == 1


def test_a_vanishing_port_is_reported_once_and_survived(pty_pair, audio_port, wait_until, caplog):
    caplog.set_level(logging.WARNING, logger="edge112.drivers.audio")
    sink = FrameCollector()
    audio_port.attach(sink)
    os.write(pty_pair.master, b"".join(numbered_frames(2)) + b"\x01" * 100)  # a partial tail
    wait_until(lambda: sink.count() == 2)

    os.close(pty_pair.master)  # the USB device is gone
    pty_pair.master = -1

    wait_until(lambda: audio_port.lost_reason is not None)
    assert not audio_port.usable
    audio_port.write(b"\x00\x00" * 160)  # dropped, no exception
    audio_port.close()
    lost = [record for record in caplog.records if "audio port lost" in record.getMessage()]
    assert len(lost) == 1
    assert sink.frames == numbered_frames(2)


def test_a_missing_port_fails_to_open(tmp_path):
    with pytest.raises(serial.SerialException):
        AudioPort(str(tmp_path / "no-such-port"), name="gsm0-audio")


def test_frame_size_must_be_whole_samples(pty_pair):
    with pytest.raises(ValueError, match="multiple of 2"):
        AudioPort(pty_pair.path, name="x", frame_bytes=321)
