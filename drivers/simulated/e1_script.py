"""What the simulated span plays: calls offered by the network, faults, and each call's truth.

``SpanScenario`` holds scheduled ``SpanCall``s and ``SpanFault``s (from a TOML
file or a random mix: ``e1_scenario``); ``SimulatedSpan`` (``e1_span``) plays
them and fills in a ``SpanCallRecord`` per call, whose ``expected()`` says
which events, cause, outcome and channel a gateway tapping the span must
report. Pure data: no timing, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from drivers.e1 import generator as line
from drivers.e1.lapd import Direction
from drivers.e1.q931_codes import CauseValue
from drivers.simulated.caller_audio import AudioSegment
from gateway.events import Presentation

N2U = Direction.NETWORK_TO_USER
U2N = Direction.USER_TO_NETWORK
D_CHANNEL_TIMESLOT = 16
B_CHANNELS = tuple(channel for channel in range(1, 32) if channel != D_CHANNEL_TIMESLOT)

DEFAULT_CENTRE_AUDIO: tuple[AudioSegment, ...] = (
    AudioSegment.silence(0.3),
    AudioSegment.speech(1.5, level_dbov=-18.0, seed=112),  # "112, ada yang bisa kami bantu?"
)


class SpanOutcome(StrEnum):
    ANSWERED = "answered"
    ABANDONED = "abandoned"  # the caller hangs up before the answer
    BUSY = "busy"  # the centre refuses at once: RELEASE COMPLETE, cause 17
    REJECTED = "rejected"  # the centre refuses after CALL PROCEEDING: DISCONNECT, cause 21


class ClearingSide(StrEnum):
    CALLER = "caller"
    CENTRE = "centre"


@dataclass(frozen=True)
class SpanCall:
    """One call offered by the network (the PSTN) to the centre.

    ``caller``: ``+62...`` is sent as an international number, ``0...`` as a
    national one (without the 0), anything else as type unknown; None sends no
    Calling party number at all. ``presentation`` defaults to allowed with a
    caller, unavailable without; ``restricted`` sends the digits with the
    restricted indicator (a 112 trunk often still carries them).
    """

    caller: str | None = None
    presentation: Presentation | None = None
    called: str = "112"
    overlap: bool = False  # called digits after the first in INFORMATION (not when busy)
    outcome: SpanOutcome = SpanOutcome.ANSWERED
    ring_s: float = 2.0  # SETUP to CONNECT (answered), to the caller's or centre's DISCONNECT
    talk_s: float = 5.0
    cleared_by: ClearingSide = ClearingSide.CALLER  # who hangs up an answered call
    channel: int | None = None  # None: the lowest free B-channel
    exclusive: bool = True  # False: the SETUP's channel is only preferred
    confirmed_channel: int | None = None  # with exclusive=False: the centre takes this one
    audio: tuple[AudioSegment, ...] = ()  # the caller, from the answer
    centre_audio: tuple[AudioSegment, ...] = DEFAULT_CENTRE_AUDIO  # the call-taker

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", SpanOutcome(self.outcome))  # also from a string
        object.__setattr__(self, "cleared_by", ClearingSide(self.cleared_by))
        if self.presentation is not None:
            object.__setattr__(self, "presentation", Presentation(self.presentation))
        if self.presentation is None:
            derived = Presentation.ALLOWED if self.caller else Presentation.UNAVAILABLE
            object.__setattr__(self, "presentation", derived)
        if self.presentation is Presentation.ALLOWED and not self.caller:
            raise ValueError("presentation 'allowed' needs a caller number")
        if self.caller is not None and not self.caller.lstrip("+").isdigit():
            raise ValueError(f"caller must be digits (with a leading + or 0), got {self.caller!r}")
        if not self.called or not self.called.isdigit():
            raise ValueError(f"called must be digits, got {self.called!r}")
        for name in ("channel", "confirmed_channel"):
            value = getattr(self, name)
            if value is not None and value not in B_CHANNELS:
                raise ValueError(f"{name} must be a B-channel (1-15, 17-31), got {value}")
        if self.confirmed_channel is not None and self.exclusive:
            raise ValueError("confirmed_channel needs exclusive = false (a preferred channel)")
        if self.ring_s < 0 or self.talk_s < 0:
            raise ValueError("ring_s and talk_s must be >= 0")
        for name in ("audio", "centre_audio"):
            segments = tuple(getattr(self, name))
            if not all(isinstance(segment, AudioSegment) for segment in segments):
                raise ValueError(f"{name} must be AudioSegments")
            object.__setattr__(self, name, segments)

    @property
    def shown_presentation(self) -> Presentation:
        return self.presentation or Presentation.UNAVAILABLE

    @property
    def number(self) -> str | None:
        """The number a gateway must report (only when presentation is allowed)."""
        if self.shown_presentation is not Presentation.ALLOWED:
            return None
        return self.caller


class FaultKind(StrEnum):
    BIT_ERRORS = "bit_errors"  # count bits flipped, spread over duration_s (or one block)
    BAD_FCS = "bad_fcs"  # the next count frames: a copy with a bad FCS goes first
    ABORT = "abort"  # the next count frames: an aborted copy goes first
    SLIP = "slip"  # count > 0: frames repeated; < 0: frames deleted (a controlled slip)
    LOS = "los"  # all zeros for duration_s
    AIS = "ais"  # all ones for duration_s
    LOST_ALIGNMENT = "lost_alignment"  # every FAS word broken for duration_s
    RAI = "rai"  # the A bit set for duration_s
    RETRANSMISSION = "retransmission"  # the next count I frames are sent again after T200
    LINK_DOWN = "link_down"  # DISC/UA, then SABME/UA after duration_s
    DISCONNECT = "disconnect"  # the outputs drop their connections (sockets)


LINE_OUTAGES = frozenset({FaultKind.LOS, FaultKind.AIS, FaultKind.LOST_ALIGNMENT})


@dataclass(frozen=True)
class SpanFault:
    kind: FaultKind
    direction: Direction | None = None  # None: both directions
    duration_s: float = 0.0
    count: int = 1
    timeslot: int | None = None  # bit_errors only: flip bits of this timeslot only

    def __post_init__(self) -> None:
        if self.duration_s < 0:
            raise ValueError("duration_s must be >= 0")
        if self.timeslot is not None and not 0 <= self.timeslot < line.FRAME_OCTETS:
            raise ValueError(f"timeslot must be 0-31, got {self.timeslot}")
        if self.kind is not FaultKind.SLIP and self.count < 1:
            raise ValueError("count must be at least 1")
        if self.kind is FaultKind.SLIP and not self.count:
            raise ValueError("a slip needs count != 0 (frames repeated, or deleted if < 0)")

    @property
    def directions(self) -> tuple[Direction, ...]:
        return (self.direction,) if self.direction is not None else (N2U, U2N)


@dataclass(frozen=True)
class ScheduledSpanCall:
    at_s: float
    call: SpanCall


@dataclass(frozen=True)
class ScheduledFault:
    at_s: float
    fault: SpanFault


@dataclass(frozen=True)
class SpanScenario:
    calls: tuple[ScheduledSpanCall, ...] = ()
    faults: tuple[ScheduledFault, ...] = ()
    crc4: bool = True
    seed: int = 0


@dataclass
class SpanCallRecord:
    """One call as the simulator played it, and what a gateway must report of it."""

    sequence: int
    spec: SpanCall
    call_reference: int
    channel: int  # the B-channel the centre confirmed
    offered_at_s: float
    answered_at_s: float | None = None
    ended_at_s: float | None = None  # the first clearing message
    released_at_s: float | None = None  # RELEASE COMPLETE

    @property
    def done(self) -> bool:
        return self.released_at_s is not None

    def expected(self) -> dict[str, Any]:
        """The gateway's view of this call: its end event and the span fields in it."""
        spec = self.spec
        outcome = spec.outcome
        if outcome is SpanOutcome.ANSWERED:
            by_caller = spec.cleared_by is ClearingSide.CALLER
            return {
                "event": "call.ended",
                "outcome": "answered",
                "cleared_by": "network" if by_caller else "user",
                "cause": "remote_hangup" if by_caller else "local_hangup",
                "q850_cause": int(CauseValue.NORMAL_CLEARING),
            }
        if outcome is SpanOutcome.ABANDONED:
            return {
                "event": "call.abandoned",
                "outcome": "abandoned",
                "cleared_by": "network",
                "cause": "remote_hangup",
                "q850_cause": int(CauseValue.NORMAL_CLEARING),
            }
        busy = outcome is SpanOutcome.BUSY
        return {
            "event": "call.abandoned",
            "outcome": "rejected",
            "cleared_by": "user",
            "cause": "busy" if busy else "local_hangup",
            "q850_cause": int(CauseValue.USER_BUSY if busy else CauseValue.CALL_REJECTED),
        }

    def summary(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "sequence": self.sequence,
            "call_reference": self.call_reference,
            "caller": spec.caller,
            "presentation": spec.shown_presentation.value,
            "number": spec.number,
            "called": spec.called,
            "b_channel": self.channel,
            "scripted": spec.outcome.value,
            "offered_at_s": round(self.offered_at_s, 3),
            "answered_at_s": _rounded(self.answered_at_s),
            "ended_at_s": _rounded(self.ended_at_s),
            "released_at_s": _rounded(self.released_at_s),
            **self.expected(),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
