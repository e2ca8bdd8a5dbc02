"""Call audio between a line driver and the gateway: what a call's audio is, and who takes it.

A line driver (a GSM modem's PCM port, later an E1 B-channel) that has the
audio of an answered call asks the ``AudioSinkFactory`` it was given for a
sink, then feeds it frames until the call is over::

    driver (worker thread)                       gateway (gateway/audio/pipeline.py)
    call answered ── factory(CallAudio) ───────▶ a sink for this call
    reader thread ── sink.feed(frame) ─────────▶ decode, DTMF, voice activity, recording
    call's end event out ── sink.close() once ─▶ call.audio_summary

``feed`` runs on the driver's reader thread (keep it quick: hand heavy work
to a queue); ``close`` comes exactly once, after the call's end event went
out. The drivers import this contract; the gateway never imports a driver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

SAMPLE_RATE = 8000


class AudioEncoding(StrEnum):
    PCM16 = "pcm16"  # signed 16-bit little-endian linear PCM (GSM modems)
    ALAW = "alaw"  # G.711 A-law, one byte a sample (E1 B-channels)


@dataclass(frozen=True)
class CallAudio:
    """The audio of one answered call, as a consumer sees it.

    ``play`` writes PCM16 (the same format as the frames) to the caller; it
    is ``None`` when the source cannot play (a passive E1 tap, say).

    ``channels`` is 2 when a source has both directions of the call (an E1
    B-channel: the caller's and the centre's): frames then interleave a
    sample of each, the caller first. Channel 0 is analysed; both are recorded.
    """

    call_id: str
    line: str
    encoding: str
    sample_rate: int = SAMPLE_RATE
    play: Callable[[bytes], None] | None = None
    channels: int = 1


class AudioSink(Protocol):
    """Receives one call's audio frames, then one ``close`` when the call is over."""

    def feed(self, frame: bytes) -> None: ...

    def close(self) -> None: ...


# Called once per answered call, on the driver's worker thread: return quickly.
AudioSinkFactory = Callable[[CallAudio], AudioSink]
