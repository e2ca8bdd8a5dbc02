"""Call audio from a modem's audio port: the serial reader that cuts it into frames.

Once a call is answered and voice is switched on (Quectel ``AT+QPCMV=1,0``,
SIMCom ``AT+CPCMREG=1``, Huawei ``AT^DDSETEX=2``), a GSM modem streams the
caller's audio on a second serial port and plays whatever is written back to
the caller. The stream has no framing of its own::

    modem -> gateway   | s0 | s1 | s2 | ... | s159 | s0 | s1 | ...     8 kHz, one channel
                       '--- 320 bytes = 20 ms ---'                      each s: int16 LE
    gateway -> modem   the same format, played to the caller

``AudioPort`` owns such a port (any pyserial URL, opened exclusively) with
one reader thread that cuts the byte stream into whole frames, however the
USB or TTY layer splits it, and hands each frame to the ``AudioSink``
attached at that moment; with none attached, frames are dropped. A port that
vanishes is logged once (``edge112.drivers.audio``); delivery simply stops.

What a consumer gets for each answered call (``CallAudio``, and the frames
through the ``AudioSink`` its ``AudioSinkFactory`` made for that call) is the
gateway's audio contract, ``gateway.audio.contract``; it is re-exported here
for code written before it moved there.
"""

from __future__ import annotations

import logging
import threading

import serial

from drivers.at_channel import CLOSE_TIMEOUT_S, PORT_ERRORS, SerialPort, open_port
from gateway.audio.contract import (
    SAMPLE_RATE,
    AudioEncoding,
    AudioSink,
    AudioSinkFactory,
    CallAudio,
)

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "SAMPLE_BYTES",
    "SAMPLE_RATE",
    "AudioEncoding",
    "AudioPort",
    "AudioSink",
    "AudioSinkFactory",
    "CallAudio",
]

logger = logging.getLogger("edge112.drivers.audio")

SAMPLE_BYTES = 2  # signed 16-bit little-endian
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000 * SAMPLE_BYTES  # 320


class AudioPort:
    """An open audio port with its reader thread; frames go to the attached sink.

    ``attach``, ``detach``, ``write`` and ``close`` may be called from any
    thread. Once ``detach`` returns, the detached sink gets no more frames.
    """

    def __init__(self, url: str, *, name: str, frame_bytes: int = FRAME_BYTES) -> None:
        if frame_bytes <= 0 or frame_bytes % SAMPLE_BYTES:
            raise ValueError(f"frame_bytes must be a positive multiple of {SAMPLE_BYTES}")
        self.name = name
        self.url = url
        self.frame_bytes = frame_bytes
        self._sink: AudioSink | None = None
        self._sink_failures = 0
        self._delivery_lock = threading.RLock()  # held while a frame is fed, so detach waits
        self._write_lock = threading.Lock()
        self._lost_lock = threading.Lock()
        self._lost_reason: str | None = None
        self._write_timeouts = 0
        self._closing = threading.Event()
        self._port: SerialPort = open_port(url)
        self._reader = threading.Thread(
            target=self._read_loop, name=f"edge112-audio-{name}", daemon=True
        )
        self._reader.start()

    def __enter__(self) -> AudioPort:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def lost_reason(self) -> str | None:
        """Why the port stopped working, or ``None`` while it works."""
        return self._lost_reason

    @property
    def usable(self) -> bool:
        """Open, not lost, not closing."""
        return self._lost_reason is None and not self._closing.is_set()

    def attach(self, sink: AudioSink) -> None:
        """Deliver every following frame to ``sink`` (replacing any sink attached before)."""
        with self._delivery_lock:
            self._sink = sink
            self._sink_failures = 0

    def detach(self) -> AudioSink | None:
        """Stop delivering; return the sink that was attached. Waits for a frame being fed."""
        with self._delivery_lock:
            sink, self._sink = self._sink, None
            if sink is not None and self._sink_failures > 1:
                logger.warning("%s: audio sink failed %d times", self.name, self._sink_failures)
            return sink

    def write(self, pcm: bytes) -> None:
        """Play ``pcm`` (PCM16, whole samples) to the caller.

        Modems play at 8 kHz and buffer little: write about a frame every
        20 ms. Audio written to a lost or closed port, or that the port does
        not take within its write timeout, is dropped (and logged).
        """
        if len(pcm) % SAMPLE_BYTES:
            raise ValueError(f"PCM16 needs whole samples; got {len(pcm)} bytes")
        if not pcm:
            return
        with self._write_lock:
            if not self.usable:
                return
            try:
                self._port.write(pcm)
            except PORT_ERRORS as exc:
                if isinstance(exc, serial.SerialTimeoutException):  # slow, not gone
                    self._note_write_timeout(len(pcm))
                else:
                    self._report_lost(f"write failed: {exc}")

    def close(self) -> None:
        """Stop the reader (within about a read timeout) and close the port."""
        if self._closing.is_set():
            return
        self._closing.set()
        if threading.current_thread() is not self._reader:
            self._reader.join(CLOSE_TIMEOUT_S)
        with self._write_lock:
            try:
                self._port.close()
            except PORT_ERRORS as exc:  # a vanished device may refuse; it is gone anyway
                logger.debug("%s: closing the audio port failed: %s", self.name, exc)

    # Reader thread ---------------------------------------------------------

    def _read_loop(self) -> None:
        pending = bytearray()
        while not self._closing.is_set():
            try:
                wanted = max(self.frame_bytes - len(pending), self._port.in_waiting)
                pending += self._port.read(wanted)
            except PORT_ERRORS as exc:
                self._report_lost(f"read failed: {exc}")
                return
            whole = len(pending) - len(pending) % self.frame_bytes
            for start in range(0, whole, self.frame_bytes):
                self._deliver(bytes(pending[start : start + self.frame_bytes]))
            del pending[:whole]

    def _deliver(self, frame: bytes) -> None:
        with self._delivery_lock:
            sink = self._sink
            if sink is None:
                return
            try:
                sink.feed(frame)
            except Exception:
                self._sink_failures += 1
                if self._sink_failures == 1:
                    logger.exception("%s: audio sink %r failed", self.name, sink)

    def _report_lost(self, reason: str) -> None:
        with self._lost_lock:
            if self._lost_reason is not None or self._closing.is_set():
                return
            self._lost_reason = reason
        logger.warning("%s: audio port lost: %s", self.name, reason)

    def _note_write_timeout(self, dropped_bytes: int) -> None:
        self._write_timeouts += 1
        if self._write_timeouts == 1 or self._write_timeouts % 100 == 0:
            logger.warning(
                "%s: audio port not taking playback; %d bytes dropped (%d times so far)",
                self.name,
                dropped_bytes,
                self._write_timeouts,
            )
