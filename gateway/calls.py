"""Per-line call state machine: call signals from a driver in, call events out.

Every driver (GSM modems now, E1 spans later) reports the same few signals
for a line and lets a ``CallTracker`` turn them into the call events of the
contract, in order, exactly once each::

                 ring() / caller_id()                answered()
    (idle) ───────────────────────────► RINGING ─────────────────► ANSWERED
                                           │                           │
                          released(cause)  │                           │ released(cause)
                                           ▼                           ▼
                                    CallAbandoned                  CallEnded
                                 (ring_count, ring_time_ms)     (duration_ms)

``CallOffered`` goes out once per call, as soon as the caller id is known:
``+CLIP`` may come before the first RING, after it, or in the same read. When
no caller id comes within ``caller_id_grace_s`` of the call's first signal
(112 can be dialled without a SIM), the offer goes out with presentation
UNAVAILABLE and no number; ``tick()``, called periodically by the driver,
fires that timeout. An answer or release that comes first sends the offer
first, so consumers always see offered -> (answered -> ended | abandoned).

A ``+CLIP`` stands for the ring it accompanies (3GPP TS 27.007 sends one
after every RING), so a CLIP that arrives before the first RING counts as
that ring and the RING that follows does not count again.

Times come from an injected monotonic ``clock``. All methods take one lock,
so signals and ticks may come from different threads; ``emit`` is called
with that lock held (which keeps events in order) and must not call back
into the tracker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from gateway.events import (
    CallAbandoned,
    CallAnswered,
    CallEnded,
    CallOffered,
    EndCause,
    Event,
    Presentation,
)
from gateway.ids import uuid7_str
from gateway.privacy import mask_number

logger = logging.getLogger("edge112.calls")

CALLER_ID_GRACE_S = 0.5  # a +CLIP follows its RING within milliseconds on real modems


class CallState(StrEnum):
    IDLE = "idle"
    RINGING = "ringing"
    ANSWERED = "answered"


@dataclass
class _Call:
    call_id: str
    started_at: float
    ring_count: int = 0
    clip_counted_as_ring: bool = False
    number: str | None = None
    presentation: Presentation | None = None  # None until the caller id is known
    offered: bool = False
    late_caller_id_seen: bool = False
    answered_at: float | None = None


class CallTracker:
    """Tracks the one call on ``line`` and emits its events through ``emit``."""

    def __init__(
        self,
        line: str,
        emit: Callable[[Event], None],
        clock: Callable[[], float] = time.monotonic,
        caller_id_grace_s: float = CALLER_ID_GRACE_S,
    ) -> None:
        self.line = line
        self._emit = emit
        self._clock = clock
        self._caller_id_grace_s = caller_id_grace_s
        self._lock = threading.RLock()
        self._call: _Call | None = None

    @property
    def state(self) -> CallState:
        with self._lock:
            if self._call is None:
                return CallState.IDLE
            return CallState.RINGING if self._call.answered_at is None else CallState.ANSWERED

    @property
    def call_id(self) -> str | None:
        with self._lock:
            return self._call.call_id if self._call else None

    @property
    def ring_count(self) -> int:
        """Rings of the current call so far; 0 when idle."""
        with self._lock:
            return self._call.ring_count if self._call else 0

    def ring(self) -> None:
        """A RING / +CRING: starts a call, or counts one more ring of it."""
        with self._lock:
            call = self._call or self._start_call()
            if call.answered_at is not None:
                logger.debug("%s: RING during an answered call ignored", self.line)
                return
            if call.clip_counted_as_ring:
                call.clip_counted_as_ring = False
            else:
                call.ring_count += 1
            self._offer_if_ready(call)

    def caller_id(self, number: str | None, presentation: Presentation) -> None:
        """A +CLIP (or the span's calling party number). Only the first one counts."""
        with self._lock:
            call = self._call or self._start_call()
            if call.ring_count == 0:
                call.ring_count = 1
                call.clip_counted_as_ring = True
            if not call.offered:
                call.number, call.presentation = _normalised(number, presentation)
            elif call.number is None and number and not call.late_caller_id_seen:
                call.late_caller_id_seen = True
                logger.info(
                    "%s: caller id %s came after the offer went out without one",
                    self.line,
                    mask_number(number),
                )
            self._offer_if_ready(call)

    def answered(self, *, call_id: str | None = None) -> None:
        """The call was answered. With ``call_id``, only if that call is still current."""
        with self._lock:
            call = self._current(call_id)
            if call is None or call.answered_at is not None:
                return
            self._offer_now(call)
            call.answered_at = self._clock()
            self._emit(
                CallAnswered(
                    call_id=call.call_id,
                    line=self.line,
                    ring_count=call.ring_count,
                    ring_time_ms=_ms(call.answered_at - call.started_at),
                )
            )

    def released(self, cause: EndCause, *, call_id: str | None = None) -> None:
        """The call is over. With ``call_id``, only if that call is still current."""
        with self._lock:
            call = self._current(call_id)
            if call is None:
                return
            self._offer_now(call)
            self._call = None
            self._emit(self._end_event(call, cause, self._clock()))

    def tick(self) -> None:
        """Send the offer without caller id once the grace period has passed."""
        with self._lock:
            call = self._call
            if call is None or call.offered:
                return
            if self._clock() - call.started_at >= self._caller_id_grace_s:
                self._offer_now(call)

    def _start_call(self) -> _Call:
        self._call = _Call(call_id=uuid7_str(), started_at=self._clock())
        return self._call

    def _current(self, call_id: str | None) -> _Call | None:
        call = self._call
        if call is None or (call_id is not None and call.call_id != call_id):
            return None
        return call

    def _offer_if_ready(self, call: _Call) -> None:
        if not call.offered and call.presentation is not None and call.ring_count > 0:
            self._offer_now(call)

    def _offer_now(self, call: _Call) -> None:
        if call.offered:
            return
        call.offered = True
        presentation = call.presentation = call.presentation or Presentation.UNAVAILABLE
        logger.info(
            "%s: call %s offered from %s (%s)",
            self.line,
            call.call_id,
            mask_number(call.number),
            presentation.value,
        )
        self._emit(
            CallOffered(
                call_id=call.call_id,
                line=self.line,
                number=call.number,
                presentation=presentation,
                ring_count=call.ring_count,
            )
        )

    def _end_event(self, call: _Call, cause: EndCause, now: float) -> Event:
        if call.answered_at is not None:
            return CallEnded(
                call_id=call.call_id,
                line=self.line,
                duration_ms=_ms(now - call.answered_at),
                cause=cause,
            )
        return CallAbandoned(
            call_id=call.call_id,
            line=self.line,
            ring_count=call.ring_count,
            ring_time_ms=_ms(now - call.started_at),
            cause=cause,
        )


def _normalised(number: str | None, presentation: Presentation) -> tuple[str | None, Presentation]:
    """A number only with ALLOWED; ALLOWED without a number is UNAVAILABLE."""
    if presentation is Presentation.ALLOWED:
        return (number, presentation) if number else (None, Presentation.UNAVAILABLE)
    return None, presentation


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
