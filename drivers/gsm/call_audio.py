"""Call audio of one GSM modem: its audio port, kept open across calls, and the live call's sink.

The driver's worker thread walks each answered call through it::

    answered -> open_port() -> dialect audio-on commands -> begin(call_id): factory -> sink
    while the call is up: AudioPort reader -> sink.feed(frame), 320 bytes every 20 ms
    call over, its end event emitted -> end(): detach, sink.close() exactly once
                                     -> dialect audio-off commands

Nothing here may break call signalling: a missing port, a sink factory that
raises or a sink whose ``close`` raises is logged on ``edge112.drivers.gsm``
and the call goes on without audio. A port lost mid-call (logged by
``AudioPort``) is reopened for the next answered call.
"""

from __future__ import annotations

import logging
import threading

from drivers.at_channel import PORT_ERRORS
from drivers.audio_port import AudioPort
from gateway.audio.contract import AudioEncoding, AudioSink, AudioSinkFactory, CallAudio

logger = logging.getLogger("edge112.drivers.gsm")


class ModemCallAudio:
    """The audio port at ``url`` for line ``line``, and the sink of the call it carries now."""

    def __init__(self, line: str, url: str, sink_factory: AudioSinkFactory) -> None:
        self.line = line
        self.url = url
        self._sink_factory = sink_factory
        self._lock = threading.Lock()
        self._port: AudioPort | None = None
        self._call_id: str | None = None
        self._sink: AudioSink | None = None
        self._closed = False

    @property
    def call_id(self) -> str | None:
        """The call whose audio is being delivered, or ``None``."""
        with self._lock:
            return self._call_id

    def open_port(self) -> bool:
        """Make sure the port is open (reopening a lost one); False, logged, if it cannot be."""
        with self._lock:
            if self._closed:
                return False
            if self._port is not None and self._port.usable:
                return True
            stale, self._port = self._port, None
        if stale is not None:
            stale.close()
        try:
            port = AudioPort(self.url, name=f"{self.line}-audio")
        except PORT_ERRORS as exc:
            logger.warning("%s: cannot open the audio port %s: %s", self.line, self.url, exc)
            return False
        with self._lock:
            if not self._closed:
                self._port = port
                return True
        port.close()  # closed meanwhile (the driver stopped)
        return False

    def begin(self, call_id: str) -> bool:
        """Give call ``call_id`` a sink from the factory and feed it; False, logged, if not."""
        with self._lock:
            port = self._port
        if port is None or not port.usable:
            logger.warning(
                "%s: no audio for call %s: the audio port is not open", self.line, call_id
            )
            return False
        audio = CallAudio(
            call_id=call_id, line=self.line, encoding=AudioEncoding.PCM16, play=port.write
        )
        try:
            sink = self._sink_factory(audio)
        except Exception:
            logger.exception("%s: the audio sink factory failed for call %s", self.line, call_id)
            return False
        with self._lock:
            if not self._closed:
                self._call_id, self._sink = call_id, sink
                port.attach(sink)
                return True
        _close_sink(sink, self.line, call_id)  # closed meanwhile (the driver stopped)
        return False

    def end(self) -> str | None:
        """Stop feeding the call's sink and close it, once; return that call's id, if any."""
        with self._lock:
            call_id, sink, port = self._call_id, self._sink, self._port
            self._call_id = self._sink = None
            if port is not None:
                port.detach()
        if sink is None:
            return None
        _close_sink(sink, self.line, call_id)
        return call_id

    def close(self) -> None:
        """End the call's audio, if any, and close the port for good."""
        with self._lock:
            self._closed = True
        self.end()
        with self._lock:
            port, self._port = self._port, None
        if port is not None:
            port.close()


def _close_sink(sink: AudioSink, line: str, call_id: str | None) -> None:
    try:
        sink.close()
    except Exception:
        logger.exception("%s: closing the audio sink of call %s failed", line, call_id)
