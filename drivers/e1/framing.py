"""One tapped direction of an E1 span: octets in; aligned frames, line state and typed events out.

Where it sits::

    SpanSource (sources.py) --octets--> E1Receiver --FrameRun--> e1.demux / TS16 -> HdlcDeframer
                                            |
                                            +--LineEvent--> the E1 driver (line.status)
                                            +--LineState--> health, `edge112 e1 monitor`

``E1Receiver`` wraps the framer hot path (``cython_ext.e1_framing``, whose
pure-Python reference documents the G.704 / G.706 / G.775 rules and the
named thresholds) and adds what needs no speed: events as typed dataclasses
stamped with line time, one-second accounting of CRC-4 errors (the CRC-4
error-rate defect) and a ``LineState`` snapshot.

Defects and their events (``DefectRaised`` / ``DefectCleared``)::

    LOS          2048 zero bits in a row (1 ms); cleared by >= 32 ones in 256 bits
    AIS          <= 2 zeros in each of two 512-bit double frames (all ones); >= 3 clears
    LOF          no frame alignment: from the start, and after 3 errored FAS words,
                 3 NFAS bit-2 errors or 915/1000 errored CRC-4 blocks (DefectRaised.reason)
    RAI          A bit = 1 in 3 consecutive NFAS words; A = 0 in 3 clears (and LOF clears it)
    CRC4_ERRORS  more than 805 errored CRC-4 blocks in a second of line (a severely
                 errored second); a second with fewer clears it

``alarm`` picks the most telling one in that order (LOS hides the AIS, LOF
and RAI it causes). Also reported: ``SlipDetected`` (the frame phase moved
by a whole frame, octets or bits while briefly out of alignment),
``MultiframeAligned`` and ``Crc4Absent`` (CRC-4 mode, no multiframe found
within 400 ms: the far end sends no CRC-4).

Time: line bit ``b`` is at ``start_time + b / 2_048_000`` (``start_time`` is
the time of the first octet fed, seconds since the epoch or since the
stream began). Seconds for the CRC-4 rate are counted in line octets
(256,000 a second), so a replay gives the same figures at any speed.

Threads: none; one receiver per direction, fed by one thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from types import ModuleType

from cython_ext import e1_framing as _hot_path

AlignmentLoss = _hot_path.AlignmentLoss
FrameRun = _hot_path.FrameRun
FramerEvent = _hot_path.FramerEvent
FramerEventKind = _hot_path.FramerEventKind

LINE_BITS_PER_SECOND = 2_048_000
OCTETS_PER_SECOND = LINE_BITS_PER_SECOND // 8
# A second with more errored CRC-4 blocks (of 1000) is severely errored (2048 kbit/s with
# CRC-4; the in-service threshold of ITU-T M.2100 as test sets and multiplexers apply it:
# "ES 1 to 805 CRC-4 errors, SES more than 805").
CRC4_SEVERELY_ERRORED_BLOCKS = 805


class Defect(StrEnum):
    """Line defects, most telling first (``LineState.alarm`` picks the first active one)."""

    LOS = "los"  # loss of signal
    AIS = "ais"  # alarm indication signal: all ones from upstream
    LOF = "lof"  # loss of frame alignment
    RAI = "rai"  # remote alarm indication: the far end has a defect
    CRC4_ERRORS = "crc4-errors"  # a severely errored second by CRC-4


_DEFECT_TEXT = {
    Defect.LOS: "loss of signal (LOS)",
    Defect.AIS: "alarm indication signal (AIS, all ones)",
    Defect.LOF: "loss of frame alignment (LOF)",
    Defect.RAI: "remote alarm (RAI)",
    Defect.CRC4_ERRORS: "excessive CRC-4 errors",
}


_LOSS_TEXT = {
    AlignmentLoss.FAS_ERRORS: f"{_hot_path.LOSS_FAS_ERRORS} errored FAS words in a row",
    AlignmentLoss.NFAS_ERRORS: f"{_hot_path.LOSS_NFAS_ERRORS} NFAS words in a row with bit 2 = 0",
    AlignmentLoss.CRC4_ERRORS: (
        f">= {_hot_path.CRC4_LOSS_ERRORED_BLOCKS} of {_hot_path.CRC4_LOSS_WINDOW_BLOCKS}"
        " CRC-4 blocks errored"
    ),
}


class SlipKind(StrEnum):
    FRAME = "frame"  # 256 bits: a frame deleted or repeated (a controlled slip, G.822)
    OCTET = "octet"  # octets lost or repeated on the way to the tap
    BIT = "bit"  # a raw serial tap slipped bits


@dataclass(frozen=True)
class LineEvent:
    """Something seen on one direction, at line bit ``bit`` (``time`` in seconds)."""

    bit: int
    time: float


@dataclass(frozen=True)
class DefectRaised(LineEvent):
    defect: Defect
    reason: AlignmentLoss | None = None  # for LOF after alignment was held

    @property
    def detail(self) -> str:
        if self.reason is None:
            return _DEFECT_TEXT[self.defect]
        return f"{_DEFECT_TEXT[self.defect]}: {_LOSS_TEXT[self.reason]}"


@dataclass(frozen=True)
class DefectCleared(LineEvent):
    defect: Defect


@dataclass(frozen=True)
class SlipDetected(LineEvent):
    displacement_bits: int  # where frames start now minus where they would have, -255..256

    @property
    def kind(self) -> SlipKind:
        if abs(self.displacement_bits) == 256:
            return SlipKind.FRAME
        if self.displacement_bits % 8 == 0:
            return SlipKind.OCTET
        return SlipKind.BIT


@dataclass(frozen=True)
class MultiframeAligned(LineEvent):
    """CRC-4 multiframe alignment found: CRC-4 blocks and E bits are counted from here."""


@dataclass(frozen=True)
class Crc4Absent(LineEvent):
    """CRC-4 mode, but no multiframe alignment 400 ms after frame alignment (G.706 Annex B)."""


@dataclass(frozen=True)
class FramingCounters:
    octets_in: int = 0
    frames: int = 0  # aligned frames delivered
    fas_errors: int = 0
    nfas_errors: int = 0  # NFAS words with bit 2 = 0
    crc4_blocks: int = 0  # sub-multiframes checked
    crc4_errors: int = 0
    e_bits: int = 0  # far-end block errors (E = 0)
    alignments: int = 0
    losses: int = 0
    slips: int = 0

    def minus(self, earlier: FramingCounters) -> FramingCounters:
        return FramingCounters(
            **{name: getattr(self, name) - getattr(earlier, name) for name in _COUNTER_FIELDS}
        )


_COUNTER_FIELDS = tuple(FramingCounters.__dataclass_fields__)


@dataclass(frozen=True)
class LineState:
    """One direction's line state at one moment."""

    crc4: bool  # CRC-4 mode configured
    los: bool = False
    ais: bool = False
    lof: bool = True
    rai: bool = False
    crc4_errors: bool = False  # the last second was severely errored by CRC-4
    multiframe_aligned: bool = False
    crc4_absent: bool = False
    bit_offset: int | None = None  # where frames start within an octet, when aligned
    counters: FramingCounters = field(default_factory=FramingCounters)
    last_second: FramingCounters | None = None  # the counters' increase over the last second

    @property
    def defects(self) -> tuple[Defect, ...]:
        active = {
            Defect.LOS: self.los,
            Defect.AIS: self.ais,
            Defect.LOF: self.lof,
            Defect.RAI: self.rai,
            Defect.CRC4_ERRORS: self.crc4_errors,
        }
        return tuple(defect for defect in Defect if active[defect])

    @property
    def alarm(self) -> Defect | None:
        defects = self.defects
        return defects[0] if defects else None

    @property
    def ok(self) -> bool:
        return self.alarm is None

    @property
    def detail(self) -> str:
        """One line for ``line.status``: the alarm, or what is working."""
        alarm = self.alarm
        if alarm is Defect.CRC4_ERRORS and self.last_second is not None:
            second = self.last_second
            return f"{_DEFECT_TEXT[alarm]}: {second.crc4_errors} of {second.crc4_blocks} blocks/s"
        if alarm is not None:
            return _DEFECT_TEXT[alarm]
        if not self.crc4:
            return "frame aligned"
        if self.multiframe_aligned:
            return "frame and CRC-4 multiframe aligned"
        if self.crc4_absent:
            return "frame aligned, no CRC-4 from the far end"
        return "frame aligned, searching the CRC-4 multiframe"


