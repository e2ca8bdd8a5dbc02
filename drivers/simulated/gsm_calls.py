"""Incoming calls as the simulated network places them: what the caller does, what happened.

``SimulatedCall`` is the script of one call (caller id, patience, talk time,
audio, and how the network presents the caller id: with every RING, late, or
never), ``PlacedCall`` what became of it, for tests and benchmarks to compare
with what the gateway published.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from drivers.simulated.caller_audio import AudioLog, AudioSegment, CallerVoice, check_digits
from gateway.events import Presentation

RING_INTERVAL_S = 5.0  # real networks alert about every 5 s
TALK_S = 10.0


class CallOutcome(StrEnum):
    ANSWERED = "answered"  # the gateway answered (ATA)
    ABANDONED = "abandoned"  # the caller (or the network) gave up before an answer
    REJECTED = "rejected"  # the gateway hung up before answering
    LOST = "lost"  # the modem vanished, closed or rebooted during the call
    CANCELLED = "cancelled"  # queued, never rang


@dataclass(frozen=True)
class SimulatedCall:
    """An incoming call as the caller makes it.

    ``presentation`` defaults to ALLOWED with a number, UNAVAILABLE without
    (no ``+CLIP`` at all, like a SIM-less 112 call); RESTRICTED sends a
    ``+CLIP`` with an empty number. ``hangup_after_rings``: the caller gives
    up after that many rings if nobody answered (None: waits for an answer,
    until the network gives up). ``talk_s``: after an answer the caller
    talks this long, then hangs up. ``announce_end=False`` is a fault: the
    modem prints nothing when the caller hangs up (a lost or garbled URC), so
    only ``AT+CLCC`` shows the call is gone.

    Caller id as the network presents it (each only matters with
    ``AT+CLIP=1``): ``network_clip=False`` sends no ``+CLIP`` at all although
    the number is known (``AT+CLCC`` still lists it); ``clip_delay_s`` sends
    each ``+CLIP`` that long after its RING, and not at all once the call is
    answered (answering on the first RING loses it); ``clip_first`` sends the
    ``+CLIP`` before its RING.

    ``audio``: what the caller does after the answer (``AudioSegment.speech``,
    ``.silence``, ``.noise``, ``.dtmf``, ``.wav``), then silence until
    ``talk_s`` ends. ``respond_to_prompt``: digits the caller presses once
    they have heard 1 s of non-silent audio from the gateway.
    """

    number: str | None = None
    presentation: Presentation | None = None
    hangup_after_rings: int | None = None
    talk_s: float = TALK_S
    ring_interval_s: float = RING_INTERVAL_S
    announce_end: bool = True
    audio: tuple[AudioSegment, ...] = ()
    respond_to_prompt: str | None = None
    network_clip: bool = True
    clip_delay_s: float = 0.0
    clip_first: bool = False

    def __post_init__(self) -> None:
        if self.presentation is None:
            derived = Presentation.ALLOWED if self.number else Presentation.UNAVAILABLE
            object.__setattr__(self, "presentation", derived)
        if self.presentation is Presentation.ALLOWED and not self.number:
            raise ValueError("presentation 'allowed' needs a number")
        if self.presentation is not Presentation.ALLOWED and self.number:
            raise ValueError(f"presentation '{self.presentation}' must not have a number")
        if self.hangup_after_rings is not None and self.hangup_after_rings < 1:
            raise ValueError("hangup_after_rings must be at least 1")
        if self.talk_s < 0 or self.ring_interval_s <= 0:
            raise ValueError("talk_s must be >= 0 and ring_interval_s > 0")
        if self.clip_delay_s < 0:
            raise ValueError("clip_delay_s must be >= 0")
        object.__setattr__(self, "audio", tuple(self.audio))
        if not all(isinstance(segment, AudioSegment) for segment in self.audio):
            raise ValueError("audio must be AudioSegments")
        if self.respond_to_prompt is not None:
            check_digits(self.respond_to_prompt)

    @property
    def shown_presentation(self) -> Presentation:
        return self.presentation or Presentation.UNAVAILABLE


@dataclass
class PlacedCall:
    """A call handed to the modem, filled in as it happens."""

    sequence: int
    spec: SimulatedCall
    rings: int = 0
    first_ring_wall: float | None = None  # time.time() just before the first RING was written
    first_ring_monotonic: float | None = None
    answered_monotonic: float | None = None
    ended_monotonic: float | None = None
    outcome: CallOutcome | None = None
    audio_log: AudioLog = field(default_factory=AudioLog)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the call is over; False on timeout."""
        return self._done.wait(timeout)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record of the call (the simulator CLI prints one per line)."""

        def since_first_ring(moment: float | None) -> float | None:
            if moment is None or self.first_ring_monotonic is None:
                return None
            return round(moment - self.first_ring_monotonic, 3)

        return {
            "call": self.sequence,
            "number": self.spec.number,
            "presentation": self.spec.shown_presentation.value,
            "first_ring_wall": self.first_ring_wall,
            "first_ring_monotonic": self.first_ring_monotonic,
            "rings": self.rings,
            "outcome": self.outcome.value if self.outcome else None,
            "answered_after_s": since_first_ring(self.answered_monotonic),
            "ended_after_s": since_first_ring(self.ended_monotonic),
            "pressed_after_s": since_first_ring(self.audio_log.pressed_monotonic),
            **self.audio_log.summary(),
        }

    def _finish(self, outcome: CallOutcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
        if self.ended_monotonic is None:
            self.ended_monotonic = time.monotonic()
        self._done.set()


@dataclass
class LiveCall:
    placed: PlacedCall
    answered: bool = False
    outcome: CallOutcome | None = None
    voice: CallerVoice | None = None  # from the answer on
    changed: threading.Event = field(default_factory=threading.Event)  # answered or over
    over: threading.Event = field(default_factory=threading.Event)


def number_and_type(spec: SimulatedCall) -> tuple[str, int]:
    """The number as +CLIP/+CLCC show it, and its 24.008 type (145 international)."""
    if not spec.number:
        return "", 128
    return spec.number, 145 if spec.number.startswith("+") else 129