@dataclass(frozen=True)
class Framed:
    """What one ``feed`` produced."""

    runs: list[FrameRun]  # (bit, frames): whole 32-octet frames, the first at line bit ``bit``
    events: list[LineEvent]

    @property
    def frames(self) -> bytes:
        """All aligned frames of the chunk back to back (runs may have gaps between them)."""
        return b"".join(run.frames for run in self.runs)


class E1Receiver:
    """Frames one direction and keeps its line state; ``feed(chunk)`` -> ``Framed``.

    ``crc4``: the span uses the CRC-4 multiframe (PRI in Europe and Indonesia usually
    does). ``bit_search`` (default): frames may start at any bit, as from a raw serial
    tap that does not know where octets start; False: only on octet boundaries, as a
    framer chip or osmo-e1d hands them over. ``implementation``: the hot path module
    (the pure-Python reference for tests).
    """

    def __init__(
        self,
        *,
        crc4: bool = False,
        bit_search: bool = True,
        start_time: float = 0.0,
        implementation: ModuleType = _hot_path,
    ) -> None:
        self.crc4 = crc4
        self.start_time = start_time
        self._framer = implementation.E1Framer(crc4, bit_search)
        self._crc4_errors = False
        self._second_start = FramingCounters()
        self._last_second: FramingCounters | None = None

    def time_of(self, bit: int) -> float:
        return self.start_time + bit / LINE_BITS_PER_SECOND

    def feed(self, data: bytes | bytearray | memoryview) -> Framed:
        view = memoryview(data).cast("B")
        runs: list[FrameRun] = []
        events: list[LineEvent] = []
        while len(view):
            to_boundary = OCTETS_PER_SECOND - self._framer.octets_in % OCTETS_PER_SECOND
            piece, view = view[:to_boundary], view[to_boundary:]
            piece_runs, raw_events = self._framer.feed(piece)
            runs.extend(piece_runs)
            events.extend(self._typed(event) for event in raw_events)
            if self._framer.octets_in % OCTETS_PER_SECOND == 0:
                events.extend(self._second_ended())
        return Framed(runs, events)

    def _typed(self, event: FramerEvent) -> LineEvent:
        bit, kind, value = event
        time = self.time_of(bit)
        if kind == FramerEventKind.ALIGNED:
            return DefectCleared(bit, time, Defect.LOF)
        if kind == FramerEventKind.ALIGNMENT_LOST:
            return DefectRaised(bit, time, Defect.LOF, AlignmentLoss(value))
        if kind == FramerEventKind.SLIP:
            return SlipDetected(bit, time, value)
        if kind == FramerEventKind.MULTIFRAME_ALIGNED:
            return MultiframeAligned(bit, time)
        if kind == FramerEventKind.CRC4_ABSENT:
            return Crc4Absent(bit, time)
        defect, raised = _DEFECT_EVENTS[FramerEventKind(kind)]
        return DefectRaised(bit, time, defect) if raised else DefectCleared(bit, time, defect)

    def _second_ended(self) -> list[LineEvent]:
        now = self._counters()
        second = now.minus(self._second_start)
        self._second_start = now
        self._last_second = second
        bit = 8 * self._framer.octets_in
        severe = self.crc4 and second.crc4_errors > CRC4_SEVERELY_ERRORED_BLOCKS
        if severe == self._crc4_errors:
            return []
        self._crc4_errors = severe
        kind = DefectRaised if severe else DefectCleared
        return [kind(bit, self.time_of(bit), Defect.CRC4_ERRORS)]

    def _counters(self) -> FramingCounters:
        return FramingCounters(**self._framer.counters())

    @property
    def state(self) -> LineState:
        framer = self._framer
        offset = framer.bit_offset
        return LineState(
            crc4=self.crc4,
            los=framer.los,
            ais=framer.ais,
            lof=not framer.aligned,
            rai=framer.rai,
            crc4_errors=self._crc4_errors,
            multiframe_aligned=framer.multiframe_aligned,
            crc4_absent=framer.crc4_absent,
            bit_offset=None if offset < 0 else offset,
            counters=self._counters(),
            last_second=self._last_second,
        )


_DEFECT_EVENTS = {
    FramerEventKind.LOS_ON: (Defect.LOS, True),
    FramerEventKind.LOS_OFF: (Defect.LOS, False),
    FramerEventKind.AIS_ON: (Defect.AIS, True),
    FramerEventKind.AIS_OFF: (Defect.AIS, False),
    FramerEventKind.RAI_ON: (Defect.RAI, True),
    FramerEventKind.RAI_OFF: (Defect.RAI, False),
}
